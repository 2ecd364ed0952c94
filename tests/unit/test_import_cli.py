"""`stackgen import` through the CLI: exit codes, one-line errors, nothing written on bad
input or --dry-run, the JSON report on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stackgen.errors import ExitCode
from tests.unit.import_support import EMAIL, FIXTURES, copy_fixture
from tests.unit.test_cli import stackgen

BAD_INPUTS = {
    "unknown.txt": ("just some notes\nnothing to see\n", "not a recognised proxy configuration"),
    "broken.conf": (
        "server {\n    listen 80;\n    location / {\n        proxy_pass http://127.0.0.1:8096;\n",
        "broken.conf:",
    ),
    "traefik.toml": ('[entryPoints\naddress = ":80"\n', "traefik.toml: "),
    "jellyfin.vhost": (
        "<VirtualHost *:80>\n    ServerName jf.example.com\n    ProxyPass / http://h:8096/\n",
        "jellyfin.vhost:1: <VirtualHost> is never closed",
    ),
    "haproxy.cfg": (
        "    bind *:80\nfrontend jf\n    default_backend jf\n",
        "haproxy.cfg:1: 'bind': expected a section",
    ),
    "Caddyfile": (
        "jf.example.com {\n    proxy / localhost:8096 {\n        transparent\n}\n",
        "Caddyfile:1: '{' is never closed",
    ),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_one_line_with_path_and_line_and_writes_nothing(
    name: str, tmp_path: Path
) -> None:
    text, expected = BAD_INPUTS[name]
    source = tmp_path / name
    source.write_text(text)
    stack = tmp_path / "stack"
    result = stackgen("import", str(source), "--dir", str(stack), "--email", EMAIL)
    assert result.returncode == ExitCode.INVALID_INPUT, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0], lines[0]
    assert str(source) in lines[0]
    assert not stack.exists()
    assert source.read_text() == text


def test_broken_compose_file_names_its_line(tmp_path: Path) -> None:
    old = copy_fixture("traefik/labels-bridge", tmp_path)
    (old / "docker-compose.yml").write_text("services:\n  jellyfin:\n    image: [unclosed\n")
    result = stackgen("import", str(old), "--dir", str(tmp_path / "stack"))
    assert result.returncode == ExitCode.INVALID_INPUT
    assert f"{old / 'docker-compose.yml'}:" in result.stderr
    assert not (tmp_path / "stack").exists()


def test_broken_acme_json_names_its_line(tmp_path: Path) -> None:
    old = copy_fixture("traefik/docs-folder", tmp_path)
    (old / "acme.json").write_text('{\n  "Account": {\n    "Email": \n}\n')
    result = stackgen("import", str(old), "--dir", str(tmp_path / "stack"))
    assert result.returncode == ExitCode.INVALID_INPUT
    assert f"{old / 'acme.json'}:4" in result.stderr
    assert not (tmp_path / "stack").exists()


def test_placeholder_domain_is_named_with_its_line(tmp_path: Path) -> None:
    source = tmp_path / "jellyfin.conf"
    source.write_text(
        "server {\n    listen 80;\n    server_name DOMAIN_NAME;\n"
        "    location / { proxy_pass http://SERVER_IP_ADDRESS:8096; }\n}\n"
    )
    result = stackgen("import", str(source), "--dir", str(tmp_path / "stack"), "--email", EMAIL)
    assert result.returncode == ExitCode.INVALID_INPUT
    assert f"{source}:3: 'DOMAIN_NAME' is not a fully qualified name" in result.stderr


def test_upstream_not_found_asks_for_jellyfin_url(tmp_path: Path) -> None:
    source = tmp_path / "site.conf"
    source.write_text(
        "server {\n    server_name jf.example.com;\n"
        "    location / { proxy_pass http://10.0.0.9:3000; }\n}\n"
    )
    stack = tmp_path / "stack"
    result = stackgen("import", str(source), "--dir", str(stack), "--email", EMAIL)
    assert result.returncode == ExitCode.INVALID_INPUT
    assert "no site proxies to Jellyfin" in result.stderr
    assert "--jellyfin-url" in result.stderr
    assert "10.0.0.9:3000" in result.stderr
    assert not stack.exists()
    fixed = stackgen(
        "import",
        str(source),
        "--dir",
        str(stack),
        "--email",
        EMAIL,
        "--jellyfin-url",
        "http://10.0.0.9:3000",
    )
    assert fixed.returncode == 0, fixed.stderr
    assert (stack / "stackgen.toml").is_file()


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    result = stackgen(
        "import", str(FIXTURES / "caddy" / "Caddyfile"), "--dir", str(stack), "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    assert "dry run: nothing written" in result.stderr
    assert "translated" in result.stderr
    assert not stack.exists()


def test_json_report_on_stdout(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    result = stackgen(
        "import",
        str(FIXTURES / "apache" / "plain-http.conf"),
        "--dir",
        str(stack),
        "--email",
        EMAIL,
        "--to",
        "caddy",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["source"] == "apache"
    assert data["proxy"] == "caddy"
    assert data["written"] is True
    assert data["domain"] == "jellyfin.example.org"
    entries = data["report"]
    assert entries and set(entries[0]) == {"source_file", "line", "directive", "action", "reason"}
    assert {e["action"] for e in entries} <= {"translated", "replaced", "dropped", "skipped"}
    proxy_pass = [e for e in entries if e["directive"].startswith("ProxyPass /socket")]
    assert proxy_pass and proxy_pass[0]["line"] == 7
    assert any(f["path"] == "stackgen.toml" for f in data["files"])
    # The human table still goes to stderr.
    assert "replaced" in result.stderr


def test_import_refuses_a_stack_folder_that_has_one(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    args = ["import", str(FIXTURES / "caddy" / "Caddyfile"), "--dir", str(stack)]
    assert stackgen(*args).returncode == 0
    again = stackgen(*args)
    assert again.returncode == ExitCode.CONFLICT
    assert "stackgen.toml exists" in again.stderr


def test_import_never_writes_into_the_old_folder(tmp_path: Path) -> None:
    old = copy_fixture("traefik/labels-bridge", tmp_path)
    result = stackgen("import", str(old), "--dir", str(old / "new"))
    assert result.returncode == ExitCode.INVALID_INPUT
    assert not (old / "new").exists()


def test_docs_form_with_proxy_lines_commented_out_says_so(tmp_path: Path) -> None:
    source = tmp_path / "jellyfin.conf"
    source.write_text(
        "server {\n    listen 80;\n    server_name jellyfin.example.com;\n"
        "    # return 301 https://$host$request_uri;\n}\n\n"
        "#server {\n#    listen 443 ssl http2;\n#    location / {\n"
        "#        proxy_pass http://127.0.0.1:8096;\n#    }\n#}\n"
    )
    stack = tmp_path / "stack"
    result = stackgen("import", str(source), "--dir", str(stack), "--email", EMAIL)
    assert result.returncode == ExitCode.INVALID_INPUT
    assert f"{source}:10: the proxy lines are commented out" in result.stderr
    assert not stack.exists()
