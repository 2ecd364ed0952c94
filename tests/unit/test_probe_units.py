"""Pure parts of the probe library: target validation, header parsers, KnownProxies
coverage, the raw ClientHello/ServerHello codec, report rendering, error isolation."""

from __future__ import annotations

import socket
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from stackgen.probe import CheckResult, Report, Status, Target
from stackgen.probe.base import Check, failed
from stackgen.probe.checks.headers import allows_url, parse_csp, parse_hsts
from stackgen.probe.checks.proxy import covered
from stackgen.probe.context import ProbeContext
from stackgen.probe.hello import (
    ALL_SUITES,
    EXT_RENEGOTIATION_INFO,
    EXT_SERVER_NAME,
    TLS10,
    TLS12,
    HelloOutcome,
    build_client_hello,
    exchange,
)
from stackgen.probe.result import redact
from stackgen.probe.runner import run_one, select_checks
from stackgen.probe.target import parse_base_url

# --- Target ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "port", "base"),
    [
        ("https://Jellyfin.Example.com", "jellyfin.example.com", 443, ""),
        ("https://jellyfin.example.com/", "jellyfin.example.com", 443, ""),
        ("https://example.com:8443/jellyfin/", "example.com", 8443, "/jellyfin"),
        ("https://[2001:db8::1]:8443/media", "2001:db8::1", 8443, "/media"),
    ],
)
def test_base_url_parsing(url: str, host: str, port: int, base: str) -> None:
    parsed = parse_base_url(url)
    assert (parsed.host, parsed.port, parsed.base) == (host, port, base)


def test_base_url_netloc_and_scope() -> None:
    url = parse_base_url("https://[2001:db8::1]:8443/media")
    assert url.netloc == "[2001:db8::1]:8443"
    assert url.within_base("/media") and url.within_base("/media/web/")
    assert not url.within_base("/mediaplayer")
    assert parse_base_url("https://a.example").netloc == "a.example"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "http://jellyfin.example.com"}, "https://"),
        ({"url": "https://jellyfin.example.com/?x=1"}, "base URL, without"),
        ({"url": "https://user:pw@jellyfin.example.com"}, "user name"),
        ({"url": "https://"}, "no host"),
        ({"url": "https://a.example", "resolve": {"a.example": "not-an-ip"}}, "not an IP"),
        ({"url": "https://a.example", "media_path": "Videos/x"}, "must start with '/'"),
        ({"url": "https://a.example", "http_port": 0}, "http_port"),
        ({"url": "https://a.example", "ca_file": Path("/nonexistent/ca.pem")}, "CA file"),
        ({"url": "https://a.example", "timeout": 0}, "timeout"),
    ],
)
def test_target_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Target(**kwargs)  # type: ignore[arg-type]


def test_target_resolve_is_normalised() -> None:
    target = Target(url="https://A.example", resolve={"A.EXAMPLE": "[::1]"})
    assert target.address_for("a.example") == "::1"
    assert target.address_for("b.example") == "b.example"
    assert target.effective_media_path == "/web/index.html"


# --- header parsers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("max-age=63072000; includeSubDomains", (63072000, True)),
        ('MAX-AGE="31536000"', (31536000, False)),
        ("includeSubDomains; preload", (None, True)),
        ("max-age=abc", (None, False)),
    ],
)
def test_parse_hsts(value: str, expected: tuple[int | None, bool]) -> None:
    assert parse_hsts(value) == expected


def test_parse_csp_multiple_policies_and_first_directive_wins() -> None:
    policies = parse_csp(["default-src 'self'; script-src a; script-src b", "img-src *"])
    assert policies == [
        {"default-src": ["'self'"], "script-src": ["a"]},
        {"img-src": ["*"]},
    ]


@pytest.mark.parametrize(
    ("sources", "allowed"),
    [
        (["https://www.gstatic.com"], True),
        (["www.gstatic.com"], True),
        (["https://*.gstatic.com"], True),
        (["https://www.gstatic.com/cv/js/"], True),
        (["https:"], True),
        (["*"], True),
        (["http://www.gstatic.com"], False),
        (["'self'", "'unsafe-eval'"], False),
        (["*.example.com"], False),
    ],
)
def test_csp_source_matching(sources: list[str], allowed: bool) -> None:
    assert allows_url(sources, "https", "www.gstatic.com") is allowed


# --- KnownProxies coverage ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "entries", "expected"),
    [
        ("172.30.0.2", ["172.30.0.2"], True),
        ("172.30.0.2", ["172.30.0.0/24"], True),
        ("::ffff:172.30.0.2", ["172.30.0.0/24"], True),
        ("172.30.0.2", ["::ffff:172.30.0.2"], True),
        ("172.31.0.2", ["172.30.0.0/24"], False),
        ("fd00::2", ["fd00::/64"], True),
        ("172.31.0.2", ["172.30.0.0/24", "traefik"], None),
        ("traefik", ["172.30.0.0/24"], None),
    ],
)
def test_known_proxies_coverage(address: str, entries: list[str], expected: bool | None) -> None:
    assert covered(address, entries) is expected


# --- raw TLS hello codec ------------------------------------------------------------------


