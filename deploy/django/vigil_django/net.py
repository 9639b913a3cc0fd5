"""Client IP extraction and normalisation."""

from __future__ import annotations

import ipaddress
from typing import Optional, Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


def parse_ip(text: str) -> Optional[IPAddress]:
    """Parse an address as it appears in REMOTE_ADDR or X-Forwarded-For.

    Accepts a bare address, an IPv6 address in brackets, an address with a
    port ("203.0.113.7:4711", "[2001:db8::7]:443") and drops an IPv6 zone.
    IPv4-mapped IPv6 addresses are unmapped. Returns None for anything else.
    """
    s = (text or "").strip().strip('"')
    if not s:
        return None
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            return None
        s = s[1:end]
    elif s.count(":") == 1:  # IPv4 with a port
        s = s.split(":", 1)[0]
    if "%" in s:
        s = s.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def unix_socket_peer(meta) -> bool:
    """Whether the request came over a unix socket: REMOTE_ADDR empty or
    missing (gunicorn bound to unix:/run/app.sock sets it to "", an ASGI
    server leaves it out), so the peer is a local process such as nginx."""
    remote = meta.get("REMOTE_ADDR")
    return remote is None or (isinstance(remote, str) and not remote.strip())


def client_ip(meta, conf) -> Optional[IPAddress]:
    """The client address of a request (META dict) under the settings conf.

    REMOTE_ADDR is believed unless it is a trusted proxy; then
    X-Forwarded-For is walked from the right and the first address that is not
    a trusted proxy is the client. If every address is a trusted proxy, the
    leftmost is taken. An unparsable entry stops the walk: nothing left of it
    can be believed, so the last trusted hop seen is the answer.

    An empty REMOTE_ADDR (a unix-socket peer) counts as a trusted proxy when
    conf.trust_unix_socket_peer is set; with no usable X-Forwarded-For the
    answer is then None (no address is known).
    """
    if unix_socket_peer(meta):
        if not conf.trust_unix_socket_peer:
            return None
        remote = None
    else:
        remote = parse_ip(meta.get("REMOTE_ADDR", ""))
        if remote is None or not conf.is_trusted_proxy(remote):
            return remote
    xff = meta.get("HTTP_X_FORWARDED_FOR", "")
    if not xff:
        return remote
    found = remote
    for part in reversed(xff.split(",")):
        if not part.strip():
            continue
        ip = parse_ip(part)
        if ip is None:
            break
        found = ip
        if not conf.is_trusted_proxy(ip):
            break
    return found


def ban_candidates(ip: IPAddress, v6_prefixes) -> list[str]:
    """The ban-key suffixes to check for ip: the address, then for IPv6 its
    networks of each configured length ("2001:db8:1:2::/64")."""
    out = [str(ip)]
    if isinstance(ip, ipaddress.IPv6Address):
        for n in v6_prefixes:
            out.append(str(ipaddress.IPv6Network((ip, n), strict=False)))
    return out
