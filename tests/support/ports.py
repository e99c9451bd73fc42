"""Free TCP ports on 127.0.0.1 for the services a test starts."""

import socket

# Every port this process has handed out: each probe socket is closed before the next is bound,
# so the kernel may well hand the same port out twice in a row (a stack's four addresses).
_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now, and never handed out before by this process."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def free_address() -> str:
    return f"127.0.0.1:{free_port()}"
