"""The shared certbot machinery: placeholder pair, state files, modes refused, the rendered
scripts (valid POSIX sh, values quoted), and the compose wiring per TLS mode."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shlex
import shutil
import signal
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stackgen import writer
from stackgen.certificates.certbot import LAYOUT, SERVED_COMBINED, TLS_MODES, Certbot
from stackgen.errors import InvalidInputError
from stackgen.models import StackConfig, TlsMode, parse_config
from stackgen.pki import PLACEHOLDER_ORGANIZATION, placeholder_pair
from stackgen.proxies import available, get_proxy
from stackgen.render import render_stack

# The compose wiring asserted below is nginx's and Apache's (HAProxy mounts its files its way).
WEBROOT_PROXIES = ["nginx", "apache"]
DOMAIN = "jellyfin.example.com"


def _config(proxy: str, tmp: Path, **overrides: Any) -> StackConfig:
    data: dict[str, Any] = {
        "proxy": proxy,
        "domain": DOMAIN,
        "email": "admin@example.com",
        "run_as": "1000:1000",
    }
    data.update(overrides)
    return parse_config(data, tmp, check_paths=False)


CERTBOT_PROXIES = [
    name
    for name in available()
    if isinstance(get_proxy(name).certificates(_config(name, Path("."))), Certbot)
]


def _rendered(config: StackConfig, tmp: Path) -> dict[str, writer.PlannedFile]:
    files, _ = render_stack(config, tmp)
    return {f.path: f for f in files}


def test_certbot_proxies_are_registered() -> None:
    assert {"nginx", "apache"} <= set(CERTBOT_PROXIES)


def test_placeholder_is_a_self_signed_pair_for_the_domain() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    pair = placeholder_pair(DOMAIN, now)
    cert = x509.load_pem_x509_certificate(pair.fullchain_pem)
    key = serialization.load_pem_private_key(pair.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert cert.public_key() == key.public_key()
    assert cert.subject == cert.issuer
    organization = cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    assert organization[0].value == PLACEHOLDER_ORGANIZATION
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [DOMAIN]
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc
    assert b"PRIVATE KEY" in pair.key_pem and b"ENCRYPTED" not in pair.key_pem


def test_each_render_makes_a_fresh_placeholder_but_an_existing_one_is_kept(
    tmp_path: Path,
) -> None:
    config = _config("nginx", tmp_path)
    first = _rendered(config, tmp_path)
    assert (
        first["certs/privkey.pem"].content
        != _rendered(config, tmp_path)["certs/privkey.pem"].content
    )
    files, directories = render_stack(config, tmp_path)
    writer.apply(writer.plan(tmp_path, files, directories=directories))
    key = (tmp_path / "certs/privkey.pem").read_bytes()
    again, directories = render_stack(config, tmp_path)
    plan = writer.plan(tmp_path, again, directories=directories)
    verdicts = {v.file.path: v.action for v in plan.verdicts}
    # A certificate certbot deployed (or the first placeholder) is never replaced.
    assert verdicts["certs/privkey.pem"] is writer.Action.KEEP
    assert verdicts["certs/fullchain.pem"] is writer.Action.KEEP
    writer.apply(plan)
    assert (tmp_path / "certs/privkey.pem").read_bytes() == key


@pytest.mark.parametrize("proxy", CERTBOT_PROXIES)
def test_state_files_folders_and_modes(proxy: str, tmp_path: Path) -> None:
    config = _config(proxy, tmp_path)
    files, directories = render_stack(config, tmp_path)
    writer.apply(writer.plan(tmp_path, files, directories=directories))
    mode = {
        path: stat.S_IMODE((tmp_path / path).stat().st_mode)
        for path in ("certs/privkey.pem", "certs/fullchain.pem", "letsencrypt", "acme-webroot")
    }
    assert mode == {
        "certs/privkey.pem": 0o600,
        "certs/fullchain.pem": 0o644,
        "letsencrypt": 0o700,
        "acme-webroot": 0o755,
    }
    for script in ("run.sh", "deploy-hook.sh"):
        path = tmp_path / LAYOUT.scripts_dir / script
        assert stat.S_IMODE(path.stat().st_mode) == 0o755


def test_combined_pem_for_haproxy_style_proxies(tmp_path: Path) -> None:
    config = _config("nginx", tmp_path)
    files = {s.target: s for s in Certbot(SERVED_COMBINED).state_files(config, tmp_path)}
    combined = files["certs/haproxy.pem"]
    assert combined.mode == 0o600
    assert (
        combined.content
        == files["certs/fullchain.pem"].content + files["certs/privkey.pem"].content
    )


REFUSED = [
    (proxy, mode)
    for proxy in CERTBOT_PROXIES
    for mode in sorted(set(TlsMode) - get_proxy(proxy).tls_modes)
]


def test_certbot_proxies_refuse_what_certbot_cannot_do() -> None:
    # TLS-ALPN-01 would need the proxy to serve the challenge certificate; DNS-01 goes
    # through certbot's DNS plugins.
    assert TlsMode.ACME_TLS_ALPN not in TLS_MODES
    assert TlsMode.ACME_DNS in TLS_MODES
    for proxy in WEBROOT_PROXIES:
        assert get_proxy(proxy).tls_modes == TLS_MODES


@pytest.mark.parametrize(("proxy", "mode"), REFUSED)
def test_modes_certbot_cannot_do_are_refused_in_one_line(
    proxy: str, mode: TlsMode, tmp_path: Path
) -> None:
    extra = {"dns_provider": "cloudflare"} if mode is TlsMode.ACME_DNS else {}
    config = _config(proxy, tmp_path, tls={"mode": mode.value, **extra})
    with pytest.raises(InvalidInputError) as raised:
        render_stack(config, tmp_path)
    message = str(raised.value)
    assert "\n" not in message
    assert proxy in message and mode.value in message


@pytest.mark.parametrize("proxy", WEBROOT_PROXIES)
def test_no_certbot_without_acme(proxy: str, tmp_path: Path) -> None:
    config = _config(
        proxy,
        tmp_path,
        tls={"mode": "files", "cert_file": "/etc/ssl/jf/chain.pem", "key_file": "/etc/ssl/k.pem"},
    )
    rendered = _rendered(config, tmp_path)
    compose = rendered["docker-compose.yml"].content.decode()
    assert "certbot" not in compose
    assert "/etc/stackgen/certs/*.pem" not in compose
    assert not any(path.startswith(("certs/", "certbot/")) for path in rendered)
    # Same container paths as with certbot: the proxy's own config does not change.
    assert f'"/etc/ssl/jf/chain.pem:{LAYOUT.fullchain}:ro"' in compose
    assert f'"/etc/ssl/k.pem:{LAYOUT.privkey}:ro"' in compose


@pytest.mark.parametrize("proxy", WEBROOT_PROXIES)
def test_acme_wires_certbot_and_the_watcher(proxy: str, tmp_path: Path) -> None:
    config = _config(
        proxy,
        tmp_path,
        tls={"mode": "acme", "ca_url": "https://ca.example:14000/dir", "ca_bundle": "ca.pem"},
    )
    compose = _rendered(config, tmp_path)["docker-compose.yml"].content.decode()
    service = compose.split("\n  certbot:\n", 1)[1].split("\n  jellyfin:\n", 1)[0]
    assert '"./certs:/etc/stackgen/certs"' in service
    assert '"./acme-webroot:/var/www/acme"' in service
    assert '"./letsencrypt:/etc/letsencrypt"' in service
    assert 'REQUESTS_CA_BUNDLE: "/etc/stackgen/acme-ca.pem"' in service
    assert '"./ca.pem:/etc/stackgen/acme-ca.pem:ro"' in service
    assert "host.docker.internal:host-gateway" in service
    assert f'"grep", "-qxF", "{DOMAIN}", "{LAYOUT.marker_path}"' in service
    assert "read_only: true" in service and "- ALL" in service
    proxy_service = compose.split("\n  certbot:\n", 1)[0]
    assert '"./certs:/etc/stackgen/certs:ro"' in proxy_service
    assert '"./acme-webroot:/var/www/acme:ro"' in proxy_service
    assert '/watch-files.sh"' in proxy_service
    assert "/etc/stackgen/certs/*.pem" in proxy_service
    assert "docker.sock" not in compose


def _script(proxy: str, tmp: Path, name: str, **overrides: Any) -> str:
    config = _config(proxy, tmp, **overrides)
    rendered = _rendered(config, tmp)
    if name == "watch-files.sh":
        return rendered[get_proxy(proxy).watcher].content.decode()
    return rendered[f"certbot/{name}"].content.decode()


@pytest.mark.parametrize("name", ["run.sh", "deploy-hook.sh", "watch-files.sh"])
def test_scripts_are_posix_sh(name: str, tmp_path: Path) -> None:
    script = tmp_path / name
    script.write_text(_script("nginx", tmp_path, name))
    # dash is as strict as the busybox ash of the official (Alpine) certbot image.
    result = subprocess.run(["dash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    if shutil.which("shellcheck"):
        check = subprocess.run(
            ["shellcheck", "-s", "sh", str(script)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout


def test_values_reach_the_script_quoted(tmp_path: Path) -> None:
    email = "o'brien$HOME`id`@example.com"
    script = _script("nginx", tmp_path, "run.sh", email=email)
    assignments = "\n".join(
        line for line in script.splitlines() if line.startswith(("email=", "domain=", "server="))
    )
    result = subprocess.run(
        ["dash", "-c", f'{assignments}\nprintf "%s\\n" "$email" "$domain" "$server"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines() == [
        email,
        DOMAIN,
        "https://acme-v02.api.letsencrypt.org/directory",
    ]


def test_run_script_asks_certbot_for_what_the_design_says(tmp_path: Path) -> None:
    script = _script("nginx", tmp_path, "run.sh")
    for flag in (
        "certonly --webroot",
        "--key-type ecdsa",
        "--keep-until-expiring",
        '--deploy-hook "$hook"',
        "--agree-tos",
        "--no-eff-email",
        '--server "$server"',
        "renew --no-random-sleep-on-renew",
        "trap stop TERM INT",
    ):
        assert flag in script, flag
    # The self-check asks the proxy's pinned address, never a name outside the stack.
    assert "challenge_url=http://172.30.77.2/.well-known/acme-challenge\n" in script


def test_deploy_hook_replaces_files_atomically(tmp_path: Path) -> None:
    """Run the hook on a fake lineage: files land with the right modes, no temporary left."""
    lineage = tmp_path / "live"
    lineage.mkdir()
    (lineage / "fullchain.pem").write_text("CHAIN\n")
    (lineage / "privkey.pem").write_text("KEY\n")
    certs = tmp_path / "certs"
    certs.mkdir()
    hook = _script("nginx", tmp_path, "deploy-hook.sh").replace(
        f"certs={LAYOUT.certs_path}\n", f"certs={certs}\n"
    )
    assert f"certs={certs}\n" in hook
    result = subprocess.run(
        ["dash", "-c", hook],
        env={"RENEWED_LINEAGE": str(lineage), "RENEWED_DOMAINS": DOMAIN, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in certs.iterdir()) == ["deployed", "fullchain.pem", "privkey.pem"]
    assert (certs / "privkey.pem").read_text() == "KEY\n"
    assert stat.S_IMODE((certs / "privkey.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((certs / "fullchain.pem").stat().st_mode) == 0o644
    assert (certs / "deployed").read_text() == f"{DOMAIN}\n"


def test_watcher_reloads_once_the_files_changed(tmp_path: Path) -> None:
    """The watcher runs the command in the foreground and the reload on a change; the reload
    command gets its arguments exactly (HAProxy's is `sh -c 'kill -USR2 1'`)."""
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "fullchain.pem").write_text("OLD\n")
    watcher = _script("nginx", tmp_path, "watch-files.sh")
    marker = tmp_path / "reloaded"
    reload = shlex.join(["sh", "-c", f"echo 'as one' > {marker}"])
    foreground = (
        f"sleep 1; echo NEW > {certs}/fullchain.pem; "
        f"i=0; while [ ! -s {marker} ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done"
    )
    log = tmp_path / "stderr"
    with log.open("w") as stderr:
        # Its own session: the watcher loop outlives the foreground command and is killed
        # with the group afterwards (in a container, it dies with PID 1).
        process = subprocess.Popen(
            [
                "dash",
                "-c",
                watcher,
                "watch-files.sh",
                reload,
                f"{certs}/*.pem",
                "dash",
                "-c",
                foreground,
            ],
            stderr=stderr,
            start_new_session=True,
        )
        try:
            assert process.wait(timeout=30) == 0
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    assert marker.read_text() == "as one\n", log.read_text()
    assert "a watched file changed" in log.read_text()
