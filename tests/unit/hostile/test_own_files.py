"""`init --tls files`, `render` and `check` read the user's certificate, key and
`stackgen.toml` as untrusted input: regular files of bounded size and nesting, a key that
loads and matches its certificate, the pair copied into the stack."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from stackgen.errors import ExitCode
from tests.unit.hostile.bounded import run_bounded
from tests.unit.import_support import make_cert
from tests.unit.test_cli import stackgen

FILES = ["init", "nginx", "--domain", "jellyfin.example.com", "--tls", "files"]


def _pair(folder: Path) -> tuple[Path, Path]:
    pair = make_cert("jellyfin.example.com")
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "fullchain.pem", folder / "privkey.pem"
    cert.write_bytes(pair.chain_pem)
    key.write_bytes(pair.key_pem)
    return cert, key


def _one_line(code: int | None, stderr: str, *fragments: str) -> None:
    lines = stderr.strip().splitlines()
    assert code == ExitCode.INVALID_INPUT, stderr
    assert len(lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_init_copies_the_matched_pair_into_the_stack(tmp_path: Path) -> None:
    cert, key = _pair(tmp_path / "own")
    stack = tmp_path / "stack"
    result = stackgen(*FILES, "--cert-file", str(cert), "--key-file", str(key), "--dir", str(stack))
    assert result.returncode == 0, result.stderr
    tls = tomllib.loads((stack / "stackgen.toml").read_text())["tls"]
    assert (stack / tls["cert_file"]).read_bytes() == cert.read_bytes()
    assert (stack / tls["key_file"]).read_bytes() == key.read_bytes()
    # The invoking user's, readable by the proxy (run_as) through its group only.
    key_stat = (stack / tls["key_file"]).stat()
    assert key_stat.st_uid == os.geteuid()
    assert stat.S_IMODE(key_stat.st_mode) & 0o027 == 0
    assert str(tmp_path / "own") not in (stack / "docker-compose.yml").read_text()
    assert stackgen("check", "--no-docker", "--dir", str(stack)).returncode == 0


def test_init_refuses_a_key_of_another_certificate(tmp_path: Path) -> None:
    cert, key = _pair(tmp_path / "own")
    key.write_bytes(make_cert("jellyfin.example.com").key_pem)
    stack = tmp_path / "stack"
    result = stackgen(*FILES, "--cert-file", str(cert), "--key-file", str(key), "--dir", str(stack))
    _one_line(result.returncode, result.stderr, str(key), "does not match")
    assert not stack.exists()


def test_init_refuses_a_key_that_is_not_a_key(tmp_path: Path) -> None:
    """`--key-file /etc/shadow`: never mounted into the proxy, never echoed."""
    cert, key = _pair(tmp_path / "own")
    key.write_text("root:$6$salt$hash:19000:0:99999:7:::\n")
    stack = tmp_path / "stack"
    result = stackgen(*FILES, "--cert-file", str(cert), "--key-file", str(key), "--dir", str(stack))
    _one_line(result.returncode, result.stderr, str(key), "private key")
    assert "$6$" not in result.stderr
    assert not stack.exists()


def test_init_refuses_a_fifo_key_without_waiting(tmp_path: Path) -> None:
    cert, key = _pair(tmp_path / "own")
    key.unlink()
    os.mkfifo(key)
    outcome = run_bounded(
        *FILES,
        "--cert-file",
        str(cert),
        "--key-file",
        str(key),
        "--dir",
        str(tmp_path / "s"),
        seconds=10,
    )
    assert outcome.traceback == "", outcome.traceback
    _one_line(outcome.code, outcome.stderr, "not a regular file")


def test_check_fails_a_stack_whose_key_does_not_match(tmp_path: Path) -> None:
    """A hand-edited stackgen.toml pointing at another key: `check` says so (before: pass)."""
    cert, key = _pair(tmp_path / "own")
    stack = tmp_path / "stack"
    assert (
        stackgen(
            *FILES, "--cert-file", str(cert), "--key-file", str(key), "--dir", str(stack)
        ).returncode
        == 0
    )
    (stack / "tls" / "imported" / "privkey.pem").write_bytes(
        make_cert("jellyfin.example.com").key_pem
    )
    result = stackgen("check", "--no-docker", "--dir", str(stack))
    assert result.returncode == ExitCode.PROBLEMS_FOUND, result.stderr
    assert "does not match" in result.stderr


def test_check_fails_a_key_that_is_a_link_out_of_the_stack(tmp_path: Path) -> None:
    cert, key = _pair(tmp_path / "own")
    stack = tmp_path / "stack"
    assert (
        stackgen(
            *FILES, "--cert-file", str(cert), "--key-file", str(key), "--dir", str(stack)
        ).returncode
        == 0
    )
    copied = stack / "tls" / "imported" / "privkey.pem"
    copied.unlink()
    copied.symlink_to(key)
    result = stackgen("check", "--no-docker", "--dir", str(stack))
    assert result.returncode == ExitCode.PROBLEMS_FOUND, result.stderr
    assert "symbolic link" in result.stderr


@pytest.mark.parametrize("command", ["render", "check"])
def test_a_deeply_nested_stackgen_toml_is_one_line(command: str, tmp_path: Path) -> None:
    """Before: RecursionError tracebacks from `render` and `check`."""
    stack = tmp_path / "stack"
    assert (
        stackgen(
            "init",
            "traefik",
            "--domain",
            "jellyfin.example.com",
            "--email",
            "admin@example.com",
            "--dir",
            str(stack),
        ).returncode
        == 0
    )
    config = stack / "stackgen.toml"
    config.write_text(config.read_text() + "x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    args = [command, "--dir", str(stack)] + (["--no-docker"] if command == "check" else [])
    outcome = run_bounded(*args)
    assert outcome.traceback == "", outcome.traceback
    _one_line(outcome.code, outcome.stderr, "stackgen.toml", "nested too deeply")


def test_a_fifo_stackgen_toml_is_refused_without_waiting(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    stack.mkdir()
    os.mkfifo(stack / "stackgen.toml")
    outcome = run_bounded("render", "--dir", str(stack), seconds=10)
    assert outcome.traceback == "", outcome.traceback
    assert outcome.code in (ExitCode.INVALID_INPUT, ExitCode.FILESYSTEM), outcome.stderr
    assert "not a regular file" in outcome.stderr


@pytest.mark.parametrize("option", ["--ca-bundle", "--trust-bundle"])
def test_a_bundle_that_is_not_pem_certificates_is_refused(option: str, tmp_path: Path) -> None:
    """`--ca-bundle /etc/shadow` was mounted into the ACME client's container as given."""
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$salt$hash:19000:0:99999:7:::\n")
    stack = tmp_path / "stack"
    result = stackgen(
        "init",
        "nginx",
        "--domain",
        "jellyfin.example.com",
        "--email",
        "admin@example.com",
        option,
        str(secret),
        "--dir",
        str(stack),
    )
    _one_line(result.returncode, result.stderr, str(secret), "PEM certificate")
    assert "$6$" not in result.stderr
    assert not stack.exists()


