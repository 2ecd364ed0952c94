"""The ban list's feeder (`access.ban.feeder`): an in-stack fail2ban that reads Jellyfin's
failed-login lines (`jellyfin_log`) and the proxy's (`proxy_log`: datagrams to a receiver in
its container, login-receiver.py), and writes the addresses it bans into a second deny
file, in the proxy's own syntax, which the proxy reads beside the user's
(`Proxy.fed_include`) and applies by itself (its file watcher). No iptables, no capability,
no network: fail2ban only reads a log folder (and a socket) and writes one file.

Two files, two owners: the user's list (`ban/`, written by `stackgen ban`) is never writable
by a container; fail2ban writes only its own folder (`banned/`). What it stops and its
limits: docs/access.md.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

from stackgen.models import StackConfig
from stackgen.parts import TemplateFile
from stackgen.proxies.base import FED_DIR, LOGIN_DIR, LOGIN_MARK, LOGIN_PATH, LOGIN_SOCKET, Proxy

SERVICE: Final = "fail2ban"
JAIL: Final = "stackgen-jellyfin"
# The proxy's failed logins (access.ban.proxy_log): a jail of their own, so one failed login
# seen in both logs is counted once in each jail, never twice in one count.
PROXY_JAIL: Final = "stackgen-proxy"
# In the stack folder: fail2ban's configuration (stackgen's, read-only in the container).
CONF_DIR: Final = "fail2ban"
# In fail2ban's container.
CONF_PATH: Final = "/etc/stackgen-fail2ban"
LOG_PATH: Final = "/jellyfin-log"
FED_PATH_IN_FEEDER: Final = "/var/lib/stackgen-banned"
RUN_PATH: Final = "/run/fail2ban"
# Jellyfin's file log: Serilog's daily file, `log_YYYYMMDD.log` in $JELLYFIN_LOG_DIR
# (/config/log in the official image).
LOG_GLOB: Final = "log_*.log"
# How often the feeder looks for the next day's log file (fail2ban expands a glob once).
LOG_RESCAN_SECONDS: Final = 60
# The receiver of the proxy's datagrams (login-receiver.py) writes its lines on a tmpfs of
# its own in fail2ban's container, the file emptied before it passes LOGINS_LOG_MAX; the
# tmpfs is capped too (LOGINS_TMPFS_BYTES), whatever the receiver does.
LOGINS_DIR: Final = "/var/log/stackgen-logins"
LOGINS_LOG: Final = f"{LOGINS_DIR}/logins.log"
LOGINS_LOG_MAX: Final = 256 * 1024
LOGINS_TMPFS_BYTES: Final = 1024 * 1024
# A datagram longer than this is dropped whole (a failed login's is under 200 bytes).
DATAGRAM_MAX: Final = 1024

# Jellyfin's failed-login lines (UserManager), in both of its renderings: values quoted in the
# file log (`"alice"`, `"203.0.113.7"`), unquoted on the console (`docker logs`, journald):
#   Authentication request for {UserName} has been denied (IP: {IP}).
#   Authentication request for {UserName} has been denied because this account is currently
#     disabled (IP: {IP}).
#   Authentication request for {UserName} forbidden: remote access disabled and user not in
#     local network (IP: {IP}).
#   Authentication request without username has been denied (IP: {IP}).
# The user name is the attacker's own text: the address is the one at the very end of the
# line, after the fixed wording, so a name such as `x (IP: 1.2.3.4)` bans no one but its
# sender. `<ADDR>` is fail2ban's tag for an IPv4 or IPv6 address (never a host name).
FAILREGEX: Final = (
    r"Authentication request (?:for .+|without username) "
    r"(?:has been denied(?: because this account is currently disabled)?"
    r"|forbidden: remote access disabled and user not in local network) "
    r'\(IP: "?<ADDR>"?\)\.$'
)

# The receiver's lines (login-receiver.py), after fail2ban has cut the leading time stamp
# (`{EPOCH}`): every field is the receiver's own, checked, so the whole line is anchored.
PROXY_FAILREGEX: Final = r"^\s*login-failed status=(?:401|403) client=<ADDR> route=\S+$"


def templates(proxy: Proxy, config: StackConfig) -> list[TemplateFile]:
    """fail2ban's configuration folder, rendered by stackgen (read-only in its container)."""
    if not proxy.feeder_on(config):
        return []
    jellyfin = [TemplateFile("fail2ban/filter.conf.j2", f"{CONF_DIR}/filter.d/{JAIL}.conf")]
    logins = [
        TemplateFile("fail2ban/proxy-filter.conf.j2", f"{CONF_DIR}/filter.d/{PROXY_JAIL}.conf"),
        TemplateFile("fail2ban/login-receiver.py.j2", f"{CONF_DIR}/login-receiver.py"),
    ]
    return [
        TemplateFile("fail2ban/fail2ban.conf.j2", f"{CONF_DIR}/fail2ban.conf"),
        TemplateFile("fail2ban/jail.conf.j2", f"{CONF_DIR}/jail.conf"),
        *(jellyfin if config.ban_reads_jellyfin_log else []),
        *(logins if proxy.login_log_on(config) else []),
        TemplateFile("fail2ban/action.conf.j2", f"{CONF_DIR}/action.d/stackgen-deny-file.conf"),
        TemplateFile("fail2ban/deny-file.py.j2", f"{CONF_DIR}/deny-file.py"),
        TemplateFile("fail2ban/run.sh.j2", f"{CONF_DIR}/run.sh", 0o755),
    ]


