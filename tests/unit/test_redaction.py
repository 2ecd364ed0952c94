"""No token reaches an output: container logs shown by `logs` and `up`, a failing test's
report from the pytest plugin, a traceback of `bench` (or of any bug)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from stackgen import lifecycle
from stackgen.bench import measure
from stackgen.redaction import redact
from stackgen.targets import registry as targets
from stackgen.testing import stacks
from stackgen.testing.stacks import StackHandle
from tests.unit.rendering import config_for

SECRET = "SECRETf00d"
LOG = (
    f'nginx-1 | connect() failed, request: "GET /Items?api_key={SECRET}1&ApiKey={SECRET}2 '
    f'HTTP/1.1"\n'
    f'caddy-1 | {{"uri":"/x?API_KEY={SECRET}3","headers":{{"X-Emby-Token":["{SECRET}4"],'
    f'"X-Emby-Authorization":["MediaBrowser Client=\\"a\\", Token=\\"{SECRET}5\\""]}}}}\n'
    f"apache-1 | X-MediaBrowser-Token: {SECRET}6\n"
    f'haproxy-1 | Authorization: MediaBrowser Token="{SECRET}7", Cookie: a={SECRET}8; b=2\n'
)


@pytest.mark.parametrize("line", LOG.splitlines())
def test_redact_hides_every_form_of_a_token(line: str) -> None:
    hidden = redact(line)
    assert SECRET not in hidden
    assert "REDACTED" in hidden
    assert hidden.split("|")[0] == line.split("|")[0]  # the rest stays readable


def test_redact_keeps_what_is_no_credential() -> None:
    line = "GET /Videos/1/stream?static=true&deviceId=tv HTTP/1.1 200"
    assert redact(line) == line


class _FakeCompose:
    def logs(self, services: list[str], **kwargs: Any) -> Any:
        if kwargs.get("stream"):
            return iter([("stdout", line.encode() + b"\n") for line in LOG.splitlines()])
        return LOG


def _stack(tmp_path: Path) -> Any:
    """A Compose stack whose engine answers with LOG."""
    config = config_for("nginx", tmp_path)
    return SimpleNamespace(
        config=config,
        folder=tmp_path,
        compose=SimpleNamespace(compose=_FakeCompose()),
        target=targets.load("compose", "operations"),
    )


def test_stackgen_logs_redacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: `stackgen logs` streamed the containers' lines as they were."""
    monkeypatch.setattr(lifecycle, "require_engine", lambda: None)
    out = "".join(lifecycle.logs(_stack(tmp_path), None, False))
    assert "api_key=REDACTED" in out
    assert SECRET not in out


def test_up_failure_dump_redacts(tmp_path: Path) -> None:
    """`up` shows these lines when a service fails."""
    stack = _stack(tmp_path)
    out = stack.target.recent_logs(stack, "nginx", 50)
    assert "nginx-1" in out
    assert SECRET not in out


def test_plugin_failure_report_redacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    handle = StackHandle(dir=tmp_path, config=config_for("nginx", tmp_path), started=True)
    monkeypatch.setattr(stacks.lifecycle, "logs", lambda *args, **kwargs: iter([LOG]))
    handle.notes.append(f"pebble: GET /x?api_key={SECRET}9")
    report = handle.diagnostics()
    assert "nginx-1" in report
    assert SECRET not in report


def test_a_bench_traceback_is_redacted() -> None:
    """Before: a failure inside `bench` printed a traceback quoting the URL's api_key."""
    code = (
        "import stackgen.bench.command as c\n"
        "def boom(*a, **k):\n"
        f"    raise RuntimeError('GET /socket?api_key={SECRET}&deviceId=1 failed')\n"
        "c.run = boom\n"
        "import sys\n"
        "sys.argv = ['stackgen', 'bench', '--url', 'https://127.0.0.1:1/', '--duration', '1']\n"
        "from stackgen.cli import main\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 1, result.stderr
    assert "RuntimeError: GET /socket?api_key=REDACTED&deviceId=1 failed" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_a_failed_bench_phase_is_reported_redacted() -> None:
    """A phase's error (printed, and kept in the report) may quote the URL it failed on."""
    said: list[str] = []
    got = measure._Collected()

    def fails() -> str:
        raise OSError(f"GET /socket?api_key={SECRET}&deviceId=1: connection reset")

    measure._phase(got, "proxied", "ws", fails, said.append)
    assert said and got.errors
    assert SECRET not in " ".join(said + got.errors)
    assert "api_key=REDACTED" in said[0]
