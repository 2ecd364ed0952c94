"""The CLI end to end: exit codes, one-line errors, nothing written. Through Typer's
CliRunner in this process, with the top-level error handling of `main()` (cli.failure);
a few smoke tests run the real entry point in a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackgen.cli import Failure, app, failure
from stackgen.errors import ExitCode

BASE = ["init", "traefik", "--domain", "jellyfin.example.com", "--email", "admin@example.com"]
RUNNER = CliRunner()


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


def stackgen(*args: str, cwd: Path | None = None) -> Run:
    with contextlib.chdir(cwd or Path.cwd()):
        result = RUNNER.invoke(app, list(args), env={"NO_COLOR": "1"}, standalone_mode=False)
    error = result.exception
    if error is None or isinstance(error, SystemExit):
        code = result.return_value if isinstance(result.return_value, int) else result.exit_code
        return Run(code, result.stdout, result.stderr)
    if not isinstance(error, Failure):
        raise error  # a traceback: a bug, never a user error
    message, code = failure(error)
    return Run(code, result.stdout, result.stderr + f"stackgen: error: {message}\n")


def stackgen_process(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed entry point, in a subprocess (smoke tests)."""
    return subprocess.run(
        [sys.executable, "-c", "from stackgen.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
        timeout=60,
    )


def _snapshot(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_init_renders_a_complete_traefik_stack(tmp_path: Path) -> None:
    result = stackgen(*BASE, "--dir", str(tmp_path / "stack"))
    assert result.returncode == 0, result.stderr
    stack = tmp_path / "stack"
    for name in (
        "stackgen.toml",
        "docker-compose.yml",
        "traefik/traefik.toml",
        # The site's routes, and the ban list: Traefik's container composes the folder it
        # watches from them (and from the feeder's addresses).
        "traefik/dynamic.toml",
        "traefik/compose-dynamic.sh",
        "ban/deny.toml",
        "traefik/acme.json",
        "jellyfin/config/config/network.xml",
    ):
        assert (stack / name).is_file(), name
    assert stat.S_IMODE((stack / "traefik/acme.json").stat().st_mode) == 0o600
    root = ET.parse(stack / "jellyfin/config/config/network.xml").getroot()
    assert [e.text for e in root.findall("./KnownProxies/string")] == ["172.30.77.2"]
    static = tomllib.loads((stack / "traefik/traefik.toml").read_text())
    assert "api" not in static
    assert static["entryPoints"]["web"]["http"]["redirections"]["entryPoint"]["permanent"]
    assert result.stdout == ""  # human output goes to stderr


def test_json_output_goes_to_stdout(tmp_path: Path) -> None:
    result = stackgen(*BASE, "--dir", str(tmp_path), "--json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert {f["path"]: f["action"] for f in data["files"]}["docker-compose.yml"] == "create"


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--domain", "jelly fin.example.com"], ExitCode.INVALID_INPUT, "white space"),
        (["--domain", "jelly_fin.example.com"], ExitCode.INVALID_INPUT, "invalid label"),
        (["--domain", "a..example.com"], ExitCode.INVALID_INPUT, "empty label"),
        (["--domain", ("a" * 64) + ".example.com"], ExitCode.INVALID_INPUT, "63"),
        (["--domain", "192.0.2.7"], ExitCode.INVALID_INPUT, "IP address"),
        (["--email", "not-an-email"], ExitCode.INVALID_INPUT, "email"),
        (["--http-port", "0"], ExitCode.INVALID_INPUT, "outside"),
        (["--https-port", "70000"], ExitCode.INVALID_INPUT, "outside"),
        (["--http-port", "8443", "--https-port", "8443"], ExitCode.INVALID_INPUT, "both"),
        (["--subpath", "jellyfin"], ExitCode.INVALID_INPUT, "start with"),
        (["--subpath", "/a/../b"], ExitCode.INVALID_INPUT, ".."),
        (["--media", "/definitely/not/here"], ExitCode.INVALID_INPUT, "does not exist"),
        (["--subnet", "10.0.0.0/30"], ExitCode.INVALID_INPUT, "too small"),
        (
            ["--lan-url", "http://192.168.1.10:8096", "--lan-subnet", "8.8.8.0/24"],
            ExitCode.INVALID_INPUT,
            "not a private range",
        ),
        (["--lan-url", "http://192.168.1.10:8096"], ExitCode.INVALID_INPUT, "needs"),
        (
            [
                "--lan-url",
                "http://jf.lan:8096",
                "--lan-subnet",
                "10.1.0.0/16",
                "--lan-subnet",
                "10.1.2.0/24",
            ],
            ExitCode.INVALID_INPUT,
            "overlap",
        ),
        (
            ["--lan-url", "http://jf.lan:8096", "--lan-subnet", "172.30.77.0/25"],
            ExitCode.INVALID_INPUT,
            "proxy network",
        ),
        (
            [
                "--jellyfin-network",
                "bridge",
                "--lan-url",
                "http://jf.lan:8096",
                "--lan-subnet",
                "192.168.1.0/24",
            ],
            ExitCode.INVALID_INPUT,
            "network_mode 'host'",
        ),
        (["--bogus"], ExitCode.USAGE, "--bogus"),
    ],
)
def test_bad_input_one_line_no_traceback_nothing_written(
    tmp_path: Path, args: list[str], code: int, fragment: str
) -> None:
    stack = tmp_path / "stack"
    argv = list(BASE)
    for index in range(0, len(args) - 1, 2):
        if args[index] in argv:
            position = argv.index(args[index])
            del argv[position : position + 2]
    result = stackgen(*argv, *args, "--dir", str(stack))
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr
    assert not stack.exists()


def test_unknown_proxy(tmp_path: Path) -> None:
    result = stackgen("init", "lighttpd", "--domain", "a.example.com", "--dir", str(tmp_path / "s"))
    assert result.returncode == ExitCode.INVALID_INPUT
    assert "unknown proxy 'lighttpd'" in result.stderr
    assert not (tmp_path / "s").exists()


def test_dir_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    result = stackgen(*BASE, "--dir", str(target))
    assert result.returncode == ExitCode.FILESYSTEM
    assert "not a folder" in result.stderr
    assert target.read_text() == "x"


def test_unwritable_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Root may write anywhere, so the refusal is exercised through os.access itself.
    from stackgen import stack
    from stackgen.errors import FilesystemError

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    monkeypatch.setattr(stack.os, "access", lambda path, mode: Path(path) != locked)
    with pytest.raises(FilesystemError, match="not writable"):
        stack.ensure_writable_dir(locked / "stack")
    assert list(locked.iterdir()) == []


def test_malformed_stackgen_toml_names_line_or_field(tmp_path: Path) -> None:
    assert stackgen(*BASE, "--dir", str(tmp_path)).returncode == 0
    config = tmp_path / "stackgen.toml"
    original = config.read_text()
    config.write_text(original.replace('domain = "jellyfin.example.com"', "domain = "))
    result = stackgen("render", "--dir", str(tmp_path))
    assert result.returncode == ExitCode.INVALID_INPUT
    assert "line" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    config.write_text(original.replace('mode = "acme"', 'mode = "acme"\nsslRedirect = true'))
    result = stackgen("render", "--dir", str(tmp_path))
    assert result.returncode == ExitCode.INVALID_INPUT
    assert "tls.sslRedirect: unknown field" in result.stderr
    config.write_text(original.replace("http = 80", "http = 99999"))
    result = stackgen("render", "--dir", str(tmp_path))
    assert "ports.http" in result.stderr


def test_render_keeps_hand_edits_and_force_replaces(tmp_path: Path) -> None:
    assert stackgen(*BASE, "--dir", str(tmp_path)).returncode == 0
    dynamic = tmp_path / "traefik/dynamic.toml"
    generated = dynamic.read_text()
    dynamic.write_text(generated + "# my tweak\n")
    config = tmp_path / "stackgen.toml"
    config.write_text(
        config.read_text().replace('timezone = "Etc/UTC"', 'timezone = "Europe/Paris"')
    )
    result = stackgen("render", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "kept your edit of traefik/dynamic.toml" in result.stderr
    assert dynamic.read_text().endswith("# my tweak\n")
    assert "Europe/Paris" in (tmp_path / "docker-compose.yml").read_text()
    diff = stackgen("render", "--dir", str(tmp_path), "--diff")
    assert diff.returncode == ExitCode.PROBLEMS_FOUND
    assert "-# my tweak" in diff.stdout
    forced = stackgen("render", "--dir", str(tmp_path), "--force")
    assert forced.returncode == 0
    assert dynamic.read_text() == generated
    clean = stackgen("render", "--dir", str(tmp_path), "--diff")
    assert clean.returncode == 0 and clean.stdout == ""


def test_init_refuses_an_existing_stack(tmp_path: Path) -> None:
    assert stackgen(*BASE, "--dir", str(tmp_path)).returncode == 0
    before = _snapshot(tmp_path)
    result = stackgen(*BASE, "--subpath", "/jf", "--dir", str(tmp_path))
    assert result.returncode == ExitCode.CONFLICT
    assert _snapshot(tmp_path) == before


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    result = stackgen(*BASE, "--dir", str(tmp_path / "s"), "--dry-run")
    assert result.returncode == 0
    assert "create" in result.stderr
    assert not (tmp_path / "s").exists()


def test_check_catches_removed_traefik_options_and_loose_modes(tmp_path: Path) -> None:
    assert stackgen(*BASE, "--dir", str(tmp_path)).returncode == 0
    ok = stackgen("check", "--dir", str(tmp_path), "--no-docker", "--json")
    assert ok.returncode == 0, ok.stdout
    dynamic = tmp_path / "traefik/dynamic.toml"
    dynamic.write_text(
        dynamic.read_text() + "\n[http.middlewares.old.headers]\n  sslRedirect = true\n"
    )
    (tmp_path / "traefik/acme.json").chmod(0o644)
    bad = stackgen("check", "--dir", str(tmp_path), "--no-docker", "--json")
    assert bad.returncode == ExitCode.PROBLEMS_FOUND
    messages = [f["message"] for f in json.loads(bad.stdout)["findings"] if f["status"] == "fail"]
    assert any("sslRedirect" in m and "removed in v3" in m for m in messages)
    assert any("acme.json" in m and "0o644" in m for m in messages)


def test_help_has_examples_and_version() -> None:
    for command in ("init", "render", "check"):
        result = stackgen(command, "--help")
        assert result.returncode == 0
        assert "Example:" in result.stdout
    version = stackgen("--version")
    assert version.returncode == 0 and version.stdout.startswith("stackgen ")


# --- smoke tests of the real entry point ---------------------------------------------------


def test_smoke_help_version_and_bare_command() -> None:
    version = stackgen_process("--version")
    assert version.returncode == 0 and version.stdout.startswith("stackgen ")
    bare = stackgen_process()
    assert bare.returncode == 0 and "Usage:" in bare.stdout and "verify" in bare.stdout


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--domain", "192.0.2.7"], ExitCode.INVALID_INPUT),
        (["--bogus"], ExitCode.USAGE),
    ],
)
def test_smoke_one_line_errors_and_exit_codes(tmp_path: Path, args: list[str], code: int) -> None:
    result = stackgen_process(*BASE, *args, "--dir", str(tmp_path / "stack"))
    assert result.returncode == code, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("stackgen: error: ")
    assert not (tmp_path / "stack").exists()


