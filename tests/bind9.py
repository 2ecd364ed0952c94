"""An authoritative DNS server for DNS-01 tests and the demo: Debian's bind9 in a container.

It serves the test zones (every name in them resolves to 127.0.0.1, where test stacks
publish their ports) and accepts TSIG-signed dynamic updates of TXT records (RFC 2136), so
an ACME client publishes its `_acme-challenge` record there for real and Pebble, started with
``PebbleCA(dns_server=bind.host_address)``, validates it by asking this server. Nothing is
short-circuited: a client that publishes the wrong value, or nothing, fails.

The container shares the host's network namespace and listens on two addresses only:
loopback (Pebble, a host process, asks there) and the Docker bridge gateway (stack
containers reach it as ``host.docker.internal`` = host-gateway; certbot's RFC 2136 plugin
needs an IP address, which ``container_address`` is).

Use::

    with Bind9(state_dir, port=18353, zones=("stackgen.test",)) as dns:
        dns.tsig_secret  # base64, algorithm hmac-sha256, key name dns.key_name
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import secrets
import socket
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Final, Self

from stackgen.testing.service import Service, start_stop_parser, state_folder

# The tag moves with STACKGEN_TEST_IMAGE_TAG, as tests/images/build.py tags it.
IMAGE: Final = f"stackgen-test/bind9:{os.environ.get('STACKGEN_TEST_IMAGE_TAG') or 'local'}"
CONF_PATH: Final = "/etc/bind/stackgen"
KEY_NAME: Final = "stackgen-acme"
ALGORITHM: Final = "hmac-sha256"
DEFAULT_GATEWAY: Final = "172.17.0.1"
START_TIMEOUT: Final = 30.0


class Bind9Error(Exception):
    """bind9 could not be started or does not answer."""


def bridge_gateway() -> str:
    """The default bridge's gateway: where `host-gateway` points inside containers."""
    result = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    try:
        for entry in json.loads(result.stdout or "[]"):
            gateway = entry.get("Gateway")
            if gateway:
                return str(ipaddress.IPv4Address(gateway))
    except (ValueError, AttributeError):
        pass
    return DEFAULT_GATEWAY


def soa_query(name: str) -> bytes:
    """A DNS query (RD clear) for the SOA of `name`, in wire format."""
    header = struct.pack(">HHHHHH", secrets.randbelow(65536), 0, 1, 0, 0, 0)
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split("."))
    return header + labels + b"\x00" + struct.pack(">HH", 6, 1)


