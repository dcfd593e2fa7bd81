"""The HTTP clients the providers' SDKs get (runner.providers.connections), in this process: each kind of
client refuses a metadata address at connection time, connects to what a name resolved to, looks a name
up once per new connection, and checks a proxied request's host before the proxy sees it.

tests/no_metadata.py blocks and records any connect() this process makes to a link-local or metadata
address, so a check that breaks fails here without real traffic.
"""
from __future__ import annotations

import asyncio
import socket

import httpx
import httpx2
import pytest
import requests

from runner.providers.connections import checked_adapter, checked_client, refusal
from tests import no_metadata
from tests.fakes.metadata import redirecting
from tests.fakes.server import FakeServer, Reply

no_metadata.install()
LINK_LOCAL = "a link-local address, where cloud metadata services answer (refused)"


@pytest.fixture(autouse=True)
def no_metadata_traffic():
    no_metadata.blocked.clear()
    yield
    assert no_metadata.blocked == []  # nothing even tried to connect there


def hello(**first) -> FakeServer:
    """A server answering "hello" to everything but the routes given (path: route)."""
    def answer(request):
        return Reply(200, "hello", headers={"Content-Type": "text/plain"})

    routes = {(method, path): route for path, (method, route) in first.items()}
    return FakeServer({**routes, ("GET", "/*"): answer, ("POST", "/*"): answer})


def get(client, url: str):
    if isinstance(client, (httpx.AsyncClient, httpx2.AsyncClient)):
        async def go():
            async with client:
                return await client.get(url)

        return asyncio.run(go())
    with client:
        return client.get(url)


CLIENTS = [(httpx2, "AsyncClient"), (httpx2, "Client"), (httpx, "AsyncClient"), (httpx, "Client")]


@pytest.mark.parametrize("module,name", CLIENTS)
@pytest.mark.parametrize("status", [307, 302])
def test_each_client_refuses_a_redirect_to_a_metadata_address(module, name, status):
    with hello(**{"/v1/models": ("GET", redirecting(status, "169.254.169.254"))}) as server:
        client = checked_client(getattr(module, name))(follow_redirects=True)
        with pytest.raises(module.ConnectError) as caught:
            get(client, server.url + "/v1/models")
    assert refusal(caught.value) == "169.254.169.254 is " + LINK_LOCAL
    assert len(server.received) == 1


@pytest.fixture
def resolver(monkeypatch):
    """Names of our own at the socket layer: resolver["name"] = [addresses]; every lookup is remembered."""
    names: dict[str, list[str]] = {}
    names_looked_up: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        names_looked_up.append(name)
        if name in names:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in names[name]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    names_looked_up.clear()
    yield names, names_looked_up


@pytest.mark.parametrize("module,name", CLIENTS)
def test_a_name_with_several_addresses_connects_to_the_first_that_answers(module, name, resolver):
    names, _ = resolver
    names["two.runner.test"] = ["127.0.0.2", "127.0.0.1"]  # nothing listens on the first
    with hello() as server:
        response = get(checked_client(getattr(module, name))(), server.url.replace("127.0.0.1", "two.runner.test"))
    assert response.text == "hello"


@pytest.mark.parametrize("module,name", CLIENTS)
def test_a_name_with_any_metadata_address_is_refused_before_connecting(module, name, resolver):
    names, _ = resolver
    names["mixed.runner.test"] = ["127.0.0.1", "169.254.169.254"]  # a connection may pick either
    with hello() as server, pytest.raises(module.ConnectError) as caught:
        get(checked_client(getattr(module, name))(), server.url.replace("127.0.0.1", "mixed.runner.test"))
    assert refusal(caught.value) == "mixed.runner.test resolves to 169.254.169.254, " + LINK_LOCAL
    assert server.received == []


def test_a_name_is_looked_up_once_per_new_connection_not_per_call(resolver):
    names, looked_up = resolver
    names["api.runner.test"] = ["127.0.0.1"]
    with hello() as server:
        url = server.url.replace("127.0.0.1", "api.runner.test") + "/"

        async def go():
            async with checked_client(httpx2.AsyncClient)() as client:
                for _ in range(20):
                    assert (await client.get(url)).text == "hello"

        asyncio.run(go())
    assert looked_up.count("api.runner.test") == 1 and len(server.received) == 20


def test_a_proxied_request_to_a_metadata_address_never_reaches_the_proxy():
    """Through a proxy the proxy connects: the request's host is checked before it is handed over."""
    with FakeServer({("GET", "http://*"): lambda request: Reply(200, "proxied")}) as proxy:
        async def go(url):
            async with checked_client(httpx2.AsyncClient)(proxy=proxy.url) as client:
                return await client.get(url)

        assert asyncio.run(go("http://127.0.0.1:9/allowed")).text == "proxied"  # the proxy's answer
        with pytest.raises(httpx2.ConnectError) as caught:
            asyncio.run(go("http://169.254.169.254/latest/user-data"))
    assert refusal(caught.value) == "169.254.169.254 is " + LINK_LOCAL
    assert [request.path for request in proxy.received] == ["http://127.0.0.1:9/allowed"]


def session() -> requests.Session:
    adapter = checked_adapter()
    made = requests.Session()
    made.mount("http://", adapter)
    made.mount("https://", adapter)
    return made


@pytest.mark.parametrize("status", [307, 302])
def test_a_requests_session_refuses_a_redirect_to_a_metadata_address(status):
    """google-generativeai's REST transport: requests follows the redirect itself."""
    route = redirecting(status, "[::ffff:169.254.169.254]")
    with hello(**{"/v1beta/models/m:generateContent": ("POST", route)}) as server:
        with pytest.raises(requests.ConnectionError) as caught:
            session().post(server.url + "/v1beta/models/m:generateContent", data=b"{}")
        assert session().get(server.url + "/").text == "hello"  # loopback is fine
    assert refusal(caught.value) == "::ffff:169.254.169.254 is 169.254.169.254 in IPv6 form, " + LINK_LOCAL
    assert "HTTPConnection" not in refusal(caught.value)


def test_a_requests_session_refuses_a_name_that_resolves_to_a_metadata_address():
    with pytest.raises(requests.ConnectionError) as caught:
        session().get("http://2852039166/latest/user-data", timeout=2)
    assert refusal(caught.value) == "2852039166 resolves to 169.254.169.254, " + LINK_LOCAL


def test_a_requests_session_checks_a_proxied_request_before_the_proxy_sees_it():
    with FakeServer({("GET", "http://*"): lambda request: Reply(200, "proxied")}) as proxy:
        proxies = {"http": proxy.url}
        assert session().get("http://127.0.0.1:9/allowed", proxies=proxies).text == "proxied"
        with pytest.raises(requests.ConnectionError) as caught:
            session().get("http://169.254.169.254/latest/user-data", proxies=proxies)
    assert refusal(caught.value) == "169.254.169.254 is " + LINK_LOCAL
    assert [request.path for request in proxy.received] == ["http://127.0.0.1:9/allowed"]
