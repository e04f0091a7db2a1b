"""Trusting a reverse proxy's view of the client: X-Forwarded-For/-Proto or Forwarded (workers).

Only when the connection comes from an address in `forwarded_allow_ips` do these headers set
REMOTE_ADDR and wsgi.url_scheme; from anyone else they are left as plain HTTP_* keys, so a client
cannot claim another address or HTTPS. Only the family the proxy sets (`forwarded_headers`) is
read: a proxy passes the other one on as the client wrote it. A client named by them must be an
IP address, or REMOTE_ADDR stays the proxy's.
"""

from __future__ import annotations

import ipaddress
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


_FORWARDING_KEYS = {
    "x-forwarded-for": "HTTP_X_FORWARDED_FOR",
    "x-forwarded-proto": "HTTP_X_FORWARDED_PROTO",
    "forwarded": "HTTP_FORWARDED",
}


class TrustedProxies:
    """The peers whose forwarding headers are believed."""

    def __init__(self, entries: list[str], family: str = "x-forwarded") -> None:
        self.rfc7239 = family == "forwarded"  # Forwarded; else X-Forwarded-For and -Proto
        self.any = "*" in entries
        self.networks: list[Network] = [
            ipaddress.ip_network(e, strict=False) for e in entries if e != "*"
        ]

    def trusts(self, address: str) -> bool:
        """Whether a peer address (or a unix socket peer, "") is trusted."""
        if self.any:
            return True
        if not address:
            return True  # unix socket: only local processes (the proxy) can connect
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def apply(self, env: dict[str, Any]) -> None:
        """Rewrite REMOTE_ADDR and wsgi.url_scheme from a trusted proxy's headers."""
        if self.rfc7239:
            client, proto = self._from_forwarded(env.get("HTTP_FORWARDED", ""))
        else:
            client = self._client_from_xff(env.get("HTTP_X_FORWARDED_FOR", ""))
            proto = env.get("HTTP_X_FORWARDED_PROTO", "").split(",")[-1].strip().lower() or None
        if client and _is_address(client):  # not "<script>", "unknown" or a forged log field
            env["REMOTE_ADDR"] = client
            env["REMOTE_PORT"] = ""
        if proto in ("http", "https"):
            env["wsgi.url_scheme"] = proto
            if proto == "https":
                env["HTTPS"] = "on"

    def client_address(self, remote: str, headers: list[tuple[str, str]]) -> str:
        """REMOTE_ADDR as the app would get it for a request with these headers from the peer
        remote, for an answer given without building an environ (a refusal, a timeout)."""
        if not self.trusts(remote):
            return remote
        env = {"REMOTE_ADDR": remote}
        for name, value in headers:
            # Folded as the environ folds them: names spelt with "_" are dropped, repeats joined.
            key = "" if "_" in name else _FORWARDING_KEYS.get(name.lower(), "")
            if key:
                env[key] = env[key] + "," + value if key in env else value
        self.apply(env)
        return env["REMOTE_ADDR"]

    def _client_from_xff(self, value: str) -> str | None:
        # Walk from the nearest hop back: the first address we don't trust is the client.
        hops = [h.strip() for h in value.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else None

    def _from_forwarded(self, value: str) -> tuple[str | None, str | None]:
        elements = []
        for element in value.split(","):
            pairs = {}
            for pair in element.split(";"):
                key, _, val = pair.strip().partition("=")
                pairs[key.strip().lower()] = val.strip().strip('"')
            elements.append(pairs)
        chosen = elements[0]
        for pairs in reversed(elements):
            if not self.trusts(_node(pairs.get("for", ""))):
                chosen = pairs
                break
        client = _node(chosen.get("for", "")) or None
        proto = chosen.get("proto", "").lower() or None
        return client, proto


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _node(value: str) -> str:
    """The address of a Forwarded `for=` node ("[2001:db8::1]:80", "192.0.2.1:80", "_hidden")."""
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value
