"""`stackgen import` end to end without Docker: every fixture imports, renders, passes
`stackgen check`; the report says what happened to the directives that matter; certificates
are kept; `--to` works from every format to every proxy."""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stackgen.config_file import load_config
from stackgen.errors import InvalidInputError
from stackgen.importers import ReportAction, compare_table, run_import
from stackgen.importers.build import ImportOutcome
from stackgen.models import JellyfinNetwork, ProxyKind, TlsMode
from stackgen.probe import Status
from stackgen.proxies import available
from stackgen.stack import Stack
from stackgen.stack_checks import check_stack
from tests.unit.import_support import (
    EMAIL,
    FIXTURES,
    acme_json_v1,
    combined,
    copy_fixture,
    lineage,
    make_cert,
    served_serial,
)
from tests.unit.probe_fixtures import NAME, PKI, fake_stack, make_pki


@dataclass(frozen=True)
class Case:
    fixture: str
    source: ProxyKind
    domain: str
    subpath: str
    network: JellyfinNetwork
    mode: TlsMode
    # (directive text it starts with, action) the report must hold.
    expect: tuple[tuple[str, ReportAction], ...] = ()
    # Lays the old server's files (certificates) under root; returns the paths to import.
    prepare: Callable[[Path, Path], list[Path]] = field(default=lambda old, root: [old])
    email: str | None = None


def _traefik_with_cert(old: Path, root: Path) -> list[Path]:
    (old / "acme.json").write_bytes(acme_json_v1(make_cert("*.example.com"), "*.example.com"))
    return [old]


def _nginx_lineage(old: Path, root: Path) -> list[Path]:
    lineage(root, "jellyfin.example.com", make_cert("jellyfin.example.com"))
    return [old]


def _own_certificate(old: Path, root: Path) -> list[Path]:
    pair = make_cert("home.example.net")
    private = root / "etc" / "ssl" / "private"
    private.mkdir(parents=True)
    (private / "home.example.net.crt").write_bytes(pair.chain_pem)
    (private / "home.example.net.key").write_bytes(pair.key_pem)
    return [old]


def _haproxy_pem(domain: str) -> Callable[[Path, Path], list[Path]]:
    def prepare(old: Path, root: Path) -> list[Path]:
        combined(root, f"etc/ssl/{domain}.pem", make_cert(domain))
        return [old]

    return prepare


