"""`python -m services.notifier`: the notifier and its HTTP gateway."""

from services.core.lifecycle import run_service
from services.notifier.app import serve


def main() -> None:
    run_service("notifier", serve)


if __name__ == "__main__":
    main()
