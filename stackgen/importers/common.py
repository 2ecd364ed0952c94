"""Steps every format shares once its Jellyfin site is known: upstream, subpath, certificate
files, headers, and the report lines that follow from them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from stackgen import inputs
from stackgen.importers import reasons
from stackgen.importers.base import Imported, ReportAction, Upstream, under_root
from stackgen.importers.certs import IMPORTED_CERT, IMPORTED_KEY, certificate_summary
from stackgen.models import TlsMode

LETSENCRYPT_LIVE = re.compile(r"^/etc/letsencrypt/live/([^/]+)/")
_OLD_PROTOCOLS = re.compile(r"(?i)\b(?:tlsv1(?:\.[01])?|sslv[23]|versiontls1[01])\b(?![.\d])")


def set_upstream(
    imp: Imported, upstream: Upstream, file: Path, line: int | None, what: str
) -> None:
    if imp.upstream is not None:
        return
    imp.upstream = upstream
    mode = upstream.network_mode.value
    if upstream.port == 8920 or upstream.scheme in ("https", "wss"):
        imp.add(file, line, what, ReportAction.REPLACED, reasons.UPSTREAM_HTTPS)
        return
    where = (
        "the Jellyfin container on the stack network"
        if mode == "bridge"
        else "Jellyfin on this host, reached as host.docker.internal"
    )
    imp.add(
        file,
        line,
        what,
        ReportAction.TRANSLATED,
        f"upstream {upstream.authority}: jellyfin.network_mode {mode!r}, "
        f"port {upstream.port} ({where})",
    )


# ASCII digits only: `\d` also matches other scripts' digits, which int() reads as numbers.
_PORT = re.compile(r"(?:^|:)([0-9]{1,5})$")


def listen_port(
    imp: Imported, address: str, tls: bool, file: Path, line: int | None, what: str
) -> None:
    """`*:443`, `:80`, `[::]:80`, `0.0.0.0:8443` or `8080`: the published port."""
    match = _PORT.search(address.strip())
    port = int(match.group(1)) if match else None
    if port is None or not 1 <= port <= 65535:
        imp.add(file, line, what, ReportAction.DROPPED, f"no port in {address!r}: 80/443 kept")
        return
    key = "https" if tls else "http"
    current = imp.https_port if tls else imp.http_port
    if current is None:
        if tls:
            imp.https_port = port
        else:
            imp.http_port = port
    elif current != port:
        imp.add(
            file, line, what, ReportAction.DROPPED, f"stackgen publishes one {key} port ({current})"
        )
        return
    imp.add(file, line, what, ReportAction.TRANSLATED, f"ports.{key} = {port}")


def jellyfin_port(upstream: Upstream) -> int:
    return 8096 if upstream.port == 8920 or upstream.scheme in ("https", "wss") else upstream.port


def set_subpath(
    imp: Imported, location: str, strips: bool, file: Path, line: int | None, what: str
) -> None:
    """A Jellyfin location other than `/` is a subpath; `strips` says the old proxy removed
    the prefix before Jellyfin (the loop-prone form)."""
    subpath = location.rstrip("/")
    if not subpath:
        return
    imp.subpath = subpath
    if strips:
        imp.add(file, line, what, ReportAction.REPLACED, reasons.PREFIX_STRIP)
    imp.add(file, line, f"subpath {subpath}", ReportAction.TRANSLATED, reasons.BASE_URL)


def finish(imp: Imported) -> None:
    """Report lines every import ends with."""
    imp.add(
        "(Jellyfin network.xml)", None, "KnownProxies", ReportAction.REPLACED, reasons.KNOWN_PROXIES
    )


# Response headers the old proxy set -> what stackgen does instead; any other is dropped.
_RESPONSE_HEADERS: Final[dict[str, tuple[ReportAction, str]]] = {
    "strict-transport-security": (ReportAction.REPLACED, reasons.HSTS),
    "x-frame-options": (ReportAction.DROPPED, reasons.FRAME),
    "x-xss-protection": (ReportAction.DROPPED, reasons.XSS),
    "x-content-type-options": (ReportAction.REPLACED, reasons.NOSNIFF),
    "content-security-policy": (ReportAction.REPLACED, reasons.CSP),
    "content-security-policy-report-only": (ReportAction.REPLACED, reasons.CSP),
    "referrer-policy": (ReportAction.REPLACED, reasons.REFERRER),
    "permissions-policy": (ReportAction.REPLACED, "stackgen sends its own Permissions-Policy"),
    "feature-policy": (ReportAction.REPLACED, "stackgen sends its own Permissions-Policy"),
    "server": (ReportAction.REPLACED, reasons.SERVER_TOKENS),
    "x-powered-by": (ReportAction.REPLACED, reasons.SERVER_TOKENS),
}
# Request headers the old proxy sent to Jellyfin -> what stackgen does instead.
_FORWARDED_HEADERS: Final[dict[str, tuple[ReportAction, str]]] = {
    "x-real-ip": (ReportAction.DROPPED, reasons.REAL_IP),
    "x-forwarded-protocol": (ReportAction.DROPPED, reasons.FORWARDED_PROTOCOL),
    "upgrade": (ReportAction.REPLACED, reasons.WEBSOCKET),
    "connection": (ReportAction.REPLACED, reasons.WEBSOCKET),
    "host": (ReportAction.REPLACED, reasons.FORWARDED),
    "x-forwarded-for": (ReportAction.REPLACED, reasons.FORWARDED),
    "x-forwarded-proto": (ReportAction.REPLACED, reasons.FORWARDED),
    "x-forwarded-host": (ReportAction.REPLACED, reasons.FORWARDED),
    "x-forwarded-port": (
        ReportAction.DROPPED,
        "Jellyfin does not read X-Forwarded-Port; the public port is in X-Forwarded-Host",
    ),
}


def header_verdict(name: str, value: str) -> tuple[ReportAction, str]:
    return _RESPONSE_HEADERS.get(name.lower(), (ReportAction.DROPPED, reasons.CUSTOM_HEADER))


def forwarded_header_verdict(name: str) -> tuple[ReportAction, str]:
    return _FORWARDED_HEADERS.get(name.lower(), (ReportAction.DROPPED, reasons.CUSTOM_HEADER))


def protocols_verdict(value: str) -> tuple[ReportAction, str]:
    if _OLD_PROTOCOLS.search(value):
        return ReportAction.DROPPED, reasons.OLD_TLS
    return ReportAction.REPLACED, reasons.TLS_SETTINGS


def ciphers_verdict(value: str) -> tuple[ReportAction, str]:
    weak = re.search(
        r"(?i)CBC|SHA(?:1)?(?![0-9])|RC4|3DES|DES-|:AES(?:128|256)-|\bRSA\b|TLS_RSA_", value
    )
    if weak:
        return ReportAction.DROPPED, reasons.OLD_TLS
    return ReportAction.REPLACED, reasons.TLS_SETTINGS


def use_certificate_files(
    imp: Imported,
    cert: str,
    key: str,
    root: Path,
    file: Path,
    line: int | None,
    what: str,
) -> None:
    """The old proxy's own certificate and key become TLS mode `files`, read where they are:
    a certbot lineage keeps being renewed by the host's certbot (see docs/import.md)."""
    cert_path, key_path = under_root(root, cert), under_root(root, key)
    # Only what is not there is missing: a FIFO or a device is refused when read.
    missing = [str(p) for p in (cert_path, key_path) if not p.exists()]
    if missing:
        imp.tls_mode = TlsMode.ACME
        imp.add(
            file,
            line,
            what,
            ReportAction.REPLACED,
            f"{', '.join(missing)} not found on this machine: the certificate cannot be kept, "
            "stackgen obtains a new one (tls.mode 'acme'); import on the old server, or pass "
            "--root with a copy of its filesystem, to keep it",
        )
        return
    chain, key_pem = inputs.read_tls_pair(cert_path, key_path)
    served = certificate_summary(chain)
    imp.tls_mode = TlsMode.FILES
    imp.cert_file, imp.key_file = cert_path, key_path
    imp.kept_pair = (chain, key_pem)
    lineage = LETSENCRYPT_LIVE.match(cert)
    renewal = (
        f"certbot lineage {lineage.group(1)!r}; its old renewal (certbot's nginx or Apache "
        "plugin, or standalone) needs port 80, which the stack now holds: before it expires, "
        "switch to tls.mode 'acme' and `stackgen render` (docs/import.md)"
        if lineage
        else "before it expires, switch to tls.mode 'acme', or copy the renewed pair over "
        "the stack's and restart the proxy container"
    )
    imp.add(
        file,
        line,
        what,
        ReportAction.TRANSLATED,
        f"kept, not re-issued ({served}): key matched to {cert_path}, the pair copied into "
        f"{IMPORTED_CERT} and {IMPORTED_KEY} (0600), tls.mode 'files'; {renewal}",
    )
