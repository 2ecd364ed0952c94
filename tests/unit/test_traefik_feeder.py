"""Traefik's feeder: fail2ban writes plain addresses, and Traefik's container composes the
folder its file provider watches (`compose-dynamic.sh`, a tmpfs only Traefik's user writes)
from the site's routes, the user's deny file and a router for the feeder's addresses. The
attacker's tests first: whatever fail2ban's folder holds, the routes stay as stackgen wrote
them and the composed files stay valid. The rendered script runs here on folders standing in
for the container's, twice: with this machine's `sh` and `awk` (the test image's), and with
busybox alone on the PATH (the official image's `sh`, `awk`, `head`, `timeout`, `tr`, ...;
Debian's package: tests/infra/engine.sh installs it for `make test` and CI; without it the
busybox runs fail under CI=true and are skipped elsewhere). Through the real Traefik:
tests/integration/test_ban.py.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from stackgen import exposure, feeder
from stackgen.banlist import addresses_in
from stackgen.proxies.base import BAN_PATH, FED_PATH
from stackgen.proxies.registry import get_proxy
from stackgen.proxies.traefik.proxy import COMPOSED_PATH, COMPOSER, DYNAMIC_PATH, FED_ROUTER
from tests.unit.rendering import config_for, rendered

TRAEFIK = get_proxy("traefik")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# What the composer runs, as busybox applets (the official image has no other tools).
APPLETS = ("sh", "awk", "cat", "cmp", "head", "mv", "rm", "timeout", "tr", "wc")
ROUTES = '[http.routers.jellyfin]\n  rule = "Host(`jellyfin.example.com`)"\n  service = "j"\n'


class Folders:
    """The container's folders, standing in: the composer's sources and its output."""

    def __init__(self, root: Path, shell: str) -> None:
        self.conf, self.ban, self.banned, self.out = (
            root / name for name in ("traefik", "ban", "banned", "composed")
        )
        for folder in (self.conf, self.ban, self.banned, self.out):
            folder.mkdir()
        text = rendered(config_for("traefik", root), root)[f"traefik/{COMPOSER}"]
        # The feeder's folder first: the user's is a prefix of its name.
        for container, here in (
            (FED_PATH, self.banned),
            (BAN_PATH, self.ban),
            (DYNAMIC_PATH, self.conf / "dynamic.toml"),
            (COMPOSED_PATH, self.out),
        ):
            text = text.replace(container, str(here))
        self.script = root / COMPOSER
        self.script.write_text(text)
        (self.conf / "dynamic.toml").write_text(ROUTES)
        (self.ban / "deny.toml").write_text(TRAEFIK.deny_file([]))
        self.fed = self.banned / str(TRAEFIK.fed_file_name)
        self.argv, self.env = ["sh", str(self.script)], dict(os.environ)
        if shell == "busybox":
            sh = _busybox_path(root / "busybox")
            self.argv, self.env = [str(sh), str(self.script)], {"PATH": str(sh.parent)}

    def compose(self, timeout: float = 30) -> float:
        """Runs the composer; the seconds it took."""
        began = time.monotonic()
        run = subprocess.run(
            self.argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        assert run.returncode == 0, run.stderr
        return time.monotonic() - began

    def composed(self) -> dict[str, str]:
        return {p.name: p.read_text() for p in sorted(self.out.iterdir())}

    def fed_router(self) -> list[str]:
        """The addresses of the feeder's router, after checking every composed file."""
        files = self.composed()
        # Nothing staged is left behind, and only these three files are there.
        assert sorted(files) == ["deny.toml", "fed.toml", "site.toml"], sorted(files)
        assert files["site.toml"] == ROUTES
        assert files["deny.toml"] == TRAEFIK.deny_file([])
        document = tomllib.loads(files["fed.toml"])
        if not document:
            return []
        # One router and its middleware, nothing else: no route of the site can change.
        assert document.keys() == {"http"}
        assert document["http"].keys() == {"routers", "middlewares"}
        assert document["http"]["routers"].keys() == {FED_ROUTER}
        assert document["http"]["middlewares"] == {
            FED_ROUTER: {"ipAllowList": {"sourceRange": ["0.0.0.0/32"]}}
        }
        router = document["http"]["routers"][FED_ROUTER]
        assert router == {
            "rule": router["rule"],
            "priority": 1_000_000_000,
            "entryPoints": ["websecure"],
            "middlewares": [FED_ROUTER],
            "service": "noop@internal",
            "tls": {},
        }
        terms = str(router["rule"]).split(" || ")
        addresses = [t.removeprefix("ClientIP(`").removesuffix("`)") for t in terms]
        assert [f"ClientIP(`{a}`)" for a in addresses] == terms
        for address in addresses:
            ipaddress.ip_address(address)  # each one is an address, nothing else
        return addresses