def test_client_hello_layout() -> None:
    message = build_client_hello(version=TLS12, suites=ALL_SUITES, server_name="a.example")
    assert message[0] == 22  # handshake record
    assert int.from_bytes(message[3:5], "big") == len(message) - 5
    assert message[5] == 1  # ClientHello
    assert int.from_bytes(message[9:11], "big") == TLS12
    assert b"a.example" in message
    no_sni = build_client_hello(version=TLS10, suites=[0x002F], server_name="127.0.0.1")
    assert b"127.0.0.1" not in no_sni
    assert EXT_SERVER_NAME.to_bytes(2, "big") + b"\x00" not in no_sni[-40:]


def _server_hello(compression: int, extensions: bytes) -> bytes:
    body = (
        b"\x03\x03"
        + b"\x22" * 32
        + b"\x00"
        + b"\xc0\x2b"
        + bytes([compression])
        + len(extensions).to_bytes(2, "big")
        + extensions
    )
    return b"\x02" + len(body).to_bytes(3, "big") + body


def _certificate(*ders: bytes) -> bytes:
    entries = b"".join(len(d).to_bytes(3, "big") + d for d in ders)
    body = len(entries).to_bytes(3, "big") + entries
    return b"\x0b" + len(body).to_bytes(3, "big") + body


def _answer(payload: bytes, record_size: int = 16384) -> bytes:
    """Wrap handshake bytes in records, split at `record_size` to test reassembly."""
    out = b""
    for i in range(0, len(payload), record_size):
        chunk = payload[i : i + record_size]
        out += b"\x16\x03\x03" + len(chunk).to_bytes(2, "big") + chunk
    return out


def _exchange_with(answer: bytes, *, want_flight: bool) -> HelloOutcome:
    ours, theirs = socket.socketpair()

    def reply() -> None:
        theirs.recv(65536)
        theirs.sendall(answer)
        theirs.close()

    thread = threading.Thread(target=reply)
    thread.start()
    try:
        hello = build_client_hello(version=TLS12, suites=ALL_SUITES, server_name="a.example")
        return exchange(ours, hello, timeout=2, want_flight=want_flight)
    finally:
        thread.join()
        ours.close()


def test_exchange_parses_a_fragmented_first_flight() -> None:
    ske = b"\x0c\x00\x00\x04\x03\x00\x1d\x00"  # ServerKeyExchange: named_curve x25519 (cut)
    flight = (
        _server_hello(1, b"\xff\x01\x00\x01\x00")
        + _certificate(b"leaf", b"intermediate")
        + ske
        + b"\x0e\x00\x00\x00"
    )
    outcome = _exchange_with(_answer(flight, record_size=7), want_flight=True)
    assert outcome.server_hello is not None
    assert outcome.server_hello.compression == 1
    assert EXT_RENEGOTIATION_INFO in outcome.server_hello.extensions
    assert outcome.certificates == (b"leaf", b"intermediate")
    assert outcome.ecdhe_group == 0x1D
    assert outcome.note == "ServerHelloDone"


def test_exchange_reports_alerts_and_hangups() -> None:
    alert = _exchange_with(b"\x15\x03\x03\x00\x02\x02\x46", want_flight=False)
    assert not alert.accepted and alert.alert == 70
    closed = _exchange_with(b"", want_flight=False)
    assert not closed.accepted and closed.note == "connection closed"


# --- report and runner ----------------------------------------------------------------------


def _report(*results: CheckResult) -> Report:
    return Report(
        target=Target(url="https://a.example", media_path="/Videos/x?api_key=TOPSECRET"),
        results=results,
        skipped={"jellyfin.subpath-redirect": "the URL has no subpath"},
    )


def test_report_counts_and_redaction() -> None:
    report = _report(
        CheckResult("a.one", "one", Status.PASS, "fine", ""),
        CheckResult("a.two", "two", Status.WARN, "meh", "do x"),
        CheckResult("b.three", "three", Status.FAIL, "bad \x00 byte", "do y", {"n": 1}),
    )
    assert (report.passed, report.warned, report.failed, report.ok) == (1, 1, 1, False)
    target = report.to_json()["target"]
    assert isinstance(target, dict)
    assert target["media_path"] == "/Videos/x?api_key=REDACTED"
    root = ET.fromstring(report.to_junit_xml())  # the NUL byte must not break the XML
    assert root.find("testsuite/testcase/failure") is not None
    table = report.render_table()
    assert "fix: do y" in table and "fix: do x" in table
    assert "TOPSECRET" not in table + report.to_junit_xml()


def test_redact() -> None:
    assert redact("/a?ApiKey=abc&x=1&api_key=def") == "/a?ApiKey=REDACTED&x=1&api_key=REDACTED"


def test_a_crashing_check_becomes_a_fail() -> None:
    def boom(_ctx: ProbeContext) -> object:
        raise RuntimeError("kaboom")

    crashing = Check("x.boom", "boom", "the fix", boom)  # type: ignore[arg-type]
    verdict = run_one(crashing, ProbeContext(Target(url="https://a.example")))
    assert verdict.status is Status.FAIL
    assert verdict.reason == "RuntimeError: kaboom"
    assert verdict.hint == "the fix"
    assert failed("r", "h").status is Status.FAIL


def test_select_checks() -> None:
    assert [c.id for c in select_checks(["tls.tls13", "upload"])] == [
        "reach.proxy",
        "reach.upstream",
        "tls.tls13",
        "upload.20mb",
    ]
    assert [c.id for c in select_checks(["proxy"])] == ["proxy.known-proxies"]  # needs nothing
    assert len(select_checks(None)) == 42
    with pytest.raises(ValueError, match="unknown check id"):
        select_checks(["nope"])
