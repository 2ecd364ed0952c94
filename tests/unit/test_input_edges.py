"""Every value refused where it enters, strictly; broken files fail `check`."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from stackgen.config_file import build_config
from stackgen.errors import ExitCode, InvalidInputError
from stackgen.integrity import compose_services
from stackgen.models import parse_config
from stackgen.render import render_stack
from tests.unit.test_cli import BASE, stackgen

MINIMAL: dict[str, Any] = {
    "proxy": "traefik",
    "domain": "jellyfin.example.com",
    "email": "admin@example.com",
}


def _config(**tables: Any) -> dict[str, Any]:
    return {**MINIMAL, **tables}


def _refused(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        build_config(data, Path("/"), check_paths=False)
    message = str(raised.value)
    assert fragment in message, message
    assert "\n" not in message


@pytest.mark.parametrize("value", [True, "80", 80.0, None, [80]])
def test_a_port_is_an_integer_never_coerced(value: object) -> None:
    """Before: `ports.http = true` became published port 1, "80" and 80.0 became 80."""
    _refused(_config(ports={"http": value}), "ports.http")
    _refused(_config(jellyfin={"port": value}), "jellyfin.port")


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"schema_version": True}, "schema_version"),
        ({"ports": {"listen_address": 1}}, "ports.listen_address"),
        ({"network": {"subnet": 2886749440}}, "network.subnet"),
        ({"jellyfin": {"media": [{"source": "/m", "read_only": "yes"}]}}, "read_only"),
        ({"jellyfin": {"media": [{"source": "/m", "read_only": 0}]}}, "read_only"),
    ],
)
def test_other_fields_refuse_coercion(table: dict[str, Any], fragment: str) -> None:
    _refused(_config(**table), fragment)


@pytest.mark.parametrize(
    "target", ["/config", "/cache", "/config/", "/config/data", "/", "/cache//x", "//config"]
)
def test_a_media_target_may_not_hide_jellyfins_folders(target: str) -> None:
    """Before: --media SRC:/config mounted the media over Jellyfin's database."""
    _refused(_config(jellyfin={"media": [{"source": "/srv/m", "target": target}]}), "collides with")


def test_media_targets_are_distinct() -> None:
    media = [
        {"source": "/srv/a", "target": "/media/x"},
        {"source": "/srv/b", "target": "/media/x/"},
    ]
    _refused(_config(jellyfin={"media": media}), "two media folders are mounted on '/media/x'")
    # Same default target (the source's name) from two folders:
    media = [{"source": "/srv/a/movies"}, {"source": "/srv/b/movies"}]
    _refused(_config(jellyfin={"media": media}), "'/media/movies'")


def test_a_target_with_a_colon_is_refused() -> None:
    _refused(
        _config(jellyfin={"media": [{"source": "/srv/m", "target": "/t:rw:ro"}]}),
        "must not contain ':'",
    )


def test_a_source_with_a_colon_is_written_in_the_long_syntax(tmp_path: Path) -> None:
    """Before: `/srv/a:b` went into the short syntax, which Docker splits at the ':'."""
    config = parse_config(
        _config(jellyfin={"media": [{"source": "/srv/a:b", "read_only": False}]}),
        tmp_path,
        check_paths=False,
    )
    compose = next(f for f in render_stack(config, tmp_path)[0] if f.path == "docker-compose.yml")
    text = compose.content.decode()
    assert '        source: "/srv/a:b"\n        target: "/media/a_b"\n' in text
    assert "        read_only: false\n" in text


