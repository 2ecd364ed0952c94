"""`stackgen verify`'s probe library end to end against in-process fakes on 127.0.0.1.

The good fake passes every check; each broken variant changes one thing a real proxy
gets wrong and must fail (or warn) exactly the check that is about it. See
probe_fixtures.py for the fake, and the report at the bottom of this file's module
docstring in stackgen/probe/__init__.py for the check ids.

Not emulated here (Python's ssl server cannot do it): TLS compression and missing RFC
5746 renegotiation_info — those two use a crafted ServerHello instead; a server that
ignores our raw ClientHello (the "could not test" paths); a TLS 1.3-only server's
legacy-protocol fallback through the ssl module.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stackgen.probe import CHECK_IDS, SCHEMA, GeoFacts, Report, Status, Target, run_checks

from .probe_fixtures import NAME, PKI, crafted_tls12_server, fake_stack, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("probe-pki"))


@pytest.fixture(scope="module")
def good_report(pki: PKI) -> Report:
    with fake_stack(pki) as stack:
        return run_checks(stack.target())


def statuses(report: Report) -> dict[str, Status]:
    """Check id -> status; the reach.* gates that passed are left out (every run has them)."""
    return {
        r.id: r.status
        for r in report.results
        if not (r.id.startswith("reach.") and r.status is Status.PASS)
    }


def not_passing(report: Report) -> dict[str, str]:
    return {r.id: f"{r.status}: {r.reason}" for r in report.results if r.status is not Status.PASS}


# --- the good stack ----------------------------------------------------------------------


# A stack without a tunnel (every target but edge-home): the tunnel.* checks do not apply.
NO_TUNNEL = {
    "tunnel.handshake": "the stack has no tunnel",
    "tunnel.allowed-ips": "the stack has no tunnel",
}
# Nor exposure.geo without a GeoIP allow list (access.geo, off by default).
NOT_APPLICABLE = {**NO_TUNNEL, "exposure.geo": "no GeoIP allow list (access.geo)"}


def test_good_stack_passes_every_check(good_report: Report) -> None:
    assert not_passing(good_report) == {}
    assert good_report.ok
    assert set(statuses(good_report)) == set(CHECK_IDS) - {
        "reach.proxy",
        "reach.upstream",
        "jellyfin.subpath-redirect",
        "jellyfin.lan-url",
        "http3.get",
        *NOT_APPLICABLE,
    }
    assert good_report.skipped == {
        "jellyfin.lan-url": "no LAN URL is configured",
        "http3.get": "the server advertises no HTTP/3 (Alt-Svc)",
        "jellyfin.subpath-redirect": "the URL has no subpath",
        **NOT_APPLICABLE,
    }
    assert all(r.hint == "" for r in good_report.results)


def test_good_stack_is_fast(good_report: Report) -> None:
    assert good_report.duration_ms < 5000


def test_good_stack_details(good_report: Report) -> None:
    ttfb = good_report.get("stream.ttfb")
    assert ttfb is not None and isinstance(ttfb.details["ttfb_ms"], int)
    chain = good_report.get("tls.chain")
    assert chain is not None and chain.details["certificates_sent"] == 2
    groups = good_report.get("tls.groups")
    assert groups is not None
    assert groups.details["accepted"] == {"TLSv1.2": ["X25519"], "TLSv1.3": ["X25519"]}


def test_good_stack_under_a_subpath(pki: PKI) -> None:
    with fake_stack(pki, base="/jellyfin") as stack:
        report = run_checks(stack.target())
    assert not_passing(report) == {}
    assert report.skipped == {
        "jellyfin.lan-url": "no LAN URL is configured",
        "http3.get": "the server advertises no HTTP/3 (Alt-Svc)",
        **NOT_APPLICABLE,
    }
    sub = report.get("jellyfin.subpath-redirect")
    assert sub is not None and "/jellyfin/web/" in sub.reason


# --- one thing broken, one check unhappy ---------------------------------------------------

BROKEN: list[tuple[str, dict[str, Any], dict[str, Any], str, Status]] = [
    # name, fake config changes, Target overrides, check id, expected status
    ("leaf-only chain", {"full_chain": False}, {"ca_file": "bundle"}, "tls.chain", Status.FAIL),
    ("expiring leaf", {"cert": "expiring"}, {}, "tls.expiry", Status.WARN),
    (
        "TLS 1.2 AES128-SHA",
        {"cert": "rsa", "ciphers": "AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256"},
        {},
        "tls.ciphers",
        Status.FAIL,
    ),
    ("P-521 only", {"curve": "secp521r1"}, {}, "tls.groups", Status.FAIL),
    ("TLS 1.3 only", {"min_version": ssl.TLSVersion.TLSv1_3}, {}, "tls.protocols", Status.WARN),
    ("no HSTS", {"hsts": None}, {}, "hsts.https", Status.FAIL),
    ("short HSTS", {"hsts": "max-age=3600"}, {}, "hsts.https", Status.WARN),
    ("HSTS on http", {"hsts_on_http": True}, {}, "hsts.http", Status.WARN),
    (
        "X-Frame-Options",
        {"extra_headers": (("X-Frame-Options", "DENY"),)},
        {},
        "headers.frames",
        Status.FAIL,
    ),
    ("frame-ancestors", {"csp": "frame-ancestors 'self'"}, {}, "headers.frames", Status.FAIL),
    ("no security headers", {"security_headers": False}, {}, "headers.security", Status.WARN),
    (
        "CORP same-origin",
        {"extra_headers": (("Cross-Origin-Resource-Policy", "same-origin"),)},
        {},
        "headers.security",
        Status.FAIL,
    ),
    (
        "CSP without eval",
        {"csp": "script-src 'self' https://www.gstatic.com; worker-src blob:"},
        {},
        "headers.csp",
        Status.FAIL,
    ),
    (
        "CSP without gstatic",
        {"csp": "script-src 'self' 'unsafe-eval'; worker-src 'self' blob:"},
        {},
        "headers.csp",
        Status.FAIL,
    ),
    (
        "CSP without blob workers",
        {"csp": "default-src 'self'; script-src 'self' 'unsafe-eval' https://www.gstatic.com"},
        {},
        "headers.csp",
        Status.FAIL,
    ),
    ("no CSP", {"csp": None}, {}, "headers.csp", Status.WARN),
    (
        "server version",
        {"server_header": "nginx/1.25.3"},
        {},
        "headers.server-version",
        Status.FAIL,
    ),
    ("redirect drops query", {"redirect_keeps_query": False}, {}, "redirect.https", Status.FAIL),
    ("temporary redirect", {"redirect_status": 302}, {}, "redirect.https", Status.WARN),
    ("ACME path redirected", {"acme_redirected": True}, {}, "redirect.acme-path", Status.FAIL),
    (
        "LocalAddress http",
        {"local_address": f"http://{NAME}"},
        {},
        "jellyfin.forwarded",
        Status.FAIL,
    ),
    (
        "LocalAddress other host",
        {"local_address": "https://jellyfin:8096"},
        {},
        "jellyfin.forwarded",
        Status.FAIL,
    ),
    (
        "LocalAddress bind address",
        {"local_address": "http://172.18.0.3:8096"},
        {},
        "jellyfin.forwarded",
        Status.WARN,
    ),
    ("health Degraded", {"health_body": "Degraded"}, {}, "jellyfin.health", Status.FAIL),
    (
        "health 503",
        {"health_status": 503, "health_body": "Unhealthy"},
        {},
        "jellyfin.health",
        Status.FAIL,
    ),
    ("no WebSocket upgrade", {"websocket": "none"}, {}, "websocket.keepalive", Status.FAIL),
    ("413 on upload", {"upload_limit": 1 << 20}, {}, "upload.20mb", Status.FAIL),
    ("Range ignored", {"range_support": False}, {}, "stream.range", Status.FAIL),
    (
        "web redirect to the internal host",
        {"web_redirect": "http://jellyfin:8096/web/"},
        {},
        "jellyfin.web",
        Status.FAIL,
    ),
    ("KnownProxies empty", {}, {"known_proxies": []}, "proxy.known-proxies", Status.FAIL),
    (
        "proxy not covered",
        {},
        {"known_proxies": ["10.0.0.0/8"]},
        "proxy.known-proxies",
        Status.FAIL,
    ),
    ("KnownProxies names", {}, {"known_proxies": ["traefik"]}, "proxy.known-proxies", Status.WARN),
    ("metrics open", {"metrics_open": True}, {}, "exposure.metrics", Status.FAIL),
    (
        "wizard open",
        {"wizard_unfinished": True, "wizard_refused": False},
        {},
        "exposure.wizard",
        Status.FAIL,
    ),
    ("users listed", {"public_users": 2}, {}, "exposure.public-users", Status.WARN),
    ("media without token", {"media_open": True}, {}, "exposure.anonymous-media", Status.WARN),
    ("no login limit", {"login_limit": None}, {}, "exposure.login-rate-limit", Status.WARN),
    (
        "429 without Retry-After",
        {"login_retry_after": False},
        {},
        "exposure.login-rate-limit",
        Status.WARN,
    ),
    ("XFF trusted", {"trusts_client_xff": True}, {}, "exposure.forwarded-for", Status.FAIL),
]


def _target_overrides(pki: PKI, overrides: dict[str, Any]) -> dict[str, Any]:
    if overrides.get("ca_file") == "bundle":
        # A trust store that already holds the intermediate, like a desktop that has
        # seen it before: tls.name passes, only tls.chain can see the bare leaf.
        return {**overrides, "ca_file": pki.bundle_pem}
    return overrides


@pytest.mark.parametrize(
    ("config", "overrides", "check_id", "expected"),
    [pytest.param(c, o, i, s, id=name) for name, c, o, i, s in BROKEN],
)
def test_broken_variant_fails_exactly_its_check(
    pki: PKI, config: dict[str, Any], overrides: dict[str, Any], check_id: str, expected: Status
) -> None:
    with fake_stack(pki, **config) as stack:
        report = run_checks(stack.target(**_target_overrides(pki, overrides)))
    result = report.get(check_id)
    assert result is not None
    assert result.status is expected, result.reason
    assert result.hint, "a non-pass result must say how to fix it"
    others = {k: v for k, v in not_passing(report).items() if k != check_id}
    assert others == {}
    assert report.ok is (expected is not Status.FAIL)


@pytest.mark.parametrize("mode", ["refuse-403", "auth-close"])
def test_websocket_auth_refusals_still_prove_the_upgrade(pki: PKI, mode: str) -> None:
    # Real Jellyfin answers an unauthenticated upgrade 403 before any 101
    # (WebSocketManager -> SecurityException); a plain GET of /socket is a 404.
    with fake_stack(pki, websocket=mode) as stack:
        report = run_checks(stack.target(), only=["websocket"])
    result = report.get("websocket.keepalive")
    assert result is not None
    assert result.status is Status.PASS, result.reason


@pytest.mark.parametrize("mode", ["proxy-403", "refuse-401"])
def test_a_refusal_that_is_not_jellyfins_is_not_proof(pki: PKI, mode: str) -> None:
    """Jellyfin refuses a bad token with 403 "Error processing request." and never with
    401: any other refusal came from something in front of it, so nothing is proven."""
    with fake_stack(pki, websocket=mode) as stack:
        report = run_checks(stack.target(), only=["websocket"])
    result = report.get("websocket.keepalive")
    assert result is not None
    assert result.status is Status.WARN, result.reason
    assert "not Jellyfin's refusal" in result.reason


def test_frames_allowed_opt_in(pki: PKI) -> None:
    with fake_stack(pki, extra_headers=(("X-Frame-Options", "SAMEORIGIN"),)) as stack:
        report = run_checks(stack.target(frames_allowed=True), only=["headers.frames"])
    result = report.get("headers.frames")
    assert result is not None and result.status is Status.PASS
    assert "opted in" in result.reason


def test_bare_leaf_with_only_the_root_trusted(pki: PKI) -> None:
    # The common real case: the store has the root only, so the name check fails too,
    # and the TLS 1.2 Certificate message shows a single certificate.
    with fake_stack(pki, full_chain=False) as stack:
        report = run_checks(stack.target(), only=["tls.name", "tls.chain"])
    assert statuses(report) == {"tls.name": Status.FAIL, "tls.chain": Status.FAIL}
    chain = report.get("tls.chain")
    assert chain is not None and "only the leaf" in chain.reason


def test_untrusted_certificate_fails_only_trust_checks(pki: PKI) -> None:
    with fake_stack(pki) as stack:
        report = run_checks(stack.target(ca_file=None))
    assert set(not_passing(report)) == {"tls.name", "tls.chain"}
    chain = report.get("tls.chain")
    assert chain is not None and chain.status is Status.WARN  # cannot judge without a root


def test_tls12_only_with_a_legacy_suite(pki: PKI) -> None:
    config = {"cert": "rsa", "ciphers": "AES128-SHA", "max_version": ssl.TLSVersion.TLSv1_2}
    with fake_stack(pki, **config) as stack:
        report = run_checks(stack.target())
    got = statuses(report)
    assert got["tls.ciphers"] is Status.FAIL
    assert got["tls.tls13"] is Status.FAIL
    ciphers = report.get("tls.ciphers")
    assert ciphers is not None and ciphers.details["accepted_other"] == ["AES128-SHA"]
    # The HTTP-level checks still work: the probe talks whatever the server speaks.
    assert got["jellyfin.health"] is Status.PASS
    assert got["headers.security"] is Status.PASS


def test_legacy_protocols_accepted(pki: PKI) -> None:
    config = {"min_version": ssl.TLSVersion.TLSv1, "ciphers": "ALL:@SECLEVEL=0"}
    with fake_stack(pki, **config) as stack:
        report = run_checks(stack.target(), only=["tls.protocols"])
    result = report.get("tls.protocols")
    assert result is not None and result.status is Status.FAIL
    assert "TLSv1.0" in result.reason


@pytest.mark.parametrize(
    ("compression", "renegotiation_info", "expected"),
    [
        (1, True, {"tls.compression": Status.FAIL, "tls.renegotiation": Status.PASS}),
        (0, False, {"tls.compression": Status.PASS, "tls.renegotiation": Status.FAIL}),
        (0, True, {"tls.compression": Status.PASS, "tls.renegotiation": Status.PASS}),
    ],
)
def test_compression_and_renegotiation_from_the_server_hello(
    compression: int, renegotiation_info: bool, expected: dict[str, Status]
) -> None:
    with crafted_tls12_server(
        compression=compression, renegotiation_info=renegotiation_info
    ) as port:
        target = Target(url=f"https://{NAME}:{port}", resolve={NAME: "127.0.0.1"}, timeout=3)
        report = run_checks(target, only=["tls.compression", "tls.renegotiation"])
    assert statuses(report) == expected


# --- robustness ----------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_proxy_is_one_root_cause_not_a_cascade() -> None:
    """Before: a dead proxy gave every check its own failure (25 of them), each with a fix
    hint about something else."""
    port = _closed_port()
    target = Target(
        url=f"https://{NAME}:{port}",
        resolve={NAME: "127.0.0.1"},
        http_port=port,
        known_proxies=["172.30.0.0/24"],
        timeout=2,
    )
    start = time.monotonic()
    report = run_checks(target)
    assert time.monotonic() - start < 10
    assert not report.ok
    assert [(r.id, r.status) for r in report.results] == [
        ("reach.proxy", Status.FAIL),
        ("proxy.known-proxies", Status.PASS),  # judged from what the target says
    ]
    root = report.get("reach.proxy")
    assert root is not None and "could not connect" in root.reason
    assert "stackgen up" in root.hint
    # Judged from what the target says (the tunnel.* checks: not applicable without one).
    assert set(report.not_run) == set(CHECK_IDS) - {"reach.proxy", "proxy.known-proxies"} - set(
        NOT_APPLICABLE
    )
    assert set(report.not_run.values()) == {"not run: reach.proxy failed"}
    table = report.render_table()
    assert "NOTRUN  tls.name" in table
    assert "1 failed" in table and "not run" in table
    junit = ET.fromstring(report.to_junit_xml())
    suite = junit.find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    data = report.to_json()
    assert data["summary"]["not_run"] == len(report.not_run)  # type: ignore[index]


def test_dead_jellyfin_is_one_root_cause_and_no_check_passes_on_the_502(pki: PKI) -> None:
    """Before: with Jellyfin dead, verify blamed KnownProxies for the 502 and passed the
    upload check on it."""
    with fake_stack(pki, upstream_down=True) as stack:
        report = run_checks(stack.target())
    failed = [r.id for r in report.results if r.status is Status.FAIL]
    assert failed == ["reach.upstream"], report.render_table()
    root = report.get("reach.upstream")
    assert root is not None and "502" in root.reason and "jellyfin" in root.hint
    assert report.get("upload.20mb") is None
    assert report.not_run["upload.20mb"] == "not run: reach.upstream failed"
    assert {"jellyfin.forwarded", "headers.security", "websocket.keepalive"} <= set(report.not_run)
    # The proxy's own checks still run: they do not depend on Jellyfin.
    assert {"redirect.https", "tls.name", "tls.protocols"} <= {r.id for r in report.results}


def test_a_loading_jellyfin_is_reached_but_not_healthy(pki: PKI) -> None:
    """Jellyfin's 503 "loading" is Jellyfin's answer, not the proxy's gateway error: the
    proxy reaches it (its /System/Ping answers), and jellyfin.health says it is starting."""
    with fake_stack(pki, loading=True) as stack:
        report = run_checks(stack.target(), only=["reach", "jellyfin.health"])
    reach = report.get("reach.upstream")
    assert reach is not None and reach.status is Status.PASS, report.render_table()
    assert "still loading" in reach.reason
    health = report.get("jellyfin.health")
    assert health is not None and health.status is Status.FAIL
    assert "still starting" in health.reason


def test_upload_does_not_pass_on_the_proxys_gateway_error(pki: PKI) -> None:
    with fake_stack(pki, upload_status=502) as stack:
        report = run_checks(stack.target(), only=["upload"])
    upload = report.get("upload.20mb")
    assert upload is not None and upload.status is Status.FAIL, report.render_table()
    assert "did not reach Jellyfin" in upload.reason


def test_only_selects_ids_and_groups(pki: PKI) -> None:
    with fake_stack(pki) as stack:
        report = run_checks(stack.target(), only=["redirect", "tls.name"])
    # The gate the chosen checks need runs first.
    assert [r.id for r in report.results] == [
        "reach.proxy",
        "redirect.https",
        "redirect.acme-path",
        "tls.name",
    ]
    with pytest.raises(ValueError, match="unknown check"):
        run_checks(stack.target(), only=["tls.nmae"])


def test_media_path_secret_is_never_sent_unverified_nor_echoed(pki: PKI) -> None:
    media = "/Videos/abc/stream?static=true&api_key=SECRET123"
    with fake_stack(pki) as stack:
        trusted = run_checks(stack.target(media_path=media), only=["stream"])
        untrusted = run_checks(stack.target(media_path=media, ca_file=None), only=["stream"])
    assert statuses(trusted) == {"stream.range": Status.PASS, "stream.ttfb": Status.PASS}
    assert statuses(untrusted) == {"stream.range": Status.FAIL, "stream.ttfb": Status.FAIL}
    result = untrusted.get("stream.range")
    assert result is not None and "not trusted" in result.reason
    for report in (trusted, untrusted):
        dumped = json.dumps(report.to_json()) + report.to_junit_xml() + report.render_table()
        assert "SECRET123" not in dumped


# --- renderings ----------------------------------------------------------------------------


def test_json_shape(good_report: Report) -> None:
    data = good_report.to_json()
    assert data["schema"] == SCHEMA == "stackgen.verify/1"
    assert set(data) == {"schema", "target", "summary", "checks", "skipped", "not_run"}
    target = data["target"]
    assert isinstance(target, dict)
    assert set(target) >= {"url", "resolve", "http_port", "ca_file", "media_path"}
    assert data["summary"] == {
        "ok": True,
        "passed": len(good_report.results),
        "warned": 0,
        "failed": 0,
        "skipped": 3 + len(NOT_APPLICABLE),
        "not_run": 0,
        "duration_ms": good_report.duration_ms,
    }
    checks = data["checks"]
    assert isinstance(checks, list)
    for entry in checks:
        assert set(entry) == {
            "id",
            "title",
            "status",
            "reason",
            "hint",
            "details",
            "duration_ms",
            "protocol",
        }
        assert entry["status"] in ("pass", "warn", "fail")
    assert data["skipped"] == [
        {"id": "jellyfin.lan-url", "reason": "no LAN URL is configured"},
        {"id": "jellyfin.subpath-redirect", "reason": "the URL has no subpath"},
        {"id": "http3.get", "reason": "the server advertises no HTTP/3 (Alt-Svc)"},
        *({"id": check, "reason": reason} for check, reason in NOT_APPLICABLE.items()),
    ]
    json.dumps(data)  # every value is JSON


def test_junit_xml_is_well_formed(pki: PKI) -> None:
    with fake_stack(pki, hsts=None, redirect_status=302) as stack:
        report = run_checks(stack.target())
    root = ET.fromstring(report.to_junit_xml())
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == len(report.results) + len(report.skipped)
    assert int(suite.get("failures", "-1")) == report.failed == 1
    failures = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failures] == ["hsts.https"]
    assert sum(c.find("skipped") is not None for c in cases) == 3 + len(NOT_APPLICABLE)
    warn_case = next(c for c in cases if c.get("name") == "redirect.https")
    out = warn_case.find("system-out")
    assert out is not None and (out.text or "").startswith("warn:")


def test_table_is_plain_unless_colour_is_asked(good_report: Report) -> None:
    table = good_report.render_table()
    assert "\x1b" not in table
    assert "redirect.https" in table and "36 passed" in table
    assert "\x1b[" in good_report.render_table(color=True)


def test_ca_file_path_round_trip(pki: PKI) -> None:
    target = Target(url=f"https://{NAME}", ca_file=Path(pki.root_pem))
    assert target.ca_file == pki.root_pem


def test_acme_path_redirect_is_not_judged_without_http01(pki: PKI) -> None:
    """Before: a stack whose certificates do not come over HTTP-01 (internal CA, the user's
    files, TLS-ALPN, DNS-01) failed redirect.acme-path for redirecting the path like any
    other, which is right when nothing answers the challenge."""
    with fake_stack(pki, acme_redirected=True) as stack:
        declared = run_checks(stack.target(acme_http01=False), only=["redirect"])
        unknown = run_checks(stack.target(), only=["redirect"])
        http01 = run_checks(stack.target(acme_http01=True), only=["redirect"])
    assert declared.ok, declared.render_table()
    assert declared.get("redirect.acme-path") is None
    assert "ACME HTTP-01" in declared.skipped["redirect.acme-path"]
    assert "SKIP    redirect.acme-path" in declared.render_table()
    junit = ET.fromstring(declared.to_junit_xml())
    case = junit.find(".//testcase[@name='redirect.acme-path']")
    assert case is not None and case.find("skipped") is not None
    data = declared.to_json()
    assert data["target"]["acme_http01"] is False  # type: ignore[index]
    assert {"id": "redirect.acme-path", "reason": declared.skipped["redirect.acme-path"]} in data[
        "skipped"
    ]  # type: ignore[operator]
    # A bare URL (unknown) and an HTTP-01 stack are still judged.
    assert statuses(unknown)["redirect.acme-path"] is Status.FAIL
    assert statuses(http01)["redirect.acme-path"] is Status.FAIL


def test_verify_url_no_acme_declares_the_stack_without_http01(pki: PKI) -> None:
    from typer.testing import CliRunner

    from stackgen.cli import app

    with fake_stack(pki, acme_redirected=True) as stack:
        target = stack.target()
        args = [
            "verify",
            "--url",
            target.url,
            "--resolve",
            f"{NAME}:127.0.0.1",
            "--http-port",
            str(target.http_port),
            "--ca-file",
            str(pki.root_pem),
            "--only",
            "redirect",
            "--json",
        ]
        judged = CliRunner().invoke(app, args)
        declared = CliRunner().invoke(app, [*args, "--no-acme"])
    assert judged.exit_code == 1
    assert declared.exit_code == 0, declared.output
    assert [s["id"] for s in json.loads(declared.stdout)["skipped"]] == ["redirect.acme-path"]


@pytest.mark.parametrize("where", ["under-a-file", "unwritable"])
def test_verify_junit_to_an_unwritable_path_is_one_line_exit_4(
    pki: PKI, tmp_path: Path, where: str
) -> None:
    """Before: a traceback, after every check had run."""
    from typer.testing import CliRunner

    from stackgen.cli import app
    from stackgen.errors import FilesystemError

    (tmp_path / "a-file").write_text("x")
    junit = tmp_path / "a-file/junit.xml" if where == "under-a-file" else Path("/proc/version")
    with fake_stack(pki) as stack:
        target = stack.target()
        result = CliRunner().invoke(
            app,
            [
                "verify",
                "--url",
                target.url,
                "--resolve",
                f"{NAME}:127.0.0.1",
                "--http-port",
                str(target.http_port),
                "--ca-file",
                str(pki.root_pem),
                "--only",
                "redirect.https",
                "--junit",
                str(junit),
            ],
        )
    assert isinstance(result.exception, FilesystemError), result.output
    assert result.exception.exit_code == 4
    assert str(junit) in str(result.exception) and "\n" not in str(result.exception)


# --- HTTP/2 ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def h2_report(pki: PKI) -> Report:
    with fake_stack(pki, http2=True) as stack:
        return run_checks(stack.target(http2=True))


def test_h2_stack_passes_every_check_over_both_protocols(h2_report: Report) -> None:
    assert not_passing(h2_report) == {}
    assert h2_report.protocols == ["http/1.1", "h2"]
    per_protocol = {"stream.range", "stream.ttfb", "upload.20mb", "jellyfin.health"}
    per_protocol |= {"jellyfin.redirect-loop", "headers.security", "hsts.https"}
    for check_id in per_protocol:
        h1, h2 = h2_report.get(check_id, "http/1.1"), h2_report.get(check_id, "h2")
        assert h1 is not None and h2 is not None, check_id
    upload = h2_report.get("upload.20mb", "h2")
    assert upload is not None and upload.details["sent_bytes"] == 20 * 1024 * 1024
    ws = [r for r in h2_report.results if r.id == "websocket.keepalive"]
    assert [r.protocol for r in ws] == ["http/1.1"]
    alpn = h2_report.get("tls.alpn")
    assert alpn is not None and alpn.details["selected"] == "h2"
    assert "h2" in h2_report.render_table()
    assert {c["protocol"] for c in h2_report.to_json()["checks"]} == {None, "http/1.1", "h2"}  # type: ignore[index,union-attr]


def test_h2_only_failure_is_caught(pki: PKI) -> None:
    """An h2 bug the HTTP/1.1 run cannot see (a Traefik seek regression over h2 once did this)."""
    with fake_stack(pki, http2=True, h2_strips_range=True) as stack:
        report = run_checks(stack.target(), only={"stream.range"})
    assert [(r.protocol, r.status) for r in report.results if r.id == "stream.range"] == [
        ("http/1.1", Status.PASS),
        ("h2", Status.FAIL),
    ]


def test_alpn_judges_the_configured_http2(pki: PKI) -> None:
    with fake_stack(pki) as stack:
        off = run_checks(stack.target(http2=False), only={"tls.alpn", "jellyfin.health"})
        on = run_checks(stack.target(http2=True), only={"tls.alpn"})
    assert statuses(off) == {"tls.alpn": Status.PASS, "jellyfin.health": Status.PASS}
    assert off.protocols == ["http/1.1"]
    assert statuses(on) == {"tls.alpn": Status.FAIL}
    with fake_stack(pki, http2=True) as stack:
        wrong = run_checks(stack.target(http2=False), only={"tls.alpn"})
    assert statuses(wrong) == {"tls.alpn": Status.FAIL}


# --- LAN URL -----------------------------------------------------------------------------

LAN = "http://192.168.1.10:8096"


def test_lan_url_from_each_side(pki: PKI) -> None:
    only = {"jellyfin.lan-url", "jellyfin.forwarded"}
    with fake_stack(pki) as stack:  # LocalAddress: the public URL (an internet client)
        internet = run_checks(stack.target(lan_url=LAN), only=only)
        lan_wrong = run_checks(stack.target(lan_url=LAN, from_lan=True), only=only)
    assert statuses(internet) == {
        "jellyfin.lan-url": Status.PASS,
        "jellyfin.forwarded": Status.PASS,
    }
    check = internet.get("jellyfin.lan-url")
    assert check is not None and check.reason.startswith("an internet client is sent to https://")
    assert statuses(lan_wrong) == {"jellyfin.lan-url": Status.FAIL}
    assert "jellyfin.forwarded" in lan_wrong.skipped
    with fake_stack(pki, local_address=LAN) as stack:  # as Jellyfin answers a LAN client
        lan = run_checks(stack.target(lan_url=LAN, from_lan=True), only=only)
        internet_wrong = run_checks(stack.target(lan_url=LAN), only={"jellyfin.lan-url"})
    result = lan.get("jellyfin.lan-url")
    assert result is not None and result.status is Status.PASS
    assert result.details["side"] == "LAN" and result.details["local_address"] == LAN
    failed_check = internet_wrong.get("jellyfin.lan-url")
    assert failed_check is not None and "LAN URL" in failed_check.reason


def test_exposure_from_the_lan_judges_no_lan_only_route(pki: PKI) -> None:
    with fake_stack(pki, metrics_open=True, wizard_unfinished=True, wizard_refused=False) as stack:
        report = run_checks(stack.target(from_lan=True), only=["exposure"])
    # exposure.geo: no access.geo on this target.
    assert set(report.skipped) == {"exposure.metrics", "exposure.wizard", "exposure.geo"}


@pytest.mark.parametrize(("age_days", "status"), [(3, Status.PASS), (61, Status.WARN)])
def test_exposure_geo_warns_when_the_database_is_stale(
    pki: PKI, age_days: int, status: Status
) -> None:
    built = datetime.now(UTC) - timedelta(days=age_days, hours=1)
    geo = GeoFacts(["FR", "BE"], built.strftime("%Y-%m-%dT%H:%M:%SZ"), 21_000, 21_007)
    with fake_stack(pki) as stack:
        report = run_checks(stack.target(geo=geo), only=["exposure.geo"])
    result = report.get("exposure.geo")
    assert result is not None and result.status is status, result
    assert result.details["database_age_days"] == age_days
    assert result.details["country_networks"] == 21_000
    assert "FR, BE: 21000 networks admitted" in result.reason
    if status is Status.WARN:
        assert "stackgen reload" in (result.hint or "")


def test_exposure_login_probe_is_bounded_and_stops_at_the_first_429(pki: PKI) -> None:
    with fake_stack(pki, login_limit=3) as stack:
        report = run_checks(stack.target(), only=["exposure.login-rate-limit"])
        assert stack.logins == {"127.0.0.1": 4}
    result = report.get("exposure.login-rate-limit")
    assert result is not None and result.details["attempts"] == 4
    with fake_stack(pki, login_limit=None) as stack:
        run_checks(stack.target(), only=["exposure.login-rate-limit"])
        assert stack.logins == {"127.0.0.1": 30}


def test_anonymous_media_fix_names_only_what_the_target_offers(pki: PKI) -> None:
    """Where the token gate is refused (edge-home, swarm), the fix text names only
    access.allow; the warning stays."""
    with fake_stack(pki, media_open=True) as stack:
        offered = run_checks(stack.target(), only=["exposure.anonymous-media"])
        refused = run_checks(stack.target(gate_offered=False), only=["exposure.anonymous-media"])
    with_gate, without = (
        offered.get("exposure.anonymous-media"),
        refused.get("exposure.anonymous-media"),
    )
    assert with_gate is not None and without is not None
    assert with_gate.status is without.status is Status.WARN
    assert "access.gate" in with_gate.hint
    assert "access.allow" in without.hint
    assert "gate" not in without.hint


def test_anonymous_media_behind_the_gate_names_its_image_setting(pki: PKI) -> None:
    """A gated stack whose images stay open (access.gate.images = "open") still warns; the
    fix names the setting that closes them, not the gate that is already on."""
    with fake_stack(pki, images_open=True) as stack:
        gated = run_checks(stack.target(token_gate=True), only=["exposure.anonymous-media"])
    result = gated.get("exposure.anonymous-media")
    assert result is not None and result.status is Status.WARN
    assert result.reason == "answered without a token: image (by item id)"
    assert 'access.gate.images = "token"' in result.hint
