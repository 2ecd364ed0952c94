"""TLS: trust, chain, expiry and the Mozilla "intermediate" profile (docs/proxies.md).

Trust is judged here only; every other check connects without verifying so that one
certificate problem is reported once. What the server *accepts* (old protocols, suites,
groups, compression, renegotiation) is asked with hand-built ClientHellos (hello.py),
because the local OpenSSL cannot offer much of what we must see refused; TLS 1.3 groups
are asked through the ssl module (`set_ecdh_curve` restricts the TLS 1.3 key share too).
"""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stackgen.probe import client, hello, trust
from stackgen.probe.base import Outcome, check, failed, passed, warned
from stackgen.probe.context import ProbeContext

K = TypeVar("K")
V = TypeVar("V")

INTERMEDIATE_LIST = ":".join(hello.INTERMEDIATE_SUITES)
EXPIRY_WARN_DAYS = 21
SWEEP_WORKERS = 8  # parallel handshakes: a remote sweep of ~40 hellos stays ~1 s

HINT_NAME = (
    "serve a certificate for this name from a CA the clients trust; for a private or "
    "staging ACME CA pass its root with --ca-file"
)
HINT_CHAIN = (
    "serve the full chain, not the bare leaf: nginx `ssl_certificate fullchain.pem`, Apache "
    "`SSLCertificateFile fullchain.pem`, HAProxy `crt` = cat fullchain.pem privkey.pem "
    "(Traefik and Caddy send the chain they got from ACME)"
)
HINT_EXPIRY = (
    "renewal is not happening: Traefik/Caddy renew ~30 days before expiry (check their logs, "
    "acme.json mode 600, /data persisted); certbot: check the `certbot renew` timer and that "
    "the deploy hook reloads the proxy"
)
HINT_PROTOCOLS = (
    "allow TLS 1.2 and 1.3 only: nginx `ssl_protocols TLSv1.2 TLSv1.3`; Apache "
    "`SSLProtocol -all +TLSv1.2 +TLSv1.3`; HAProxy `ssl-default-bind-options ssl-min-ver "
    'TLSv1.2`; Traefik tls.options.default minVersion = "VersionTLS12"; Caddy '
    "`protocols tls1.2 tls1.3`"
)
HINT_TLS13 = (
    "enable TLS 1.3: nginx `ssl_protocols TLSv1.2 TLSv1.3`; Apache `SSLProtocol -all +TLSv1.2 "
    "+TLSv1.3`; HAProxy no `ssl-max-ver TLSv1.2`; Traefik no maxVersion in tls.options; "
    "Caddy `protocols tls1.2 tls1.3`"
)
HINT_CIPHERS = (
    f"TLS 1.2 suites = Mozilla intermediate only ({INTERMEDIATE_LIST}): nginx `ssl_ciphers`, "
    "Apache `SSLCipherSuite` + `SSLHonorCipherOrder off`, HAProxy `ssl-default-bind-ciphers`, "
    "Traefik tls.options.default.cipherSuites (TLS_ECDHE_*_GCM_*, TLS_ECDHE_*_CHACHA20_*), "
    "Caddy `ciphers`"
)
HINT_GROUPS = (
    "name the groups X25519, P-256, P-384 (OpenSSL 3 and Go defaults add P-521/X448): nginx "
    "`ssl_ecdh_curve X25519:prime256v1:secp384r1`; Apache `SSLOpenSSLConfCmd Curves "
    "X25519:prime256v1:secp384r1`; HAProxy `ssl-default-bind-curves X25519:P-256:P-384`; "
    'Traefik tls.options.default.curvePreferences = ["X25519", "CurveP256", "CurveP384"]; '
    "Caddy `curves x25519 secp256r1 secp384r1`"
)
HINT_COMPRESSION = (
    "disable TLS compression (CRIME): Apache `SSLCompression off`; any OpenSSL >= 1.1.0 "
    "refuses it by default — upgrade the proxy image"
)
HINT_RENEGOTIATION = (
    "the proxy's TLS library lacks RFC 5746 secure renegotiation; upgrade the proxy image "
    "(every current OpenSSL, Go and BoringSSL has it)"
)
HINT_RAW = "check with `openssl s_client` or testssl.sh; the server ignored our raw ClientHello"

