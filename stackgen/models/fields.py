"""The building blocks of the model: the validators (plain functions, reused by the CLI and
property-tested), the annotated types they make, and the strict base of every table."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
import zoneinfo
from functools import cache
from pathlib import Path
from typing import Annotated, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StrictInt,
    ValidationInfo,
)

from stackgen import validation
from stackgen.proxies import registry

# --- validators (plain functions: reused by the CLI and property-tested) -------------------

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_SUBPATH_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_EMAIL_LOCAL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$"
)
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*$")
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


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
    return validation.validate_image_reference(value)


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
CredentialName = Annotated[EnvName, AfterValidator(validation.validate_credential_name)]
PrivateSubnet = Annotated[IPv4Net, AfterValidator(validation.validate_private_subnet)]
Image = Annotated[str, AfterValidator(validate_image)]
HttpsUrl = Annotated[str, AfterValidator(validate_https_url)]
# A proxy's name; the list is the registry's, so a new proxy package needs no edit here.
ProxyKind = Annotated[str, AfterValidator(validate_proxy_kind)]


def _base_dir(info: ValidationInfo) -> str:
    return str((info.context or {}).get("base_dir", "."))


def _resolve(info: ValidationInfo, raw: str) -> Path:
    """Paths in stackgen.toml are relative to the stack folder (given as validation context)."""
    base = Path(_base_dir(info))
    path = Path(raw).expanduser()
    return path if path.is_absolute() else base / path


def _must_exist(info: ValidationInfo, raw: str, what: str) -> str:
    if (info.context or {}).get("check_paths", True) and not _resolve(info, raw).exists():
        raise ValueError(f"{what} {raw!r} does not exist")
    return raw


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


def bind_source(path: str) -> str:
    """A Compose bind-mount source: a bare relative name would be taken for a named volume."""
    if path.startswith(("/", "./", "../", "~")):
        return path
    return f"./{path}"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_cidr(value: object) -> object:
    """A client range written as text: refused in one line when it is not a network, has
    host bits set (`10.0.0.1/8` is a typo for an address or for `10.0.0.0/8`) or can never
    be a client's (multicast)."""
    value = _net_text_only(value)
    if not isinstance(value, str):
        return value
    try:
        network = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as error:
        raise ValueError(f"{value!r} is not a CIDR range such as 203.0.113.0/24: {error}") from None
    if network.is_multicast:
        raise ValueError(f"{value!r} is a multicast range, never a client's address")
    return network


Cidr = Annotated[Network, BeforeValidator(parse_cidr)]
