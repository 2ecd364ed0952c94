"""A slowed filesystem layer for the fault-injection tests (never imported by stackgen).

`python -c "import slowfs; slowfs.install(); from stackgen.cli import main; main()"` runs
the real CLI with every rename, link, unlink and fsync delayed by SLOWFS_DELAY seconds (an SD
card or NFS), which widens the windows a SIGKILL can land in. When SLOWFS_READY_FD is set,
one byte is written to that descriptor at the first slowed call: the test then knows the
command has started writing and kills it at a random moment after that.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

SLOWED = ("replace", "rename", "link", "unlink", "fsync")


def install() -> None:
    delay = float(os.environ.get("SLOWFS_DELAY", "0.005"))
    ready_fd = os.environ.get("SLOWFS_READY_FD")
    state = {"signalled": ready_fd is None}
    real_write = os.write

    def slowed(function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if not state["signalled"]:
                state["signalled"] = True
                real_write(int(ready_fd or 0), b"w")
            time.sleep(delay)
            result = function(*args, **kwargs)
            time.sleep(delay)
            return result

        return call

    for name in SLOWED:
        setattr(os, name, slowed(getattr(os, name)))
