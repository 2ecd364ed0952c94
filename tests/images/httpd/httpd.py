#!/usr/bin/python3
"""`httpd` of the stackgen substitute: Debian's apache2 binary with official semantics.

The official image's binary is built with ServerRoot /usr/local/apache2 and
conf/httpd.conf, and with every module shared. Debian's apache2 defaults to
/etc/apache2 and builds a few modules into the binary, and for those an official
`LoadModule log_config_module modules/mod_log_config.so` line is a syntax error
("module log_config_module is built-in and can't be loaded").

So this wrapper adds the official -d/-f defaults unless given, the official
default pid file (logs/httpd.pid), and when the main
config loads a built-in module it runs apache2 on a copy with those lines commented
out (same line numbers, so error messages still point at the right line). The copy
is rewritten on every call, so `httpd -k graceful` after a config change reloads
the new config. Files pulled in by Include are used as they are.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

APACHE2 = "/usr/sbin/apache2"
SERVER_ROOT = "/usr/local/apache2"
DEFAULT_CONFIG = "conf/httpd.conf"
# The official build's default pid file; Debian's is /run/apache2.pid. Given with -C,
# a PidFile in the config still wins, as with the official binary.
DEFAULT_PIDFILE = "PidFile logs/httpd.pid"
# `apache2 -l` of Debian's build: compiled in, never loadable (mod_systemd too, which no
# official config loads).
BUILT_IN = (
    "log_config_module",
    "logio_module",
    "version_module",
    "unixd_module",
    "watchdog_module",
    "so_module",
)
LOAD_BUILT_IN = re.compile(
    r"^(\s*)(LoadModule\s+(?:" + "|".join(BUILT_IN) + r")\s.*)$", re.IGNORECASE | re.MULTILINE
)
# Where the filtered copy may go: the first writable one (root may be read-only).
COPY_DIRS = ("/run/stackgen-httpd", "/tmp/stackgen-httpd", f"{SERVER_ROOT}/logs")


def option_value(args: list[str], flag: str) -> tuple[int, str] | None:
    """Index and value of `-f FILE` / `-fFILE` style options, or None."""
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            return index, args[index + 1]
        if arg.startswith(flag) and len(arg) > len(flag):
            return index, arg[len(flag) :]
    return None


def writable_dir() -> Path | None:
    for candidate in COPY_DIRS:
        path = Path(candidate)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK):
            return path
    return None


def filtered_copy(config: Path) -> Path | None:
    """A copy of the config without built-in LoadModule lines, or None if none are there."""
    try:
        text = config.read_text()
    except OSError:
        return None  # let apache2 report the unreadable file itself
    filtered, count = LOAD_BUILT_IN.subn(r"\1# built into Debian's apache2: \2", text)
    directory = writable_dir() if count else None
    if directory is None:
        return None
    name = hashlib.sha256(str(config).encode()).hexdigest()[:12]
    target = directory / f"httpd-{name}.conf"
    partial = target.with_suffix(".partial")
    partial.write_text(filtered)
    partial.replace(target)  # atomic: a running server may re-read it any time
    return target


def main() -> None:
    args = sys.argv[1:]
    root_option = option_value(args, "-d")
    root = Path(root_option[1]) if root_option else Path(SERVER_ROOT)
    if root_option is None:
        args = ["-d", SERVER_ROOT, *args]
    config_option = option_value(args, "-f")
    config = Path(config_option[1] if config_option else DEFAULT_CONFIG)
    if not config.is_absolute():
        config = root / config
    copy = filtered_copy(config)
    if config_option is not None:
        index = config_option[0]
        del args[index : index + (2 if args[index] == "-f" else 1)]
    args = ["-C", DEFAULT_PIDFILE, "-f", str(copy or config), *args]
    os.execv(APACHE2, [APACHE2, *args])


if __name__ == "__main__":
    main()
