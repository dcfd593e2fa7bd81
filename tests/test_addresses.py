"""Which addresses a page may come from, in process: metadata and link-local never; loopback, private and
unique-local only while private pages are allowed; an IPv6 form of an IPv4 address judged by that address."""
from __future__ import annotations

import socket

import pytest

from runner.tasks.addresses import AddressPolicy, AddressRefused, parse_address

OPEN, CLOSED = AddressPolicy(), AddressPolicy(private=False)
NEVER = [
    ("169.254.169.254", "a link-local address, where cloud metadata services answer (refused)"),
    ("169.254.0.1", "a link-local address, where cloud metadata services answer (refused)"),
    ("fe80::1", "a link-local address, where cloud metadata services answer (refused)"),
    ("fd00:ec2::254", "AWS's instance metadata address (refused)"),
    ("100.100.100.200", "Alibaba Cloud's instance metadata address (refused)"),
    ("168.63.129.16", "Azure's host services address (refused)"),
    ("::ffff:169.254.169.254", "169.254.169.254 in IPv6 form, a link-local address, where cloud metadata "
                               "services answer (refused)"),
    ("64:ff9b::a9fe:a9fe", "169.254.169.254 in IPv6 form, a link-local address, where cloud metadata "
                           "services answer (refused)"),
    ("2002:a9fe:a9fe::1", "169.254.169.254 in IPv6 form, a link-local address, where cloud metadata "
                          "services answer (refused)"),
]
PRIVATE = [
    ("127.0.0.1", "a loopback address"), ("::1", "a loopback address"),
    ("0.0.0.0", "an unspecified address, which reaches this machine"),
    ("::", "an unspecified address, which reaches this machine"),
    ("10.1.2.3", "a private address"), ("172.16.0.1", "a private address"), ("172.31.255.255", "a private address"),
    ("192.168.1.1", "a private address"), ("100.64.0.1", "a shared (carrier-grade NAT) address"),
    ("fd12::1", "a unique-local address"), ("fec0::1", "a site-local address"),
    ("::ffff:10.0.0.1", "10.0.0.1 in IPv6 form, a private address"),
]
PUBLIC = ["93.184.216.34", "172.32.0.1", "169.255.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8",
          "64:ff9b::808:808", "2002:808:808::1", "11.0.0.1"]


@pytest.mark.parametrize("address, reason", NEVER)
def test_metadata_and_link_local_addresses_are_always_refused(address, reason):
    for policy in (OPEN, CLOSED):
        assert policy.refusal(parse_address(address)) == reason


@pytest.mark.parametrize("address, kind", PRIVATE)
def test_private_addresses_are_refused_only_when_private_pages_are(address, kind):
    assert OPEN.refusal(parse_address(address)) is None
    assert CLOSED.refusal(parse_address(address)) == f"{kind} (refused: task.private_pages=false)"


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass_every_policy(address):
    assert OPEN.refusal(parse_address(address)) is None and CLOSED.refusal(parse_address(address)) is None


def test_hosts_and_peers_are_named_in_the_refusal():
    with pytest.raises(AddressRefused, match=r"^\[fe80::1%eth0\] is a link-local address"):
        OPEN.check_host("[fe80::1%eth0]", 80)
    with pytest.raises(AddressRefused, match=r"^localhost resolves to (127\.0\.0\.1|::1), a loopback address "
                                             r"\(refused: task\.private_pages=false\)$"):
        CLOSED.check_host("localhost", 80)
    OPEN.check_host("localhost", 80)
    OPEN.check_host("127.0.0.1", 80)
    CLOSED.check_host("no-such-host.invalid", 80)  # does not resolve: connecting fails with its own message
    with pytest.raises(AddressRefused, match=r"^example\.test connected to 169\.254\.169\.254, a link-local"):
        OPEN.check_peer("example.test", "169.254.169.254")
    OPEN.check_peer("example.test", "93.184.216.34")
    OPEN.check_peer("example.test", "not an address")
    assert parse_address("example.com") is None and str(parse_address("[::1]")) == "::1"


@pytest.mark.parametrize("host, named", [
    ("metadata.google.internal", "Google Cloud's metadata server"),
    ("METADATA.Google.INTERNAL", "Google Cloud's metadata server"),
    ("metadata.google.internal.", "Google Cloud's metadata server"),  # a fully qualified name: the same
    ("metadata%2Egoogle.internal", "Google Cloud's metadata server"),  # escaped as a URL may escape it
    ("\uff4d\uff45\uff54\uff41\uff44\uff41\uff54\uff41\u3002google\uff0einternal", "Google Cloud's metadata server"),
    ("metadata", "Google Cloud's metadata server (its short name)"),
    ("metadata.goog", "Google Cloud's metadata server"),
    ("Instance-Data.ec2.internal.", "AWS's instance metadata service"),
    ("instance-data", "AWS's instance metadata service"),
    ("metadata.tencentyun.com", "Tencent Cloud's instance metadata service"),
    ("metadata.packet.net", "Equinix Metal's metadata service"),
])
def test_metadata_names_are_refused_by_name_in_any_spelling_a_resolver_reads_as_that_name(host, named):
    """Before any lookup: behind a proxy, or where this machine cannot resolve the name, the address check
    alone would let it through (the proxy would look it up inside the cloud)."""
    for policy in (OPEN, CLOSED):
        with pytest.raises(AddressRefused) as caught:
            policy.check_host(host, 80)
        assert str(caught.value) == f"{host} is the name of {named} (refused)"
        # a connection that looked the name up itself (a provider's client) is judged by the name too:
        # Equinix's metadata service answers on public addresses
        with pytest.raises(AddressRefused, match=r" is the name of "):
            policy.check_resolved(host, ["147.75.0.1"])


@pytest.mark.parametrize("host", ["metadata.example.com", "mymetadata", "metadata.google.internal.example.com",
                                  "instance-data2", "no-such-host.invalid"])
def test_other_names_are_judged_by_their_addresses(host):
    OPEN.check_host(host, 80)  # none resolves here: connecting would fail with its own message


def resolving(monkeypatch, host: str, *addresses: str) -> None:
    """The machine's resolver answers `host` with these addresses, in this order (other names as before)."""
    real = socket.getaddrinfo

    def getaddrinfo(name, port, *args, **kwargs):
        if name != host:
            return real(name, port, *args, **kwargs)
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 (a, port, 0, 0) if ":" in a else (a, port)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_name_is_refused_when_any_of_its_addresses_is_not_only_the_first(monkeypatch):
    """A connection may pick any address a name resolves to (and behind a proxy none is checked again)."""
    resolving(monkeypatch, "multi.test", "93.184.216.34", "2606:4700::1111", "169.254.169.254")
    for policy in (OPEN, CLOSED):
        with pytest.raises(AddressRefused, match=r"^multi\.test resolves to 169\.254\.169\.254, a link-local"):
            policy.check_host("multi.test", 80)
    resolving(monkeypatch, "intranet.test", "93.184.216.34", "10.0.0.7")
    OPEN.check_host("intranet.test", 80)
    with pytest.raises(AddressRefused, match=r"^intranet\.test resolves to 10\.0\.0\.7, a private address"):
        CLOSED.check_host("intranet.test", 80)
