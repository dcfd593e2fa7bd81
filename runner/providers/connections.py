"""Provider SDKs connect only to addresses the AddressPolicy allows, at every hop.

An endpoint that answers 307 or 302 with `Location: http://169.254.169.254/...` (a proxy, a compromised
gateway, a mistyped base_url) would have the SDKs follow it, headers and key included, to the cloud's
metadata service, whose answer (the machine's credentials) then lands in an error row. The page
fetcher's rules (runner.tasks.addresses: link-local and metadata addresses refused, loopback and private
networks allowed, since local servers are a core use) hold here too.

Where the check sits, and why there: at connection time, in the network backend of each HTTP client the
SDKs use (httpcore2 under openai, anthropic and google-genai; httpcore under ollama; urllib3 under
google-generativeai's requests). The backend resolves the host once, refuses it when any of its
addresses is refused, and connects to the checked addresses themselves (not to the name again, which
DNS could answer differently). That covers every hop of a redirect, a URL an API hands back (a batch's
results_url), every new pooled connection, and a name that resolves to a metadata address, with one
lookup per new connection: a call on a pooled connection costs nothing more. Refusing redirects outright
would also stop them, but not a name rebound to 169.254.169.254, nor a URL a response names; and the
SDKs' redirect handling stays as it is for the servers that do redirect (a trailing slash).
Through a proxy (HTTPS_PROXY...) the proxy connects, not us: the target's host is checked before each
request instead, as the page fetcher does.

The clients are the SDKs' own classes (httpx2's for google-genai, which takes clients of ours as its own)
with their transports built as usual (limits, TLS, proxies from the environment) and the checking
backend put in their connection pools. A refused connection raises an
exception that is both the HTTP library's connect error (so the SDK handles it as a failed connection)
and an AddressRefused; `refusal(exc)` finds it in whatever the SDK wrapped it in, and the provider
turns it into an error row naming the address and why. Nothing is sent to it.
"""
from __future__ import annotations

import functools
import importlib
import socket
from typing import Any
from urllib.parse import urlsplit

from runner.errors import ConfigError
from runner.tasks.addresses import AddressPolicy, AddressRefused, parse_address

# the page fetcher's rules, with loopback and private networks allowed: local servers are a core use
ENDPOINT_ADDRESSES = AddressPolicy()
# a connection attempt gets this head start before the next address is tried too (RFC 8305, as anyio does)
HAPPY_EYEBALLS_DELAY = 0.25


@functools.cache
def refused_as(error: type[Exception]) -> type[Exception]:
    """An exception class that is both `error` (an HTTP library's connect error) and AddressRefused."""
    return type(f"Refused{error.__name__}", (AddressRefused, error), {"__module__": __name__})


def refused(error: type[Exception], why: str, *args: Any) -> Exception:
    """`error` as AddressRefused, made with `args` (its own signature; `why` when none are given); its
    `why` is the reason alone, without what the library adds to its message."""
    made = refused_as(error)(*(args or (why,)))
    made.why = why
    return made


