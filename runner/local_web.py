"""What the two web servers on the user's machine (runner.view, runner.chat) share: which requests they answer,
the port they listen on, and how Ctrl-C ends them.

Both listen on 127.0.0.1 by default and have no login, so any web page open in the user's browser can send
them requests. Two checks keep such a page out:
- the Host header must name the address the server listens on (127.0.0.1, localhost or [::1], with its
  port): a page cannot reach the server through a DNS name of its own that it points at 127.0.0.1 (DNS
  rebinding), which would make the server's answers readable to it;
- an Origin header, which browsers send with every request a script or a form makes, must be the
  server's own: a page cannot make the chat call a model (with the user's keys) even without reading the
  answer.
Requests without an Origin (the browser opening a URL, curl, the server's own startup check) are answered.
Bound beyond loopback (`--host 0.0.0.0`), the Host is not checked (other machines use names of their own);
the Origin still must be the address the request was sent to.
"""
from __future__ import annotations

import socket

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
INTERRUPTED = 130  # exit code after Ctrl-C, as for runs (128 + SIGINT)
MISDIRECTED = "Misdirected request: open the address the server printed."
CROSS_SITE = "Forbidden: a request from another site."


def allowed_hosts(host: str, port: int) -> set[str] | None:
    """The Host headers a server listening on host:port answers; None (any) when it listens beyond this
    machine."""
    if host not in LOOPBACK:
        return None
    names = ("127.0.0.1", "localhost", "[::1]")
    return {f"{name}:{port}" for name in names} | (set(names) if port == 80 else set())


def refusal(host: str, origin: str | None, allowed: set[str] | None) -> tuple[int, str] | None:
    """Why a request with this Host and Origin header is refused, as (HTTP status, one line); None to answer
    it. 421 for a Host that is not the server's, 403 for an Origin that is not where the request went."""
    host = (host or "").strip().lower()
    if allowed is not None and host not in allowed:
        return 421, MISDIRECTED
    if origin is not None and origin.strip().lower() not in (f"http://{host}", f"https://{host}"):
        return 403, CROSS_SITE
    return None


def free_port(host: str, port: int) -> int:
    """`port`, checked free on `host` (0: a free one the system picks). OSError when it is taken.

    The socket is closed again before the server binds the port: another program could take it in
    between, and the server then fails to start as it would on a taken port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # as the server binds it: a port whose last connections are still closing (TIME_WAIT) is free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        return probe.getsockname()[1]