# OpenSSL names for set_ecdh_curve.
_OPENSSL_GROUP = {
    "X25519": "X25519",
    "P-256": "prime256v1",
    "P-384": "secp384r1",
    "P-521": "secp521r1",
    "X448": "X448",
}
_GOOD_GROUPS = ("X25519", "P-256", "P-384")
_BAD_GROUPS = ("P-521", "X448")
# Only ECDHE suites: the handshake then cannot succeed without the one offered group.
_ECDHE_SUITES = tuple(code for code, name in hello.SUITE_NAMES.items() if name.startswith("ECDHE-"))


def sweep(items: Iterable[K], fn: Callable[[K], V]) -> dict[K, V | Exception]:
    """Run `fn` over `items` in a small thread pool; exceptions are returned, not raised."""

    def safe(item: K) -> V | Exception:
        try:
            return fn(item)
        except Exception as exc:
            return exc

    keys = list(items)
    with ThreadPoolExecutor(max_workers=SWEEP_WORKERS) as pool:
        return dict(zip(keys, pool.map(safe, keys), strict=True))


def _first_error(results: dict[K, V | Exception]) -> Exception | None:
    errors = [v for v in results.values() if isinstance(v, Exception)]
    return errors[0] if errors and len(errors) == len(results) else None


def _leaf_der(ctx: ProbeContext) -> bytes:
    def fetch() -> bytes:
        der = client.handshake(ctx.target, ctx.insecure_context()).peer_der
        if not der:
            raise client.ProbeError("the server sent no certificate")
        return der

    return ctx.memo(("leaf",), fetch)


