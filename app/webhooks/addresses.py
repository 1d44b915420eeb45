"""Where a webhook may point: http(s) URLs whose host resolves to public addresses only.

A host name is resolved and every address it has is checked, at creation and again right
before each delivery (its DNS may have changed since: rebinding). A delivery then connects
to the address that was checked, never resolving the name a second time."""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(ValueError):
    """The URL may not be a webhook target; the message says why, for people."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written (an IPv6 literal without brackets)
    port: int
    addresses: tuple[IPAddress, ...]  # empty: the name does not resolve (now)


def parse(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or Refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise Refused("the URL must start with http:// or https://")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise Refused("the URL has no host")
    return scheme, host, port or (443 if scheme == "https" else 80)


def why_refused(address: IPAddress) -> str | None:
    """Why an address is no place for a webhook, or None if it is a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for reason, flag in (
        ("a loopback", address.is_loopback),
        ("a private", address.is_private),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
        ("an unspecified", address.is_unspecified),
        ("a reserved", address.is_reserved),
        ("a non-public", not address.is_global),
    ):
        if flag:
            return f"{reason} address ({address})"
    return None


def resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    """Every address `host` has (itself, if it is an address); empty if it does not
    resolve."""
    try:
        return (ipaddress.ip_address(host),)
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return ()
    seen: dict[IPAddress, None] = {}
    for *_, sockaddr in found:
        seen[ipaddress.ip_address(sockaddr[0].split("%", 1)[0])] = None
    return tuple(seen)


def check(url: str, *, allow_private: bool) -> Target:
    """The URL's target, its addresses resolved and each checked; Refused if the URL is
    not http(s) or any address is not public (unless `allow_private`)."""
    scheme, host, port = parse(url)
    addresses = resolve(host, port)
    if not allow_private:
        for address in addresses:
            reason = why_refused(address)
            if reason is not None:
                raise Refused(
                    f"not a public address: {host} is {reason}; webhooks may only call "
                    "public addresses (AUDIENCE_WEBHOOK_ALLOW_PRIVATE=true allows others)"
                )
    return Target(scheme, host, port, addresses)
