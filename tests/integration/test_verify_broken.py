"""`stackgen verify` against stacks deliberately wrong in one way each.

One real Traefik stack is broken by hand edits, one fault at a time, and restored between
faults. For each fault, verify must fail the check that names it — and every check outside
the fault's reach must still pass (so a verify that fails everything cannot pass this test).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from integration.conftest import Stack, StackFactory, exposure_audit, stackgen

MEDIA = "/Videos/standin/stream?static=true"


def _verify(stack: Stack) -> dict[str, str]:
    result = stackgen(
        "verify", "--dir", str(stack.directory), "--json", "--media-path", MEDIA, check=False
    )
    report = json.loads(result.stdout)
    assert (result.returncode == 0) == report["summary"]["ok"], result.stderr
    # A check that ran over HTTP/1.1 and h2 counts with its worse result.
    rank = {"pass": 0, "warn": 1, "fail": 2}
    statuses: dict[str, str] = {}
    for c in report["checks"]:
        if exposure_audit(c["id"]):
            continue  # its warnings on a default stack are by design (test_access.py)
        if rank[c["status"]] >= rank[statuses.get(c["id"], "pass")]:
            statuses[c["id"]] = c["status"]
    return statuses


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _leaf_only(stack: Stack) -> None:
    """Serve the Pebble-issued leaf without its intermediate (as a broken store would)."""
    path = stack.directory / "traefik/acme.json"
    acme = json.loads(path.read_text())
    entry = acme["acme"]["Certificates"][0]
    chain = base64.b64decode(entry["certificate"]).decode()
    end = "-----END CERTIFICATE-----"
    entry["certificate"] = base64.b64encode(chain[: chain.index(end) + len(end)].encode() + b"\n")
    entry["certificate"] = entry["certificate"].decode()
    path.write_text(json.dumps(acme))
    stack.compose("restart", "traefik")  # acme.json is read at start


def _known_proxies_empty(stack: Stack) -> None:
    xml = stack.directory / "jellyfin/config/config/network.xml"
    address = stack.config.known_proxies[0]
    _edit(xml, f"<string>{address}</string>", "")
    stack.compose("restart", "jellyfin")


@dataclass(frozen=True)
class Fault:
    name: str
    apply: Callable[[Stack], None]
    must_fail: frozenset[str]  # verify must fail (or warn on) each of these
    may_fail: frozenset[str] = frozenset()  # consequences that may fail too


# The site's routes (Traefik's container copies them into the folder it watches).
DYNAMIC = "traefik/dynamic.toml"


def _dyn(old: str, new: str) -> Callable[[Stack], None]:
    return lambda stack: _edit(stack.directory / DYNAMIC, old, new)


def _tls10(stack: Stack) -> None:
    _edit(stack.directory / DYNAMIC, '"VersionTLS12"', '"VersionTLS10"')
    _edit(
        stack.directory / DYNAMIC,
        '"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",',
        '"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",\n    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",',
    )


def _append(extra: str, old: str = "", new: str = "") -> Callable[[Stack], None]:
    def apply(stack: Stack) -> None:
        if old:
            _edit(stack.directory / DYNAMIC, old, new)
        path = stack.directory / DYNAMIC
        path.write_text(path.read_text() + extra)

    return apply


FAULTS = [
    Fault("hsts-missing", _dyn("  stsSeconds = 63072000\n", ""), frozenset({"hsts.https"})),
    Fault(
        "x-frame-options-deny",
        _dyn(
            "  contentTypeNosniff = true\n",
            '  contentTypeNosniff = true\n  customFrameOptionsValue = "DENY"\n',
        ),
        frozenset({"headers.frames"}),
    ),
    Fault(
        "tls-1.0-enabled",
        # TLS 1.0 needs CBC suites, which are outside Mozilla intermediate for TLS 1.2 too.
        _tls10,
        frozenset({"tls.protocols"}),
        frozenset({"tls.ciphers"}),
    ),
    Fault(
        "no-websocket-headers",
        _append(
            "\n[http.middlewares.jellyfin-headers.headers.customRequestHeaders]\n"
            '  Upgrade = ""\n  Connection = ""\n'
        ),
        frozenset({"websocket.keepalive"}),
    ),
    Fault(
        "leaf-only-chain",
        _leaf_only,
        frozenset({"tls.chain"}),
        # Without the intermediate no client can verify; verify then withholds the media
        # path (it may carry a token) from the unverified connection.
        frozenset({"tls.name", "stream.range", "stream.ttfb"}),
    ),
    Fault(
        "known-proxies-empty",
        _known_proxies_empty,
        # Jellyfin then ignores X-Forwarded-Proto: its absolute {base}/web redirect says
        # http://, the classic "redirected to http://internal-host" (jellyfin.web).
        frozenset({"proxy.known-proxies", "jellyfin.forwarded", "jellyfin.web"}),
    ),
    Fault(
        "buffering-tiny-buffers",
        _append(
            "\n[http.middlewares.tiny-buffer.buffering]\n  maxResponseBodyBytes = 65536\n"
            "  memResponseBodyBytes = 4096\n",
            'middlewares = ["jellyfin-headers"]',
            'middlewares = ["jellyfin-headers", "tiny-buffer"]',
        ),
        frozenset({"stream.ttfb"}),
        frozenset({"stream.range", "upload.20mb"}),
    ),
]


def test_verify_names_each_fault(make_stack: StackFactory) -> None:
    stack = make_stack("traefik", network="bridge")
    baseline = _verify(stack)
    assert set(baseline.values()) == {"pass"}, baseline
    pristine = {
        path: path.read_bytes()
        for path in (
            stack.directory / DYNAMIC,
            stack.directory / "traefik/acme.json",
            stack.directory / "jellyfin/config/config/network.xml",
        )
    }
    seen: dict[str, dict[str, str]] = {}
    for fault in FAULTS:
        fault.apply(stack)
        time.sleep(3)  # Traefik's file watch; Jellyfin's restart
        statuses = _wait_for_failure(stack, fault.must_fail)
        seen[fault.name] = {k: v for k, v in statuses.items() if v != "pass"}
        stack.notes.append(f"{fault.name}: {seen[fault.name]}")
        for path, content in pristine.items():
            path.write_bytes(content)
        if fault.name == "known-proxies-empty":
            stack.compose("restart", "jellyfin")
        if fault.name == "leaf-only-chain":
            stack.compose("restart", "traefik")
        time.sleep(3)
        _wait_for_failure(stack, frozenset())  # back to all-pass before the next fault
    for fault in FAULTS:
        failing = set(seen[fault.name])
        assert fault.must_fail <= failing, f"{fault.name}: {seen[fault.name]}"
        assert failing <= fault.must_fail | fault.may_fail, f"{fault.name}: {seen[fault.name]}"


def _wait_for_failure(stack: Stack, expected: frozenset[str]) -> dict[str, str]:
    """Verify until the expected checks fail (or, for none, all pass), at most ~40 s."""
    deadline = time.monotonic() + 40
    while True:
        statuses = _verify(stack)
        failing = {k for k, v in statuses.items() if v != "pass"}
        done = expected <= failing if expected else not failing
        if done or time.monotonic() > deadline:
            return statuses
        time.sleep(2)
