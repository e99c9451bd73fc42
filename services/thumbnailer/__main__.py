"""`python -m services.thumbnailer`: the thumbnailer until SIGTERM or SIGINT."""

from services.core.lifecycle import run_service
from services.thumbnailer.app import serve

if __name__ == "__main__":
    # The guard matters: the image worker processes are spawned, and import this module.
    run_service("thumbnailer", serve)