def refusal(exc: BaseException | None) -> str | None:
    """Why a connection was refused, if one was, behind an SDK's exception however it was wrapped (causes,
    contexts, urllib3's reason)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        error = todo.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, AddressRefused):
            return getattr(error, "why", None) or str(error)
        reason = getattr(error, "reason", None)
        todo += [error.__cause__, error.__context__, reason if isinstance(reason, BaseException) else None,
                 *(arg for arg in error.args if isinstance(arg, BaseException))]
    return None


def _unique(found: list) -> list[str]:
    """The addresses of a getaddrinfo answer, in its order, once each."""
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in found))


def checked_addresses(host: str, port: int, policy: AddressPolicy, error: type[Exception]) -> list[str]:
    """The addresses to connect to for host:port, each allowed by the policy (a blocking lookup); a refusal
    is raised as `error` (and AddressRefused)."""
    if parse_address(host) is not None:
        _check(policy, host, None, error)
        return [host]
    addresses = _unique(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    _check(policy, host, addresses, error)
    return addresses


async def checked_addresses_async(host: str, port: int, policy: AddressPolicy,
                                  error: type[Exception]) -> list[str]:
    """checked_addresses, looked up without blocking the event loop."""
    import anyio

    if parse_address(host) is not None:
        _check(policy, host, None, error)
        return [host]
    addresses = _unique(await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    _check(policy, host, addresses, error)
    return addresses


def _check(policy: AddressPolicy, host: str, addresses: list[str] | None, error: type[Exception]) -> None:
    try:
        if addresses is None:
            policy.check_host(host, 0)  # a literal address: no lookup
        else:
            policy.check_resolved(host, addresses)
    except AddressRefused as exc:
        raise refused(error, str(exc)) from None


class AsyncCheckedBackend:
    """An httpcore or httpcore2 async network backend around the pool's own, that connects only to checked
    addresses: one lookup, every address checked, then the first of them to accept a connection."""

    def __init__(self, inner: Any, errors: Any, policy: AddressPolicy) -> None:
        self.inner = inner
        self.errors = errors  # the httpcore module: its ConnectError and ConnectTimeout
        self.policy = policy

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Any = None) -> Any:
        import anyio

        try:
            with anyio.fail_after(timeout):
                addresses = await checked_addresses_async(host, port, self.policy, self.errors.ConnectError)
        except TimeoutError:
            raise self.errors.ConnectTimeout(f"looking up {host} timed out") from None
        except OSError as exc:  # the name does not resolve
            raise self.errors.ConnectError(str(exc)) from exc

        async def connect(address: str) -> Any:
            return await self.inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                socket_options=socket_options)

        if len(addresses) == 1:
            return await connect(addresses[0])
        return await _first_connected(connect, addresses)

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        return await self.inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


async def _first_connected(connect, addresses: list[str]) -> Any:
    """The first connection made, trying the next address when the last has not connected within
    HAPPY_EYEBALLS_DELAY (or has failed); the others are cancelled or closed. anyio.connect_tcp does this
    for a name it resolves itself; here the addresses are the checked ones."""
    import anyio

    connected: Any = None
    failures: list[Exception] = []

    async def attempt(address: str, finished: anyio.Event) -> None:
        nonlocal connected
        try:
            stream = await connect(address)
        except Exception as exc:  # noqa: BLE001 - the next address may do; the first failure is raised if none does
            failures.append(exc)
            return
        finally:
            finished.set()
        if connected is None:
            connected = stream
            group.cancel_scope.cancel()
        else:
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    try:
        async with anyio.create_task_group() as group:
            for address in addresses:
                finished = anyio.Event()
                group.start_soon(attempt, address, finished)
                with anyio.move_on_after(HAPPY_EYEBALLS_DELAY):
                    await finished.wait()
    except BaseException:
        if connected is not None:
            with anyio.CancelScope(shield=True):
                await connected.aclose()
        raise
    if connected is None:
        raise failures[0]
    return connected


class CheckedBackend:
    """The same for a sync httpcore pool: one lookup, every address checked, then each in turn (as
    socket.create_connection tries a name's addresses)."""

    def __init__(self, inner: Any, errors: Any, policy: AddressPolicy) -> None:
        self.inner = inner
        self.errors = errors
        self.policy = policy

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> Any:
        try:
            addresses = checked_addresses(host, port, self.policy, self.errors.ConnectError)
        except OSError as exc:
            raise self.errors.ConnectError(str(exc)) from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return self.inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                              socket_options=socket_options)
            except (self.errors.ConnectError, self.errors.ConnectTimeout) as exc:
                failure = failure or exc
        assert failure is not None  # getaddrinfo answers at least one address or raises
        raise failure

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        return self.inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class ProxiedTargets:
    """A proxy's transport whose requests' hosts are checked before they are sent (the proxy makes the
    connection to them, so no backend of ours sees their addresses)."""

    def __init__(self, inner: Any, error: type[Exception], policy: AddressPolicy) -> None:
        self.inner = inner
        self.error = error  # the HTTP library's ConnectError, raised as AddressRefused too
        self.policy = policy

    def _port(self, url: Any) -> int:
        return url.port or (443 if url.scheme == "https" else 80)

    def handle_request(self, request: Any) -> Any:
        _check_target(self.policy, request.url.host, self._port(request.url), self.error)
        return self.inner.handle_request(request)

    async def handle_async_request(self, request: Any) -> Any:
        import anyio

        await anyio.to_thread.run_sync(_check_target, self.policy, request.url.host, self._port(request.url),
                                       self.error)
        return await self.inner.handle_async_request(request)

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __enter__(self) -> ProxiedTargets:
        self.inner.__enter__()
        return self

    def __exit__(self, *args: Any) -> None:
        self.inner.__exit__(*args)

    async def __aenter__(self) -> ProxiedTargets:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *args: Any) -> None:
        await self.inner.__aexit__(*args)


