"""`python -m services.notifier`: the notifier and its HTTP gateway."""

from services.core.lifecycle import run_service
from services.core.limits import raise_open_files_limit, relax_gc
from services.notifier.app import serve


def main() -> None:
    # Here, not in serve(): process-wide settings, which tests that run serve() in their own
    # process should not inherit. One socket per stream; many streams' objects for the GC.
    raise_open_files_limit()
    relax_gc()
    run_service("notifier", serve)


if __name__ == "__main__":
    main()
