"""Nothing a hostile config, a hostile server or a container writes reaches the terminal as
control characters: `main()` strips them from everything printed, in one place."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stackgen import output
from stackgen.cli import main
from tests.unit.import_support import EMAIL
from tests.unit.probe_fixtures import NAME, fake_stack, make_pki

# Set the window title, clear the screen, move the cursor, ring the bell; C1 CSI too.
HOSTILE = "\x1b]0;owned\x07\x1b[2J\x1b[1;1H\rfake\x08\x9b31m\x00done"


def _main(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str):
    monkeypatch.setattr(sys, "argv", ["stackgen", *args])
    monkeypatch.setenv("NO_COLOR", "1")
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


def _no_controls(text: str) -> None:
    assert not [c for c in text if output.is_control(c)], repr(text)


def test_a_hostile_old_config_reaches_the_screen_without_control_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the import report printed the old file's directives raw."""
    site = tmp_path / "jellyfin.conf"
    site.write_text(
        "server {\n    listen 80;\n    server_name jellyfin.example.com;\n"
        f'    add_header X-Evil "{HOSTILE}";\n'
        "    location / {\n        proxy_pass http://127.0.0.1:8096;\n    }\n}\n"
    )
    code, out, err = _main(
        capsys,
        monkeypatch,
        "import",
        str(site),
        "--dir",
        str(tmp_path / "s"),
        "--email",
        EMAIL,
        "--dry-run",
    )
    assert code == 0, err
    assert "X-Evil" in err  # the line is there, its controls are not
    _no_controls(out + err)


def test_a_hostile_server_header_reaches_the_screen_without_control_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: verify's reason quoted a `Server:` header's escape sequences raw."""
    pki = make_pki(tmp_path)
    with fake_stack(pki, server_header=f"nginx/1.25.3 {HOSTILE}") as stack:
        code, out, err = _main(
            capsys,
            monkeypatch,
            "verify",
            "--url",
            f"https://{NAME}:{stack.https_port}/",
            "--resolve",
            f"{NAME}:127.0.0.1",
            "--ca-file",
            str(pki.root_pem),
            "--http-port",
            str(stack.http_port),
            "--only",
            "headers.server-version",
        )
    assert code == 1, err
    assert "nginx/1.25.3" in err
    _no_controls(out + err)


def test_the_boundary_keeps_lines_tabs_and_stackgens_own_colours() -> None:
    assert output.printable("a\tb\nc") == "a\tb\nc"
    assert output.printable(HOSTILE) == "]0;owned[2J[1;1Hfake31mdone"
    coloured = "\x1b[31mred\x1b[0m"
    assert output.printable(coloured, colour=True) == coloured
    assert output.printable(coloured, colour=False) == "[31mred[0m"
    # Only the colours stackgen itself uses survive, never cursor or title sequences.
    assert output.printable("\x1b[2J\x1b]0;t\x07", colour=True) == "[2J]0;t"
