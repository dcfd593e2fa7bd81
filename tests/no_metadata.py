"""A guard for the tests of refused addresses: in a process that installs it, a connect() to a link-local
or cloud-metadata address is blocked before a packet leaves, and remembered. A check that breaks then
fails its test without real traffic to 169.254.0.0/16. Its own list of addresses, not the runner's.

`install()` guards this process; a subprocess is guarded by putting tests/guard first on its PYTHONPATH
(its sitecustomize installs the guard, which then says on stderr what it blocked).

With a stand-in (`STAND_IN_ENV=127.0.0.1:PORT` in a subprocess's environment, or `install(stand_in=...)`), a
connection to an IPv4 metadata address (or one in IPv6 form) is made to the stand-in instead: a fake
metadata service on loopback that answers as the real one would on a cloud VM, with a credential. A
test then sees both that the connection was tried (the guard says so on stderr) and where the answer
would have gone (the files the run wrote).
"""
from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path

GUARD_PATH = Path(__file__).resolve().parent / "guard"
STAND_IN_ENV = "RUNNER_TEST_METADATA_STAND_IN"
NETWORKS = [ipaddress.ip_network(n) for n in (
    "169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32", "168.63.129.16/32",
    "::ffff:169.254.0.0/112", "64:ff9b::a9fe:0/112")]
blocked: list[str] = []
_installed = False


def _forbidden(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return any(address.version == n.version and address in n for n in NETWORKS)


def _hook(event: str, args: tuple) -> None:
    if event != "socket.connect":
        return
    address = args[1]
    if isinstance(address, tuple) and address and isinstance(address[0], str) and _forbidden(address[0]):
        blocked.append(address[0])
        print(f"test guard: blocked a connection to {address[0]}", file=sys.stderr, flush=True)
        raise ConnectionRefusedError(f"test guard: blocked a connection to {address[0]}")


def _answered_by(stand_in: tuple[str, int]):
    """socket.connect and connect_ex sending connections for an IPv4 metadata address to the stand-in."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def target(sock: socket.socket, address):
        if not (isinstance(address, tuple) and address and isinstance(address[0], str) and _forbidden(address[0])):
            return address
        parsed = ipaddress.ip_address(address[0].split("%", 1)[0])
        ipv4 = parsed if parsed.version == 4 else parsed.ipv4_mapped
        if ipv4 is None:
            return address  # fe80::, fd00:ec2::254: the audit hook blocks it
        blocked.append(address[0])
        print(f"test guard: a connection to {address[0]} went to the stand-in metadata service", file=sys.stderr,
              flush=True)
        host, port = stand_in
        return (host, port) if sock.family == socket.AF_INET else (f"::ffff:{host}", port, 0, 0)

    def connect(self, address):
        return real_connect(self, target(self, address))

    def connect_ex(self, address):
        return real_connect_ex(self, target(self, address))

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex


def install(stand_in: tuple[str, int] | None = None) -> None:
    global _installed
    if _installed:  # audit hooks cannot be removed: install once per process
        return
    sys.addaudithook(_hook)
    _installed = True
    if stand_in is None and os.environ.get(STAND_IN_ENV):
        host, _, port = os.environ[STAND_IN_ENV].rpartition(":")
        stand_in = (host, int(port))
    if stand_in is not None:
        _answered_by(stand_in)
