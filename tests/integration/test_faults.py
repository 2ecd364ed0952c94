"""Fault injection: SIGKILL at random moments of `init --force` and `render` on a slowed
filesystem, concurrent `init --force`, and a full disk. Whatever happens, the folder is the
old stack or the new one, complete. No Docker needed: these run the CLI as
subprocesses, the way a user or a supervisor kills it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from stackgen import writer
from stackgen.config_file import load_config
from stackgen.errors import ExitCode
from stackgen.lock import WAIT_ENV
from stackgen.render import COMPOSE_FILE, render_stack

HERE = Path(__file__).resolve().parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# The CLI, started through the slowed filesystem layer (tests/integration/slowfs.py).
SLOW_CLI = "import slowfs; slowfs.install(); from stackgen.cli import main; main()"
DELAY = "0.005"  # per slowed call, before and after: about an SD card's fsync

# Two configurations that differ in the compose file, the proxy's files and stackgen.toml.
CONFIG_A = ["traefik", "--domain", "a.example.com", "--email", "a@example.com"]
CONFIG_B = [
    "traefik",
    "--domain",
    "b.example.com",
    "--email",
    "b@example.com",
    "--subpath",
    "/jellyfin",
    "--jellyfin-network",
    "bridge",
    "--timezone",
    "Europe/Paris",
]


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH", "")]))
    return {**os.environ, "NO_COLOR": "1", "PYTHONPATH": path, "SLOWFS_DELAY": DELAY, **extra}


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SLOW_CLI, *args],
        capture_output=True,
        text=True,
        env=_env(**env),
        check=False,
        timeout=120,
    )


def snapshot(stack: Path) -> dict[str, bytes]:
    """The stack as a user sees it: every file outside stackgen's own state folder."""
    return {
        str(p.relative_to(stack)): p.read_bytes()
        for p in stack.rglob("*")
        if p.is_file() and ".stackgen" not in p.relative_to(stack).parts
    }


def assert_consistent(stack: Path) -> None:
    """stackgen.toml and the compose file present, the compose file what render makes of the
    toml, the manifest the hashes of what is on disk, no journal and no temporaries."""
    config = load_config(stack)
    files, _ = render_stack(config, stack)
    rendered = {f.path: f.content for f in files if not f.state}
    assert (stack / COMPOSE_FILE).read_bytes() == rendered[COMPOSE_FILE]
    for path, content in rendered.items():
        assert (stack / path).read_bytes() == content, path
    manifest = json.loads((stack / writer.MANIFEST).read_text())["files"]
    for path, digest in manifest.items():
        assert writer.sha256((stack / path).read_bytes()) == digest, path
    assert not (stack / writer.JOURNAL).exists()
    assert not [p for p in stack.rglob("*") if p.name.endswith(writer.TEMP_SUFFIX)]


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """The two complete stacks every faulty run must end in (one or the other)."""
    root = tmp_path_factory.mktemp("reference")
    result = {}
    for name, config in (("A", CONFIG_A), ("B", CONFIG_B)):
        done = _cli("init", *config, "--dir", str(root / name))
        assert done.returncode == 0, done.stderr
        result[name] = snapshot(root / name)
    assert result["A"] != result["B"]
    return result


class ForkServer:
    """tests/integration/forkserver.py: the CLI forked warm, through the slowed layer."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "forkserver.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=_env(),
        )

    def start(self, args: list[str]) -> int:
        """Start `stackgen ARGS`; return its pid once it has begun writing."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"args": args, "env": {}}) + "\n")
        self.process.stdin.flush()
        word, pid = self.process.stdout.readline().split()
        assert word == "ready"
        return int(pid)

    def finished(self) -> bool:
        assert self.process.stdout is not None
        return bool(select.select([self.process.stdout], [], [], 0)[0])

    def wait(self, pid: int) -> int:
        assert self.process.stdout is not None
        word, done_pid, code = self.process.stdout.readline().split()
        assert (word, int(done_pid)) == ("done", pid)
        return int(code)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def forks() -> Iterator[ForkServer]:
    server = ForkServer()
    yield server
    server.close()


def _killed_run(
    forks: ForkServer, args: list[str], rng: random.Random, window: float
) -> tuple[bool, float]:
    """Run the CLI; SIGKILL it a random moment after it starts writing. (killed, delay)."""
    pid = forks.start(args)
    delay = rng.uniform(0, window)
    time.sleep(delay)
    if not forks.finished():
        os.kill(pid, signal.SIGKILL)
    code = forks.wait(pid)
    assert code in (0, -signal.SIGKILL), code
    return code == -signal.SIGKILL, delay


def _write_window(forks: ForkServer, stack: Path, config: list[str]) -> float:
    """How long an unkilled `init --force` writes, measured from its first slowed call."""
    pid = forks.start(["init", *config, "--force", "--dir", str(stack)])
    started = time.monotonic()
    assert forks.wait(pid) == 0
    return time.monotonic() - started


KILL_CHUNKS = 4
KILLS_PER_CHUNK = 25  # 100 in all


