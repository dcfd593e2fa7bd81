"""Which network addresses a page may be fetched from.

Never link-local addresses (169.254.0.0/16, fe80::/10: where cloud metadata services answer with the
machine's credentials) nor the other clouds' metadata addresses, nor the names clouds give their metadata
services (behind a proxy, the proxy looks a name up where this machine cannot). Loopback and private ranges
are allowed unless the user restricts them (`task.private_pages=false`): tests and intranet pages live there.
An IPv6 address that carries an IPv4 address (::ffff:a.b.c.d, 64:ff9b::/96, 2002::/16) is judged by it.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import unquote

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
# Metadata and host services outside the link-local ranges
METADATA = {
    ipaddress.ip_address("fd00:ec2::254"): "AWS's instance metadata address",
    ipaddress.ip_address("100.100.100.200"): "Alibaba Cloud's instance metadata address",
    ipaddress.ip_address("168.63.129.16"): "Azure's host services address",
}
# Names of metadata services, refused by name: a name this machine cannot resolve passes the address check,
# and behind a proxy (HTTP_PROXY) the proxy resolves it, inside the cloud. Equinix Metal's answer on public
# addresses, so only their names tell them apart.
METADATA_NAMES = {
    "metadata.google.internal": "Google Cloud's metadata server",
    "metadata.goog": "Google Cloud's metadata server",
    "metadata": "Google Cloud's metadata server (its short name)",
    "instance-data": "AWS's instance metadata service",
    "instance-data.ec2.internal": "AWS's instance metadata service",
    "metadata.tencentyun.com": "Tencent Cloud's instance metadata service",
    "metadata.packet.net": "Equinix Metal's metadata service",
    "metadata.platformequinix.com": "Equinix Metal's metadata service",
}
PRIVATE = (  # refused only when private pages are: (network, what it is)
    (ipaddress.ip_network("127.0.0.0/8"), "a loopback address"),
    (ipaddress.ip_network("::1/128"), "a loopback address"),
    (ipaddress.ip_network("0.0.0.0/8"), "an unspecified address, which reaches this machine"),
    (ipaddress.ip_network("::/128"), "an unspecified address, which reaches this machine"),
    (ipaddress.ip_network("10.0.0.0/8"), "a private address"),
    (ipaddress.ip_network("172.16.0.0/12"), "a private address"),
    (ipaddress.ip_network("192.168.0.0/16"), "a private address"),
    (ipaddress.ip_network("100.64.0.0/10"), "a shared (carrier-grade NAT) address"),
    (ipaddress.ip_network("fc00::/7"), "a unique-local address"),
    (ipaddress.ip_network("fec0::/10"), "a site-local address"),
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(Exception):
    """A page's address is one the policy refuses; the message is one line naming it and why."""


def parse_address(text: str) -> IPAddress | None:
    """An IP address from a URL's host or a socket's peer (zone index dropped), or None for a name."""
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def metadata_name(host: str) -> str | None:
    """What a host name names when it is a metadata service's name, in any spelling a resolver treats as
    that name: any case, a trailing dot, percent-escapes, full-width letters and dots (IDNA)."""
    name = unquote(host).strip("[]")
    try:
        name = name.encode("idna").decode("ascii")  # nameprep: case-folded, NFKC, every kind of dot a dot
    except UnicodeError:  # an empty label, a label too long: compare it as it is
        pass
    return METADATA_NAMES.get(name.rstrip(".").lower())


def _check_name(host: str) -> None:
    named = metadata_name(host)
    if named:
        raise AddressRefused(f"{host} is the name of {named} (refused)")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, when it stands for one."""
    if address.version == 4:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class AddressPolicy:
    private: bool = True  # loopback, private, CGNAT and unique-local addresses allowed
    setting: str = "task.private_pages=false"  # what restricts private addresses, for the message

    def refusal(self, address: IPAddress) -> str | None:
        """Why the address is refused ('a link-local address, ... (refused)'), or None when it is allowed."""
        found = self._refused(address)
        return f"{found[0]} ({found[1]})" if found else None

    def _refused(self, address: IPAddress) -> tuple[str, str] | None:
        """(what the address is, the verdict), or None."""
        inner = embedded_ipv4(address)
        if inner is not None:
            found = self._refused(inner)
            return (f"{inner} in IPv6 form, {found[0]}", found[1]) if found else None
        if address in METADATA:
            return METADATA[address], "refused"
        if any(address in network for network in LINK_LOCAL):
            return "a link-local address, where cloud metadata services answer", "refused"
        if not self.private:
            for network, kind in PRIVATE:
                if address.version == network.version and address in network:
                    return kind, f"refused: {self.setting}"
        return None

    def check_host(self, host: str, port: int) -> None:
        """Raise AddressRefused when the host is a refused address or a name that resolves to one (any of
        its addresses: the connection may pick any). A name that does not resolve passes: connecting then
        fails with its own message, unless the name is a metadata service's."""
        _check_name(host)
        literal = parse_address(host)
        if literal is not None:
            reason = self.refusal(literal)
            if reason:
                raise AddressRefused(f"{host} is {reason}")  # as written in the URL
            return
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return
        self.check_resolved(host, [str(sockaddr[0]) for *_, sockaddr in found])

    def check_resolved(self, host: str, addresses: list[str]) -> None:
        """Raise AddressRefused when the name `host` is a metadata service's or any address it resolved to
        is refused (a connection may pick any of them)."""
        _check_name(host)
        for text in addresses:
            address = parse_address(text)
            reason = self.refusal(address) if address is not None else None
            if reason:
                raise AddressRefused(f"{host} resolves to {address}, {reason}")

    def check_peer(self, host: str, peer: str) -> None:
        """Raise AddressRefused when a connection to `host` reached a refused address (DNS can answer a
        second lookup differently from the first)."""
        address = parse_address(peer)
        reason = self.refusal(address) if address is not None else None
        if reason:
            raise AddressRefused(f"{host} connected to {address}, {reason}")
