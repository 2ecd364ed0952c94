"""The one TLS profile every proxy serves: Mozilla's "intermediate" configuration (guideline
5.7/6.0). Each template spells these values the way its proxy reads them; no template names
a suite, a curve or an HSTS age of its own. See docs/proxies.md, "Every proxy"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class CipherSuite:
    openssl: str  # nginx, Apache, HAProxy
    iana: str  # Go's crypto/tls (Traefik, Caddy) uses the IANA names


@dataclass(frozen=True)
class Curve:
    openssl: str
    go: str  # Traefik's curvePreferences
    iana: str  # the TLS Supported Groups registry's names (Caddy's `curves`)


@dataclass(frozen=True)
class TlsProfile:
    versions: tuple[str, ...]  # "1.2", "1.3"
    tls12_suites: tuple[CipherSuite, ...]  # in the client's order: no server preference
    tls13_suites: tuple[str, ...]
    curves: tuple[Curve, ...]
    hsts_max_age: int
    hsts_include_subdomains: bool

    @property
    def min_version(self) -> str:
        return self.versions[0]

    @property
    def tls12_openssl(self) -> tuple[str, ...]:
        return tuple(suite.openssl for suite in self.tls12_suites)

    @property
    def tls12_iana(self) -> tuple[str, ...]:
        return tuple(suite.iana for suite in self.tls12_suites)

    @property
    def curves_openssl(self) -> tuple[str, ...]:
        return tuple(curve.openssl for curve in self.curves)

    @property
    def curves_go(self) -> tuple[str, ...]:
        return tuple(curve.go for curve in self.curves)

    @property
    def curves_iana(self) -> tuple[str, ...]:
        return tuple(curve.iana for curve in self.curves)

    @property
    def hsts(self) -> str:
        """The Strict-Transport-Security value."""
        value = f"max-age={self.hsts_max_age}"
        return f"{value}; includeSubDomains" if self.hsts_include_subdomains else value


INTERMEDIATE: Final = TlsProfile(
    versions=("1.2", "1.3"),
    tls12_suites=(
        CipherSuite("ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
        CipherSuite("ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        CipherSuite("ECDHE-ECDSA-AES256-GCM-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
        CipherSuite("ECDHE-RSA-AES256-GCM-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
        CipherSuite(
            "ECDHE-ECDSA-CHACHA20-POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        ),
        CipherSuite("ECDHE-RSA-CHACHA20-POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    ),
    tls13_suites=(
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
    ),
    # Named because Go's and OpenSSL 3.0's defaults add P-521 and X448.
    curves=(
        Curve("X25519", "X25519", "x25519"),
        Curve("prime256v1", "CurveP256", "secp256r1"),
        Curve("secp384r1", "CurveP384", "secp384r1"),
    ),
    # Two years: what the HSTS preload list asks for.
    hsts_max_age=63072000,
    hsts_include_subdomains=True,
)
