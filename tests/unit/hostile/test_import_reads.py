"""`stackgen import` and `init --tls files` read only what they should: files under `--root`,
regular files of bounded size, parsers bounded in nesting and expansion; a kept key is loaded,
matched to its certificate and copied into the stack, never mounted from the old place."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path

import pytest

from stackgen.errors import ExitCode
from stackgen.inputs import MAX_INPUT_BYTES
from tests.unit.hostile.bounded import Outcome, run_bounded
from tests.unit.import_support import EMAIL, copy_fixture, lineage, make_cert
from tests.unit.test_cli import stackgen

LIVE = "etc/letsencrypt/live/jellyfin.example.com"


def _refused(outcome: Outcome, *fragments: str) -> None:
    assert outcome.traceback == "", outcome.traceback
    assert outcome.code == ExitCode.INVALID_INPUT, outcome.stderr
    assert len(outcome.lines) == 1, outcome.stderr
    for fragment in fragments:
        assert fragment in outcome.lines[0], outcome.lines[0]


def _nothing_written(stack: Path) -> None:
    assert not stack.exists() or not any(stack.iterdir()), sorted(stack.rglob("*"))


def _nginx_site(tmp_path: Path, cert: str, key: str) -> Path:
    site = tmp_path / "old" / "jellyfin.conf"
    site.parent.mkdir(parents=True, exist_ok=True)
    site.write_text(
        "server {\n    listen 443 ssl;\n    server_name jellyfin.example.com;\n"
        f"    ssl_certificate {cert};\n    ssl_certificate_key {key};\n"
        "    location / {\n        proxy_pass http://127.0.0.1:8096;\n    }\n}\n"
    )
    return site


def test_a_relative_root_gives_a_stack_its_own_check_accepts(tmp_path: Path) -> None:
    """Before: `--root rel` made tls.cert_file 'rel/etc/...', relative to the stack folder,
    where it does not exist: `check` rejected the stack import had just written."""
    old = copy_fixture("nginx/jellyfin.conf", tmp_path)
    lineage(tmp_path / "rel", "jellyfin.example.com", make_cert("jellyfin.example.com"))
    result = stackgen("import", str(old), "--dir", "stack", "--root", "rel", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    checked = stackgen("check", "--no-docker", "--dir", str(tmp_path / "stack"))
    assert checked.returncode == 0, checked.stderr


def test_a_fifo_to_import_is_refused_not_waited_on(tmp_path: Path) -> None:
    """Before: reading a FIFO blocked forever."""
    fifo = tmp_path / "jellyfin.conf"
    os.mkfifo(fifo)
    _refused(
        run_bounded("import", str(fifo), "--dir", str(tmp_path / "stack"), seconds=10),
        str(fifo),
        "not a regular file",
    )
    _nothing_written(tmp_path / "stack")


def test_dev_zero_is_refused_not_read_to_exhaustion(tmp_path: Path) -> None:
    """Before: MemoryError from reading /dev/zero whole."""
    _refused(
        run_bounded("import", "/dev/zero", "--dir", str(tmp_path / "stack")),
        "/dev/zero",
        "not a regular file",
    )


def test_an_oversized_file_is_refused(tmp_path: Path) -> None:
    site = tmp_path / "jellyfin.conf"
    with site.open("w") as out:
        out.write("server {\n")
        out.write("# padding\n" * (MAX_INPUT_BYTES // 10 + 1))
    _refused(
        run_bounded("import", str(site), "--dir", str(tmp_path / "stack")),
        str(site),
        "larger than",
    )


def test_a_key_outside_root_is_refused(tmp_path: Path) -> None:
    """`../../..` out of --root: before, the path was mounted into the proxy as given."""
    root = tmp_path / "root"
    pair = make_cert("jellyfin.example.com")
    lineage(root, "jellyfin.example.com", pair)
    (tmp_path / "secret.pem").write_bytes(pair.key_pem)
    site = _nginx_site(tmp_path, f"/{LIVE}/fullchain.pem", "/../secret.pem")
    stack = tmp_path / "stack"
    _refused(
        run_bounded("import", str(site), "--dir", str(stack), "--root", str(root)),
        "outside --root",
    )
    _nothing_written(stack)


def test_a_symlinked_key_leading_out_of_root_is_refused(tmp_path: Path) -> None:
    """The nginx site's key is a link to a file outside the old server's tree (/etc/shadow on
    the server itself): before, it was bind-mounted into a root proxy."""
    root = tmp_path / "root"
    live = lineage(root, "jellyfin.example.com", make_cert("jellyfin.example.com"))
    (tmp_path / "shadow").write_text("root:$6$salt$hash:19000:0:99999:7:::\n")
    (live / "privkey.pem").unlink()
    (live / "privkey.pem").symlink_to(tmp_path / "shadow")
    old = copy_fixture("nginx/jellyfin.conf", tmp_path)
    stack = tmp_path / "stack"
    _refused(
        run_bounded("import", str(old), "--dir", str(stack), "--root", str(root)),
        "privkey.pem",
        "outside --root",
    )
    _nothing_written(stack)


def test_a_key_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    """With --root / a link to /etc/shadow stays inside the root: the key must load."""
    root = tmp_path / "root"
    live = lineage(root, "jellyfin.example.com", make_cert("jellyfin.example.com"))
    (live / "privkey.pem").write_text("root:$6$salt$hash:19000:0:99999:7:::\n")
    old = copy_fixture("nginx/jellyfin.conf", tmp_path)
    stack = tmp_path / "stack"
    outcome = run_bounded("import", str(old), "--dir", str(stack), "--root", str(root))
    _refused(outcome, "privkey.pem", "private key")
    assert "$6$" not in outcome.stderr  # the file's content is never echoed
    _nothing_written(stack)


def test_a_key_of_another_certificate_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    live = lineage(root, "jellyfin.example.com", make_cert("jellyfin.example.com"))
    (live / "privkey.pem").write_bytes(make_cert("jellyfin.example.com").key_pem)
    old = copy_fixture("nginx/jellyfin.conf", tmp_path)
    stack = tmp_path / "stack"
    _refused(
        run_bounded("import", str(old), "--dir", str(stack), "--root", str(root)),
        "does not match",
    )
    _nothing_written(stack)


def test_a_fifo_key_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    live = lineage(root, "jellyfin.example.com", make_cert("jellyfin.example.com"))
    (live / "privkey.pem").unlink()
    os.mkfifo(live / "privkey.pem")
    old = copy_fixture("nginx/jellyfin.conf", tmp_path)
    _refused(
        run_bounded(
            "import", str(old), "--dir", str(tmp_path / "stack"), "--root", str(root), seconds=10
        ),
        "not a regular file",
    )


def test_the_kept_pair_is_copied_into_the_stack_not_mounted(tmp_path: Path) -> None:
    root = tmp_path / "root"
    pair = make_cert("jellyfin.example.com")
    lineage(root, "jellyfin.example.com", pair)
    old = copy_fixture("nginx/jellyfin.conf", tmp_path)
    stack = tmp_path / "stack"
    result = stackgen("import", str(old), "--dir", str(stack), "--root", str(root))
    assert result.returncode == 0, result.stderr
    tls = tomllib.loads((stack / "stackgen.toml").read_text())["tls"]
    assert (tls["cert_file"], tls["key_file"]) == (
        "tls/imported/fullchain.pem",
        "tls/imported/privkey.pem",
    )
    assert (stack / tls["key_file"]).read_bytes() == pair.key_pem
    assert (stack / tls["cert_file"]).read_bytes() == pair.chain_pem
    # The invoking user's; the proxy (run_as) may read the key through its group only, and
    # no container's user can change either file.
    for name in (tls["cert_file"], tls["key_file"]):
        assert (stack / name).stat().st_uid == os.geteuid()
        assert stat.S_IMODE((stack / name).stat().st_mode) & 0o022 == 0
    assert stat.S_IMODE((stack / tls["key_file"]).stat().st_mode) & 0o007 == 0
    assert str(root) not in (stack / "docker-compose.yml").read_text()


def test_a_billion_laughs_compose_file_is_refused_quickly(tmp_path: Path) -> None:
    """Before: 30 s and 2 GB expanding YAML aliases."""
    folder = copy_fixture("traefik/labels-bridge", tmp_path)
    lines = ['x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"x{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    compose = folder / "docker-compose.yml"
    compose.write_text(compose.read_text() + "\n" + "\n".join(f"{line}" for line in lines) + "\n")
    _refused(
        run_bounded("import", str(folder), "--dir", str(tmp_path / "stack"), "--email", EMAIL),
        "docker-compose.yml",
        "alias",
    )


DEPTH = 100_000


def _deep(kind: str) -> tuple[str, str]:
    """(file name, text) nested DEPTH levels deep in each parser's own syntax."""
    if kind == "acme.json":
        return kind, "[" * DEPTH + "]" * DEPTH
    if kind == "toml":
        return "traefik.toml", "x = " + "[" * DEPTH + "]" * DEPTH + "\n"
    if kind == "yaml":
        return "docker-compose.yml", "services: " + "[" * DEPTH + "]" * DEPTH + "\n"
    if kind == "apache":
        return "jellyfin.conf", (
            "<VirtualHost *:443>\nServerName jellyfin.example.com\n"
            + "<IfModule x>\n" * DEPTH
            + "</IfModule>\n" * DEPTH
            + "ProxyPass / http://127.0.0.1:8096/\n</VirtualHost>\n"
        )
    if kind == "caddy":
        return "Caddyfile", (
            "jellyfin.example.com {\n"
            + "x {\n" * DEPTH
            + "}\n" * DEPTH
            + "proxy / 127.0.0.1:8096\n}\n"
        )
    if kind == "nginx":
        return "jellyfin.conf", (
            "server {\nserver_name jellyfin.example.com;\n"
            + "location / {\n" * DEPTH
            + "}\n" * DEPTH
            + "proxy_pass http://127.0.0.1:8096;\n}\n"
        )
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["acme.json", "toml", "yaml", "apache", "caddy", "nginx"])
def test_deep_nesting_is_one_line_not_a_recursion_traceback(kind: str, tmp_path: Path) -> None:
    """Before: RecursionError tracebacks from every nested format."""
    name, text = _deep(kind)
    if kind in ("acme.json", "toml", "yaml"):
        folder = copy_fixture("traefik/docs-folder", tmp_path)
        (folder / name).write_text(text)
        target = folder
    else:
        target = tmp_path / name
        target.write_text(text)
    outcome = run_bounded("import", str(target), "--dir", str(tmp_path / "stack"), "--email", EMAIL)
    _refused(outcome, name, "nested")
    _nothing_written(tmp_path / "stack")


