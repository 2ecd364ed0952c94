"""pytest plugin: real proxy + Jellyfin stacks in your tests (`pip install stackgen` is enough).

    def test_behind_nginx_subpath(stackgen_stack):
        stack = stackgen_stack("nginx", subpath="/jellyfin")
        assert stack.verify().ok
        info = stack.session().get(stack.url + "/System/Info/Public").json()

Registered through the `pytest11` entry point. Options: `--stackgen-image SERVICE=IMAGE`
(repeatable, or the `stackgen_images` ini list), `--stackgen-keep`, `--stackgen-timeout`.
Stacks end with their test (or with the session: `scope="session"`), also on failure and
Ctrl-C; a failing test's report carries each stack's compose logs and generated configs.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

import pytest

# Only what options need at import: pytest loads this plugin in every run of every project
# that has stackgen installed; stacks (and Docker, pydantic, ...) load on first use.
from stackgen.testing.options import DEFAULT_DOMAIN, DEFAULT_TIMEOUT, parse_images

if TYPE_CHECKING:
    from stackgen.testing.stacks import StackFactory, StackHandle

SCOPES = ("function", "session")
ITEM_STACKS = "_stackgen_stacks"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


class StackRequest(Protocol):
    """The signature of the `stackgen_stack` fixture's value."""

    def __call__(
        self,
        proxy: str,
        *,
        subpath: str = "",
        tls: str = "internal",
        network: str = "bridge",
        domain: str = DEFAULT_DOMAIN,
        config: dict[str, Any] | None = None,
        scope: str = "function",
        start: bool = True,
    ) -> StackHandle: ...


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stackgen", "stackgen stacks (the stackgen_stack fixture)")
    group.addoption(
        "--stackgen-image",
        action="append",
        default=[],
        metavar="SERVICE=IMAGE",
        help="use IMAGE for SERVICE (jellyfin, a proxy's name, certbot); repeatable",
    )
    group.addoption(
        "--stackgen-keep",
        action="store_true",
        default=False,
        help="leave stacks running after the tests, for debugging (remove: stackgen down --dir)",
    )
    group.addoption(
        "--stackgen-timeout",
        type=int,
        default=None,
        metavar="SECONDS",
        help=f"how long a stack may take to become healthy (default {DEFAULT_TIMEOUT})",
    )
    parser.addini("stackgen_images", "SERVICE=IMAGE lines, like --stackgen-image", type="linelist")
    parser.addini("stackgen_timeout", "like --stackgen-timeout", default=str(DEFAULT_TIMEOUT))


def pytest_configure(config: pytest.Config) -> None:
    try:
        parse_images([*config.getini("stackgen_images"), *config.getoption("stackgen_image")])
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None


class _Session:
    """Per pytest process (each xdist worker has its own): the factory and shared stacks."""

    def __init__(self, config: pytest.Config, base_dir: Path) -> None:
        timeout = config.getoption("stackgen_timeout") or int(config.getini("stackgen_timeout"))
        images = parse_images(
            [*config.getini("stackgen_images"), *config.getoption("stackgen_image")]
        )
        self.keep: bool = config.getoption("stackgen_keep")
        from stackgen.testing.stacks import StackFactory

        self.factory: StackFactory = StackFactory(base_dir=base_dir, images=images, timeout=timeout)
        self.shared: dict[str, StackHandle] = {}
        self.checked_engine = False
        # Last resort when pytest's own teardown does not run (an exception in a hook).
        atexit.register(self.close)

    def require_engine(self) -> None:
        if self.checked_engine:
            return
        problem = _engine_problem()
        if problem:
            # Fails, never skips, in CI: a silent skip would pass a pipeline that tested nothing.
            if IN_CI:
                pytest.fail(f"stackgen_stack: {problem}", pytrace=False)
            pytest.skip(f"stackgen_stack: {problem}")
        from stackgen.testing.stacks import leftover_projects, remove_project

        for project in leftover_projects(kept=self.factory.allocator.kept_owners()):
            remove_project(project)
        _interrupt_on_sigterm()
        self.checked_engine = True

    def close(self) -> None:
        if self.keep:
            # Their claims stay, marked, so that no later run reuses or removes them.
            for handle in self.factory.stacks:
                self.factory.allocator.keep(handle.compose_project)
            return
        self.shared.clear()
        self.factory.close_all()


