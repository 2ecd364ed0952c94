"""What the helper servers of the tests (Pebble, bind9) share: a state folder, a `with` block
that starts and always stops them, and a `start`/`stop` command line for the demo."""

from __future__ import annotations

import argparse
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Self


class Service(ABC):
    """A server run for the length of a `with` block: started on entry, stopped on exit
    (also when the block raises)."""

    @abstractmethod
    def start(self) -> Self:
        """Start and wait until it answers; stop what was started before raising."""

    @abstractmethod
    def stop(self) -> None:
        """Stop it; safe to call when it is not running, and twice."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def state_folder(state_dir: Path | str | None, prefix: str) -> Path:
    """The absolute state folder: `state_dir`, or a new temporary one named after `prefix`."""
    return Path(state_dir or tempfile.mkdtemp(prefix=prefix)).resolve()


def start_stop_parser(
    description: str, *, start_help: str, stop_help: str
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """A command line with `start` and `stop`, both on `--state DIR`; the `start` subparser is
    returned too, for the server's own options."""
    parser = argparse.ArgumentParser(description=description)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help=start_help)
    stop = commands.add_parser("stop", help=stop_help)
    for sub in (start, stop):
        sub.add_argument("--state", required=True, type=Path, help="state directory")
    return parser, start
