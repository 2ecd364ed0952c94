"""The configuration model: `stackgen.toml` parsed into pydantic models.

This is the single source of truth. Everything a template needs that is *derived* from the
configuration (upstream address, Known Proxies, public URL, ...) is a property here, so no
template and no proxy module computes a fact twice.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import urllib.parse
import zoneinfo
from enum import StrEnum
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    SerializeAsAny,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from stackgen import dns_providers
from stackgen.options import Setting
from stackgen.proxies import registry
from stackgen.targets import registry as targets

SCHEMA_VERSION: Final = 1

LETSENCRYPT_PRODUCTION: Final = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING: Final = "https://acme-staging-v02.api.letsencrypt.org/directory"

# jellyfin-web 10.9+ needs 'unsafe-eval' and blob: workers; Chromecast needs gstatic.
# No frame-ancestors: it breaks the LG webOS app (docs/jellyfin.md).
DEFAULT_CSP: Final = (
    "default-src https: data: blob:; "
    "img-src 'self' https: data: blob:; "
    "style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline' 'unsafe-eval' https://www.gstatic.com "
    "https://www.youtube.com blob:; "
    "worker-src 'self' blob:; "
    "connect-src 'self' https: wss:; "
    "media-src 'self' https: blob: data:; "
    "object-src 'none'; "
    "font-src 'self' data:; "
    "base-uri 'self'; "
    "form-action 'self'"
)
DEFAULT_PERMISSIONS_POLICY: Final = (
    "accelerometer=(), ambient-light-sensor=(), bluetooth=(), camera=(), "
    "display-capture=(), geolocation=(), gyroscope=(), hid=(), magnetometer=(), "
    "microphone=(), payment=(), serial=(), usb=(), xr-spatial-tracking=()"
)
DEFAULT_REFERRER_POLICY: Final = "strict-origin-when-cross-origin"


class TlsMode(StrEnum):
    ACME = "acme"  # HTTP-01
    ACME_TLS_ALPN = "acme-tls-alpn"
    ACME_DNS = "acme-dns"
    INTERNAL = "internal"  # a local CA stackgen creates, for LAN-only servers
    FILES = "files"  # the user's own certificate and key

    @property
    def is_acme(self) -> bool:
        return self in (TlsMode.ACME, TlsMode.ACME_TLS_ALPN, TlsMode.ACME_DNS)


class TlsSource(StrEnum):
    """Who obtains the certificate in the ACME modes (default: the proxy's usual source)."""

    PROXY = "proxy"  # the proxy's own ACME client (Traefik, Caddy)
    CERTBOT = "certbot"  # the certbot service beside the proxy, for any proxy that reloads


class JellyfinNetwork(StrEnum):
    HOST = "host"
    BRIDGE = "bridge"


# --- validators (plain functions: reused by the CLI and property-tested) -------------------

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_SUBPATH_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_EMAIL_LOCAL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$"
)
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*$")
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_RUN_AS = re.compile(r"^\d{1,10}:\d{1,10}$")


def validate_domain(value: str) -> str:
    """A fully qualified DNS name a certificate can be issued for (lower-cased)."""
    name = value.lower().removesuffix(".")
    if not name.strip():
        raise ValueError("domain is empty")
    if any(c.isspace() for c in name):
        raise ValueError(f"{value!r} contains white space")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        raise ValueError(f"{value!r} is an IP address; a domain name is needed")
    if len(name) > 253:
        raise ValueError(f"domain is longer than 253 characters ({len(name)})")
    labels = name.split(".")
    if len(labels) < 2:
        raise ValueError(f"{value!r} is not a fully qualified name (e.g. jellyfin.example.com)")
    for label in labels:
        if not label:
            raise ValueError(f"{value!r} has an empty label")
        if len(label) > 63:
            raise ValueError(f"{value!r} has a label longer than 63 characters")
        if not _LABEL.match(label):
            raise ValueError(
                f"{value!r} has an invalid label {label!r} (letters, digits and inner hyphens only)"
            )
    if labels[-1].isdigit():
        raise ValueError(f"{value!r} ends in an all-numeric label")
    return name


def validate_email(value: str) -> str:
    address = value
    if any(c.isspace() for c in address):
        raise ValueError(f"{value!r} contains white space")
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"{value!r} is not an email address")
    if len(local) > 64 or not _EMAIL_LOCAL.match(local):
        raise ValueError(f"{value!r} has an invalid part before '@'")
    try:
        validate_domain(domain)
    except ValueError:
        raise ValueError(f"{value!r} has an invalid domain after '@'") from None
    return address


def validate_subpath(value: str) -> str:
    """'' (no subpath) or '/a/b' — normalised: leading '/', no trailing '/'."""
    if value in ("", "/"):
        return ""
    if not value.startswith("/"):
        raise ValueError(f"subpath {value!r} must start with '/' (e.g. /jellyfin)")
    path = value.rstrip("/")
    segments = path.split("/")[1:]
    for segment in segments:
        if segment in ("", ".", ".."):
            raise ValueError(f"subpath {value!r} has an empty, '.' or '..' segment")
        if not _SUBPATH_SEGMENT.match(segment):
            raise ValueError(f"subpath {value!r} has characters outside A-Z a-z 0-9 . _ ~ -")
    return path


def validate_port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"port {value} is outside 1-65535")
    return value


def validate_env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not an environment variable name (A-Z, 0-9, _)")
    return value


def validate_image(value: str) -> str:
    if not _IMAGE.match(value) or value.endswith(":"):
        raise ValueError(f"{value!r} is not an image reference")
    return value


def validate_proxy_kind(value: str) -> str:
    """A proxy the registry knows (the built-in packages and any registered at run time)."""
    names = registry.available()
    if value not in names:
        choices = ", ".join(repr(name) for name in names[:-1]) + f" or {names[-1]!r}"
        raise ValueError(f"Input should be {choices}")
    return value


def validate_https_url(value: str) -> str:
    if not re.match(r"^https://[^\s/?#]+(?:/[^\s]*)?$", value):
        raise ValueError(f"{value!r} is not an https:// URL")
    return value


