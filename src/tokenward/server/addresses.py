"""The unit every per-address limit counts under (connections, failed logins and secrets, pending requests).

An IPv6 host is normally given a whole /64 (RFC 4291 §2.5.4 fixes 64-bit interface identifiers; RFC 8981
privacy addresses rotate within it), so counting each IPv6 address separately would hand one attacker 2^64
fresh budgets: IPv6 addresses count by their /64, IPv4 ones as they are, an IPv4-mapped IPv6 address as its
IPv4 address. Pure: no framework, no I/O.
"""

from __future__ import annotations

import ipaddress


def address_group(host: str) -> str:
    """The key an address is counted under: the IPv4 address, or the /64 of an IPv6 one."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host  # a Unix socket path or the like: counted as it is
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
