"""`python -m services.thumbnailer`: the thumbnailer until SIGTERM or SIGINT."""

from services.core.lifecycle import run_service
from services.thumbnailer.app import serve

if __name__ == "__main__":
    run_service("thumbnailer", serve)