def _interrupt_on_sigterm() -> None:
    """CI cancels a job with SIGTERM, which kills pytest before any teardown; the first one
    becomes a Ctrl-C, so the stacks are removed. Only once stacks exist, only if nobody else
    handles SIGTERM, and a second SIGTERM kills at once."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _engine_problem() -> str:
    """Why no stack can start here (empty: the engine and Compose answer)."""
    from stackgen.engine import require_engine
    from stackgen.errors import DockerError

    try:
        require_engine()
    except DockerError as error:
        return str(error)
    return ""


@pytest.fixture(scope="session")
def _stackgen_session(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[_Session]:
    session = _Session(pytestconfig, tmp_path_factory.mktemp("stackgen"))
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def stackgen_stack(
    request: pytest.FixtureRequest, _stackgen_session: _Session
) -> Iterator[StackRequest]:
    """Factory: `stackgen_stack(proxy, subpath=, tls=, network=, domain=, config=, scope=)`."""
    session = _stackgen_session
    mine: list[StackHandle] = []
    used: list[StackHandle] = getattr(request.node, ITEM_STACKS, [])
    setattr(request.node, ITEM_STACKS, used)

    def factory(
        proxy: str,
        *,
        subpath: str = "",
        tls: str = "internal",
        network: str = "bridge",
        domain: str = DEFAULT_DOMAIN,
        config: dict[str, Any] | None = None,
        scope: str = "function",
        start: bool = True,
    ) -> StackHandle:
        if scope not in SCOPES:
            raise ValueError(f"scope {scope!r}: one of {', '.join(SCOPES)}")
        session.require_engine()
        from stackgen.testing.pebble import PebbleError
        from stackgen.testing.stacks import StackError

        key = repr((proxy, subpath, tls, network, domain, sorted((config or {}).items()), start))
        if scope == "session" and key in session.shared:
            handle = session.shared[key]
        else:

            def failed_to_start(handle: StackHandle) -> None:
                used.append(handle)  # its logs explain the failure
                if scope != "session":
                    mine.append(handle)  # removed with the test, like a started one

            try:
                handle = session.factory.create(
                    proxy,
                    subpath=subpath,
                    tls=tls,
                    network=network,
                    domain=domain,
                    config=config,
                    start=start,
                    on_start_failure=failed_to_start,
                )
            except (StackError, PebbleError) as error:
                pytest.fail(f"stackgen_stack: {error}", pytrace=False)
            if scope == "session":
                session.shared[key] = handle
            else:
                mine.append(handle)
        used.append(handle)
        return handle

    try:
        yield factory
    finally:
        if not session.keep:
            for handle in reversed(mine):
                session.factory.close(handle)


def record_stack(node: pytest.Item, handle: StackHandle) -> None:
    """Attach a stack's diagnostics to `node`'s report if it fails (for other factories)."""
    stacks: list[StackHandle] = getattr(node, ITEM_STACKS, [])
    setattr(node, ITEM_STACKS, stacks)
    stacks.append(handle)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and report.when in ("setup", "call"):
        seen: set[int] = set()
        for handle in getattr(item, ITEM_STACKS, []):
            if id(handle) not in seen:
                seen.add(id(handle))
                report.sections.append(
                    (f"stackgen stack {handle.compose_project}", handle.diagnostics())
                )
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if not config.getoption("stackgen_keep"):
        return
    kept = [Path(p) for p in sorted(_kept_dirs(config))]
    if kept:
        terminalreporter.section("stackgen: stacks left running (--stackgen-keep)")
        for directory in kept:
            terminalreporter.write_line(f"stackgen down --volumes --dir {directory}")


def _kept_dirs(config: pytest.Config) -> set[str]:
    # xdist workers have their own basetemp below this one; `*current` links are skipped.
    base = Path(str(config._tmp_path_factory.getbasetemp()))  # type: ignore[attr-defined]
    return {str(p.parent.resolve()) for p in base.glob("**/stackgen*/*/stackgen.toml")}
