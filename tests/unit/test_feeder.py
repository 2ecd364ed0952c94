"""The ban list's feeder (stackgen.feeder): the filter of Jellyfin's failed-login lines, what it
never bans, the deny file its script writes in each proxy's syntax, and `ban list|remove`
with its second list. The real fail2ban on the stand-in's lines: tests/integration/test_ban.py.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest

from stackgen import feeder
from stackgen.banlist import addresses_in
from stackgen.proxies import available
from stackgen.proxies.base import FED_PATH
from stackgen.proxies.registry import get_proxy
from tests.unit.rendering import config_for, rendered
from tests.unit.test_cli import stackgen

# The proxies the feeder is rendered with: every one with a deny file (Traefik's own
# feeder file and composer: test_traefik_feeder.py).
WITH_DENY_FILE = [p for p in available() if get_proxy(p).ban_file is not None]
PREFIX = "Jellyfin.Server.Implementations.Users.UserManager: "
FILE_STAMP = "[2026-12-07 04:59:35.123 +00:00] [WRN] [14] "
CONSOLE_STAMP = "[04:59:35] [WRN] [14] "


def _file_line(name: str, ip: str, reason: str = "has been denied") -> str:
    # Serilog's file sink: string values quoted, a quote inside escaped.
    quoted = name.replace('"', '\\"')
    return f'{FILE_STAMP}{PREFIX}Authentication request for "{quoted}" {reason} (IP: "{ip}").'


def _console_line(name: str, ip: str, reason: str = "has been denied") -> str:
    return f"{CONSOLE_STAMP}{PREFIX}Authentication request for {name} {reason} (IP: {ip})."


# --- the attacker's test first: the user name is the attacker's own text ---------------------


@pytest.mark.parametrize("line", [_file_line, _console_line])
@pytest.mark.parametrize(
    "name",
    [
        "x (IP: 1.2.3.4)",
        'x" has been denied (IP: "1.2.3.4").',
        "x has been denied (IP: 1.2.3.4).",
        "(IP: 2001:db8::1)",
    ],
)
def test_an_address_in_the_user_name_is_never_banned(line: object, name: str) -> None:
    assert callable(line)
    assert feeder.banned_by(line(name, "198.51.100.9")) == "198.51.100.9"


def test_a_line_that_is_not_a_failed_login_bans_no_one() -> None:
    request = f'{FILE_STAMP}{PREFIX}Authentication request for "alice"'
    for text in (
        f'{request} has been accepted (IP: "1.2.3.4").',
        f"{CONSOLE_STAMP}Main: client 198.51.100.9 (IP: 198.51.100.9).",
        f'{request} has been denied (IP: "1.2.3.4"). x',
    ):
        assert feeder.banned_by(text) is None, text


# --- both of Jellyfin's renderings, every failed-login wording ------------------------------


@pytest.mark.parametrize("line", [_file_line, _console_line])
@pytest.mark.parametrize(
    "reason",
    [
        "has been denied",
        "has been denied because this account is currently disabled",
        "forbidden: remote access disabled and user not in local network",
    ],
)
@pytest.mark.parametrize("ip", ["203.0.113.7", "2001:db8::7"])
def test_every_failed_login_line_in_both_formats(line: object, reason: str, ip: str) -> None:
    assert callable(line)
    assert feeder.banned_by(line("alice", ip, reason)) == ip


def test_a_login_without_a_user_name_in_both_formats() -> None:
    wording = "Authentication request without username has been denied"
    assert feeder.banned_by(f'{FILE_STAMP}{PREFIX}{wording} (IP: "203.0.113.7").') == "203.0.113.7"
    assert feeder.banned_by(f"{CONSOLE_STAMP}{PREFIX}{wording} (IP: 203.0.113.7).") == "203.0.113.7"


def test_the_rendered_filter_is_the_tested_one(tmp_path: Path) -> None:
    files = rendered(config_for("nginx", tmp_path), tmp_path)
    assert f"failregex = {feeder.FAILREGEX}\n" in files[f"fail2ban/filter.d/{feeder.JAIL}.conf"]


# --- who is never banned -----------------------------------------------------------------


def test_never_banned_loopback_the_proxy_network_and_the_users_ranges(tmp_path: Path) -> None:
    config = config_for("nginx", tmp_path, ipv6=True, access={"ban": {"never": ["192.0.2.0/24"]}})
    never = feeder.never_banned(config)
    assert never[:2] == ["127.0.0.0/8", "::1/128"]
    assert str(config.network.subnet) in never and str(config.network.subnet6) in never
    assert "192.0.2.0/24" in never
    jail = rendered(config, tmp_path)["fail2ban/jail.conf"]
    assert f"ignoreip = {' '.join(never)}\n" in jail
    assert "maxretry = 5\nfindtime = 600\nbantime = 3600\n" in jail


# --- where it runs, and how it is hardened -------------------------------------------------


@pytest.mark.parametrize("proxy", WITH_DENY_FILE)
def test_the_feeder_is_on_by_default_and_hardened(proxy: str, tmp_path: Path) -> None:
    config = config_for(proxy, tmp_path)
    instance = get_proxy(proxy)
    assert instance.feeder_on(config)
    fed = instance.fed_include(config)
    assert fed == f"{FED_PATH}/{instance.fed_file_name}"
    assert fed in instance.watched_files(config)
    files = rendered(config, tmp_path)
    assert any(fed in text for name, text in files.items() if name != "docker-compose.yml")
    compose = files["docker-compose.yml"]
    service = compose.split("\n  fail2ban:\n", 1)[1].split("\nnetworks:\n", 1)[0]
    assert 'user: "1000:1000"' in service
    assert "read_only: true" in service and "cap_drop:\n      - ALL" in service
    assert '"no-new-privileges:true"' in service and "network_mode: none" in service
    assert 'mem_limit: "128m"' in service and "pids_limit: 64" in service
    assert '"./jellyfin/config/log:/jellyfin-log:ro"' in service
    assert '"./fail2ban:/etc/stackgen-fail2ban:ro"' in service
    assert "NET_ADMIN" not in compose and "cap_add" not in service
    # The proxy reads fail2ban's folder read-only; the user's list is never mounted writable.
    assert f'"./banned:{FED_PATH}:ro"' in compose
    assert '"./ban:/etc/stackgen-ban:ro"' in compose and '"./ban:/etc/stackgen-ban"' not in compose


def test_off_without_the_list_and_on_a_swarm(tmp_path: Path) -> None:
    for access in ({"ban": {"feeder": False}}, {"ban": {"enabled": False}}):
        config = config_for("nginx", tmp_path, access=access)
        assert not get_proxy("nginx").feeder_on(config)
        files = rendered(config, tmp_path)
        assert "fail2ban" not in files["docker-compose.yml"]
        assert not any(name.startswith(("fail2ban/", "banned/")) for name in files)


# --- the deny file its script writes, in each proxy's syntax --------------------------------


def _script(proxy: str, tmp_path: Path, folder: Path) -> Path:
    text = rendered(config_for(proxy, tmp_path), tmp_path)["fail2ban/deny-file.py"]
    script = tmp_path / "deny-file.py"
    script.write_text(text.replace(feeder.FED_PATH_IN_FEEDER, str(folder)))
    return script


@pytest.mark.parametrize("proxy", WITH_DENY_FILE)
def test_the_script_writes_the_proxys_syntax(proxy: str, tmp_path: Path) -> None:
    folder = tmp_path / "banned"
    folder.mkdir()
    script = _script(proxy, tmp_path, folder)
    instance = get_proxy(proxy)
    deny = folder / str(instance.fed_file_name)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-I", str(script), *args]
        return subprocess.run(argv, capture_output=True, text=True, check=False)

    assert run("reset").returncode == 0
    assert deny.read_text() == instance.fed_syntax().render([])
    for address in ("203.0.113.9", "2001:db8::9", "::ffff:198.51.100.7", "203.0.113.9"):
        assert run("add", address).returncode == 0
    wanted = [ipaddress.ip_address(a) for a in ("198.51.100.7", "203.0.113.9", "2001:db8::9")]
    assert deny.read_text() == instance.fed_syntax().render(wanted)
    assert addresses_in(deny.read_text()) == wanted
    # Anything but an address is refused and leaves the file as it was.
    before = deny.read_text()
    for hostile in ("1.2.3.4;\n include /etc/passwd", "example.com", ""):
        assert run("add", hostile).returncode == 2
    assert deny.read_text() == before
    assert run("remove", "203.0.113.9").returncode == 0
    assert addresses_in(deny.read_text()) == [wanted[0], wanted[2]]
    # The user's file and the feeder's never declare the same name (Caddy's matcher).
    user = instance.deny_file(wanted)
    assert user != instance.fed_syntax().render(wanted)


# --- `stackgen ban list` shows both lists, saying which is which -----------------------------


def test_ban_list_shows_the_users_list_and_the_feeders(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    init = stackgen(
        "init", "nginx", "--domain", "jellyfin.example.com", "--email",
        "admin@example.com", "--dir", str(stack),
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    nginx = get_proxy("nginx")
    yours, fed = ipaddress.ip_address("203.0.113.7"), ipaddress.ip_address("198.51.100.9")
    (stack / "ban" / "deny.conf").write_text(nginx.deny_file([yours]))
    (stack / "banned" / "deny.conf").write_text(nginx.fed_syntax().render([fed]))
    listed = stackgen("ban", "list", "--dir", str(stack))
    assert listed.stdout.splitlines() == ["203.0.113.7", "198.51.100.9\tfail2ban"]
    as_json = json.loads(stackgen("ban", "list", "--dir", str(stack), "--json").stdout)
    assert as_json == {"user": ["203.0.113.7"], "feeder": ["198.51.100.9"]}


# --- max_failures against the rate limit -------------------------------------------------------


def test_the_default_ban_comes_within_the_rate_limits_first_burst(tmp_path: Path) -> None:
    access = config_for("nginx", tmp_path).access
    # Refused (429) attempts never reach Jellyfin, so they are never logged nor counted.
    assert access.ban.max_failures <= access.login_burst + 1


def test_a_max_failures_the_rate_limit_never_lets_through_is_refused(tmp_path: Path) -> None:
    ban = {"max_failures": 20, "find_seconds": 60}
    with pytest.raises(ValueError, match="can never be reached") as raised:
        config_for("nginx", tmp_path, access={"ban": ban})
    assert "at most 11 attempts" in str(raised.value)
    # Without a rate limit (or without the feeder) every attempt reaches Jellyfin.
    config_for("nginx", tmp_path, access={"ban": ban, "rate_limit": False})
    config_for("nginx", tmp_path, access={"ban": {**ban, "feeder": False}})


def test_ban_list_never_follows_a_link_fail2ban_could_plant(tmp_path: Path) -> None:
    # `banned/` is written by a container: a link there must not make stackgen (root, at
    # times) read another file.
    stack = tmp_path / "stack"
    init = stackgen(
        "init", "nginx", "--domain", "jellyfin.example.com", "--email",
        "admin@example.com", "--dir", str(stack),
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    secret = tmp_path / "secret"
    secret.write_text("deny 192.0.2.1;\n")
    fed = stack / "banned" / "deny.conf"
    fed.unlink()
    fed.symlink_to(secret)
    listed = stackgen("ban", "list", "--dir", str(stack))
    assert listed.returncode != 0 and "192.0.2.1" not in listed.stdout
    assert "symbolic link" in listed.stderr and len(listed.stderr.strip().splitlines()) == 1
