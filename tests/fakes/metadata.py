"""A stand-in for a cloud VM's metadata service, and provider endpoints that redirect to it.

The stand-in answers every request as the instance metadata service answers for a VM's user data: 200,
text/plain, the boot script, with the credentials it exports (tests/no_metadata.py sends connections for
169.254.169.254 here). A test looks for `MARK` in what a run wrote: it is there only if a connection
reached "the metadata service" and its answer was kept.
"""
from __future__ import annotations

from tests.fakes.server import FakeServer, Received, Reply

MARK = "ASIASTANDINMETADATA"
USER_DATA = (f"#!/bin/bash\nexport AWS_ACCESS_KEY_ID={MARK}7Q2Z\nexport AWS_SECRET_ACCESS_KEY={MARK}-wJalrXUtnFEMI\n"
             "systemctl start app\n")
CREDENTIALS_PATH = "/latest/user-data"


def metadata_stand_in() -> FakeServer:
    def answer(request: Received) -> Reply:
        return Reply(200, USER_DATA, headers={"Content-Type": "text/plain"})

    return FakeServer({(method, "/*"): answer for method in ("GET", "POST", "PUT", "DELETE")})


def redirecting(status: int, host: str):
    """A route that answers `status` with Location http://HOST/...credentials (HOST as a URL writes it)."""
    def route(request: Received) -> Reply:
        return Reply(status, b"", headers={"Location": f"http://{host}{CREDENTIALS_PATH}"})

    return route
