"""Trust anchors reduced to *roots only* — the trick behind `tls.chain`.

Python 3.11's ssl module cannot show which certificates the server sent. But it can
verify, and OpenSSL builds the path from (a) the certificates the peer sent and (b) the
trust store — it never fetches missing intermediates (no AIA chasing, unlike browsers).
So if verification succeeds with a store that holds **only self-signed roots**, every
intermediate on the path must have come from the server: the full chain was served.
A bare leaf fails with "unable to get local issuer certificate" in that store, even when
the system store happens to cache the intermediate (which is how a bare leaf passes in
a desktop browser yet breaks Android clients).
"""

from __future__ import annotations

import functools
import os
import ssl
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

_MAX_STORE_FILES = 2000  # bound the capath walk; real stores hold a few hundred


def _pem_blobs(path: Path) -> list[bytes]:
    try:
        data = path.read_bytes()
    except OSError:
        return []
    return [data] if b"-----BEGIN CERTIFICATE-----" in data else []


def _store_sources(extra_ca_file: Path | None) -> list[bytes]:
    paths = ssl.get_default_verify_paths()
    blobs: list[bytes] = []
    if paths.cafile:
        blobs += _pem_blobs(Path(paths.cafile))
    if paths.capath and os.path.isdir(paths.capath):
        for i, entry in enumerate(sorted(Path(paths.capath).iterdir())):
            if i >= _MAX_STORE_FILES:
                break
            if entry.is_file():
                blobs += _pem_blobs(entry)
    if extra_ca_file is not None:
        blobs += _pem_blobs(Path(extra_ca_file))
    return blobs


def _is_self_signed(cert: x509.Certificate) -> bool:
    # Name equality only: OpenSSL does not check an anchor's own signature, and many
    # real roots are SHA-1 self-signed, which cryptography refuses to verify.
    return cert.subject == cert.issuer


@functools.lru_cache(maxsize=8)
def load_certificates(extra_ca_file: Path | None) -> tuple[x509.Certificate, ...]:
    """Every certificate of the default store (file, directory, and — on platforms where
    OpenSSL has no files, like Windows — what the ssl module loaded) plus the CA file."""
    seen: set[bytes] = set()
    certs: list[x509.Certificate] = []

    def add(cert: x509.Certificate) -> None:
        der = cert.public_bytes(Encoding.DER)
        if der not in seen:
            seen.add(der)
            certs.append(cert)

    with warnings.catch_warnings():
        # Some shipped roots have non-positive serials; cryptography warns, we don't care.
        warnings.simplefilter("ignore")
        for blob in _store_sources(extra_ca_file):
            try:
                for cert in x509.load_pem_x509_certificates(blob):
                    add(cert)
            except ValueError:
                continue
        for der in ssl.create_default_context().get_ca_certs(binary_form=True):
            try:
                add(x509.load_der_x509_certificate(der))
            except ValueError:
                continue
    return tuple(certs)


@functools.lru_cache(maxsize=8)
def roots_only_context(extra_ca_file: Path | None) -> tuple[ssl.SSLContext, int]:
    """A verifying context (no hostname check) whose store holds self-signed roots only.
    Returns the context and the number of roots loaded."""
    roots = [c for c in load_certificates(extra_ca_file) if _is_self_signed(c)]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # tls.name judges the name; here only the path matters
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_ciphers("DEFAULT")  # as client.verifying_context: suites are not judged here
    # Partial chains would let a stored intermediate act as an anchor; we want roots only.
    ctx.verify_flags &= ~ssl.VERIFY_X509_PARTIAL_CHAIN
    if roots:
        ctx.load_verify_locations(
            cadata="".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in roots)
        )
    return ctx, len(roots)


def full_store_context(extra_ca_file: Path | None) -> ssl.SSLContext:
    """Verifying context (no hostname check) with every stored certificate, intermediates
    included — tells a bare leaf apart from a certificate nobody trusts."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.set_ciphers("DEFAULT")
    if extra_ca_file is not None:
        ctx.load_verify_locations(cafile=str(extra_ca_file))
    return ctx


def issuer_is_known_root(leaf_der: bytes, extra_ca_file: Path | None) -> bool:
    """Whether the leaf is signed directly by a stored root (then a lone leaf is complete)."""
    leaf = x509.load_der_x509_certificate(leaf_der)
    for cert in load_certificates(extra_ca_file):
        if cert.subject == leaf.issuer and _is_self_signed(cert):
            try:
                leaf.verify_directly_issued_by(cert)
            except ValueError:  # algorithm cryptography cannot check: the name must do
                return True
            except Exception:  # noqa: S112 — same name, other key: keep looking
                continue
            return True
    return False