R = ReportAction
CASES = [
    Case(
        "traefik/docs-folder",
        "traefik",
        "jellyfin.example.com",
        "",
        JellyfinNetwork.HOST,
        TlsMode.ACME_DNS,
        (
            ("headers.frameDeny", R.DROPPED),
            ("headers.customFrameOptionsValue", R.DROPPED),
            ("headers.SSLRedirect", R.REPLACED),
            ("entryPoints.https.tls.cipherSuites", R.DROPPED),
            ("frontend photos", R.SKIPPED),
            ("acme.json", R.TRANSLATED),
            ("KnownProxies", R.REPLACED),
            ("[api]", R.DROPPED),
        ),
        _traefik_with_cert,
    ),
    Case(
        "traefik/labels-bridge",
        "traefik",
        "media.example.org",
        "/jellyfin",
        JellyfinNetwork.BRIDGE,
        TlsMode.ACME,
        (
            ("rule Host:media.example.org;PathPrefixStrip:/jellyfin", R.REPLACED),
            ("subpath /jellyfin", R.TRANSLATED),
            ("headers.frameDeny", R.DROPPED),
            ("entryPoints.https.tls.minVersion", R.DROPPED),
            ("frontend transmission", R.SKIPPED),
        ),
    ),
    Case(
        "traefik/file-provider",
        "traefik",
        "home.example.net",
        "/jellyfin",
        JellyfinNetwork.HOST,
        TlsMode.FILES,
        (
            ("tls.certificates", R.TRANSLATED),
            ("[file]", R.REPLACED),
            ("headers.customFrameOptionsValue", R.DROPPED),
            ("headers.customResponseHeaders X-Robots-Tag", R.DROPPED),
            ("frontend nas", R.SKIPPED),
            ("entryPoints.https.address", R.TRANSLATED),
        ),
        _own_certificate,
    ),
    Case(
        "nginx/jellyfin.conf",
        "nginx",
        "jellyfin.example.com",
        "",
        JellyfinNetwork.HOST,
        TlsMode.FILES,
        (
            ("ssl_certificate", R.TRANSLATED),
            ("add_header X-Frame-Options", R.DROPPED),
            ("ssl_protocols TLSv1 TLSv1.1 TLSv1.2", R.DROPPED),
            ("ssl_stapling on", R.DROPPED),
            ("location /embywebsocket", R.DROPPED),
            ("location /socket", R.REPLACED),
            ("proxy_buffering off", R.REPLACED),
            ("proxy_set_header X-Real-IP", R.DROPPED),
            ("return 301", R.REPLACED),
            ("location /metrics", R.SKIPPED),
            ("server cloud.example.com", R.SKIPPED),
        ),
        _nginx_lineage,
    ),
    Case(
        "nginx/subpath.conf",
        "nginx",
        "media.example.net",
        "/jellyfin",
        JellyfinNetwork.HOST,
        TlsMode.ACME,
        (
            ("location /jellyfin/", R.REPLACED),  # the prefix-stripping proxy_pass
            ("subpath /jellyfin", R.TRANSLATED),
            ("location /jellyfin", R.REPLACED),
            ("location /", R.SKIPPED),
            ("listen (no TLS)", R.REPLACED),
        ),
        email=EMAIL,
    ),
    Case(
        "caddy/Caddyfile",
        "caddy",
        "jellyfin.example.com",
        "/jellyfin",
        JellyfinNetwork.HOST,
        TlsMode.ACME,
        (
            ("transparent", R.REPLACED),
            ("websocket", R.REPLACED),
            ("tls admin@example.com", R.TRANSLATED),
            ("header X-Frame-Options", R.DROPPED),
            ("redir", R.REPLACED),
            ("wiki.example.com", R.SKIPPED),
            ("subpath /jellyfin", R.TRANSLATED),
        ),
    ),
    Case(
        "haproxy/haproxy-1.8.cfg",
        "haproxy",
        "jellyfin.example.com",
        "",
        JellyfinNetwork.HOST,
        TlsMode.FILES,
        (
            ("bind *:443 ssl crt", R.TRANSLATED),
            ("crt", R.TRANSLATED),
            ("redirect scheme https", R.REPLACED),
            ("http-response set-header X-Frame-Options", R.DROPPED),
            ("http-request set-header X-Forwarded-Port", R.DROPPED),
            ("backend hass", R.SKIPPED),
            ("backend letsencrypt", R.SKIPPED),
            ("tune.ssl.default-dh-param", R.DROPPED),
        ),
        _haproxy_pem("jellyfin.example.com"),
    ),
    Case(
        "haproxy/haproxy-1.6.cfg",
        "haproxy",
        "media.example.org",
        "",
        JellyfinNetwork.HOST,
        TlsMode.FILES,
        (
            ("reqadd", R.REPLACED),
            ("ssl-default-bind-options no-sslv3", R.DROPPED),
            ("ssl-default-bind-ciphers", R.DROPPED),
            ("option forwardfor", R.REPLACED),
        ),
        _haproxy_pem("media.example.org"),
    ),
    Case(
        "apache/jellyfin.conf",
        "apache",
        "jellyfin.example.com",
        "",
        JellyfinNetwork.HOST,
        TlsMode.FILES,
        (
            ("ProxyPass /socket", R.REPLACED),
            ("SSLCertificateFile", R.TRANSLATED),
            ("Header always set X-Frame-Options", R.DROPPED),
            ("SSLProtocol all -SSLv3", R.DROPPED),
            ("Redirect permanent", R.REPLACED),
            ("<VirtualHost *:80> blog.example.com", R.SKIPPED),
        ),
        _nginx_lineage,
    ),
    Case(
        "apache/plain-http.conf",
        "apache",
        "jellyfin.example.org",
        "",
        JellyfinNetwork.BRIDGE,
        TlsMode.ACME,
        (
            ("#<VirtualHost *:443>", R.SKIPPED),
            ("<VirtualHost *:80>", R.REPLACED),
        ),
        email=EMAIL,
    ),
]


def _import(case: Case, tmp: Path, *, to: ProxyKind | None = None) -> ImportOutcome:
    old = copy_fixture(case.fixture, tmp)
    root = tmp / "root"
    root.mkdir(exist_ok=True)
    paths = case.prepare(old, root)
    return run_import(paths, tmp / "stack", to=to, email=case.email, root=root)


