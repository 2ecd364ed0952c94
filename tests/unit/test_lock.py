"""The stack folder's lock: one writer at a time, a named holder, no stale lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stackgen import lock
from stackgen.errors import ExitCode, LockedError

HOLD = """
import sys, time
from pathlib import Path
from stackgen.lock import stack_lock
with stack_lock(Path(sys.argv[1]), "up"):
    print("held", flush=True)
    time.sleep(60)
"""


def _hold(stack: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(stack)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_command_waits_then_names_the_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(lock.WAIT_ENV, "0.3")
    holder = _hold(tmp_path)
    try:
        started = time.monotonic()
        with pytest.raises(LockedError) as raised, lock.stack_lock(tmp_path, "render"):
            pass
        assert time.monotonic() - started >= 0.3
        message = str(raised.value)
        assert f"pid {holder.pid} (stackgen up)" in message
        assert raised.value.exit_code is ExitCode.LOCKED
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_process_blocks_nobody(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(lock.WAIT_ENV, "0")
    holder = _hold(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with lock.stack_lock(tmp_path, "render"):
        assert lock.holder(tmp_path) == f"pid {os.getpid()} (stackgen render)"
    assert not (tmp_path / lock.HOLDER_NAME).exists()


def test_a_failed_command_in_a_new_folder_leaves_nothing(tmp_path: Path) -> None:
    stack = tmp_path / "new" / "stack"
    with pytest.raises(RuntimeError), lock.stack_lock(stack, "init"):
        raise RuntimeError("validation failed")
    assert list(tmp_path.iterdir()) == []


def test_the_cli_exits_with_the_lock_code(tmp_path: Path) -> None:
    holder = _hold(tmp_path)
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "from stackgen.cli import main; main()",
                "render",
                "--dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, lock.WAIT_ENV: "0.2", "NO_COLOR": "1"},
            check=False,
            timeout=60,
        )
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == ExitCode.LOCKED
    assert result.stderr.strip().splitlines() == [
        f"stackgen: error: {tmp_path} is in use by pid {holder.pid} (stackgen up): "
        "retry when it has finished"
    ]