@pytest.mark.parametrize(
    ("media", "fragment"),
    [
        ("SRC:/t:rw:ro", "more than one mode"),
        (":/t", "no source"),
        ("/srv:/config", "collides with Jellyfin's /config"),
    ],
)
def test_media_on_the_command_line(tmp_path: Path, media: str, fragment: str) -> None:
    result = stackgen(*BASE, "--media", media, "--dir", str(tmp_path / "s"))
    assert result.returncode == ExitCode.INVALID_INPUT, result.stderr
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_media_with_colons_on_the_command_line(tmp_path: Path) -> None:
    source = tmp_path / "a:b"
    source.mkdir()
    stack = tmp_path / "s"
    result = stackgen(*BASE, "--media", f"{source}:/media/ab:rw", "--dir", str(stack))
    assert result.returncode == 0, result.stderr
    media = tomllib.loads((stack / "stackgen.toml").read_text())["jellyfin"]["media"]
    assert media == [{"source": str(source), "target": "/media/ab", "read_only": False}]


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe/Pariss", "UTC+1", "../etc/passwd"])
def test_a_timezone_must_be_in_the_tz_database(zone: str) -> None:
    _refused(_config(jellyfin={"timezone": zone}), "timezone")


@pytest.mark.parametrize("zone", ["Europe/Paris", "Etc/UTC", "America/Argentina/Buenos_Aires"])
def test_tz_database_names_are_accepted(zone: str) -> None:
    build_config(_config(jellyfin={"timezone": zone}), Path("/"), check_paths=False)


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "ftp://jf.example.com",
        "https://",
        "https:///path",
        "jf.example.com",
        "https://jf.example.com:99999",
        "https://user@jf.example.com",
        "https://jf.example.com/?q=1",
        "https://bad_host.example.com",
    ],
)
def test_a_published_url_is_parsed(url: str) -> None:
    _refused(_config(jellyfin={"published_url": url}), "jellyfin.published_url")


@pytest.mark.parametrize(
    "url", ["https://jf.example.com", "http://192.168.1.10:8096", "https://jf.example.com/jf"]
)
def test_good_published_urls(url: str) -> None:
    build_config(_config(jellyfin={"published_url": url}), Path("/"), check_paths=False)


def test_bad_cli_values_are_refused_in_one_line(tmp_path: Path) -> None:
    for args, fragment in (
        (["--timezone", "Mars/Olympus"], "tz database"),
        (["--published-url", "not a url"], "not a URL"),
        (["--http-port", "80.0"], "80.0"),
    ):
        result = stackgen(*BASE, *args, "--dir", str(tmp_path / "s"))
        assert result.returncode in (ExitCode.INVALID_INPUT, ExitCode.USAGE), result.stderr
        assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "s").exists()


def test_strict_values_in_stackgen_toml(tmp_path: Path) -> None:
    assert stackgen(*BASE, "--dir", str(tmp_path)).returncode == 0
    config = tmp_path / "stackgen.toml"
    original = config.read_text()
    for old, new in (("http = 80", "http = true"), ("http = 80", 'http = "80"')):
        config.write_text(original.replace(old, new))
        result = stackgen("render", "--dir", str(tmp_path))
        assert result.returncode == ExitCode.INVALID_INPUT, result.stderr
        assert "ports.http" in result.stderr and len(result.stderr.strip().splitlines()) == 1


# --- broken files ---------------------------------------------------------------------------


def test_compose_services_reads_the_top_level_keys() -> None:
    text = (
        "name: x\nservices:\n  jellyfin:\n    image: a\n  proxy:  # c\n    x: 1\nnetworks:\n  a:\n"
    )
    assert compose_services(text) == {"jellyfin", "proxy"}
    assert compose_services("services:\n  jellyfin:\n    ima") == {"jellyfin"}
    assert compose_services("") == set()


def _check(stack: Path) -> tuple[int, list[str]]:
    result = stackgen("check", "--dir", str(stack), "--no-docker", "--json")
    findings = json.loads(result.stdout)["findings"]
    return result.returncode, [f["message"] for f in findings if f["status"] == "fail"]


