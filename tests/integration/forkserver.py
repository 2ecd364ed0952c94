"""Start the CLI many times without paying Python's start-up each time (test-only).

Reads one JSON request a line on stdin, {"args": [...], "env": {...}}, and forks a child
that runs `stackgen ARGS` through the slowed filesystem layer (slowfs). It answers
`ready PID` when the child makes its first slowed call, then `done PID CODE` (CODE negative:
the signal that ended it). The test kills PID in between: a real process, killed for real.
"""

from __future__ import annotations

import json
import os
import select
import sys

import slowfs

from stackgen.cli import main  # imported once: every child starts warm
from stackgen.templating import environment


def _child(request: dict[str, object], ready: int) -> None:
    os.environ.update({str(k): str(v) for k, v in dict(request.get("env", {})).items()})  # type: ignore[call-overload]
    os.environ["SLOWFS_READY_FD"] = str(ready)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    slowfs.install()
    sys.argv = ["stackgen", *[str(a) for a in list(request["args"])]]  # type: ignore[call-overload]
    code = 0
    try:
        main()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    finally:
        os._exit(code)


def serve() -> None:
    for name in environment().list_templates():  # compiled once, for every child
        environment().get_template(name)
    for line in sys.stdin:
        request = json.loads(line)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            _child(request, write_end)
        os.close(write_end)
        # A byte: the first slowed call; end of file: it ended before writing anything.
        select.select([read_end], [], [], 60)
        os.close(read_end)
        print(f"ready {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"done {pid} {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    serve()