def _no_failures(stack: Path) -> None:
    config = load_config(stack)
    failures = [
        f for f in check_stack(Stack(config, stack), use_docker=False) if f.status is Status.FAIL
    ]
    # A DNS-01 stack's credentials cannot come from the old files: check names what to fill.
    unfilled = [f for f in failures if f.check == "dns"]
    assert all(" is empty: fill it in " in f.message and ".env" in f.message for f in unfilled)
    failures = [f for f in failures if f.check != "dns"]
    assert not failures, failures


@pytest.mark.parametrize("case", CASES, ids=[c.fixture for c in CASES])
def test_fixture_imports_renders_and_passes_check(case: Case, tmp_path: Path) -> None:
    outcome = _import(case, tmp_path)
    config = load_config(tmp_path / "stack")
    assert outcome.imported.source is case.source
    assert (config.proxy, config.domain, config.subpath) == (case.source, case.domain, case.subpath)
    assert config.jellyfin.network_mode is case.network
    assert config.tls.mode is case.mode
    _no_failures(tmp_path / "stack")


@pytest.mark.parametrize("case", CASES, ids=[c.fixture for c in CASES])
def test_report_names_what_happened_to_known_directives(case: Case, tmp_path: Path) -> None:
    report = _import(case, tmp_path).report
    for directive, action in case.expect:
        matching = {e.action for e in report if e.directive.startswith(directive)}
        assert action in matching, (directive, action, matching)
    assert all(e.reason for e in report)
    # Every entry points at a file and, where the format has lines, a line of it.
    assert all(e.source_file for e in report)


# One fixture per format: the --to matrix renders each for every proxy.
MATRIX = [
    c
    for c in CASES
    if c.fixture
    in {
        "traefik/docs-folder",
        "nginx/jellyfin.conf",
        "caddy/Caddyfile",
        "haproxy/haproxy-1.8.cfg",
        "apache/plain-http.conf",
    }
]


@pytest.mark.parametrize("to", available())
@pytest.mark.parametrize("case", MATRIX, ids=[c.fixture.split("/")[0] for c in MATRIX])
def test_to_every_proxy(case: Case, to: ProxyKind, tmp_path: Path) -> None:
    outcome = _import(case, tmp_path, to=to)
    config = load_config(tmp_path / "stack")
    assert config.proxy == to
    assert (config.domain, config.subpath) == (case.domain, case.subpath)
    # A kept certificate stays kept whatever the proxy: nothing is re-issued needlessly.
    if case.mode is TlsMode.FILES or outcome.imported.acme_store_file is not None:
        assert config.tls.mode is (
            TlsMode.ACME_DNS if to == "traefik" and case.mode is TlsMode.ACME_DNS else TlsMode.FILES
        )
    _no_failures(tmp_path / "stack")


def test_acme_json_v1_becomes_the_v3_store_with_the_same_certificate(tmp_path: Path) -> None:
    pair = make_cert("jellyfin.example.com")
    old = copy_fixture("traefik/docs-folder", tmp_path)
    (old / "acme.json").write_bytes(acme_json_v1(pair, "jellyfin.example.com"))
    before = {p: p.read_bytes() for p in old.iterdir()}
    run_import([old], tmp_path / "stack")
    store_file = tmp_path / "stack" / "traefik" / "acme.json"
    assert stat.S_IMODE(store_file.stat().st_mode) == 0o600
    store = json.loads(store_file.read_text())
    assert list(store) == ["acme"]  # the resolver stackgen's traefik.toml declares
    assert store["acme"]["Account"]["Email"] == EMAIL
    assert store["acme"]["Account"]["Registration"]["uri"].endswith("/acct/1")
    (entry,) = store["acme"]["Certificates"]
    assert entry["domain"] == {"main": "jellyfin.example.com"}
    assert entry["Store"] == "default"
    chain = base64.b64decode(entry["certificate"])
    assert served_serial(chain) == pair.serial
    assert base64.b64decode(entry["key"]) == pair.key_pem
    static = (tmp_path / "stack" / "traefik" / "traefik.toml").read_text()
    assert "[certificatesResolvers.acme.acme]" in static
    assert 'storage = "/etc/traefik/acme.json"' in static
    # The old files are only read.
    assert before == {p: p.read_bytes() for p in old.iterdir()}