def test_a_truncated_compose_file_fails_check(tmp_path: Path) -> None:
    """Before: only a "hand-edited" warning, and `up` started half a stack."""
    assert stackgen(*BASE, "--dir", str(tmp_path)).returncode == 0
    compose = tmp_path / "docker-compose.yml"
    text = compose.read_text()
    compose.write_text(text[: text.index("  jellyfin:")])
    code, fails = _check(tmp_path)
    assert code == ExitCode.PROBLEMS_FOUND
    assert any("lacks stackgen's service(s) fail2ban, jellyfin " in m for m in fails), fails


def test_an_acme_json_that_is_not_json_fails_check(tmp_path: Path) -> None:
    """Before: check accepted it; Traefik then refuses to start."""
    assert stackgen(*BASE, "--dir", str(tmp_path)).returncode == 0
    assert _check(tmp_path)[0] == 0  # empty is how Traefik starts
    (tmp_path / "traefik/acme.json").write_text('{"acme": {"Certificates": [')
    code, fails = _check(tmp_path)
    assert code == ExitCode.PROBLEMS_FOUND
    assert any("traefik/acme.json is not JSON" in m for m in fails), fails


def test_a_broken_network_xml_fails_check(tmp_path: Path) -> None:
    assert stackgen(*BASE, "--dir", str(tmp_path)).returncode == 0
    (tmp_path / "jellyfin/config/config/network.xml").write_text("<NetworkConfiguration><Kno")
    code, fails = _check(tmp_path)
    assert code == ExitCode.PROBLEMS_FOUND
    assert any("network.xml" in m for m in fails), fails


def test_a_broken_stackgen_toml_is_one_line_exit_3(tmp_path: Path) -> None:
    assert stackgen(*BASE, "--dir", str(tmp_path)).returncode == 0
    (tmp_path / "stackgen.toml").write_bytes(b"\xff\xfe garbage = [")
    for command in ("render", "check", "up"):
        result = stackgen(command, "--dir", str(tmp_path))
        assert result.returncode in (ExitCode.INVALID_INPUT, ExitCode.FILESYSTEM), command
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "stackgen.toml" in result.stderr
    # `down` still finds the project, from the manifest (tests/integration/test_lifecycle.py
    # proves it removes the containers).
    result = stackgen("down", "--dir", str(tmp_path))
    assert (result.returncode, result.stderr.strip()) == (0, "down: jellyfin-example-com")


def test_a_garbled_manifest_does_not_block_and_says_how_to_recover(tmp_path: Path) -> None:
    """Before: every command failed on it, without saying how to recover."""
    assert stackgen(*BASE, "--dir", str(tmp_path)).returncode == 0
    (tmp_path / ".stackgen/manifest.json").write_text('{"files": ')
    result = stackgen("render", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "render --force" in warnings[0], result.stderr
    # The render wrote a fresh manifest: the next command is quiet again.
    again = stackgen("render", "--dir", str(tmp_path))
    assert "warning" not in again.stderr
    assert stackgen("check", "--dir", str(tmp_path), "--no-docker").returncode == 0


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"jellyfin": {"config_dir": "cfg:x"}}, "contains ':'"),
        ({"jellyfin": {"cache_dir": "$HOME/cache"}}, "contains '$'"),
        ({"jellyfin": {"config_dir": "/"}}, "root folder"),
        ({"jellyfin": {"config_dir": "a\tb"}}, "control characters"),
        ({"jellyfin": {"media": [{"source": "/srv/${X}"}]}}, "contains '$'"),
        ({"jellyfin": {"media": [{"source": "/m", "target": "/m/$x"}]}}, "'$'"),
        ({"jellyfin": {"published_url": "https://jf.example.com/$x"}}, "'$'"),
        ({"tls": {"ca_bundle": "ca:bundle.pem"}}, "contains ':'"),
    ],
)
def test_what_compose_would_split_or_interpolate_is_refused(
    table: dict[str, Any], fragment: str
) -> None:
    """Found by the property tests: Compose reads '$' as a variable and splits at ':'."""
    _refused(_config(**table), fragment)
