"""The proxy's failed logins (access.ban.proxy_log): what each proxy sends (only a 401 or 403
on a route that takes a password, never a token), what the feeder's receiver makes of a
datagram, hostile ones included, and the jail that reads its file. The real proxies, receiver
and fail2ban together: tests/integration/test_ban.py.
"""

from __future__ import annotations

import configparser
import importlib.util
import ipaddress
import json
import os
import re
import socket
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import ValidationError

from stackgen import exposure, feeder
from stackgen.proxies import available
from stackgen.proxies.registry import get_proxy
from tests.unit.rendering import config_for, rendered

SENDING = [p for p in available() if not get_proxy(p).spec.no_login_log]
ON = {"access": {"ban": {"proxy_log": True}}}
SECRET = "5ec2e7d0c0ffee5ec2e7d0c0ffee5ec2"
NOW = 1796630400.7
ROUTE = "/Users/AuthenticateByName"
# What each proxy's datagram looks like (its syslog header, then the fixed text).
NGINX = "<190>Dec  7 08:00:00 nginx: stackgen-login {status} {client} {route}"
HAPROXY = "<173>Dec  7 08:00:00 haproxy[8]: stackgen-login {status} {client} {route}"


class _Caddy:
    """Caddy's JSON access log entry, as its filters leave it (no headers, no query)."""

    @staticmethod
    def format(status: int, client: str, route: str) -> str:
        request = {"remote_ip": client, "client_ip": client, "host": "x", "uri": route}
        entry = {"logger": "http.log.access.stackgen_login", "request": request}
        return json.dumps({**entry, "status": status}) + "\n"


CADDY = _Caddy()
FORMS = [NGINX, HAPROXY, CADDY]


def _receiver(tmp_path: Path) -> ModuleType:
    text = rendered(config_for("nginx", tmp_path, **ON), tmp_path)["fail2ban/login-receiver.py"]
    path = tmp_path / "login-receiver.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("login_receiver", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.LOG = str(tmp_path / "logins.log")
    module.SOCKET = str(tmp_path / "login.sock")
    return module


@pytest.fixture
def receiver(tmp_path: Path) -> ModuleType:
    return _receiver(tmp_path)


def _line(receiver: ModuleType, text: str) -> str | None:
    line = receiver.line_for(text.encode(), NOW)
    assert line is None or isinstance(line, str)
    return line


# --- the attacker's tests first: forged fields, tokens, huge datagrams ----------------------


@pytest.mark.parametrize("form", FORMS)
def test_a_forged_route_never_bans_anyone_but_its_sender(receiver: ModuleType, form: str) -> None:
    # The path is the attacker's text (nginx's $uri is decoded: spaces and line breaks too).
    forged = (
        f"/Users/x 401 198.51.100.9 {ROUTE}\n"
        "1796630400 login-failed status=401 client=198.51.100.9 route=/x"
    )
    line = _line(receiver, form.format(status=401, client="203.0.113.7", route=forged))
    assert line is not None and line.count("\n") == 1 and line.endswith("\n")
    assert "198.51.100.9 " not in line and " client=198.51.100.9" not in line
    assert feeder.banned_by_proxy_line(line.rstrip("\n")) == "203.0.113.7"


@pytest.mark.parametrize("form", FORMS)
def test_a_token_never_reaches_the_line(receiver: ModuleType, form: str) -> None:
    for route in (f"{ROUTE}?api_key={SECRET}", f"{ROUTE}?ApiKey={SECRET}&x=1"):
        line = _line(receiver, form.format(status=401, client="203.0.113.7", route=route))
        assert line is not None and SECRET not in line
        assert line.rstrip("\n").endswith(f" route={ROUTE}")


def test_a_huge_datagram_is_dropped_whole(receiver: ModuleType) -> None:
    padded = NGINX.format(status=401, client="203.0.113.7", route=ROUTE + "x" * 2000)
    assert len(padded) > feeder.DATAGRAM_MAX
    assert _line(receiver, padded) is None


@pytest.mark.parametrize(
    "text",
    [
        NGINX.format(status=200, client="203.0.113.7", route=ROUTE),
        NGINX.format(status=429, client="203.0.113.7", route=ROUTE),
        NGINX.format(status=404, client="203.0.113.7", route=ROUTE),
        NGINX.format(status=401, client="example.com", route=ROUTE),
        NGINX.format(status=401, client="1.2.3.4.5", route=ROUTE),
        NGINX.format(status=401, client="", route=ROUTE),
        f"<190>Dec  7 08:00:00 nginx: 401 203.0.113.7 {ROUTE}",
        "stackgen-login 401",
        "",
        CADDY.format(status=200, client="203.0.113.7", route=ROUTE),
        CADDY.format(status=401, client="example.com", route=ROUTE),
        '{"status": "401", "request": {"client_ip": "203.0.113.7", "uri": "/x"}}',
        '{"status": true, "request": {"client_ip": "203.0.113.7", "uri": "/x"}}',
        '{"status": 401, "request": {"client_ip": ["203.0.113.7"], "uri": "/x"}}',
        '{"status": 401, "request": "203.0.113.7"}',
        '{"status": 401',
        "[401]",
    ],
)
def test_anything_but_a_failed_login_writes_nothing(receiver: ModuleType, text: str) -> None:
    assert _line(receiver, text) is None