def _busybox_path(folder: Path) -> Path:
    """A folder holding busybox's applets the composer runs, and nothing else: its `sh`."""
    found = shutil.which("busybox")
    if found is None:
        message = "busybox is not installed (apt-get install busybox; engine.sh does)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    folder.mkdir()
    for applet in APPLETS:
        (folder / applet).symlink_to(found)
    return folder / "sh"


@pytest.fixture(params=["sh", "busybox"])
def folders(tmp_path: Path, request: pytest.FixtureRequest) -> Folders:
    return Folders(tmp_path, request.param)


# --- the attacker's tests first: fail2ban's container writes `banned/` ----------------------

HOSTILE_LINES = [
    # TOML: end the string, open a table of one's own.
    '198.51.100.1"]\n[http.routers.evil]\n  rule = "PathPrefix(`/`)"\n  service = "evil',
    # The rule: end ClientIP, match everyone.
    "198.51.100.2`) || PathPrefix(`/",
    "198.51.100.3`)||ClientIP(`0.0.0.0/0",
    # Traefik reads its files as Go templates.
    "{{ .Env }}",
    '{{ template "x" }}',
    # Ranges, zones, ports, names, spaces, control characters.
    "0.0.0.0/0",
    "::/0",
    "fe80::1%eth0",
    "198.51.100.4:443",
    "[2001:db8::4]",
    "example.com",
    " 198.51.100.5",
    "198.51.100.6 ",
    "198.51.100.7\r",
    "198.51.100.8\x00",
    # Not addresses in an address's alphabet (Traefik would refuse the whole router).
    "256.1.1.1",
    "01.2.3.4",
    "1.2.3",
    "1.2.3.4.5",
    "1:2:3:4:5:6:7:8:9",
    "1::2::3",
    "1:::2",
    "12345::1",
    ":1:2:3:4:5:6:7",
    "::ffff:198.51.100.9",
    "a" * 100_000,
]


def test_no_hostile_line_becomes_anything_but_the_addresses_beside_it(folders: Folders) -> None:
    valid = ["203.0.113.1", "2001:db8::1", "::1", "1:2:3:4:5:6:7:8", "fe80::", "0.0.0.0"]
    lines = [valid[0], *HOSTILE_LINES, *valid[1:], valid[0]]
    folders.fed.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe\n")
    folders.compose()
    assert folders.fed_router() == valid  # in order, each once


def test_an_empty_or_missing_list_bans_no_one(folders: Folders) -> None:
    folders.fed.write_text(TRAEFIK.fed_syntax().render([]))
    folders.compose()
    assert folders.fed_router() == []
    folders.fed.unlink()
    folders.compose()
    assert folders.fed_router() == []


