"""The `[access]` table: login rate limits, the site's allow list and the LAN-only routes
The model's defaults and refusals here; each proxy's rendering in its own
tests below; the behaviour through real proxies in tests/integration/test_access.py."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from stackgen import exposure
from stackgen.errors import ExitCode
from stackgen.models import LanOnlyRoute
from tests.unit.rendering import config_for
from tests.unit.test_cli import BASE, stackgen


def test_defaults_limit_logins_and_keep_metrics_and_the_wizard_on_the_lan(tmp_path: Path) -> None:
    access = config_for("nginx", tmp_path).access
    assert access.rate_limit is True
    assert (access.login_per_minute, access.login_burst) == (5, 5)
    assert access.allow == []
    assert set(access.lan_only) == {LanOnlyRoute.METRICS, LanOnlyRoute.STARTUP}
    assert ipaddress.ip_network("192.168.0.0/16") in access.lan


LOGIN_PATHS = [
    "/Users/AuthenticateByName",
    "/users/authenticatebyname",
    "/USERS/AUTHENTICATEBYNAME/",
    "/emby/Users/AuthenticateByName",
    "/mediabrowser/Users/AuthenticateByName",
    "/Users/0f8e1a2b3c4d5e6f7a8b9c0d1e2f3a4b/Authenticate",
    "/Users/AuthenticateWithQuickConnect",
    "/Users/ForgotPassword",
    "/Users/ForgotPassword/Pin",
    "/QuickConnect/Initiate",
]
OTHER_PATHS = [
    "/Users/Me",
    "/Users/Public",
    "/Users/0f8e/Images/Primary",
    "/QuickConnect/Connect",
    "/QuickConnect/Enabled",
    "/System/Info/Public",
    "/Users/AuthenticateByNameX",
    "/web/Users/AuthenticateByName",
]


@pytest.mark.parametrize("subpath", ["", "/jellyfin"])
def test_the_login_regex_takes_every_spelling_and_nothing_else(
    subpath: str, tmp_path: Path
) -> None:
    access = config_for("nginx", tmp_path).access
    pattern = re.compile(access.login_path_regex(subpath), re.IGNORECASE)
    for path in LOGIN_PATHS:
        assert pattern.match(subpath + path), path
    for path in OTHER_PATHS:
        assert not pattern.match(subpath + path), path
    if subpath:
        assert not pattern.match("/Users/AuthenticateByName")


def test_the_lan_only_regex(tmp_path: Path) -> None:
    access = config_for("nginx", tmp_path).access
    regex = access.lan_only_regex("/jf")
    assert regex is not None
    pattern = re.compile(regex, re.IGNORECASE)
    for path in ("/jf/metrics", "/jf/Metrics/", "/jf/emby/metrics", "/jf/Startup/User"):
        assert pattern.match(path), path
    for path in ("/jf/metricsx", "/metrics", "/jf/System/Info/Public", "/jf/startupx"):
        assert not pattern.match(path), path
    none = config_for("nginx", tmp_path, access={"lan_only": []}).access
    assert none.lan_only_regex("") is None


@pytest.mark.parametrize(
    ("access", "fragment"),
    [
        ({"allow": ["10.0.0.1/8"]}, "host bits set"),
        ({"allow": ["not-a-range"]}, "not a CIDR range"),
        ({"allow": ["224.0.0.0/4"]}, "multicast"),
        ({"allow": [10]}, "as a string"),
        ({"lan": [], "lan_only": ["metrics"]}, "needs access.lan"),
        ({"lan_only": ["metrics", "metrics"]}, "twice"),
        ({"lan_only": ["dashboard"]}, "metrics"),
        ({"login_per_minute": 0}, "greater than or equal to 1"),
        ({"login_burst": -1}, "greater than or equal to 0"),
        ({"rate_limit": "yes"}, "boolean"),
        ({"gates": "token"}, "Extra inputs"),
    ],
)
def test_bad_access_settings_are_refused(
    access: dict[str, object], fragment: str, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match=re.escape(fragment)):
        config_for("nginx", tmp_path, access=access)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--allow", "203.0.113.7/24"], "host bits set"),
        (["--lan-only", "everything"], "lan_only"),
        (["--login-per-minute", "0"], "login_per_minute"),
    ],
)
def test_init_refuses_bad_access_in_one_line_and_writes_nothing(
    args: list[str], fragment: str, tmp_path: Path
) -> None:
    stack = tmp_path / "stack"
    result = stackgen(*BASE, *args, "--dir", str(stack))
    assert result.returncode == ExitCode.INVALID_INPUT, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert not stack.exists()


def test_init_writes_the_access_table(tmp_path: Path) -> None:
    import tomllib

    stack = tmp_path / "stack"
    result = stackgen(
        *BASE, "--allow", "203.0.113.0/24", "--allow", "2001:db8::/32", "--lan-only", "metrics",
        "--login-burst", "2", "--dir", str(stack),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    access = tomllib.loads((stack / "stackgen.toml").read_text())["access"]
    assert access["allow"] == ["203.0.113.0/24", "2001:db8::/32"]
    assert access["lan_only"] == ["metrics"]
    assert access["login_burst"] == 2


@pytest.mark.parametrize("proxy", ["caddy", "apache"])
def test_a_proxy_without_the_means_says_so(proxy: str, tmp_path: Path) -> None:
    config = config_for(proxy, tmp_path)
    said = [w for w in exposure.warnings(config) if w.startswith("access.rate_limit")]
    assert len(said) == 1 and proxy in said[0] and "\n" not in said[0]
    off = config_for(proxy, tmp_path, access={"rate_limit": False})
    assert not [w for w in exposure.warnings(off) if w.startswith("access.rate_limit")]


@pytest.mark.parametrize("proxy", ["nginx", "haproxy", "traefik"])
def test_a_proxy_with_the_means_says_nothing(proxy: str, tmp_path: Path) -> None:
    config = config_for(proxy, tmp_path)
    assert not [w for w in exposure.warnings(config) if w.startswith("access.rate_limit")]
