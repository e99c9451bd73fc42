from services.core.lifecycle import run_service
from services.upload.app import serve

if __name__ == "__main__":
    run_service("upload", serve)