def test_a_link_is_not_followed(folders: Folders, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("203.0.113.2\n")
    folders.fed.symlink_to(elsewhere)
    folders.compose()
    assert folders.fed_router() == []


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom"])
def test_an_endless_file_through_a_link_is_refused_at_once(folders: Folders, target: str) -> None:
    folders.fed.symlink_to(target)
    assert folders.compose(timeout=30) < 5
    assert folders.fed_router() == []


def test_a_pipe_never_holds_the_composer(folders: Folders) -> None:
    os.mkfifo(folders.fed)  # no writer ever opens it: reading would wait forever
    assert folders.compose(timeout=30) < 5
    assert folders.fed_router() == []


def test_a_huge_file_is_read_to_a_bound_and_cut_lines_are_dropped(folders: Folders) -> None:
    # 64 MiB: the composer reads its first 256 KiB, and the line cut there is not taken
    # (198.51.100.1 cut to 198.51.100. or to 198.51.10, which is another address's start).
    line = b"198.51.100.123\n"
    folders.fed.write_bytes(line * (64 * 1024 * 1024 // len(line)))
    assert folders.compose() < 10
    assert folders.fed_router() == ["198.51.100.123"]
    # An address on a last line without its end is not taken either.
    folders.fed.write_bytes(b"203.0.113.3\n203.0.113.4")
    folders.compose()
    assert folders.fed_router() == ["203.0.113.3"]


def test_at_most_the_bound_of_addresses(folders: Folders) -> None:
    many = [str(ipaddress.ip_address("10.0.0.0") + n) for n in range(5000)]
    folders.fed.write_text("\n".join(many) + "\n")
    folders.compose()
    assert folders.fed_router() == many[: TRAEFIK.fed_max_addresses]


def test_only_a_changed_file_is_renamed_in(folders: Folders) -> None:
    # Traefik waits its throttle after each change it applies: files that did not change
    # are left as they are, so the one that did is applied at once.
    folders.fed.write_text("203.0.113.5\n")
    folders.compose()
    inodes = {p.name: p.stat().st_ino for p in folders.out.iterdir()}
    folders.fed.write_text("203.0.113.6\n")
    folders.compose()
    assert folders.fed_router() == ["203.0.113.6"]
    now = {p.name: p.stat().st_ino for p in folders.out.iterdir()}
    assert now["site.toml"] == inodes["site.toml"] and now["deny.toml"] == inodes["deny.toml"]
    assert now["fed.toml"] != inodes["fed.toml"]


# --- what the feeder writes is what Traefik refuses -----------------------------------------


def test_the_feeders_script_and_the_composer_agree(folders: Folders, tmp_path: Path) -> None:
    text = rendered(config_for("traefik", tmp_path), tmp_path)["fail2ban/deny-file.py"]
    script = tmp_path / "deny-file.py"
    script.write_text(text.replace(feeder.FED_PATH_IN_FEEDER, str(folders.banned)))

    def run(*args: str) -> None:
        argv = [sys.executable, "-I", str(script), *args]
        assert subprocess.run(argv, capture_output=True, check=False).returncode == 0

    run("reset")
    for address in ("203.0.113.9", "2001:db8::9", "::ffff:198.51.100.7"):
        run("add", address)
    folders.compose()
    wanted = ["198.51.100.7", "203.0.113.9", "2001:db8::9"]
    assert folders.fed_router() == wanted
    assert [str(a) for a in addresses_in(folders.fed.read_text())] == wanted
    run("remove", "203.0.113.9")
    folders.compose()
    assert folders.fed_router() == ["198.51.100.7", "2001:db8::9"]


@pytest.mark.parametrize(
    "text",
    [
        "0.0.0.0", "255.255.255.255", "10.1.2.3", "::", "::1", "1::", "2001:db8::7",
        "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "fe80::1:2", "2001:DB8:0:0:0:0:0:1",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ],
)  # fmt: skip
def test_every_address_python_reads_the_composer_takes(folders: Folders, text: str) -> None:
    ipaddress.ip_address(text)
    folders.fed.write_text(f"{text}\n")
    folders.compose()
    assert folders.fed_router() == [text]


# --- the rendering ---------------------------------------------------------------------------


def test_traefik_gets_the_feeder_and_its_file_provider_reads_only_the_composed_folder(
    tmp_path: Path,
) -> None:
    config = config_for("traefik", tmp_path)
    assert TRAEFIK.feeder_on(config)
    assert not [w for w in exposure.warnings(config) if "feeder" in w]
    files = rendered(config, tmp_path)
    static = tomllib.loads(files["traefik/traefik.toml"])
    assert static["providers"]["file"] == {"directory": COMPOSED_PATH, "watch": True}
    compose = files["docker-compose.yml"]
    assert f'"{COMPOSED_PATH}:uid=1000,gid=1000,mode=0700"' in compose
    # fail2ban's folder and the user's are read-only in Traefik's container.
    assert f'"./banned:{FED_PATH}:ro"' in compose and f'"./ban:{BAN_PATH}:ro"' in compose
    assert "traefik/dynamic.toml" in files and not any(n.startswith("ban/dyn") for n in files)
    # Composed before Traefik starts, and again by the watcher on any change of a source.
    command = TRAEFIK.command(config)
    assert command is not None
    assert command[-3:] == ["sh", f"/etc/traefik/{COMPOSER}", "traefik"]
    assert command[2] == f"sh /etc/traefik/{COMPOSER}"
    assert set(command[3].split()) == {
        DYNAMIC_PATH,
        f"{BAN_PATH}/deny.toml",
        f"{FED_PATH}/{TRAEFIK.fed_file_name}",
    }
