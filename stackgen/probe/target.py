"""What `stackgen verify` probes: the public base URL plus what we know about the stack.

`Target` is the only input of `run_checks`. It is validated when it is built, so the CLI
can turn a bad `--url`/`--resolve` into a one-line user error before any traffic is sent.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

DEFAULT_MEDIA_PATH = "/web/index.html"


@dataclass(frozen=True)
class BaseURL:
    """The parsed public base URL: `https://host[:port][/base]`."""

    host: str  # lower case, IPv6 without brackets
    port: int  # explicit or 443
    base: str  # "" or "/sub" (leading slash, no trailing slash) like Jellyfin's BaseUrl

    @property
    def netloc(self) -> str:
        """Host as it appears in a URL and in the Host header (port only when not 443)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 443 else f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        return f"https://{self.netloc}"

    def url(self, path: str) -> str:
        """Absolute https URL of a request target (path + query, already encoded)."""
        return f"{self.origin}{path}"

    def same_origin(self, parts: SplitResult) -> bool:
        """Whether a parsed absolute URL points at this https origin."""
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return False
        return (
            parts.scheme == "https"
            and (parts.hostname or "").lower() == self.host
            and port == self.port
        )

    def within_base(self, path: str) -> bool:
        """Whether a URL path lives under the base (`/sub` itself or `/sub/...`)."""
        if not self.base:
            return path.startswith("/")
        return path == self.base or path.startswith(self.base + "/")


def parse_base_url(url: str) -> BaseURL:
    """Parse and validate the public base URL; raises ValueError with a user-facing message."""
    parts = urlsplit(url.strip())
    if parts.scheme != "https":
        raise ValueError(f"the URL must start with https:// (got {url!r})")
    if not parts.hostname:
        raise ValueError(f"the URL has no host name: {url!r}")
    if parts.username or parts.password:
        raise ValueError("the URL must not carry a user name or password")
    if parts.query or parts.fragment:
        raise ValueError("the URL must be a base URL, without ?query or #fragment")
    try:
        port = parts.port or 443
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}: {exc}") from exc
    base = parts.path.rstrip("/")
    if base and not base.startswith("/"):
        base = "/" + base
    return BaseURL(host=parts.hostname.lower(), port=port, base=base)


def _check_ip(value: str, what: str) -> str:
    text = value.strip().removeprefix("[").removesuffix("]")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        raise ValueError(f"{what}: {value!r} is not an IP address") from exc


@dataclass(frozen=True)
class Tunnel:
    """The tunnel between the proxy and Jellyfin, as the stack's side reports it (`wg show`
    in its endpoint): the checks judge these facts, the probe never reads them itself."""

    handshake_age: int | None  # seconds since the last handshake; None: never
    allowed_ips: Sequence[str]  # the peer's AllowedIPs on this side
    expected_peer: str  # the other side's tunnel address, as a /32


@dataclass(frozen=True)
class GeoFacts:
    """The GeoIP country allow list (access.geo) as the stack's own files state it: the
    check judges the database's age, the probe cannot see it from outside."""

    countries: Sequence[str]
    database_built: str  # ISO 8601, UTC
    country_networks: int  # the countries' networks, collapsed
    admitted: int  # every network the proxy admits (with the LAN and the stack's own)


@dataclass(frozen=True)
class Target:
    """A live Jellyfin-behind-proxy stack, as the user describes it."""

    url: str  # "https://jellyfin.example.com[:port][/subpath]" — the public base URL
    resolve: Mapping[str, str] = field(default_factory=dict)  # host -> IP (like curl --resolve)
    ca_file: Path | None = None  # extra trust anchors (PEM); None = system store only
    http_port: int = 80  # where plain HTTP is served (redirect + ACME checks)
    # False: the stack publishes no plain-HTTP port at all (DNS-01 or TLS-ALPN-01 without a
    # redirect listener), so the redirect checks have nothing to judge.
    plain_http: bool = True
    media_path: str | None = None  # path under the base for Range/TTFB; None -> /web/index.html
    known_proxies: Sequence[str] | None = None  # Jellyfin network.xml KnownProxies, when known
    proxy_addresses: Sequence[str] | None = None  # where the proxy connects to Jellyfin from
    frames_allowed: bool = False  # the user opted in to X-Frame-Options / frame-ancestors
    # Whether certificates come over ACME HTTP-01, so plain HTTP must let the challenge
    # path through. None: not known (a bare URL), and redirect.acme-path judges it anyway.
    acme_http01: bool | None = None
    http2: bool | None = None  # whether the proxy should offer h2 (None: report what it does)
    http3: bool | None = None  # whether the proxy should answer HTTP/3 (None: if advertised)
    lan_url: str | None = None  # where Jellyfin sends LAN clients (PublishedServerUriBySubnet)
    from_lan: bool = False  # the probe runs where LAN clients are (expects lan_url)
    timeout: float = 10.0  # seconds, per connect / per socket operation
    tunnel: Tunnel | None = None  # a WireGuard link between proxy and Jellyfin (edge-home)
    geo: GeoFacts | None = None  # access.geo, when on
    # A token gate in front of Jellyfin (access.gate) refuses a made-up token itself (401),
    # so what answers the probe's upgrade is the gate, not Jellyfin's WebSocket handler.
    token_gate: bool = False
    gate_offered: bool = True  # whether the stack's target can run the token gate (access.gate)
    base_url: BaseURL = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Validate early: the CLI turns these ValueErrors into one-line user errors.
        object.__setattr__(self, "base_url", parse_base_url(self.url))
        resolve = {
            host.strip().lower().removeprefix("[").removesuffix("]"): _check_ip(
                ip, f"--resolve {host}"
            )
            for host, ip in self.resolve.items()
        }
        object.__setattr__(self, "resolve", resolve)
        if not 0 < self.http_port < 65536:
            raise ValueError(f"http_port out of range: {self.http_port}")
        if self.media_path is not None and not self.media_path.startswith("/"):
            raise ValueError(f"media_path must start with '/': {self.media_path!r}")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.ca_file is not None and not Path(self.ca_file).is_file():
            raise ValueError(f"CA file not found: {self.ca_file}")

    @property
    def effective_media_path(self) -> str:
        return self.media_path or DEFAULT_MEDIA_PATH

    @property
    def media_path_is_user_supplied(self) -> bool:
        return self.media_path is not None

    def address_for(self, host: str) -> str:
        """Where to connect for `host`: the --resolve override, else the name (DNS)."""
        return self.resolve.get(host.lower(), host)