def _cn(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else name.rfc4514_string()


def describe_cert(der: bytes) -> dict[str, object]:
    cert = x509.load_der_x509_certificate(der)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in sans.get_values_for_type(x509.DNSName)]
        names += [str(n) for n in sans.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    return {
        "subject": _cn(cert.subject),
        "issuer": _cn(cert.issuer),
        "names": names,
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


# --- trust ------------------------------------------------------------------------------


@check("tls.name", "Certificate is trusted and valid for the name", HINT_NAME)
def tls_name(ctx: ProbeContext) -> Outcome:
    try:
        info = client.handshake(ctx.target, ctx.verifying_context())
    except ssl.SSLCertVerificationError as exc:
        served = describe_cert(_leaf_der(ctx))
        message = exc.verify_message or str(exc)
        hint = HINT_NAME
        if (
            exc.verify_code == 62
            or "Hostname mismatch" in message
            or "IP address mismatch" in message
        ):
            hint = (
                f"the certificate names {served['names']}, not {ctx.url.host}: make the router "
                f"match the name (Traefik rule Host(`{ctx.url.host}`), Caddy site address, "
                "nginx/Apache server_name) and request the certificate for it"
            )
        elif "TRAEFIK DEFAULT CERT" in str(served["subject"]):
            hint = (
                "Traefik serves its default certificate: the ACME resolver failed — acme.json "
                "must exist with mode 600 (else Traefik drops the resolver), see Traefik's log"
            )
        elif exc.verify_code in (18, 19):
            hint = (
                "a self-signed certificate is served: ACME issuance failed or the proxy was not "
                "reloaded after certbot (nginx/Apache/HAProxy start on a temporary pair); "
                "for a private CA pass --ca-file"
            )
        elif exc.verify_code == 20:
            hint = (
                "no trusted issuer found: either the CA is private/staging (pass --ca-file) or "
                "the chain is incomplete (see tls.chain)"
            )
        return failed(f"certificate rejected: {message}", hint, served=served)
    return passed(
        f"trusted, valid for {ctx.url.host} ({info.version})",
        **describe_cert(info.peer_der or _leaf_der(ctx)),
    )


@check("tls.chain", "Full certificate chain is served", HINT_CHAIN)
def tls_chain(ctx: ProbeContext) -> Outcome:
    # See trust.py for why "verifies against roots only" == "intermediates were sent".
    roots_ctx, nroots = ctx.memo(("roots",), lambda: trust.roots_only_context(ctx.target.ca_file))
    control = ctx.control_hello()  # TLS 1.2 Certificate message, in clear: a second witness
    details: dict[str, object] = {"roots_loaded": nroots}
    if control.certificates:
        details["certificates_sent"] = len(control.certificates)
    try:
        client.handshake(ctx.target, roots_ctx)
    except ssl.SSLCertVerificationError as exc:
        details["roots_only_error"] = exc.verify_message
    else:
        return passed("the chain verifies against root certificates only", **details)

    leaf_der = _leaf_der(ctx)
    leaf = x509.load_der_x509_certificate(leaf_der)
    if leaf.subject == leaf.issuer:
        return warned(
            "self-signed certificate: there is no chain to judge (see tls.name)",
            HINT_NAME,
            **details,
        )
    try:
        client.handshake(ctx.target, trust.full_store_context(ctx.target.ca_file))
    except ssl.SSLCertVerificationError as exc:
        details["full_store_error"] = exc.verify_message
    else:
        return failed(
            "incomplete chain: it verifies only with an intermediate from the local store "
            "(Android and other clients without that cache fail)",
            HINT_CHAIN,
            **details,
        )
    if len(control.certificates) == 1 and not trust.issuer_is_known_root(
        leaf_der, ctx.target.ca_file
    ):
        return failed("the server sends only the leaf certificate", HINT_CHAIN, **details)
    return warned(
        "could not judge the chain: the certificate does not verify even with every local "
        "certificate (see tls.name)",
        HINT_NAME,
        **details,
    )


@check("tls.expiry", "Certificate is not close to expiry", HINT_EXPIRY)
def tls_expiry(ctx: ProbeContext) -> Outcome:
    # The leaf, plus the rest of the chain when the TLS 1.2 first flight showed it.
    ders = [_leaf_der(ctx), *ctx.control_hello().certificates[1:]]
    now = datetime.now(UTC)
    certs = [x509.load_der_x509_certificate(d) for d in ders]
    leaf = certs[0]
    soonest = min(certs, key=lambda c: c.not_valid_after_utc)
    which = "certificate" if soonest is leaf else f"chain certificate {_cn(soonest.subject)!r}"
    not_after = soonest.not_valid_after_utc
    days = (not_after - now).total_seconds() / 86400
    details = {"not_after": not_after.isoformat(), "days_left": int(days), "expiring": which}
    if now < leaf.not_valid_before_utc:
        return failed(
            f"certificate not valid before {leaf.not_valid_before_utc.isoformat()} (clock?)",
            "check the clock of the proxy host and of the CA",
            **details,
        )
    if days < 0:
        return failed(f"{which} expired on {not_after.date()}", HINT_EXPIRY, **details)
    if days < EXPIRY_WARN_DAYS:
        return warned(
            f"{which} expires in {int(days)} days ({not_after.date()})", HINT_EXPIRY, **details
        )
    return passed(f"valid for {int(days)} more days (until {not_after.date()})", **details)


# --- protocol versions --------------------------------------------------------------------


def _legacy_with_ssl_module(ctx: ProbeContext) -> dict[str, bool | None]:
    """Fallback when the server ignores raw hellos: the ssl module, if it can offer them.
    None = the local library cannot offer that version."""
    outcome: dict[str, bool | None] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1 is deprecated
        versions = {"TLSv1.0": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1}
        for name, version in versions.items():
            try:
                client.handshake(ctx.target, client.pinned_context(version))
            except ssl.SSLError as exc:
                local = exc.reason in ("NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE")
                outcome[name] = None if local else False
            except ValueError:
                outcome[name] = None
            else:
                outcome[name] = True
    return outcome


@check("tls.protocols", "TLS 1.0 and 1.1 are refused", HINT_PROTOCOLS)
def tls_protocols(ctx: ProbeContext) -> Outcome:
    control = ctx.control_hello()
    if control.accepted:
        legacy = sweep(
            (hello.SSL3, hello.TLS10, hello.TLS11),
            lambda v: ctx.raw_hello(v, hello.ALL_SUITES),
        )
        accepted: list[str] = []
        for outcome in legacy.values():
            if isinstance(outcome, Exception):
                raise outcome
            sh = outcome.server_hello
            # A ServerHello below 1.2 is acceptance (the server may pick 1.0 for a 1.1 offer).
            if sh is not None and sh.version < hello.TLS12:
                accepted.append(hello.VERSION_NAMES.get(sh.version, hex(sh.version)))
        accepted = sorted(set(accepted))
        details = {"accepted": accepted, "method": "raw ClientHello"}
        if accepted:
            return failed(f"the server accepts {', '.join(accepted)}", HINT_PROTOCOLS, **details)
        return passed("SSLv3, TLS 1.0 and TLS 1.1 refused; TLS 1.2 accepted", **details)
    if ctx.tls12() is None:
        try:
            client.handshake(ctx.target, client.pinned_context(ssl.TLSVersion.TLSv1_3))
        except ssl.SSLError as exc:
            return failed(f"neither TLS 1.2 nor TLS 1.3 could be negotiated: {exc}", HINT_PROTOCOLS)
        return warned(
            "only TLS 1.3 is offered: TLS 1.0/1.1 are refused, but clients without TLS 1.3 "
            "(older Android TV and smart-TV apps) cannot connect",
            "Mozilla intermediate allows TLS 1.2 as well; " + HINT_PROTOCOLS,
        )
    # TLS 1.2 works with the ssl module but our raw hello got no ServerHello.
    fallback = _legacy_with_ssl_module(ctx)
    details2: dict[str, object] = {"method": "ssl module", "note": control.note}
    accepted2 = [name for name, ok in fallback.items() if ok]
    if accepted2:
        return failed(f"the server accepts {', '.join(accepted2)}", HINT_PROTOCOLS, **details2)
    untested = [name for name, ok in fallback.items() if ok is None]
    if untested:
        return warned(
            f"could not test {', '.join(untested)}: the local TLS library cannot offer "
            "them and the server ignored the probe's own ClientHello",
            HINT_RAW,
            **details2,
        )
    return passed("TLS 1.0 and TLS 1.1 refused", **details2)


@check("tls.tls13", "TLS 1.3 is offered", HINT_TLS13)
def tls_tls13(ctx: ProbeContext) -> Outcome:
    if not ssl.HAS_TLSv1_3:
        return warned("could not test: the local TLS library has no TLS 1.3", HINT_RAW)
    try:
        info = client.handshake(ctx.target, client.pinned_context(ssl.TLSVersion.TLSv1_3))
    except ssl.SSLError as exc:
        return failed(f"TLS 1.3 refused ({exc.reason or exc})", HINT_TLS13)
    return passed(f"TLS 1.3 negotiated ({info.cipher})", cipher=info.cipher)


# --- suites, groups, compression, renegotiation ------------------------------------------


@check("tls.ciphers", "TLS 1.2 suites are Mozilla intermediate only", HINT_CIPHERS)
def tls_ciphers(ctx: ProbeContext) -> Outcome:
    control = ctx.control_hello()
    if not control.accepted and ctx.tls12() is None:
        return passed("TLS 1.2 is not offered; every TLS 1.3 suite is acceptable")
    names = {**hello.INTERMEDIATE_SUITES, **hello.NON_INTERMEDIATE_SUITES}
    outcomes = sweep(names, lambda n: ctx.raw_hello(hello.TLS12, [names[n]]))
    if (err := _first_error(outcomes)) is not None:
        raise err

    def took(name: str) -> bool:
        o = outcomes[name]
        return (
            not isinstance(o, Exception)
            and o.server_hello is not None
            and o.server_hello.cipher == names[name]
        )

    good = [n for n in hello.INTERMEDIATE_SUITES if took(n)]
    bad = [n for n in hello.NON_INTERMEDIATE_SUITES if took(n)]
    untested = [n for n, o in outcomes.items() if isinstance(o, Exception)]
    details = {"accepted_intermediate": good, "accepted_other": bad, "untested": untested}
    if bad:
        return failed(
            f"TLS 1.2 accepts non-intermediate suites: {', '.join(bad)}", HINT_CIPHERS, **details
        )
    if not good:
        if not control.accepted:
            tls12 = ctx.tls12()
            return warned(
                "could not test: the server ignored the probe's own ClientHello "
                f"(the ssl module negotiated {tls12.cipher if tls12 else '?'})",
                HINT_RAW,
                **details,
            )
        return failed(
            "none of the six Mozilla intermediate TLS 1.2 suites is accepted",
            HINT_CIPHERS,
            **details,
        )
    return passed(
        f"TLS 1.2 accepts {len(good)} intermediate suite(s) and none of "
        f"{len(hello.NON_INTERMEDIATE_SUITES)} others tried",
        **details,
    )


_CURVE_GROUP = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _certificate_group(ctx: ProbeContext) -> int | None:
    """The curve of an ECDSA leaf as a group code (None for RSA/EdDSA leaves)."""
    key = x509.load_der_x509_certificate(_leaf_der(ctx)).public_key()
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _CURVE_GROUP:
        return hello.GROUPS[_CURVE_GROUP[key.curve.name]]
    return None


def _tls12_group(ctx: ProbeContext, name: str, cert_group: int | None) -> bool | None:
    """Whether TLS 1.2 ECDHE runs over `name`; None when this cannot be told.

    In TLS 1.2 the supported_groups list also says which curves the client can verify
    ECDSA signatures on (RFC 8422), so with an ECDSA leaf on P-256 a hello listing only
    X448 is refused for the certificate's sake. Then we list the certificate's curve
    second and read the curve the ServerKeyExchange really uses."""
    code = hello.GROUPS[name]
    groups = [code] if cert_group in (None, code) else [code, cert_group]
    outcome = ctx.raw_hello(hello.TLS12, _ECDHE_SUITES, groups=groups, want_flight=True)
    if outcome.accepted and outcome.ecdhe_group == code:
        return True
    if outcome.accepted and len(groups) > 1 and outcome.ecdhe_group == cert_group:
        return None  # the server preferred the certificate's curve: undecided
    return False


def _tls13_group(ctx: ProbeContext, name: str) -> bool | None:
    try:
        context = client.pinned_context(ssl.TLSVersion.TLSv1_3, group=_OPENSSL_GROUP[name])
    except (ValueError, ssl.SSLError):
        return None  # the local library does not know this group
    try:
        client.handshake(ctx.target, context)
    except ssl.SSLError as exc:
        if exc.reason in ("NO_SUITABLE_GROUPS", "NO_PROTOCOLS_AVAILABLE"):
            return None
        return False
    return True


@check("tls.groups", "Key exchange groups are X25519, P-256, P-384 only", HINT_GROUPS)
def tls_groups(ctx: ProbeContext) -> Outcome:
    control = ctx.control_hello()
    all_groups = _GOOD_GROUPS + _BAD_GROUPS
    per_version: dict[str, dict[str, bool | None]] = {}
    notes: list[str] = []
    if control.accepted:
        cert_group = _certificate_group(ctx)
        r12 = sweep(all_groups, lambda g: _tls12_group(ctx, g, cert_group))
        if (err := _first_error(r12)) is not None:
            raise err
        per_version["TLSv1.2"] = {
            g: (None if isinstance(v, Exception) else v) for g, v in r12.items()
        }
    elif ctx.tls12() is not None:
        notes.append("TLS 1.2 groups not testable (server ignored the raw ClientHello)")
    if ssl.HAS_TLSv1_3:
        r13 = sweep(all_groups, lambda g: _tls13_group(ctx, g))
        if (err := _first_error(r13)) is not None:
            raise err
        per_version["TLSv1.3"] = {
            g: (None if isinstance(v, Exception) else v) for g, v in r13.items()
        }
    else:
        notes.append("TLS 1.3 groups not testable here (local TLS library has no TLS 1.3)")
    bad = sorted({g for res in per_version.values() for g in _BAD_GROUPS if res.get(g)})
    good = sorted({g for res in per_version.values() for g in _GOOD_GROUPS if res.get(g)})
    untested = sorted(
        {f"{v}/{g}" for v, res in per_version.items() for g, ok in res.items() if ok is None}
    )
    details: dict[str, object] = {
        "accepted": {v: [g for g, ok in res.items() if ok] for v, res in per_version.items()},
        "untested": untested,
        "notes": notes,
    }
    suffix = f" ({'; '.join(notes)})" if notes else ""
    if bad:
        return failed(f"the server accepts {', '.join(bad)}{suffix}", HINT_GROUPS, **details)
    if not per_version:
        return warned(f"could not test any group{suffix}", HINT_RAW, **details)
    if not good:
        return warned(f"none of X25519, P-256, P-384 was accepted{suffix}", HINT_GROUPS, **details)
    return passed(f"accepts {', '.join(good)}; P-521 and X448 refused{suffix}", **details)


@check("tls.compression", "TLS compression is refused", HINT_COMPRESSION)
def tls_compression(ctx: ProbeContext) -> Outcome:
    control = ctx.control_hello()
    if control.server_hello is not None:
        if control.server_hello.compression != hello.COMPRESSION_NULL:
            return failed("the server chose DEFLATE compression (CRIME)", HINT_COMPRESSION)
        return passed("DEFLATE offered in a TLS 1.2 ClientHello and refused; TLS 1.3 has none")
    if ctx.tls12() is None:
        return passed("TLS 1.2 is not offered and TLS 1.3 has no compression")
    return warned(
        "could not test: the server ignored the probe's own ClientHello and the local TLS "
        "library cannot offer compression",
        HINT_RAW,
        note=control.note,
    )


@check("tls.renegotiation", "Secure renegotiation (RFC 5746) only", HINT_RENEGOTIATION)
def tls_renegotiation(ctx: ProbeContext) -> Outcome:
    control = ctx.control_hello()
    scope = "client-initiated renegotiation was not attempted"
    if control.server_hello is not None:
        if hello.EXT_RENEGOTIATION_INFO in control.server_hello.extensions:
            return passed(
                f"TLS 1.2 supports secure renegotiation; TLS 1.3 has none ({scope})",
                tested="TLS 1.2",
            )
        return failed(
            "the TLS 1.2 ServerHello has no renegotiation_info: insecure legacy "
            "renegotiation (CVE-2009-3555)",
            HINT_RENEGOTIATION,
        )
    if ctx.tls12() is None:
        return passed("TLS 1.2 is not offered; TLS 1.3 has no renegotiation")
    return warned(
        "could not test: the server ignored the probe's own ClientHello",
        HINT_RAW,
        note=control.note,
    )


HINT_ALPN = (
    "HTTP/2 follows stackgen.toml's `http2`: nginx `http2 on;`, Caddy "
    "`servers { protocols h1 h2 }`, HAProxy `alpn h2,http/1.1`, Apache `Protocols h2 "
    'http/1.1`, Traefik tls.options alpnProtocols (without "h2" to turn it off)'
)


@check("tls.alpn", "ALPN offers HTTP/2 as configured", HINT_ALPN)
def tls_alpn(ctx: ProbeContext) -> Outcome:
    """Offered h2 and http/1.1, the server picks: with `http2 = false` it must pick
    http/1.1 (what Kodi and some TV apps need); with it on, h2."""
    selected = ctx.offered_protocol()
    expected = ctx.target.http2
    details = {"offered": ["h2", "http/1.1"], "selected": selected, "http2_expected": expected}
    chosen = selected or "no ALPN (HTTP/1.1)"
    if expected is True and selected != "h2":
        return failed(
            f"HTTP/2 is configured but the server selected {chosen}", HINT_ALPN, **details
        )
    if expected is False and selected == "h2":
        return failed("HTTP/2 is switched off but the server selected h2", HINT_ALPN, **details)
    return passed(f"offered h2 and http/1.1, the server selected {chosen}", **details)


CHECKS = (
    tls_name,
    tls_chain,
    tls_expiry,
    tls_protocols,
    tls_tls13,
    tls_ciphers,
    tls_groups,
    tls_compression,
    tls_renegotiation,
    tls_alpn,
)