class Bind9(Service):
    """One named in a container on the host network, its files under one state folder."""

    def __init__(
        self,
        state_dir: Path | str | None = None,
        *,
        port: int = 5353,
        zones: tuple[str, ...] = ("stackgen.test",),
        address: str = "127.0.0.1",
        image: str = IMAGE,
        name: str | None = None,
    ) -> None:
        self.state_dir = state_folder(state_dir, "stackgen-bind9-")
        self.port = port
        self.zones = zones
        self.address = address  # what every name in the zones resolves to
        self.image = image
        self.container = name or f"stackgen-bind9-{uuid.uuid4().hex[:8]}"
        self.gateway = bridge_gateway()
        self.key_name = KEY_NAME
        self.algorithm = ALGORITHM
        self.tsig_secret = base64.b64encode(secrets.token_bytes(32)).decode()

    @property
    def host_address(self) -> str:
        """Where processes on this machine (Pebble) ask: host:port."""
        return f"127.0.0.1:{self.port}"

    @property
    def container_address(self) -> str:
        """Where stack containers send updates and queries: IP:port."""
        return f"{self.gateway}:{self.port}"

    def info(self) -> dict[str, object]:
        """What an ACME client needs (the TSIG key included: a throwaway test key)."""
        return {
            "state_dir": str(self.state_dir),
            "container": self.container,
            "zones": list(self.zones),
            "host_address": self.host_address,
            "container_address": self.container_address,
            "key_name": self.key_name,
            "algorithm": self.algorithm,
            "tsig_secret": self.tsig_secret,
        }

    def _named_conf(self) -> str:
        zones = "".join(
            f'zone "{zone}" {{\n'
            "    type primary;\n"
            f'    file "{CONF_PATH}/zones/db.{zone}";\n'
            # TXT records anywhere in the zone, with this key only: what DNS-01 needs.
            f"    update-policy {{ grant {self.key_name}. zonesub TXT; }};\n"
            "};\n"
            for zone in self.zones
        )
        return (
            "options {\n"
            f'    directory "{CONF_PATH}/zones";\n'
            f"    listen-on port {self.port} {{ 127.0.0.1; {self.gateway}; }};\n"
            "    listen-on-v6 { none; };\n"
            # Authoritative only: it never asks another server anything.
            "    recursion no;\n"
            "    allow-query { any; };\n"
            "    dnssec-validation no;\n"
            "    notify no;\n"
            '    pid-file "none";\n'
            "};\n"
            f'key "{self.key_name}." {{\n'
            f"    algorithm {self.algorithm};\n"
            f'    secret "{self.tsig_secret}";\n'
            "};\n" + zones
        )

    def _zone_file(self, zone: str) -> str:
        return (
            "$TTL 5\n"
            f"@ IN SOA ns1.{zone}. hostmaster.{zone}. 1 60 60 600 5\n"
            f"@ IN NS ns1.{zone}.\n"
            f"ns1 IN A {self.address}\n"
            f"@ IN A {self.address}\n"
            f"* IN A {self.address}\n"
        )

    def start(self) -> Self:
        zones_dir = self.state_dir / "zones"
        zones_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "named.conf").write_text(self._named_conf())
        (self.state_dir / "named.conf").chmod(0o600)  # holds the TSIG secret
        for zone in self.zones:
            (zones_dir / f"db.{zone}").write_text(self._zone_file(zone))
        self.stop()
        result = subprocess.run(
            [
                "docker",
                "run",
                "-d",
                "--name",
                self.container,
                "--network",
                "host",
                "--label",
                "org.stackgen.test=bind9",
                "-v",
                f"{self.state_dir}:{CONF_PATH}",
                self.image,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise Bind9Error(f"docker run {self.image}: {result.stderr.strip()}")
        try:
            self._wait()
        except BaseException:
            self.stop()
            raise
        return self

    def _answers(self, zone: str) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.5)
            try:
                sock.sendto(soa_query(zone), ("127.0.0.1", self.port))
                reply = sock.recv(512)
            except OSError:
                return False
        # NOERROR with the AA bit: the zone is loaded and served.
        return len(reply) > 4 and reply[2] & 0x04 != 0 and reply[3] & 0x0F == 0

    def _wait(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if all(self._answers(zone) for zone in self.zones):
                return
            if not self._running():
                raise Bind9Error(f"named exited at start:\n{self.log_tail()}")
            time.sleep(0.2)
        raise Bind9Error(f"named did not answer within {START_TIMEOUT}s:\n{self.log_tail()}")

    def _running(self) -> bool:
        result = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Running}}", self.container],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        return result.stdout.strip() == "true"

    def log_tail(self, lines: int = 40) -> str:
        result = subprocess.run(
            ["docker", "logs", "--tail", str(lines), self.container],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        return f"--- bind9 ({self.container}) ---\n{result.stdout}{result.stderr}"

    def stop(self) -> None:
        subprocess.run(
            ["docker", "rm", "-f", self.container],
            capture_output=True,
            check=False,
            timeout=60,
        )


def main(argv: list[str] | None = None) -> int:
    parser, start = start_stop_parser(
        "Run bind9 for stackgen's DNS-01 demo.",
        start_help="start detached; print JSON (the TSIG key too)",
        stop_help="remove what `start` started in this state dir",
    )
    start.add_argument("--port", type=int, default=8353, help="DNS port (loopback, gateway)")
    start.add_argument("--zone", action="append", help="zone to serve; repeatable")
    start.add_argument("--image", default=IMAGE)
    args = parser.parse_args(argv)
    state: Path = args.state.resolve()
    name_file = state / "container"
    try:
        if args.command == "start":
            if name_file.exists():
                Bind9(state, name=name_file.read_text().strip()).stop()
            server = Bind9(
                state, port=args.port, zones=tuple(args.zone or ["home.arpa"]), image=args.image
            )
            server.start()
            name_file.write_text(server.container + "\n")
            print(json.dumps(server.info(), indent=2))
        elif name_file.exists():
            Bind9(state, name=name_file.read_text().strip()).stop()
            name_file.unlink()
    except Bind9Error as error:
        print(f"bind9: ERROR: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
