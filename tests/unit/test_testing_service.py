"""What the test servers (Pebble, bind9) share: `with` starts and always stops, the state
folder, and the start/stop command line."""

from __future__ import annotations

from pathlib import Path
from typing import Self

import pytest

from stackgen.testing.pebble import PebbleCA
from stackgen.testing.service import Service, start_stop_parser, state_folder
from tests import bind9
from tests.bind9 import Bind9


class _Recorder(Service):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self) -> Self:
        self.calls.append("start")
        return self

    def stop(self) -> None:
        self.calls.append("stop")


def test_with_starts_then_stops_and_yields_the_server() -> None:
    server = _Recorder()
    with server as running:
        assert running is server
        assert server.calls == ["start"]
    assert server.calls == ["start", "stop"]


def test_with_stops_when_the_block_raises() -> None:
    server = _Recorder()
    with pytest.raises(RuntimeError, match="boom"), server:
        raise RuntimeError("boom")
    assert server.calls == ["start", "stop"]


def test_both_test_servers_are_services() -> None:
    assert issubclass(PebbleCA, Service)
    assert issubclass(Bind9, Service)


def test_state_folder_is_absolute_or_a_new_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert state_folder("relative", "x-") == tmp_path / "relative"
    assert state_folder(tmp_path / "given", "x-") == tmp_path / "given"
    made = state_folder(None, "stackgen-test-service-")
    try:
        assert made.is_absolute() and made.is_dir()
        assert made.name.startswith("stackgen-test-service-")
        assert state_folder(None, "stackgen-test-service-") != made
    finally:
        made.rmdir()
    # An empty string is "not given", as before.
    other = state_folder("", "stackgen-test-service-")
    other.rmdir()
    assert other != tmp_path


def test_start_stop_parser_wants_a_command_and_a_state(tmp_path: Path) -> None:
    parser, start = start_stop_parser("demo", start_help="start it", stop_help="stop it")
    start.add_argument("--port", type=int, default=1)
    args = parser.parse_args(["start", "--state", str(tmp_path), "--port", "7"])
    assert (args.command, args.state, args.port) == ("start", tmp_path, 7)
    args = parser.parse_args(["stop", "--state", "s"])
    assert (args.command, args.state) == ("stop", Path("s"))
    for argv in ([], ["stop"], ["stop", "--state", "s", "--port", "7"]):
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(argv)
        assert exited.value.code == 2


def test_bind9_stop_without_a_started_server_does_nothing(tmp_path: Path) -> None:
    # No container file in the state folder: nothing was started there, so no docker call.
    assert bind9.main(["stop", "--state", str(tmp_path)]) == 0
    assert list(tmp_path.iterdir()) == []