def _check_target(policy: AddressPolicy, host: str, port: int, error: type[Exception]) -> None:
    try:
        policy.check_host(host, port)  # a name that does not resolve passes: the proxy says so itself
    except AddressRefused as exc:
        raise refused(error, str(exc)) from None


def _checked(transport: Any, proxied: bool, policy: AddressPolicy) -> Any:
    """An httpx or httpx2 transport whose connection pool uses a checking backend."""
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if backend is None:  # an httpx release that builds its pools otherwise: refuse rather than connect unchecked
        raise RuntimeError(f"cannot check the addresses {type(transport).__name__} connects to "
                           f"({type(transport).__module__}): runner.providers.connections needs updating")
    errors = importlib.import_module(type(pool).__module__.partition(".")[0])  # httpcore or httpcore2
    asynchronous = hasattr(transport, "handle_async_request")
    pool._network_backend = (AsyncCheckedBackend if asynchronous else CheckedBackend)(backend, errors, policy)
    if not proxied:
        return transport
    httpx = importlib.import_module(type(transport).__module__.partition(".")[0])  # httpx or httpx2
    return ProxiedTargets(transport, httpx.ConnectError, policy)


@functools.cache
def checked_client(base: type) -> type:
    """`base` (an httpx or httpx2 Client or AsyncClient class, or an SDK's subclass of one, e.g. openai's
    DefaultAsyncHttpxClient) whose transports, its own and its proxies', check every address."""

    class Checked(base):
        def _init_transport(self, *args: Any, **kwargs: Any) -> Any:
            return _checked(super()._init_transport(*args, **kwargs), False, ENDPOINT_ADDRESSES)

        def _init_proxy_transport(self, *args: Any, **kwargs: Any) -> Any:
            return _checked(super()._init_proxy_transport(*args, **kwargs), True, ENDPOINT_ADDRESSES)

    Checked.__name__ = Checked.__qualname__ = f"Checked{base.__name__}"
    return Checked


def checked_adapter() -> Any:
    """A requests adapter (for google-generativeai's session) whose connections check every address."""
    return _adapter_class()(ENDPOINT_ADDRESSES)


@functools.cache
def _adapter_class() -> type:
    from requests.adapters import HTTPAdapter
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests.utils import select_proxy
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
    from urllib3.exceptions import NewConnectionError

    def checked_connection(connection: type, policy: AddressPolicy) -> type:
        class Checked(connection):
            def _new_conn(self):
                host = self._dns_host  # what urllib3 would look up and connect to (a proxy's host via a proxy)
                try:
                    addresses = checked_addresses(host, self.port, policy, Exception)
                except AddressRefused as exc:  # as urllib3's own error, so that requests reports it as one
                    raise refused(NewConnectionError, exc.why, self, exc.why) from None
                except OSError:
                    return super()._new_conn()  # urllib3 says the name does not resolve, its own way
                failure: Exception | None = None
                for address in addresses:
                    self._dns_host = address  # connect to the address checked; TLS still checks the name
                    try:
                        return super()._new_conn()
                    except NewConnectionError as exc:
                        failure = failure or exc
                    finally:
                        self._dns_host = host
                raise failure

        return Checked

    class CheckedAdapter(HTTPAdapter):
        def __init__(self, policy: AddressPolicy) -> None:
            self.policy = policy  # init_poolmanager, called by HTTPAdapter.__init__, needs it
            super().__init__()

        def _pools(self) -> dict:
            return {scheme: type(f"Checked{pool.__name__}", (pool,),
                                 {"ConnectionCls": checked_connection(pool.ConnectionCls, self.policy)})
                    for scheme, pool in (("http", HTTPConnectionPool), ("https", HTTPSConnectionPool))}

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = self._pools()

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **kwargs)
            manager.pool_classes_by_scheme = self._pools()  # the proxy's own address is checked
            return manager

        def send(self, request: Any, stream: bool = False, timeout: Any = None, verify: Any = True, cert: Any = None,
                 proxies: Any = None) -> Any:
            if proxies and select_proxy(request.url, proxies):
                parts = urlsplit(request.url)
                _check_target(self.policy, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80),
                              RequestsConnectionError)
            return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)

    return CheckedAdapter


def check_endpoint(url: str, where: str) -> None:
    """Before any call: ConfigError when an endpoint's host is a refused address or a name that resolves to
    one (`where` names the setting or variable it came from)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return  # not a URL: check_url or the SDK says so
    if not host:
        return
    try:
        ENDPOINT_ADDRESSES.check_host(host, port)
    except AddressRefused as exc:
        raise ConfigError(f"{where}: {exc}; the runner never connects there") from None
