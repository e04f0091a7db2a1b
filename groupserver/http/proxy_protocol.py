"""Sans-I/O parser of the PROXY protocol header (HAProxy's spec, versions 1 and 2).

A load balancer that speaks it sends one header before the client's bytes, naming the real
client address. Only listeners configured with `proxy_protocol: true` expect it; there it is
mandatory, so a client cannot forge its address on a listener that does not use it.
"""

from __future__ import annotations

import ipaddress
import struct

from groupserver.http.parser import HttpError

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V1_MAX = 107


def parse_proxy_header(data: bytes | bytearray) -> tuple[int, tuple[str, int] | None] | None:
    """Parse a PROXY header at the start of data.

    Returns None while incomplete, else (bytes consumed, (client host, client port)) where the
    address is None for LOCAL/UNKNOWN connections (health checks from the balancer itself).
    Raises HttpError(400) for anything else.
    """
    if data[:1] == b"P":
        if not b"PROXY "[: len(data)] == bytes(data[:6]):
            raise HttpError(400, "bad PROXY header")
        return _parse_v1(data)
    if data[:1] == b"\r":
        if not V2_SIGNATURE.startswith(bytes(data[:12])):
            raise HttpError(400, "bad PROXY header")
        return _parse_v2(data)
    if not data:
        return None
    raise HttpError(400, "missing PROXY header")


def _parse_v1(data: bytes | bytearray) -> tuple[int, tuple[str, int] | None] | None:
    end = data.find(b"\r\n")
    if end < 0:
        if len(data) > _V1_MAX:
            raise HttpError(400, "PROXY header too long")
        return None
    if end + 2 > _V1_MAX:
        raise HttpError(400, "PROXY header too long")
    parts = bytes(data[:end]).decode("ascii", "replace").split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return end + 2, None
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise HttpError(400, "bad PROXY header")
    _, family, src, _dst, sport, _dport = parts
    try:
        address = ipaddress.ip_address(src)
    except ValueError:
        raise HttpError(400, "bad PROXY address") from None
    if (family == "TCP4") != (address.version == 4):
        raise HttpError(400, "bad PROXY address")
    if not sport.isdigit() or not 0 <= int(sport) <= 65535 or (len(sport) > 1 and sport[0] == "0"):
        raise HttpError(400, "bad PROXY port")
    return end + 2, (str(address), int(sport))


def _parse_v2(data: bytes | bytearray) -> tuple[int, tuple[str, int] | None] | None:
    if len(data) < 16:
        return None
    ver_cmd, fam, length = struct.unpack_from("!BBH", data, 12)
    if ver_cmd >> 4 != 2:
        raise HttpError(400, "bad PROXY version")
    total = 16 + length
    if len(data) < total:
        return None
    command = ver_cmd & 0x0F
    if command == 0:  # LOCAL: the balancer's own connection
        return total, None
    if command != 1:
        raise HttpError(400, "bad PROXY command")
    family, transport = fam >> 4, fam & 0x0F
    if transport not in (0, 1, 2):
        raise HttpError(400, "bad PROXY transport")
    if family == 1:  # AF_INET
        if length < 12:
            raise HttpError(400, "short PROXY address")
        src = ipaddress.IPv4Address(bytes(data[16:20]))
        (sport,) = struct.unpack_from("!H", data, 24)
        return total, (str(src), sport)
    if family == 2:  # AF_INET6
        if length < 36:
            raise HttpError(400, "short PROXY address")
        src6 = ipaddress.IPv6Address(bytes(data[16:32]))
        (sport,) = struct.unpack_from("!H", data, 48)
        return total, (str(src6), sport)
    return total, None  # AF_UNSPEC / AF_UNIX: no client address to report