def test_acme_json_certificate_becomes_pem_files_for_another_proxy(tmp_path: Path) -> None:
    pair = make_cert("jellyfin.example.com")
    old = copy_fixture("traefik/docs-folder", tmp_path)
    (old / "acme.json").write_bytes(acme_json_v1(pair, "jellyfin.example.com"))
    run_import([old], tmp_path / "stack", to="nginx")
    config = load_config(tmp_path / "stack")
    assert config.tls.mode is TlsMode.FILES
    chain = tmp_path / "stack" / "tls" / "imported" / "fullchain.pem"
    key = tmp_path / "stack" / "tls" / "imported" / "privkey.pem"
    assert served_serial(chain.read_bytes()) == pair.serial
    assert key.read_bytes() == pair.key_pem
    # The proxy reads it through its group (run_as's gid); only its owner may change it.
    assert stat.S_IMODE(key.stat().st_mode) == 0o640
    assert key.stat().st_gid == config.gid
    assert not (tmp_path / "stack" / "traefik").exists()


def test_acme_json_without_a_matching_certificate_is_said_so(tmp_path: Path) -> None:
    old = copy_fixture("traefik/docs-folder", tmp_path)
    (old / "acme.json").write_bytes(
        acme_json_v1(make_cert("other.example.net"), "other.example.net")
    )
    outcome = run_import([old], tmp_path / "stack", to="caddy", dry_run=True)
    (entry,) = [e for e in outcome.report if e.directive == "acme.json"]
    assert entry.action is ReportAction.SKIPPED
    assert "no certificate in it covers jellyfin.example.com" in entry.reason


def test_certbot_lineage_is_copied_into_the_stack(tmp_path: Path) -> None:
    """The pair is read once, matched, and copied: the proxy never mounts the old place."""
    case = next(c for c in CASES if c.fixture == "nginx/jellyfin.conf")
    _import(case, tmp_path)
    config = load_config(tmp_path / "stack")
    live = tmp_path / "root" / "etc" / "letsencrypt" / "live" / "jellyfin.example.com"
    assert config.tls.cert_file == "tls/imported/fullchain.pem"
    assert config.tls.key_file == "tls/imported/privkey.pem"
    stack = tmp_path / "stack"
    assert (stack / config.tls.key_file).read_bytes() == (live / "privkey.pem").read_bytes()
    compose = (stack / "docker-compose.yml").read_text()
    assert str(live) not in compose
    assert "./tls/imported/fullchain.pem" in compose


def test_missing_certificate_falls_back_to_acme_and_says_so(tmp_path: Path) -> None:
    old = copy_fixture("nginx/jellyfin.conf", tmp_path)
    outcome = run_import(
        [old], tmp_path / "stack", email=EMAIL, root=tmp_path / "empty-root", dry_run=True
    )
    assert outcome.config.tls.mode is TlsMode.ACME
    (entry,) = [e for e in outcome.report if e.directive == "ssl_certificate"]
    assert entry.action is ReportAction.REPLACED
    assert "not found on this machine" in entry.reason


def test_a_site_is_picked_by_jellyfin_url(tmp_path: Path) -> None:
    old = copy_fixture("nginx/jellyfin.conf", tmp_path)
    outcome = run_import(
        [old], tmp_path / "stack", email=EMAIL, dry_run=True, jellyfin_url="http://127.0.0.1:8080"
    )
    assert outcome.config.domain == "cloud.example.com"
    assert outcome.config.jellyfin.port == 8080


# --- --verify-old ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def probe_pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("import-pki"))