def never_banned(config: StackConfig) -> list[str]:
    """fail2ban's `ignoreip`: loopback, the proxy network (the proxy, Jellyfin, Docker's
    gateway, through which `docker-proxy` relays clients), and the user's `never` ranges
    (a CDN's or a tunnel's edges)."""
    ranges = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
    ranges += [n for n in (config.network.subnet, config.network.subnet6) if n is not None]
    ranges += config.access.ban.never
    return [str(n) for n in dict.fromkeys(ranges)]


def fed_file_in_feeder(proxy: Proxy) -> str:
    return f"{FED_PATH_IN_FEEDER}/{proxy.fed_file_name}"


def log_folder(config: StackConfig) -> str:
    """Jellyfin's log folder in the stack (its `/config/log`)."""
    return f"{config.jellyfin.config_dir.rstrip('/')}/log"


# --- for tests: the filter as a Python regular expression ------------------------------------

# What fail2ban's `<ADDR>` stands for, closely enough to test the filter's anchoring with
# Python's `re` (fail2ban's own is stricter about each number; the integration test runs
# the real fail2ban on the stand-in's lines).
_ADDR: Final = r"(?P<addr>(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]+)"


def banned_by(line: str) -> str | None:
    """The address fail2ban's filter takes from one log line (searched, as fail2ban does once
    it has cut the time stamp off), or None."""
    match = re.search(FAILREGEX.replace("<ADDR>", _ADDR), line)
    return None if match is None else match.group("addr")


def banned_by_proxy_line(line: str) -> str | None:
    """The address the proxy jail's filter takes from one receiver line, or None."""
    stamp = re.match(r"^\d{9,11}", line)
    if stamp is None:
        return None
    match = re.search(PROXY_FAILREGEX.replace("<ADDR>", _ADDR), line[stamp.end() :])
    return None if match is None else match.group("addr")


__all__ = [
    "FAILREGEX",
    "FED_DIR",
    "LOGIN_DIR",
    "LOGIN_MARK",
    "LOGIN_PATH",
    "LOGIN_SOCKET",
    "PROXY_FAILREGEX",
    "SERVICE",
    "banned_by",
    "banned_by_proxy_line",
    "never_banned",
    "templates",
]