@pytest.mark.parametrize("chunk", range(KILL_CHUNKS))
def test_sigkill_during_init_and_render_leaves_the_old_or_the_new_stack(
    chunk: int, stacks: dict[str, dict[str, bytes]], forks: ForkServer, tmp_path: Path
) -> None:
    rng = random.Random(f"sigkill-{chunk}")  # reproducible: the same moments every run
    stack = tmp_path / "stack"
    assert _cli("init", *CONFIG_A, "--dir", str(stack)).returncode == 0
    window = _write_window(forks, stack, CONFIG_B) * 1.1
    for name, files in stacks.items():
        (tmp_path / f"{name}.toml").write_bytes(files["stackgen.toml"])
    current = "B"
    seen: dict[str, int] = {"old": 0, "new": 0, "finished by the next run": 0}
    for attempt in range(KILLS_PER_CHUNK):
        target = "A" if current == "B" else "B"
        if attempt % 3 == 2:
            # render: the user edited stackgen.toml (to the other stack's), then `render`
            # is killed.
            shutil.copyfile(tmp_path / f"{target}.toml", stack / "stackgen.toml")
            args = ["render", "--dir", str(stack)]
        else:
            args = ["init", *(CONFIG_A if target == "A" else CONFIG_B), "--force"]
            args += ["--dir", str(stack)]
        killed, delay = _killed_run(forks, args, rng, window)
        # Even before the next command: both files are there, whole.
        for name in ("stackgen.toml", COMPOSE_FILE):
            assert (stack / name).is_file(), (attempt, delay, name)
        note = writer.recover(stack)  # what the next command (under the lock) does first
        after = snapshot(stack)
        if after == stacks[target]:
            seen["new"] += 1
            if note and note.startswith("finished"):
                seen["finished by the next run"] += 1
            current = target
        elif args[0] == "render":
            # Killed before the commit point: the edited toml beside the old files. The next
            # render completes it; nothing of the old stack was lost in between.
            assert after["stackgen.toml"] == stacks[target]["stackgen.toml"], (attempt, delay)
            assert {k: v for k, v in after.items() if k != "stackgen.toml"} == {
                k: v for k, v in stacks[current].items() if k != "stackgen.toml"
            }, (attempt, delay)
            seen["old"] += 1
            assert forks.wait(forks.start(["render", "--dir", str(stack)])) == 0
            assert snapshot(stack) == stacks[target]
            current = target
        else:
            assert after == stacks[current], (attempt, delay, killed, note)
            seen["old"] += 1
        assert_consistent(stack)
    print(f"chunk {chunk}: {seen}")  # shown with -s: how the kills landed
    # The moments were spread over the whole write: both outcomes happened.
    assert seen["old"] and seen["new"], seen


def test_concurrent_init_force_pairs_never_mix_or_lose(
    stacks: dict[str, dict[str, bytes]], tmp_path: Path
) -> None:
    def init(stack: Path, config: list[str], wait: str) -> subprocess.CompletedProcess[str]:
        return _cli("init", *config, "--force", "--dir", str(stack), **{WAIT_ENV: wait})

    codes: dict[int, int] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for pair in range(20):
            stack = tmp_path / f"pair{pair}"
            # Half the pairs wait for each other, half give up at once and say so.
            wait = "30" if pair % 2 == 0 else "0"
            first = pool.submit(init, stack, CONFIG_A, wait)
            second = pool.submit(init, stack, CONFIG_B, wait)
            results = [first.result(), second.result()]
            for result in results:
                codes[result.returncode] = codes.get(result.returncode, 0) + 1
                assert result.returncode in (0, ExitCode.LOCKED), result.stderr
                if result.returncode == ExitCode.LOCKED:
                    assert "is in use by pid" in result.stderr
                    assert "(stackgen init)" in result.stderr
                    assert len(result.stderr.strip().splitlines()) == 1
            assert any(r.returncode == 0 for r in results)
            assert snapshot(stack) in (stacks["A"], stacks["B"]), pair
            assert_consistent(stack)
            if wait == "30":
                assert [r.returncode for r in results] == [0, 0]
    assert codes.get(ExitCode.LOCKED), codes  # the lock was really contended


@contextlib.contextmanager
def small_disk(size_kb: int) -> Iterator[Path]:
    mount = Path(tempfile.mkdtemp(prefix="stackgen-full-"))
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        mount.rmdir()
        message = f"cannot mount a small tmpfs (root needed): {result.stderr.strip()}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()


def _fill(folder: Path, leave_bytes: int) -> None:
    """Fill the disk, then free about leave_bytes: a write of more than that fails."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    if leave_bytes:
        size = filler.stat().st_size
        os.truncate(filler, max(0, size - leave_bytes))


@pytest.mark.parametrize("free_kb", [0, 4, 8, 16, 24, 32])
def test_disk_full_is_a_clean_error_and_the_old_stack_stays(
    free_kb: int, stacks: dict[str, dict[str, bytes]]
) -> None:
    with small_disk(1024) as disk:
        stack = disk / "stack"
        assert _cli("init", *CONFIG_A, "--dir", str(stack)).returncode == 0
        _fill(disk, free_kb * 1024)
        result = _cli("init", *CONFIG_B, "--force", "--dir", str(stack))
        if result.returncode == 0:  # enough room after all: then it is all there
            assert snapshot(stack) == stacks["B"]
        else:
            assert result.returncode == ExitCode.FILESYSTEM, result.stderr
            assert result.stderr.strip().splitlines() == [result.stderr.strip()]
            assert "No space left on device" in result.stderr
            assert snapshot(stack) == stacks["A"]
        (disk / "filler").unlink()
        assert_consistent(stack)
        # With room again, the next command works and leaves nothing behind.
        assert _cli("render", "--dir", str(stack)).returncode == 0
        assert_consistent(stack)