def test_verify_old_runs_verify_on_the_old_stack_and_keeps_its_report(
    probe_pki: PKI, tmp_path: Path
) -> None:
    from stackgen.importers.before_after import OLD_REPORT, verify_old

    with fake_stack(probe_pki) as old:
        url = f"https://{NAME}:{old.https_port}"
        report = verify_old(
            url,
            resolve=[f"{NAME}:127.0.0.1"],
            ca_file=probe_pki.root_pem,
            http_port=old.http_port,
            timeout=5.0,
        )
        outcome = run_import(
            [FIXTURES / "caddy" / "Caddyfile"],
            tmp_path / "stack",
            old_url=url,
            old_resolve=[f"{NAME}:127.0.0.1"],
            old_ca_file=probe_pki.root_pem,
        )
    assert report.results, "the verify engine ran no check"
    assert outcome.old_report is not None
    saved = json.loads((tmp_path / "stack" / OLD_REPORT).read_text())
    assert saved["target"]["url"] == url
    assert {c["id"] for c in saved["checks"]} == {r.id for r in outcome.old_report.results}
    assert outcome.to_json()["verify_old"] == outcome.old_report.to_json()
    # Before and after, check by check, against the same engine's later report.
    table = compare_table(saved, report)
    assert "BEFORE" in table and "AFTER" in table
    assert table.strip().endswith("broken by it")


def test_verify_old_wants_https(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="https://"):
        run_import(
            [FIXTURES / "caddy" / "Caddyfile"],
            tmp_path / "stack",
            old_url="http://jellyfin.example.com",
        )
    assert not (tmp_path / "stack").exists()


# --- forms beyond the old page: the newer docs' variables, <Location>, other ports ----------


def test_nginx_set_variable_and_other_ports(tmp_path: Path) -> None:
    source = tmp_path / "jellyfin.conf"
    source.write_text(
        "server {\n"
        "    listen 8080;\n"
        "    server_name _ jf.example.com;\n"
        "    return 301 https://$host:8443$request_uri;\n"
        "}\n"
        "server {\n"
        "    listen 8443 ssl;\n"
        "    server_name _ jf.example.com;\n"
        "    set $jellyfin jellyfin;\n"
        "    location / {\n"
        "        proxy_pass http://$jellyfin:8096;\n"
        "    }\n"
        "}\n"
    )
    outcome = run_import([source], tmp_path / "stack", email=EMAIL, dry_run=True)
    config = outcome.config
    assert config.domain == "jf.example.com"
    assert config.jellyfin.network_mode is JellyfinNetwork.BRIDGE
    assert (config.ports.http, config.ports.https) == (8080, 8443)
    actions = {(e.directive, e.action) for e in outcome.report}
    assert ("listen 8443 ssl", ReportAction.TRANSLATED) in actions
    assert ("set $jellyfin jellyfin", ReportAction.TRANSLATED) in actions


def test_apache_location_block_subpath(tmp_path: Path) -> None:
    source = tmp_path / "site.conf"
    source.write_text(
        "<VirtualHost *:443>\n"
        "    ServerName media.example.com\n"
        "    SSLEngine On\n"
        "    <Location /jellyfin>\n"
        "        ProxyPass http://127.0.0.1:8096/jellyfin\n"
        "        ProxyPassReverse http://127.0.0.1:8096/jellyfin\n"
        "    </Location>\n"
        "</VirtualHost>\n"
    )
    outcome = run_import([source], tmp_path / "stack", email=EMAIL, dry_run=True)
    assert outcome.config.subpath == "/jellyfin"
    # The prefix reaches Jellyfin unchanged: nothing to report as stripped.
    assert not [e for e in outcome.report if "stripped" in e.reason]


def test_caddy_v1_store_certificate_is_kept(tmp_path: Path) -> None:
    pair = make_cert("jellyfin.example.com")
    site = (
        tmp_path
        / "root"
        / "root"
        / ".caddy"
        / "acme"
        / "acme-v02.api.letsencrypt.org"
        / "sites"
        / "jellyfin.example.com"
    )
    site.mkdir(parents=True)
    (site / "jellyfin.example.com.crt").write_bytes(pair.chain_pem)
    (site / "jellyfin.example.com.key").write_bytes(pair.key_pem)
    outcome = run_import(
        [FIXTURES / "caddy" / "Caddyfile"], tmp_path / "stack", root=tmp_path / "root"
    )
    config = outcome.config
    assert config.tls.mode is TlsMode.FILES
    assert config.tls.cert_file == "tls/imported/fullchain.pem"
    stack = tmp_path / "stack"
    assert (stack / config.tls.cert_file).read_bytes() == pair.chain_pem
    (entry,) = [e for e in outcome.report if e.directive == "automatic HTTPS"]
    assert entry.action is ReportAction.TRANSLATED
    assert f"serial {pair.serial:x}" in entry.reason
    _no_failures(tmp_path / "stack")