# --- each proxy's line, both statuses, both families ----------------------------------------


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize(
    ("sent", "banned"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8::7", "2001:db8::7"),
        # HAProxy on a dual-stack socket: the IPv4 client, as the proxies' deny files have it.
        ("::ffff:203.0.113.7", "203.0.113.7"),
    ],
)
def test_each_proxys_line_becomes_one_checked_line(
    receiver: ModuleType, form: str, status: int, sent: str, banned: str
) -> None:
    line = _line(
        receiver, form.format(status=status, client=sent, route="/emby/Users/x/Authenticate")
    )
    assert line == (
        f"1796630400 login-failed status={status} client={banned} "
        "route=/emby/Users/x/Authenticate\n"
    )
    assert feeder.banned_by_proxy_line(line.rstrip("\n")) == banned


def test_the_proxy_jail_takes_only_the_receivers_lines() -> None:
    for line in (
        "login-failed status=401 client=203.0.113.7 route=/x",
        "1796630400 login-failed status=200 client=203.0.113.7 route=/x",
        "1796630400 login-failed status=401 client=203.0.113.7 route=/x y",
        "1796630400 x login-failed status=401 client=203.0.113.7 route=/x",
    ):
        assert feeder.banned_by_proxy_line(line) is None, line


# --- bounded: the file, the socket ----------------------------------------------------------