Domain = Annotated[str, AfterValidator(validate_domain)]
Email = Annotated[str, AfterValidator(validate_email)]
Subpath = Annotated[str, AfterValidator(validate_subpath)]


def validate_timezone(value: str) -> str:
    zones = _timezones()
    if zones and value not in zones:
        raise ValueError(f"timezone {value!r} is not in the tz database (e.g. Europe/Paris)")
    if not re.match(r"^[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*$", value):
        raise ValueError(f"timezone {value!r} is not a tz database name (e.g. Europe/Paris)")
    return value


@cache
def _timezones() -> frozenset[str]:
    # Empty only on a machine without any tz database: then the name's form is all we check.
    return frozenset(zoneinfo.available_timezones())


def validate_url(value: str) -> str:
    """An absolute http(s) URL with a host (Jellyfin's published URL)."""
    if any(c.isspace() for c in value) or any(ord(c) < 32 for c in value):
        raise ValueError(f"{value!r} is not a URL: it contains white space")
    if "$" in value:
        raise ValueError(f"{value!r} contains '$', which Compose reads as a variable")
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError as error:
        raise ValueError(f"{value!r} is not a URL: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"{value!r} has no host")
    if port == 0:
        raise ValueError(f"{value!r} has port 0")
    if parts.username is not None or parts.query or parts.fragment:
        raise ValueError(f"{value!r}: no user, query or fragment in a published URL")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            validate_domain(host) if "." in host else _validate_label(host)
        except ValueError:
            raise ValueError(f"{value!r} has an invalid host {host!r}") from None
    return value


def _validate_label(value: str) -> str:
    if not _LABEL.match(value):
        raise ValueError(f"{value!r} is not a host name")
    return value


def validate_host_path(value: str) -> str:
    """A host path Compose mounts (short volume syntax)."""
    if not value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"path {value!r} is empty or has control characters")
    if ":" in value:
        raise ValueError(f"path {value!r} contains ':', where Compose splits a volume")
    if "$" in value:
        raise ValueError(f"path {value!r} contains '$', which Compose reads as a variable")
    return value


def _text_only(value: object) -> object:
    """Addresses are written as text: an integer is not silently an address (1 = 0.0.0.1)."""
    if not isinstance(value, str | ipaddress.IPv4Address | ipaddress.IPv4Network):
        raise ValueError(f"expected an address as a string, got {type(value).__name__}")
    return value


def _text_only6(value: object) -> object:
    if not isinstance(value, str | ipaddress.IPv6Address | ipaddress.IPv6Network):
        raise ValueError(f"expected an IPv6 address as a string, got {type(value).__name__}")
    return value


def _net_text_only(value: object) -> object:
    if not isinstance(value, str | ipaddress.IPv4Network | ipaddress.IPv6Network):
        raise ValueError(f"expected a subnet as a string, got {type(value).__name__}")
    return value


# Where a LAN can be: RFC 1918 and IPv6 unique local addresses (RFC 4193).
PRIVATE_RANGES: Final = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


