"""The `tls` table: where the served certificate comes from."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from enum import StrEnum
from typing import Annotated, Final

from pydantic import (
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from stackgen import dns_providers
from stackgen.models.fields import (
    CredentialName,
    Domain,
    HttpsUrl,
    Strict,
    _must_exist,
    validate_host_path,
    validate_port,
)
from stackgen.options import Setting

LETSENCRYPT_PRODUCTION: Final = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING: Final = "https://acme-staging-v02.api.letsencrypt.org/directory"


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
            "in `.env` (0600; `init --dns-credential NAME=VALUE`), which `check` and `up` read; "
            "on a swarm, one file each in `secrets/`, handed over as Swarm secrets",
        ),
    ] = None
    dns_env: Annotated[
        list[CredentialName],
        Setting(
            "the name of an extra credential variable (acme-dns); repeatable",
            readme="never one that steers Compose or a program: `COMPOSE_*`, `DOCKER_*`, "
            "`LD_*`, `PATH`, `HOME`, proxies' variables, ...; its value goes in `.env` (a "
            "swarm: `secrets/NAME`), never in stackgen.toml",
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
    cert_file: Annotated[
        str | None,
        Setting(
            "your certificate chain (tls files)",
            readme="`init --cert-file C --key-file K` reads both (regular files, at most "
            "4 MiB), refuses a key that does not load or is not the certificate's (exit 3), "
            "and copies the pair into `tls/imported/` (0600), which these fields then name; "
            "`check` fails a pair that does not match or a key that is a symbolic link",
        ),
    ] = None
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
                if not re.fullmatch(r"[0-9]{1,5}", port):  # int() also reads '٥٣' as 53
                    raise ValueError(port)
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