def test_a_fifo_bundle_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "ca.pem"
    os.mkfifo(fifo)
    outcome = run_bounded(
        "init",
        "nginx",
        "--domain",
        "jellyfin.example.com",
        "--email",
        "admin@example.com",
        "--ca-bundle",
        str(fifo),
        "--dir",
        str(tmp_path / "stack"),
        seconds=10,
    )
    assert outcome.traceback == "", outcome.traceback
    _one_line(outcome.code, outcome.stderr, "not a regular file")


def test_check_fails_a_bundle_replaced_by_something_else(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(make_cert("ca.example.net").chain_pem)
    assert (
        stackgen(
            "init",
            "nginx",
            "--domain",
            "jellyfin.example.com",
            "--email",
            "admin@example.com",
            "--ca-bundle",
            str(bundle),
            "--dir",
            str(stack),
        ).returncode
        == 0
    )
    bundle.write_text("not a certificate\n")
    result = stackgen("check", "--no-docker", "--dir", str(stack))
    assert result.returncode == ExitCode.PROBLEMS_FOUND, result.stderr
    assert "PEM certificate" in result.stderr


def test_check_only_warns_about_a_lineage_mounted_from_outside(tmp_path: Path) -> None:
    """A stack written before the copy (tls.cert_file naming a certbot lineage, whose files
    are links) still passes check, with a warning that says how to move to the copy."""
    cert, key = _pair(tmp_path / "archive")
    live = tmp_path / "live"
    live.mkdir()
    (live / "fullchain.pem").symlink_to(cert)
    (live / "privkey.pem").symlink_to(key)
    stack = tmp_path / "stack"
    assert (
        stackgen(
            "init",
            "nginx",
            "--domain",
            "jellyfin.example.com",
            "--email",
            "admin@example.com",
            "--dir",
            str(stack),
        ).returncode
        == 0
    )
    config = stack / "stackgen.toml"
    text = config.read_text().replace(
        'mode = "acme"',
        (
            f'mode = "files"\ncert_file = "{live / "fullchain.pem"}"\n'
            f'key_file = "{live / "privkey.pem"}"'
        ),
    )
    config.write_text(text)
    assert stackgen("render", "--dir", str(stack)).returncode == 0
    result = stackgen("check", "--no-docker", "--dir", str(stack))
    assert result.returncode == 0, result.stderr
    assert "outside the stack folder" in result.stderr