def test_the_file_is_emptied_before_it_passes_its_cap(receiver: ModuleType) -> None:
    line = _line(receiver, NGINX.format(status=401, client="203.0.113.7", route=ROUTE))
    assert line is not None
    log = Path(receiver.LOG)
    for _ in range(2 * feeder.LOGINS_LOG_MAX // len(line)):
        receiver.append(line)
        assert log.stat().st_size <= feeder.LOGINS_LOG_MAX
    assert log.read_text().endswith(line)


def test_the_receiver_writes_what_its_socket_gets_and_drops_the_rest(
    receiver: ModuleType, tmp_path: Path
) -> None:
    thread = threading.Thread(target=receiver.serve, args=(os.getuid(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not Path(receiver.SOCKET).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert Path(receiver.SOCKET).stat().st_mode & 0o777 == 0o600
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.setblocking(False)
    # Too long (dropped whole, never cut into a line), then a good one.
    sender.sendto(b"x" * 4 * feeder.DATAGRAM_MAX, receiver.SOCKET)
    good = NGINX.format(status=401, client="203.0.113.7", route=f"{ROUTE}?api_key={SECRET}")
    sender.sendto(good.encode(), receiver.SOCKET)
    log = Path(receiver.LOG)
    while not (log.exists() and log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and re.fullmatch(
        rf"\d+ login-failed status=401 client=203\.0\.113\.7 route={ROUTE}", lines[0]
    ), lines


def test_a_sender_never_waits_for_a_dead_receiver(tmp_path: Path) -> None:
    # What the proxies rely on: a datagram to a socket nobody reads fails at once.
    path = tmp_path / "dead.sock"
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    bound.bind(str(path))
    bound.close()
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        sender.sendto(b"stackgen-login 401 203.0.113.7 /x", str(path))
    assert time.monotonic() - started < 1


# --- what each proxy sends -------------------------------------------------------------------


def _map_regex(conf: str) -> re.Pattern[str]:
    found = re.search(r'map "\$status \$uri" \$jellyfin_login_failed \{\n.*\n\s*"~\*(.+)" 1;', conf)
    assert found is not None, conf
    return re.compile(found.group(1), re.IGNORECASE)


@pytest.mark.parametrize("subpath", ["", "/jellyfin"])
def test_nginx_sends_only_failed_password_logins_without_a_token(
    tmp_path: Path, subpath: str
) -> None:
    conf = rendered(config_for("nginx", tmp_path, subpath=subpath, **ON), tmp_path)[
        "nginx/conf.d/jellyfin.conf"
    ]
    fmt = re.search(r"log_format stackgen_login '([^']*)';", conf)
    assert fmt is not None
    assert fmt.group(1) == "stackgen-login $status $remote_addr $uri"
    assert (
        f"access_log syslog:server=unix:{feeder.LOGIN_SOCKET},nohostname,tag=nginx "
        "stackgen_login if=$jellyfin_login_failed;"
    ) in conf
    failed = _map_regex(conf)
    for path in (
        "/Users/AuthenticateByName",
        "/users/authenticatebyname/",
        "/emby/Users/AuthenticateByName",
        "/mediabrowser/Users/0123/Authenticate",
    ):
        for status in (401, 403):
            assert failed.search(f"{status} {subpath}{path}"), path
        assert not failed.search(f"200 {subpath}{path}")
        assert not failed.search(f"429 {subpath}{path}")
    for path in (
        "/Users/Me",
        "/QuickConnect/Initiate",
        "/Users/AuthenticateWithQuickConnect",
        "/Users/ForgotPassword",
        "/Items/x/Users/AuthenticateByName",
    ):
        assert not failed.search(f"401 {subpath}{path}"), path


def test_haproxy_sends_only_failed_password_logins_without_a_token(tmp_path: Path) -> None:
    conf = rendered(config_for("haproxy", tmp_path, **ON), tmp_path)["haproxy/haproxy.cfg"]
    assert 'on any format "stackgen-login %ST %ci %HPO"' in conf
    assert (
        f"log unix@{feeder.LOGIN_SOCKET} len {feeder.DATAGRAM_MAX} format rfc3164 "
        "profile stackgen_login local0 notice"
    ) in conf
    assert (
        "http-response set-log-level notice if { var(txn.password_route) -m bool } "
        "{ status 401 403 }"
    ) in conf
    # Every other request stays at `info`: nothing else sets a level.
    assert conf.count("set-log-level") == 1


@pytest.mark.parametrize("subpath", ["", "/jellyfin"])
def test_apache_sends_only_failed_password_logins_without_a_token(
    tmp_path: Path, subpath: str
) -> None:
    conf = rendered(config_for("apache", tmp_path, subpath=subpath, **ON), tmp_path)[
        "apache/httpd.conf"
    ]
    assert 'LogFormat "stackgen-login %>s %a %U" stackgen_login\n' in conf
    logged = re.search(r'CustomLog "\|\|([^"]+)" stackgen_login "expr=([^"]+)"\n', conf)
    assert logged is not None, conf
    # No shell, datagrams to the feeder's socket.
    assert logged.group(1).split() == [
        "/usr/bin/logger",
        *("-d", "-u", feeder.LOGIN_SOCKET),
        "--socket-errors=off",
        *("-t", "httpd"),
    ]
    condition = logged.group(2)
    assert condition.startswith("%{REQUEST_STATUS} in {'401', '403'} && %{REQUEST_URI} =~ m#")
    route = re.compile(condition.split(" =~ m#", 1)[1].removesuffix("#i"), re.IGNORECASE)
    assert route.search(f"{subpath}/mediabrowser/users/x/authenticate")
    assert not route.search(f"{subpath}/Users/ForgotPassword")
    # Only the server's two logs: no virtual host logs elsewhere (which would drop this one).
    assert conf.count("CustomLog ") == 3  # the access log, this one, the healthcheck's /dev/null


def test_caddy_sends_only_password_routes_without_a_token(tmp_path: Path) -> None:
    conf = rendered(config_for("caddy", tmp_path, **ON), tmp_path)["caddy/etc/Caddyfile"]
    site = conf[conf.index("\njellyfin.example.com {") :]
    assert f"output net unixgram/{feeder.LOGIN_SOCKET} {{" in site
    logger = site[site.index("log stackgen_login {") : site.index("@password_route")]
    for removed in ("request>headers delete", "request>tls delete", "resp_headers delete"):
        assert removed in logger
    assert 'request>uri regexp "\\?.*" ""' in logger
    named = re.findall(r"@password_route path_regexp password_route (\S+)\n", site)
    other = re.findall(r"@other_route not path_regexp (\S+)\n", site)
    assert len(named) == 1 and named == other
    password = re.compile(named[0])
    assert password.search("/emby/users/x/authenticate/")
    assert not password.search("/Users/AuthenticateWithQuickConnect")
    # Every other request goes to the access log only.
    assert "log_name @other_route stackgen_access\n" in site
    assert "log_name @password_route stackgen_access stackgen_login\n" in site
    assert "import access_log" not in site.split("\n}\n", 1)[0]


@pytest.mark.parametrize("proxy", SENDING)
def test_the_proxy_and_the_feeder_share_only_the_socket_folder(proxy: str, tmp_path: Path) -> None:
    never = {"access": {"ban": {"proxy_log": True, "never": ["198.51.100.0/24"]}}}
    files = rendered(config_for(proxy, tmp_path, **never), tmp_path)
    compose = files["docker-compose.yml"]
    assert f'"./{feeder.LOGIN_DIR}:{feeder.LOGIN_PATH}:ro"' in compose
    assert f'"./{feeder.LOGIN_DIR}:{feeder.LOGIN_PATH}"' in compose
    assert (
        f'"{feeder.LOGINS_DIR}:size={feeder.LOGINS_TMPFS_BYTES},uid=1000,gid=1000,mode=0700"'
        in compose
    )
    jail = configparser.ConfigParser(interpolation=None)
    jail.read_string(files["fail2ban/jail.conf"])
    proxy_jail = jail[feeder.PROXY_JAIL]
    assert proxy_jail["logpath"] == feeder.LOGINS_LOG
    # The same settings as Jellyfin's jail, `never` included (one [DEFAULT] for both).
    assert proxy_jail["maxretry"] == jail[feeder.JAIL]["maxretry"] == "5"
    assert {"172.30.77.0/24", "198.51.100.0/24", "127.0.0.0/8"} <= set(
        proxy_jail["ignoreip"].split()
    )
    assert "ignoreip" not in jail._sections[feeder.PROXY_JAIL]  # type: ignore[attr-defined]


def test_off_by_default_and_jellyfins_log_alone_can_be_turned_off(tmp_path: Path) -> None:
    files = rendered(config_for("nginx", tmp_path), tmp_path)
    assert "fail2ban/login-receiver.py" not in files
    assert feeder.LOGIN_PATH not in files["docker-compose.yml"]
    assert "stackgen_login" not in files["nginx/conf.d/jellyfin.conf"]
    only_proxy = {"access": {"ban": {"proxy_log": True, "jellyfin_log": False}}}
    files = rendered(config_for("nginx", tmp_path, **only_proxy), tmp_path)
    assert f"filter.d/{feeder.JAIL}.conf" not in " ".join(files)
    assert feeder.LOG_PATH not in files["docker-compose.yml"]
    assert f"[{feeder.JAIL}]" not in files["fail2ban/jail.conf"]
    assert "reload" not in files["fail2ban/run.sh"].split("set -u", 1)[1]


def test_a_feeder_that_reads_nothing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="reads nothing"):
        config_for("nginx", tmp_path, access={"ban": {"jellyfin_log": False}})


@pytest.mark.parametrize("proxy", [p for p in available() if p not in SENDING])
def test_a_proxy_that_does_not_send_says_so(proxy: str, tmp_path: Path) -> None:
    config = config_for(proxy, tmp_path, **ON)
    said = exposure.unsent_login_log(config)
    if not config.ban_feeder_on:
        assert said is None  # Traefik: the feeder itself is declared absent (its warning)
        return
    assert said is not None and get_proxy(proxy).spec.no_login_log in said
    assert "stackgen_login" not in " ".join(rendered(config, tmp_path).values())


def test_addresses_are_checked_as_the_deny_files_are(receiver: ModuleType) -> None:
    assert receiver.address("::ffff:198.51.100.7") == ipaddress.ip_address("198.51.100.7")
    assert receiver.address("[2001:db8::1]") == ipaddress.ip_address("2001:db8::1")
    assert receiver.address("203.0.113.7 x") is None
    assert receiver.address("example.com") is None


def test_on_the_edge_side_of_edge_home_from_the_proxys_log_alone(tmp_path: Path) -> None:
    edge_home = {"target": "edge-home", "edge_host": "203.0.113.1"}
    config = config_for("nginx", tmp_path, deploy=edge_home, **ON)
    sides = config.deploy.sides(config)
    edge, home = sides["edge"], sides["home"]
    assert edge.ban_feeder_on and edge.ban_reads_proxy_log and not edge.ban_reads_jellyfin_log
    assert not home.ban_feeder_on
    files = rendered(edge, tmp_path / "edge")
    compose = files["docker-compose.yml"]
    service = compose[compose.index("\n  fail2ban:\n") :]
    assert "depends_on" not in service.split("\n  wireguard:", 1)[0]
    assert feeder.LOG_PATH not in compose
    assert f"[{feeder.JAIL}]" not in files["fail2ban/jail.conf"]
    assert f"[{feeder.PROXY_JAIL}]" in files["fail2ban/jail.conf"]
    assert "stackgen_login" in files["nginx/conf.d/jellyfin.conf"]
    assert "fail2ban" not in rendered(home, tmp_path / "home")["docker-compose.yml"]
    # Off there by default, as before: Jellyfin's log alone cannot be read at the edge.
    plain = config_for("nginx", tmp_path, deploy=edge_home)
    assert not plain.deploy.sides(plain)["edge"].ban_feeder_on


def test_never_on_a_swarm(tmp_path: Path) -> None:
    swarm = {"deploy": {"target": "swarm"}, "jellyfin": {"network_mode": "bridge"}}
    config = config_for("nginx", tmp_path, **swarm, **ON)
    assert not config.ban_feeder_on and not config.ban_reads_proxy_log