def test_smoke_init_writes_a_stack_and_json_to_stdout(tmp_path: Path) -> None:
    result = stackgen_process(*BASE, "--dir", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["written"] is True
    assert (tmp_path / "docker-compose.yml").is_file()


@pytest.mark.parametrize("proxy", ["apache"])
def test_http3_refused_in_one_line_nothing_written(tmp_path: Path, proxy: str) -> None:
    stack = tmp_path / "stack"
    result = stackgen(
        *("init", proxy, "--domain", "jf.example.com", "--tls", "internal", "--http3"),
        *("--dir", str(stack)),
    )
    assert result.returncode == ExitCode.INVALID_INPUT
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "http3: " in lines[0] and "HTTP/3" in lines[0]
    assert not stack.exists()


def test_http2_off_and_a_lan_url(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    result = stackgen(
        "init",
        "nginx",
        "--domain",
        "jf.example.com",
        "--tls",
        "internal",
        "--no-http2",
        "--lan-url",
        "http://192.168.1.10:8096",
        "--lan-subnet",
        "192.168.1.0/24",
        "--dir",
        str(stack),
    )
    assert result.returncode == 0, result.stderr
    config = tomllib.loads((stack / "stackgen.toml").read_text())
    assert config["http2"] is False
    assert config["jellyfin"]["lan_subnets"] == ["192.168.1.0/24"]
    assert "listen 443 ssl default_server;" in (stack / "nginx/conf.d/jellyfin.conf").read_text()
    root = ET.parse(stack / "jellyfin/config/config/network.xml").getroot()
    assert [e.text for e in root.findall("./PublishedServerUriBySubnet/string")] == [
        "192.168.1.0/24=http://192.168.1.10:8096",
        "external=https://jf.example.com",
    ]
    assert "JELLYFIN_PublishedServerUrl:" not in (stack / "docker-compose.yml").read_text()
