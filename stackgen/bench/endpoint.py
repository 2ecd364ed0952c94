"""Where the bench connects: one endpoint per side (proxied, direct, a baseline).

The socket goes to `address` while SNI and Host keep `host` (like `curl --resolve`),
which is how `stackgen verify --url ... --resolve` reaches a stack it did not generate;
the proxied endpoint is built from verify's `Target`, so name, address and trust are read
the same way by both commands.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from stackgen.probe import Target, verifying_context

# The one TLS 1.3 cipher the client offers on every side (proxies and the bare TLS
# server alike): servers pick different suites on their own (Go prefers AES-128, OpenSSL
# builds AES-256), and a comparison must differ by the relay, not by the cipher.
TLS13_CIPHER = "TLS_AES_128_GCM_SHA256"

# How the client's packets reach the server (recorded with every result).
PATH_CONTAINER = "container address"  # the proxy container's own address: a LAN client's path
PATH_PUBLISHED = "published port"  # a host address, through the engine's DNAT rules
PATH_LOOPBACK = "loopback (docker-proxy)"  # 127.0.0.1: the engine's userland relay
PATH_URL = "as given"  # a URL bench was pointed at, not a published port it knows


def path_for(address: str) -> str:
    """The path to a stack's published port at `address` (loopback means docker-proxy)."""
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError:
        loopback = address == "localhost"
    return PATH_LOOPBACK if loopback else PATH_PUBLISHED


@dataclass(frozen=True)
class Endpoint:
    name: str  # "proxied", "direct", ...
    scheme: str  # "http" or "https"
    host: str  # Host header and SNI
    address: str  # where the socket goes
    port: int
    base: str  # "" or "/sub"
    ca_file: Path | None = None
    http2: bool = False  # for the C client's streaming phases; API/WS stay HTTP/1.1
    context: ssl.SSLContext | None = None
    path_kind: str = PATH_URL  # one of the PATH_* values
    # The port the socket goes to when it is not the URL's (the proxy container's own
    # 443 behind a published port): the Host header keeps the URL's port.
    connect_port: int | None = None

    @property
    def socket_port(self) -> int:
        return self.port if self.connect_port is None else self.connect_port

    @property
    def netloc(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    def path(self, rel: str) -> str:
        return f"{self.base}{rel}"

    def url(self, rel: str) -> str:
        return f"{self.origin}{self.path(rel)}"

    @property
    def protocol(self) -> str:
        return "h2" if self.http2 and self.scheme == "https" else "http/1.1"

    def curl_args(self) -> list[str]:
        """Per-transfer curl options (repeated after every --next)."""
        args = ["--http2" if self.protocol == "h2" else "--http1.1"]
        if self.scheme == "https":
            args += ["--tlsv1.3", "--tls13-ciphers", TLS13_CIPHER]
        if self.connect_port is not None:
            address = f"[{self.address}]" if ":" in self.address else self.address
            args += ["--connect-to", f"{self.host}:{self.port}:{address}:{self.connect_port}"]
        elif self.address != self.host:
            args += ["--resolve", f"{self.host}:{self.port}:{self.address}"]
        if self.ca_file is not None:
            args += ["--cacert", str(self.ca_file)]
        return args

    def describe(self) -> dict[str, str | int | None]:
        return {
            "url": self.url("") or self.origin,
            "address": self.address,
            "port": self.socket_port,
            "protocol": self.protocol,
            "path": self.path_kind,
        }


def http1_context(ca_file: Path | None) -> ssl.SSLContext:
    """A verifying client context that offers HTTP/1.1 only (the system store plus ca_file)."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    context.set_alpn_protocols(["http/1.1"])
    return context


def proxied_endpoint(target: Target, *, http2: bool) -> Endpoint:
    base = target.base_url
    return Endpoint(
        name="proxied",
        scheme="https",
        host=base.host,
        address=target.address_for(base.host),
        port=base.port,
        base=base.base,
        ca_file=target.ca_file,
        http2=http2,
        context=verifying_context(target),
    )


def url_endpoint(
    name: str, url: str, *, resolve: dict[str, str], ca_file: Path | None, http2: bool
) -> Endpoint:
    """An endpoint from a plain URL (`--direct`, baselines): http or https."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} URL must be http(s)://HOST[:PORT][/base] (got {url!r})")
    if parts.query or parts.fragment:
        raise ValueError(f"{name} URL must be a base URL, without ?query or #fragment")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}: {exc}") from exc
    host = parts.hostname.lower()
    context = http1_context(ca_file) if parts.scheme == "https" else None
    return Endpoint(
        name=name,
        scheme=parts.scheme,
        host=host,
        address=resolve.get(host, host),
        port=port,
        base=parts.path.rstrip("/"),
        ca_file=ca_file if parts.scheme == "https" else None,
        http2=http2,
        context=context,
    )