def test_a_non_ascii_digit_port_label_is_one_line(tmp_path: Path) -> None:
    """Before: `traefik.port: "²"` passed str.isdigit() and int() raised ValueError."""
    folder = copy_fixture("traefik/labels-bridge", tmp_path)
    compose = folder / "docker-compose.yml"
    text = compose.read_text()
    assert "traefik.port" in text
    compose.write_text(text.replace("traefik.port=8096", "traefik.port=²"))
    assert "=²" in compose.read_text()
    _refused(
        run_bounded("import", str(folder), "--dir", str(tmp_path / "stack"), "--email", EMAIL),
        "traefik.port",
    )


@pytest.mark.parametrize("digits", ["٤٤٣", "\uff14\uff14\uff13"])
def test_non_ascii_digits_are_not_read_as_a_port(digits: str, tmp_path: Path) -> None:
    """Before: `listen ٤٤٣ ssl` matched `\\d` and silently became port 443."""
    site = tmp_path / "jellyfin.conf"
    site.write_text(
        f"server {{\n    listen {digits} ssl;\n    server_name jellyfin.example.com;\n"
        "    location / {\n        proxy_pass http://127.0.0.1:8096;\n    }\n}\n"
    )
    result = stackgen(
        "import",
        str(site),
        "--dir",
        str(tmp_path / "stack"),
        "--email",
        EMAIL,
        "--dry-run",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    entries = [e for e in json.loads(result.stdout)["report"] if digits in e["directive"]]
    assert [e["action"] for e in entries] == ["dropped"], entries
