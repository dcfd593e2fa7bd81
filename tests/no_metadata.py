"""A guard for the tests of refused addresses: in a process that installs it, a connect() to a link-local
or cloud-metadata address is blocked before a packet leaves, and remembered. A check that breaks then
fails its test without real traffic to 169.254.0.0/16. Its own list of addresses, not the runner's.

`install()` guards this process; a subprocess is guarded by putting tests/guard first on its PYTHONPATH
(its sitecustomize installs the guard, which then says on stderr what it blocked).
"""
from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

GUARD_PATH = Path(__file__).resolve().parent / "guard"
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


def install() -> None:
    global _installed
    if not _installed:  # audit hooks cannot be removed: install once per process
        sys.addaudithook(_hook)
        _installed = True