def validate_lan_subnet(
    value: ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if not any(
        value.version == r.version and value.subnet_of(r)  # type: ignore[arg-type]
        for r in PRIVATE_RANGES
    ):
        raise ValueError(
            f"LAN subnet {value} is not a private range (10.0.0.0/8, 172.16.0.0/12, "
            "192.168.0.0/16 or fc00::/7)"
        )
    return value


def _exact_int(value: object) -> object:
    if type(value) is not int:  # True and 1.0 equal 1: not a version number
        raise ValueError(f"expected an integer, got {type(value).__name__}")
    return value


# Strict: `true`, "80" and 80.0 are refused, never turned into a port.
Port = Annotated[StrictInt, AfterValidator(validate_port)]
IPv4 = Annotated[ipaddress.IPv4Address, BeforeValidator(_text_only)]
IPv4Net = Annotated[ipaddress.IPv4Network, BeforeValidator(_text_only)]
IPv6 = Annotated[ipaddress.IPv6Address, BeforeValidator(_text_only6)]
IPv6Net = Annotated[ipaddress.IPv6Network, BeforeValidator(_text_only6)]
LanSubnet = Annotated[
    ipaddress.IPv4Network | ipaddress.IPv6Network,
    BeforeValidator(_net_text_only),
    AfterValidator(validate_lan_subnet),
]
Timezone = Annotated[str, AfterValidator(validate_timezone)]
Url = Annotated[str, AfterValidator(validate_url)]
EnvName = Annotated[str, AfterValidator(validate_env_name)]
Image = Annotated[str, AfterValidator(validate_image)]
HttpsUrl = Annotated[str, AfterValidator(validate_https_url)]
# A proxy's name; the list is the registry's, so a new proxy package needs no edit here.
ProxyKind = Annotated[str, AfterValidator(validate_proxy_kind)]


def _resolve(info: ValidationInfo, raw: str) -> Path:
    """Paths in stackgen.toml are relative to the stack folder (given as validation context)."""
    base = Path((info.context or {}).get("base_dir", "."))
    path = Path(raw).expanduser()
    return path if path.is_absolute() else base / path


def _must_exist(info: ValidationInfo, raw: str, what: str) -> str:
    if (info.context or {}).get("check_paths", True) and not _resolve(info, raw).exists():
        raise ValueError(f"{what} {raw!r} does not exist")
    return raw


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class TlsConfig(Strict):
    mode: Annotated[
        TlsMode,
        Setting(
            "where the certificate comes from: `acme` (HTTP-01), `acme-tls-alpn` (port 443 "
            "only), `acme-dns` (DNS-01, no port 80), `internal` (a local CA stackgen creates, "
            "name-constrained to the domain), `files` (your own pair)",
            flag="tls",
        ),
    ] = TlsMode.ACME
    ca_url: Annotated[
        HttpsUrl,
        Setting(
            "ACME directory URL: any RFC 8555 CA",
            readme="`init --staging` for Let's Encrypt staging",
            default="Let's Encrypt production",
        ),
    ] = LETSENCRYPT_PRODUCTION
    ca_bundle: Annotated[
        str | None, Setting("PEM to trust a private ACME server's own TLS certificate")
    ] = None
    trust_bundle: Annotated[
        str | None,
        Setting(
            "PEM of the root that issues the served certificate when it is not publicly "
            "trusted (a private ACME CA)",
            readme="`up`, `status` and `verify` verify against it",
        ),
    ] = None
    dns_provider: Annotated[
        str | None,
        Setting(
            "DNS-01 provider (acme-dns)",
            readme="`rfc2136`, `cloudflare`, `route53`, `ovh`, `digitalocean`, `linode`, "
            "`dnsimple`; see [docs/certificates.md](docs/certificates.md). Its credentials go "
            "in `.env` (0600; `init --dns-credential NAME=VALUE`), which `check` and `up` read",
        ),
    ] = None
    dns_env: Annotated[
        list[EnvName],
        Setting(
            "the name of an extra credential variable (acme-dns); repeatable",
            readme="its value goes in `.env`, never in stackgen.toml",
        ),
    ] = Field(default_factory=list)
    source: Annotated[
        TlsSource | None,
        Setting(
            "who obtains the certificate: the proxy's own client or certbot",
            flag="tls-source",
            default="the proxy's usual",
            readme="`certbot`: the certbot service (any proxy with a graceful reload: all but "
            "Traefik); `proxy`: its own client",
        ),
    ] = None
    wildcard: Annotated[
        StrictBool | None,
        Setting("one certificate for *.ZONE and ZONE (acme-dns only)"),
    ] = None
    dns_zone: Annotated[
        Domain | None,
        Setting("DNS zone of the domain", flag="zone", default="the domain's parent"),
    ] = None
    dns_resolvers: Annotated[
        list[str] | None,
        Setting(
            "IP:PORT of a DNS server the ACME client asks (acme-dns); repeatable",
            flag="dns-resolver",
            default="the system's",
        ),
    ] = None
    dns_propagation_seconds: Annotated[
        Annotated[StrictInt, Field(ge=0, le=3600)] | None,
        Setting(
            "wait after publishing the TXT record before validation (acme-dns)",
            default="the client's",
        ),
    ] = None
    certificate_hours: Annotated[
        Annotated[StrictInt, Field(ge=1)] | None,
        Setting(
            "how long the CA's certificates last, in hours, when not 90 days (e.g. "
            "short-lived ones)",
            readme="Traefik plans its renewals from it (`certificatesDuration`)",
        ),
    ] = None
    redirect_http: Annotated[
        StrictBool | None,
        Setting(
            "publish port 80 with a redirect to HTTPS",
            default="as the mode needs",
            readme="`acme-dns` and `acme-tls-alpn` publish no port 80 unless `true`; `acme` "
            "needs it",
        ),
    ] = None
    cert_file: Annotated[str | None, Setting("your certificate chain (tls files)")] = None
    key_file: Annotated[str | None, Setting("your private key (tls files)")] = None

    @field_validator("ca_bundle", "trust_bundle", "cert_file", "key_file")
    @classmethod
    def _exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.field_name != "trust_bundle":  # the others are mounted into a container
            validate_host_path(value)
        return _must_exist(info, value, info.field_name or "file")

    @field_validator("dns_provider")
    @classmethod
    def _provider(cls, value: str | None) -> str | None:
        if value is not None:
            dns_providers.provider(value)  # unknown: the list of known ones
        return value

    @field_validator("dns_resolvers")
    @classmethod
    def _resolvers(cls, value: list[str] | None) -> list[str] | None:
        for entry in value or []:
            host, _, port = entry.rpartition(":")
            try:
                ipaddress.ip_address(host)
                validate_port(int(port))
            except ValueError:
                raise ValueError(f"dns resolver {entry!r} is not IP:port") from None
        return value

    @model_validator(mode="after")
    def _mode_needs(self) -> TlsConfig:
        if self.mode is TlsMode.ACME_DNS and not self.dns_provider:
            raise ValueError("tls.mode 'acme-dns' needs tls.dns_provider")
        if self.wildcard and self.mode is not TlsMode.ACME_DNS:
            raise ValueError(
                f"a wildcard certificate needs the DNS-01 challenge (tls.mode 'acme-dns'), "
                f"not {self.mode.value!r}"
            )
        if self.source is TlsSource.CERTBOT and not self.mode.is_acme:
            raise ValueError(f"tls.source 'certbot' needs an ACME mode, not {self.mode.value!r}")
        if self.redirect_http is False and self.mode is TlsMode.ACME:
            raise ValueError("HTTP-01 (tls.mode 'acme') needs port 80: tls.redirect_http false")
        if self.mode is TlsMode.FILES and not (self.cert_file and self.key_file):
            raise ValueError("tls.mode 'files' needs tls.cert_file and tls.key_file")
        return self


def validate_tsig_secret(value: str) -> str:
    """A TSIG secret: base64 of at least 16 bytes (what bind's tsig-keygen prints)."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the TSIG secret is not base64") from None
    if len(raw) < 16:
        raise ValueError(f"the TSIG secret is {len(raw)} bytes; at least 16 are needed")
    return value


class PortsConfig(Strict):
    http: Annotated[Port, Setting("published HTTP port", flag="http-port", port=True)] = 80
    https: Annotated[
        Port, Setting("published HTTPS port (not ports.http)", flag="https-port", port=True)
    ] = 443
    listen_address: Annotated[IPv4, Setting("host address the ports are published on")] = (
        ipaddress.IPv4Address("0.0.0.0")  # noqa: S104
    )
    listen_address6: Annotated[
        IPv6, Setting("host IPv6 address the ports are published on (with `ipv6`)", flag="")
    ] = ipaddress.IPv6Address("::")

    @model_validator(mode="after")
    def _distinct(self) -> PortsConfig:
        if self.http == self.https:
            raise ValueError(f"ports.http and ports.https are both {self.http}")
        return self


# The unique local range (RFC 4193) an IPv6 proxy network must be in, and stackgen's own
# /32 of it, from which the default subnet is derived (ipv6_subnet_for).
ULA_RANGE: Final = ipaddress.IPv6Network("fc00::/7")
STACKGEN_ULA_PREFIX: Final = ipaddress.IPv6Network("fd6a:6600::/32")


def ipv6_subnet_for(subnet: ipaddress.IPv4Network) -> ipaddress.IPv6Network:
    """The default IPv6 subnet of a proxy network: a /64 of stackgen's ULA /32 whose next
    32 bits are the IPv4 subnet's network address (172.30.77.0/24 -> fd6a:6600:ac1e:4d00::/64).
    Deterministic, and distinct for every distinct IPv4 network address, so stacks that do
    not share an IPv4 subnet do not share an IPv6 one either."""
    base = int(STACKGEN_ULA_PREFIX.network_address) | (int(subnet.network_address) << 64)
    return ipaddress.IPv6Network((base, 64))


def validate_subnet6(value: ipaddress.IPv6Network) -> ipaddress.IPv6Network:
    if not value.subnet_of(ULA_RANGE):
        raise ValueError(
            f"network.subnet6 {value} is not a unique local range (fc00::/7, e.g. fd00::/64)"
        )
    if value.num_addresses < 8:
        raise ValueError(f"network.subnet6 {value} is too small (use /125 or larger)")
    return value


Subnet6 = Annotated[IPv6Net, AfterValidator(validate_subnet6)]


class NetworkConfig(Strict):
    subnet: Annotated[
        IPv4Net,
        Setting(
            "pinned subnet of the proxy network",
            readme="other containers get addresses from its upper half only",
        ),
    ] = ipaddress.IPv4Network("172.30.77.0/24")
    proxy_address: Annotated[
        IPv4 | None,
        Setting(
            "the proxy's pinned address = Jellyfin's `KnownProxies`",
            flag="",
            default="2nd host of the subnet",
            readme="Compose target only: a swarm cannot pin a task's address",
        ),
    ] = None
    # With `ipv6 = true`: the proxy network's IPv6 subnet, pinned (default: derived from
    # `subnet`, written into stackgen.toml by the stack's validation).
    subnet6: Annotated[
        Subnet6 | None,
        Setting(
            "with `ipv6`: the proxy network's IPv6 subnet, a unique local range (`fc00::/7`)",
            default="derived from `network.subnet`",
            readme="at least 8 addresses; by default `fd6a:6600:XXXX:XXXX::/64`, whose "
            "`XXXX:XXXX` is the IPv4 subnet's network address (`172.30.77.0/24` → "
            "`fd6a:6600:ac1e:4d00::/64`), written into `stackgen.toml` by `init` so it stays "
            "pinned. The proxy's IPv6 address has the host number of its IPv4 one (`.2` → "
            "`::2`); other containers take the subnet's third quarter. Refused in one line "
            "(exit 3): a range outside `fc00::/7`, a subnet too small for the proxy's host "
            "number in its lower half, one overlapping an IPv6 `jellyfin.lan_subnets` entry, "
            "or `subnet6` without `ipv6 = true`. `up` refuses (exit 6), before starting "
            "anything, a `network.subnet` or `network.subnet6` that overlaps another Docker "
            "network, and names that network",
        ),
    ] = None

    @model_validator(mode="after")
    def _address_in_subnet(self) -> NetworkConfig:
        if self.subnet.num_addresses < 8:
            raise ValueError(f"network.subnet {self.subnet} is too small (use /29 or larger)")
        if self.proxy_address is not None:
            usable = list(self.subnet.hosts())[1:]  # .1 is the bridge gateway
            if self.proxy_address not in usable:
                raise ValueError(
                    f"network.proxy_address {self.proxy_address} is not a usable address of "
                    f"{self.subnet} (the first host is the gateway)"
                )
            if self.proxy_address in self.dynamic_range:
                raise ValueError(
                    f"network.proxy_address {self.proxy_address} is in the upper half of "
                    f"{self.subnet}, which Docker hands out to other containers"
                )
        return self

    @property
    def dynamic_range(self) -> ipaddress.IPv4Network:
        """Where Docker may place other containers: never on the proxy's pinned address."""
        return list(self.subnet.subnets(prefixlen_diff=1))[1]

    @property
    def proxy_ip(self) -> ipaddress.IPv4Address:
        """Pinned so Jellyfin's KnownProxies can name exactly this address."""
        if self.proxy_address is not None:
            return self.proxy_address
        return self.subnet.network_address + 2

    @property
    def dynamic_range6(self) -> ipaddress.IPv6Network | None:
        """The IPv6 twin of dynamic_range, away from the proxy's pinned address: the third
        quarter of subnet6. Not the upper half as in IPv4: engine 20.10 cannot allocate from
        a range that ends at a /64's last address ("invalid bit range")."""
        if self.subnet6 is None:
            return None
        return list(self.subnet6.subnets(prefixlen_diff=2))[2]

    @property
    def proxy_ip6(self) -> ipaddress.IPv6Address | None:
        """The proxy's pinned IPv6 address: the same host number as its IPv4 address (.2 ->
        ::2), so one look at either tells the other."""
        if self.subnet6 is None:
            return None
        offset = int(self.proxy_ip) - int(self.subnet.network_address)
        return self.subnet6.network_address + offset


class DeployConfig(Strict):
    """The `deploy` table: which target runs the stack (`target`), and that target's own
    settings. Each target declares its table as a subclass (`stackgen/targets/<name>/
    config.py`), which says what the stack's facts depend on it: where the proxy's
    connections to Jellyfin come from, how the proxy reaches a host-network Jellyfin, the
    target's limits. Validating this class picks the target's own class by `target`."""

    target: Annotated[
        str,
        Setting(
            "where the stack runs: `compose` (docker compose on this machine) or `swarm` "
            "(docker stack deploy)",
            default="`compose`",
            readme="[docs/swarm.md](docs/swarm.md); `ipv6` is Compose only for now",
        ),
    ]
    # Whether the target moves services between addresses as it runs them (a bridged
    # Jellyfin's address then changes on every replacement: the proxies resolve it again).
    readdresses_services: ClassVar[bool] = False

    @model_validator(mode="wrap")
    @classmethod
    def _by_target(cls, data: Any, handler: ModelWrapValidatorHandler[DeployConfig]) -> Any:
        if cls is not DeployConfig or not isinstance(data, dict):
            return handler(data)
        name = data.get("target", targets.default())
        names = targets.available()
        if name not in names:
            choices = ", ".join(repr(n) for n in names[:-1]) + f" or {names[-1]!r}"
            raise ValidationError.from_exception_data(
                cls.__name__,
                [
                    InitErrorDetails(
                        type="enum", loc=("target",), input=name, ctx={"expected": choices}
                    )
                ],
            )
        own: type[DeployConfig] = targets.load(name, "config")
        given = dict(data)
        for key in [key for key in given if key not in own.model_fields]:
            owners = [n for n in names if key in targets.load(n, "config").model_fields]
            if not owners:
                continue  # an unknown field: the target's own class names it
            if given[key] in (None, [], {}):
                # Empty, as `init` wrote every target's settings before each target had
                # its own table: nothing is lost in leaving it out.
                del given[key]
                continue
            raise ValueError(f"deploy.{key} applies to deploy.target {owners[0]!r} only")
        return own.model_validate({**given, "target": name})

    @classmethod
    def variants(cls) -> list[type[DeployConfig]]:
        """Each target's own table (their settings are the `deploy` table's)."""
        return [targets.load(name, "config") for name in targets.available()]

    def known_proxies(self, config: StackConfig) -> list[str]:
        """Where the proxy's connections to Jellyfin come from, as Jellyfin sees them."""
        raise NotImplementedError

    def media_host(self, config: StackConfig) -> str:
        """How the proxy reaches a Jellyfin on a host network."""
        return "host.docker.internal"

    def proxy_host(self, config: StackConfig) -> str:
        """How a service beside the proxy (certbot) reaches it."""
        return str(config.network.proxy_ip)

    def check(self, config: StackConfig) -> None:
        """The target's limits on the rest of the configuration (a ValueError each)."""


def _default_deploy() -> DeployConfig:
    return DeployConfig.model_validate({})


# Jellyfin's own folders: a media mount on, above or inside one hides it from Jellyfin.
JELLYFIN_DIRS: Final = ("/config", "/cache")


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(f"{b.rstrip('/')}/") or b.startswith(f"{a.rstrip('/')}/")


class MediaMount(Strict):
    source: str
    target: str = ""
    read_only: StrictBool = True

    @field_validator("source")
    @classmethod
    def _source(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip() or any(ord(c) < 32 for c in value):
            raise ValueError(f"media source {value!r} is empty or has control characters")
        # A ':' is fine (the compose file then uses the long volume syntax).
        if "$" in value:
            raise ValueError(
                f"media source {value!r} contains '$', which Compose reads as a variable"
            )
        return _must_exist(info, value, "media path")

    @model_validator(mode="after")
    def _target(self) -> MediaMount:
        default = PurePosixPath(self.source).name.replace(":", "_") or "media"
        target = self.target or f"/media/{default}"
        if not target.startswith("/") or ".." in PurePosixPath(target).parts:
            raise ValueError(f"media target {target!r} must be an absolute path without '..'")
        if any(c in ":$" or ord(c) < 32 for c in target):
            raise ValueError(
                f"media target {target!r} must not contain ':', '$' or control characters"
            )
        # '/media//x/', '//media/x' and '/media/x' are one folder.
        target = "/" + str(PurePosixPath(target)).lstrip("/")
        for folder in JELLYFIN_DIRS:
            if _overlaps(target, folder):
                raise ValueError(
                    f"media target {target!r} collides with Jellyfin's {folder}: "
                    "Docker would mount the media over it (choose e.g. /media/...)"
                )
        object.__setattr__(self, "target", target)
        return self


class JellyfinConfig(Strict):
    image: Annotated[
        Image, Setting("Jellyfin's image (`init --image jellyfin=IMAGE`)", flag="")
    ] = "jellyfin/jellyfin:10.11.11"
    network_mode: Annotated[
        JellyfinNetwork,
        Setting(
            "`host` (DLNA, HDHomeRun) or `bridge`",
            flag="jellyfin-network",
            readme="host: multicast works; the proxy reaches Jellyfin via "
            "`host.docker.internal` (the host gateway). bridge: on the proxy network, no "
            "published port",
        ),
    ] = JellyfinNetwork.HOST
    port: Annotated[Port, Setting("Jellyfin's HTTP port", flag="jellyfin-port", port=True)] = 8096
    config_dir: Annotated[str, Setting("Jellyfin's configuration folder", flag="")] = (
        "jellyfin/config"
    )
    cache_dir: Annotated[str, Setting("Jellyfin's cache folder", flag="")] = "jellyfin/cache"
    media: Annotated[
        list[MediaMount],
        Setting(
            "a media folder SOURCE[:TARGET][:rw], read-only by default; repeatable",
            readme='in stackgen.toml `[[jellyfin.media]] source = "/srv/movies"`, optional '
            "`target` (default `/media/NAME`), `read_only = true`. Targets are distinct and "
            "never on, above or inside `/config` or `/cache`. A source containing `:` is "
            "written in Compose's long volume syntax",
        ),
    ] = Field(default_factory=list)
    published_url: Annotated[
        Url | None,
        Setting(
            "the URL Jellyfin advertises",
            default="the public URL",
            readme="an `http://` or `https://` URL with a host",
        ),
    ] = None
    # The URL LAN clients (and cast devices) are sent to instead of the public one,
    # through network.xml's PublishedServerUriBySubnet; lan_subnets say who is LAN.
    lan_url: Annotated[
        Url | None,
        Setting(
            "the URL Jellyfin gives LAN clients (needs `jellyfin.lan_subnets`)",
            readme="LAN clients (and cast devices) are sent to it, everyone else to the public "
            'URL (`PublishedServerUriBySubnet`). Needs `network_mode = "host"` and, on the '
            "host, an address in each subnet: Jellyfin skips a subnet's entry otherwise",
        ),
    ] = None
    lan_subnets: Annotated[
        list[LanSubnet],
        Setting(
            "a private subnet whose clients get `jellyfin.lan_url`; repeatable",
            flag="lan-subnet",
            readme="RFC 1918 or `fc00::/7`, not overlapping each other or the proxy network; "
            "they become Jellyfin's `LocalNetworkSubnets`",
        ),
    ] = Field(default_factory=list)
    timezone: Annotated[
        Timezone, Setting("Jellyfin's timezone, a tz database name such as `Europe/Paris`")
    ] = "Etc/UTC"
    start_seconds: Annotated[
        Annotated[StrictInt, Field(ge=10, le=3600)],
        Setting(
            "how long Jellyfin may take to start before its healthcheck counts (10-3600 s)",
            flag="jellyfin-start-seconds",
            readme="a large library or a database migration after an upgrade can take longer "
            "than the default; `up` then waits for it instead of failing on an unhealthy "
            "Jellyfin",
        ),
    ] = 60

    @field_validator("media")
    @classmethod
    def _distinct_targets(cls, value: list[MediaMount]) -> list[MediaMount]:
        seen: set[str] = set()
        for mount in value:
            if mount.target in seen:
                raise ValueError(f"two media folders are mounted on {mount.target!r}")
            seen.add(mount.target)
        return value

    @model_validator(mode="after")
    def _lan(self) -> JellyfinConfig:
        if self.lan_url and not self.lan_subnets:
            raise ValueError("jellyfin.lan_url needs jellyfin.lan_subnets (who is on the LAN)")
        if self.lan_subnets and not self.lan_url:
            raise ValueError("jellyfin.lan_subnets needs jellyfin.lan_url (where LAN clients go)")
        for url in (self.lan_url, self.published_url if self.lan_url else None):
            if url and "=" in url:
                # Jellyfin splits each entry at '=' and drops one with more than two parts.
                raise ValueError(f"{url!r}: a URL in PublishedServerUriBySubnet cannot hold '='")
        if self.lan_url and self.network_mode is not JellyfinNetwork.HOST:
            # NetworkManager.MatchesPublishedServerUrl skips a subnet entry unless one of
            # the server's interfaces is in that subnet: a bridged container has none.
            raise ValueError(
                "jellyfin.lan_url needs network_mode 'host': Jellyfin applies a subnet's URL "
                "only when it has an address in that subnet"
            )
        for i, a in enumerate(self.lan_subnets):
            for b in self.lan_subnets[i + 1 :]:
                if a.version == b.version and a.overlaps(b):
                    raise ValueError(f"LAN subnets {a} and {b} overlap")
        return self

    @field_validator("config_dir", "cache_dir")
    @classmethod
    def _relative_dir(cls, value: str) -> str:
        if not value.strip() or "\n" in value:
            raise ValueError("folder must not be empty")
        validate_host_path(value)
        if PurePosixPath(value.strip()) == PurePosixPath("/"):
            raise ValueError("the root folder cannot be Jellyfin's folder")
        return value


class ImagesConfig(BaseModel):
    """One image per proxy and per helper service (certbot), keyed by name. The names and
    their defaults (official images, pinned tags) come from the proxy registry, so a new
    proxy brings its own field."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, Image]

    @model_validator(mode="wrap")
    @classmethod
    def _registry_names(
        cls, data: Any, handler: ModelWrapValidatorHandler[ImagesConfig]
    ) -> ImagesConfig:
        if isinstance(data, dict):
            defaults = registry.default_images()
            unknown = [name for name in data if name not in defaults]
            if unknown:
                # The same error as an unknown field of a fixed model, at images.<name>.
                raise ValidationError.from_exception_data(
                    cls.__name__,
                    [
                        InitErrorDetails(type="extra_forbidden", loc=(name,), input=data[name])
                        for name in unknown
                    ],
                )
            # Registry order (then certbot), whatever order the file gives.
            data = {name: data.get(name, default) for name, default in defaults.items()}
        return handler(data)

    def of(self, name: str) -> str:
        return (self.__pydantic_extra__ or {})[name]


class HeadersConfig(Strict):
    content_security_policy: Annotated[
        str,
        Setting(
            "Content-Security-Policy",
            flag="",
            default="Jellyfin-safe CSP",
            readme="allows what jellyfin-web (10.9+) and Chromecast need",
        ),
    ] = DEFAULT_CSP
    referrer_policy: Annotated[
        str, Setting("Referrer-Policy", flag="", default=f"`{DEFAULT_REFERRER_POLICY}`")
    ] = DEFAULT_REFERRER_POLICY
    permissions_policy: Annotated[
        str,
        Setting("Permissions-Policy", flag="", default="every device feature off"),
    ] = DEFAULT_PERMISSIONS_POLICY
    # Off by default: X-Frame-Options breaks the LG webOS app.
    frame_options: Annotated[
        Literal["", "SAMEORIGIN", "DENY"],
        Setting(
            "X-Frame-Options: `SAMEORIGIN` or `DENY`",
            flag="",
            readme="off by default: it breaks the LG webOS app",
        ),
    ] = ""

    @field_validator("content_security_policy", "referrer_policy", "permissions_policy")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(c in value for c in '\r\n"`\\'):
            raise ValueError("header values must be one line without quotes or backslashes")
        return value


class StackConfig(Strict):
    schema_version: Annotated[
        Literal[1],
        BeforeValidator(_exact_int),
        Setting("the version of this file's format", flag=""),
    ] = SCHEMA_VERSION
    proxy: Annotated[
        ProxyKind,
        Setting(
            "the reverse proxy",
            argument=True,
            readme="`traefik`, `caddy`, `nginx`, `haproxy` or `apache` (or one a plugin registers)",
        ),
    ]
    domain: Annotated[
        Domain, Setting("public DNS name, e.g. jellyfin.example.com (no IP, no underscores)")
    ]
    email: Annotated[Email | None, Setting("ACME account email (required for ACME modes)")] = None
    subpath: Annotated[
        Subpath,
        Setting(
            "serve under a path, e.g. /jellyfin",
            readme="the prefix is kept end to end; `BaseUrl` set; `/jellyfin` → `/jellyfin/`",
        ),
    ] = ""
    project: Annotated[
        str,
        Setting("the stack's name: its Compose project or swarm stack", default="domain with `-`"),
    ] = ""
    run_as: Annotated[
        str,
        Setting(
            "uid:gid every container runs as",
            default="your `uid:gid`",
            init_default=lambda: f"{os.getuid()}:{os.getgid()}",
            readme="it owns every file and folder the containers read or write: stackgen gives "
            "them to it when run as root, and `check` fails when ownership or modes would stop "
            "a service from reading its keys or writing its folders",
        ),
    ] = "0:0"
    tls: TlsConfig = Field(default_factory=TlsConfig)
    ports: PortsConfig = Field(default_factory=PortsConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    jellyfin: JellyfinConfig = Field(default_factory=JellyfinConfig)
    # A factory: a proxy registered after import still gets its default image.
    images: ImagesConfig = Field(default_factory=ImagesConfig)
    headers: HeadersConfig = Field(default_factory=HeadersConfig)
    # Off for clients that stall or cannot seek over h2 (Kodi, some TV apps): ALPN then
    # offers http/1.1 only, on every proxy.
    http2: Annotated[
        StrictBool,
        Setting(
            "offer HTTP/2",
            readme="`false` (`--no-http2`) makes every proxy's ALPN offer `http/1.1` only, for "
            "Kodi and TV apps that stall or cannot seek over h2",
        ),
    ] = True
    # QUIC on the HTTPS port's UDP twin, advertised with Alt-Svc; only proxies whose
    # official image has it (Proxy.supports_http3), refused with the reason otherwise.
    http3: Annotated[
        StrictBool,
        Setting(
            "offer HTTP/3 (QUIC) over UDP on the HTTPS port (Caddy and Traefik only)",
            readme="advertised with `Alt-Svc` naming the public port. nginx needs 1.25+ built "
            "with QUIC (stackgen's tests run 1.22), HAProxy a QUIC-enabled build (Debian's 2.6 "
            "is not), Apache has none; they refuse it in one line",
        ),
    ] = False
    # The target's own class (SerializeAsAny: its fields are written too).
    deploy: SerializeAsAny[DeployConfig] = Field(default_factory=_default_deploy)

    @model_validator(mode="after")
    def _target_limits(self) -> StackConfig:
        self.deploy.check(self)
        return self

    # Dual-stack: the proxy network gets a pinned IPv6 subnet (network.subnet6), the ports
    # are published on IPv6 too (ports.listen_address6), every proxy listens on IPv6, and
    # Jellyfin's EnableIPv6 and KnownProxies follow.
    ipv6: Annotated[
        StrictBool,
        Setting(
            "dual-stack: IPv6 subnet, ports and Jellyfin's EnableIPv6",
            readme="the proxy network gets a pinned IPv6 subnet (`network.subnet6`) and the "
            "proxy a pinned IPv6 address, the ports are published on IPv6 too "
            "(`ports.listen_address6`), every proxy listens on IPv6, and Jellyfin gets "
            "`EnableIPv6 = true` with the proxy's IPv6 address in `KnownProxies`. IPv6 clients "
            'keep their address only when the engine has `"ip6tables": true` '
            "([docs/jellyfin.md](docs/jellyfin.md#ipv6-clients))",
        ),
    ] = False

    @model_validator(mode="after")
    def _ipv6_network(self) -> StackConfig:
        network = self.network
        if not self.ipv6:
            if network.subnet6 is not None:
                raise ValueError("network.subnet6 needs ipv6 = true")
            return self
        if network.subnet6 is None:
            # Pinned from here on: stackgen.toml is written with the derived value.
            object.__setattr__(network, "subnet6", ipv6_subnet_for(network.subnet))
        subnet6, proxy6 = network.subnet6, network.proxy_ip6
        lower_half = next(subnet6.subnets(prefixlen_diff=1)) if subnet6 else None
        if lower_half and proxy6 and proxy6 not in lower_half:
            raise ValueError(
                f"network.subnet6 {subnet6} is too small for the proxy's address {proxy6} "
                f"(the host number of {network.proxy_ip}) in its lower half"
            )
        return self

    @model_validator(mode="after")
    def _lan_not_the_proxy_network(self) -> StackConfig:
        for subnet in self.jellyfin.lan_subnets:
            proxy_net = self.network.subnet if subnet.version == 4 else self.network.subnet6
            if proxy_net is not None and subnet.overlaps(proxy_net):
                # The proxy's own address would count as a LAN client.
                raise ValueError(
                    f"jellyfin.lan_subnets: {subnet} overlaps the proxy network {proxy_net}"
                )
        return self

    @field_validator("run_as")
    @classmethod
    def _run_as(cls, value: str) -> str:
        if not _RUN_AS.match(value):
            raise ValueError(f"run_as {value!r} must be 'uid:gid' (numbers)")
        return value

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        if value and not _PROJECT.match(value):
            raise ValueError(f"project {value!r}: lower-case letters, digits, '-' and '_' only")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> StackConfig:
        if not self.project:
            object.__setattr__(self, "project", self.domain.replace(".", "-"))
        if self.tls.mode.is_acme and not self.email:
            # Not required by every CA, but it is the only way to hear about problems.
            raise ValueError(f"email is required with tls.mode {self.tls.mode.value!r}")
        zone = self.tls.dns_zone
        if zone is not None and not (self.domain == zone or self.domain.endswith(f".{zone}")):
            raise ValueError(f"tls.dns_zone {zone!r} does not contain the domain {self.domain!r}")
        if self.tls.wildcard and self.domain.count(".") < 2 and zone is None:
            raise ValueError(
                f"a wildcard for {self.domain!r} would be for its parent, a top-level domain "
                "(set tls.dns_zone)"
            )
        return self

    # --- derived facts (computed once, here) ---------------------------------------------

    @property
    def https_authority(self) -> str:
        return self.domain if self.ports.https == 443 else f"{self.domain}:{self.ports.https}"

    @property
    def public_url(self) -> str:
        """The URL users type, with a trailing slash."""
        return f"https://{self.https_authority}{self.subpath}/"

    @property
    def published_server_url(self) -> str:
        return self.jellyfin.published_url or self.public_url.rstrip("/")

    @property
    def publish_by_request(self) -> bool:
        """Jellyfin's EnablePublishedServerUriByRequest: LocalAddress from the request's
        (forwarded) scheme and host, which is what lets `verify` see the headers honoured.
        With a LAN URL it must be off, or the subnet list would never be read."""
        return self.jellyfin.lan_url is None

    @property
    def published_by_subnet(self) -> list[str]:
        """PublishedServerUriBySubnet: each LAN subnet to the LAN URL, everyone else
        ("external") to the public one."""
        if self.jellyfin.lan_url is None:
            return []
        lan = [
            f"{subnet}={self.jellyfin.lan_url.rstrip('/')}" for subnet in self.jellyfin.lan_subnets
        ]
        return [*lan, f"external={self.published_server_url}"]

    @property
    def published_server_url_env(self) -> str | None:
        """JELLYFIN_PublishedServerUrl, unless a LAN URL is set: Jellyfin then uses the
        variable for every client and never reads PublishedServerUriBySubnet."""
        return None if self.jellyfin.lan_url else self.published_server_url

    @property
    def dns_zone(self) -> str:
        """The zone the DNS-01 record goes in: as configured, or the domain's parent."""
        return self.tls.dns_zone or self.domain.partition(".")[2]

    @property
    def certificate_names(self) -> list[str]:
        """The names the certificate is issued for: the domain, or with a wildcard `*.ZONE`
        and `ZONE` (plus the domain when it is deeper than the wildcard reaches)."""
        if not self.tls.wildcard:
            return [self.domain]
        zone = self.dns_zone
        names = [f"*.{zone}", zone]
        if self.domain != zone and self.domain.partition(".")[2] != zone:
            names.append(self.domain)
        return names

    @property
    def publishes_http(self) -> bool:
        """Port 80 is published: HTTP-01 needs it; DNS-01 and TLS-ALPN-01 do not, so there
        it is published only for a redirect listener the user asks for."""
        if self.tls.redirect_http is not None:
            return self.tls.redirect_http
        return self.tls.mode not in (TlsMode.ACME_DNS, TlsMode.ACME_TLS_ALPN)

    @property
    def dns_provider(self) -> dns_providers.DnsProvider | None:
        if self.tls.mode is not TlsMode.ACME_DNS or not self.tls.dns_provider:
            return None
        return dns_providers.provider(self.tls.dns_provider)

    @property
    def certbot_image(self) -> str:
        """The certbot service's image. The official `certbot/certbot` has no DNS plugin;
        certbot publishes one image per plugin (`certbot/dns-cloudflare`, same tags), used
        for DNS-01 unless images.certbot names another."""
        image = self.images.of("certbot")
        default = registry.SERVICE_IMAGES["certbot"]
        provider = self.dns_provider
        if provider is None or image != default:
            return image
        return default.replace("certbot/certbot:", f"certbot/dns-{provider.certbot_plugin}:", 1)

    @property
    def dns_secret_names(self) -> list[str]:
        """The variables the secrets file (.env) must give: the provider's, then dns_env."""
        provider = self.dns_provider
        names = list(provider.variables) if provider else []
        return names + [name for name in self.tls.dns_env if name not in names]

    @property
    def jellyfin_host(self) -> str:
        """How the proxy container reaches Jellyfin (host network: as the target says)."""
        if self.jellyfin.network_mode is JellyfinNetwork.HOST:
            return self.deploy.media_host(self)
        return "jellyfin"

    @property
    def upstream_moves(self) -> bool:
        """Jellyfin's address changes while the stack runs (a bridged Jellyfin on a target
        that readdresses services): a proxy must resolve its name again, not once."""
        bridged = self.jellyfin.network_mode is JellyfinNetwork.BRIDGE
        return bridged and self.deploy.readdresses_services

    @property
    def proxy_host(self) -> str:
        """How a service beside the proxy (certbot) reaches it."""
        return self.deploy.proxy_host(self)

    @property
    def jellyfin_upstream(self) -> str:
        return f"http://{self.jellyfin_host}:{self.jellyfin.port}"

    @property
    def known_proxies(self) -> list[str]:
        """Where the proxy's connections to Jellyfin come from, as Jellyfin sees them (the
        target says: docs/ARCHITECTURE.md, "A deploy target")."""
        return self.deploy.known_proxies(self)

    @property
    def health_path(self) -> str:
        return f"{self.subpath}/health"

    @property
    def tls_files(self) -> tuple[str, str] | None:
        """Bind sources of the served certificate chain and key (modes internal and files)."""
        if self.tls.mode is TlsMode.INTERNAL:
            return "./tls/fullchain.pem", "./tls/privkey.pem"
        if self.tls.mode is TlsMode.FILES and self.tls.cert_file and self.tls.key_file:
            return bind_source(self.tls.cert_file), bind_source(self.tls.key_file)
        return None

    @property
    def acme_ca_bundle(self) -> str | None:
        return bind_source(self.tls.ca_bundle) if self.tls.ca_bundle else None

    @property
    def client_trust_file(self) -> str | None:
        """What a client of this stack must trust beyond the system store (stack-relative)."""
        if self.tls.mode is TlsMode.INTERNAL:
            return "tls/ca.pem"
        return self.tls.trust_bundle

    @property
    def connect_address(self) -> str:
        """Where this machine reaches the published ports."""
        address = str(self.ports.listen_address)
        return "127.0.0.1" if address == "0.0.0.0" else address  # noqa: S104

    @property
    def uid(self) -> int:
        return int(self.run_as.split(":")[0])

    @property
    def gid(self) -> int:
        return int(self.run_as.split(":")[1])


def bind_source(path: str) -> str:
    """A Compose bind-mount source: a bare relative name would be taken for a named volume."""
    if path.startswith(("/", "./", "../", "~")):
        return path
    return f"./{path}"


def parse_config(data: dict[str, Any], base_dir: Path, *, check_paths: bool = True) -> StackConfig:
    return StackConfig.model_validate(
        data, context={"base_dir": str(base_dir), "check_paths": check_paths}
    )
