"""A real ACME CA on this machine for tests, the demo and the pytest plugin: Debian's Pebble.

``pebble`` (an RFC 8555 test CA) and ``pebble-challtestsrv`` (its fake DNS) run
as host processes. Every name resolves to ``default_ipv4`` (127.0.0.1), so Pebble
validates HTTP-01 / TLS-ALPN-01 challenges against the proxy's ports published on
loopback (``http_port`` / ``tls_port``). Containers reach the ACME directory at
``https://host.docker.internal:14000/dir`` (map that name to ``host-gateway``) and
must trust ``listener_ca_file`` (Traefik/lego: LEGO_CA_CERTIFICATES, certbot:
REQUESTS_CA_BUNDLE, Caddy: acme_ca_root).

Certificates Pebble issues chain to a root it regenerates at every start; after
start() it is in ``issuer_root_file`` (``issuer_bundle_file`` adds the intermediate).
Verify served chains against the root alone: a bundle with the intermediate would
also accept a server that wrongly serves its bare leaf.

Use::

    with PebbleCA(state_dir, http_port=8080, tls_port=8443) as ca:
        ...  # ca.directory_url, ca.listener_ca_file, ca.issuer_root_file

or from a shell (processes detach and outlive the command)::

    python -m stackgen.testing.pebble start --state DIR --http-port N --tls-port N  # JSON
    python -m stackgen.testing.pebble stop --state DIR
"""

from __future__ import annotations

import ctypes
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stackgen.pki import ca_certificate, key_pem, server_certificate
from stackgen.testing.service import Service, start_stop_parser, state_folder

LISTENER_NAMES = ("localhost", "host.docker.internal", "pebble")
LISTENER_IPS = ("127.0.0.1",)
CONTAINER_HOST = "host.docker.internal"
STOP_TIMEOUT = 5.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Where Debian's package puts both programs, for a PATH that lacks it (e.g. sudo's).
PACKAGE_BIN_DIR = Path("/usr/bin")


CERT_VALIDITY_SECONDS = 90 * 24 * 3600
# Share of good nonces Pebble rejects with badNonce (per cent), to prove that the ACME clients
# retry as RFC 8555 (6.5) asks. Pebble's default is 5; this is lower on purpose, because
# certbot's acme library retries a badNonce only once: at 5 % one signed request in 400
# fails, about one certbot issuance in 60 (lego retries for 20 s, Caddy's acmez 10 times).
# At 1 % a certbot issuance fails about once in 1,400 and a test run still meets a few
# rejections (docs/certificates.md).
NONCE_REJECT_PERCENT = 1


class PebbleError(Exception):
    """Pebble could not be started, reached or stopped."""


@dataclass(frozen=True)
class Process:
    """One managed process: name, command, pid file and log file."""

    name: str
    argv: tuple[str, ...]
    pid_file: Path
    log_file: Path


def find_binary(name: str) -> str:
    packaged = PACKAGE_BIN_DIR / name
    path = shutil.which(name) or (str(packaged) if packaged.exists() else None)
    if path is None:
        # Shipped in the wheel: the message must make sense outside stackgen's checkout.
        raise PebbleError(
            f"{name} not found: install Debian's `pebble` package (apt-get install pebble)"
        )
    return path


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def pid_alive(pid: int, expected: str) -> bool:
    """True when pid runs a program whose command line names ``expected``.

    Checking the command line keeps a recycled pid from being signalled.
    """
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    zombie = stat.rsplit(")", 1)[-1].split()[0] == "Z"
    return not zombie and expected.encode() in cmdline


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def terminate(pid: int, expected: str, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, bounded wait, then SIGKILL, for a process known only by its pid."""
    if not pid_alive(pid, expected):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid, expected):
            return
        time.sleep(0.05)
    if pid_alive(pid, expected):
        os.kill(pid, signal.SIGKILL)


def stop_child(child: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, bounded wait, then SIGKILL, for a process this one started."""
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=timeout)


def die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the parent dies (even by SIGKILL).

    Keeps an attached Pebble from outliving a killed test run and holding its ports.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def write_listener_pair(ca_file: Path, cert_file: Path, key_file: Path) -> None:
    """A throwaway CA and a server certificate signed by it for Pebble's own listener."""
    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=30))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "stackgen test Pebble listener CA")]
    )
    ca_cert = ca_certificate(ca_key, ca_name, *validity)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in LISTENER_NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in LISTENER_IPS]
    cert = server_certificate(
        key.public_key(),
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble")]),
        sans,
        *validity,
        issuer=ca_name,
        issuer_key=ca_key,
    )
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key_pem(key))
    key_file.chmod(0o600)


class PebbleCA(Service):
    """Pebble plus pebble-challtestsrv, with their files under one state directory."""

    def __init__(
        self,
        state_dir: Path | str | None = None,
        *,
        http_port: int = 80,
        tls_port: int = 443,
        dns_port: int = 8053,
        challtestsrv_management_port: int = 8055,
        acme_port: int = 14000,
        management_port: int = 15000,
        default_ipv4: str = "127.0.0.1",
        start_timeout: float = 30.0,
        dns_server: str | None = None,
        cert_validity_seconds: int = CERT_VALIDITY_SECONDS,
        nonce_reject_percent: int = NONCE_REJECT_PERCENT,
    ) -> None:
        self.state_dir = state_folder(state_dir, "stackgen-pebble-")
        self.http_port = http_port
        self.tls_port = tls_port
        self.dns_port = dns_port
        self.challtestsrv_management_port = challtestsrv_management_port
        self.acme_port = acme_port
        self.management_port = management_port
        self.default_ipv4 = default_ipv4
        self.start_timeout = start_timeout
        # host:port of a real DNS server (tests/bind9.py) Pebble resolves through,
        # instead of pebble-challtestsrv: then DNS-01 is validated against the TXT record
        # the client really published, and every name resolves as that server says.
        self.dns_server = dns_server
        # Short-lived certificates make a client's own renewal happen within a test.
        self.cert_validity_seconds = cert_validity_seconds
        if not 0 <= nonce_reject_percent <= 100:
            raise PebbleError(f"nonce_reject_percent must be 0..100, not {nonce_reject_percent}")
        self.nonce_reject_percent = nonce_reject_percent
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # ----------------------------------------------------------------- paths and URLs

    @property
    def directory_url(self) -> str:
        """The ACME directory as containers see it (host.docker.internal -> host-gateway)."""
        return f"https://{CONTAINER_HOST}:{self.acme_port}/dir"

    @property
    def host_directory_url(self) -> str:
        """The ACME directory as processes on this machine see it."""
        return f"https://127.0.0.1:{self.acme_port}/dir"

    @property
    def management_url(self) -> str:
        return f"https://127.0.0.1:{self.management_port}"

    @property
    def listener_ca_file(self) -> Path:
        """CA of Pebble's own HTTPS listener: what ACME clients must trust."""
        return self.state_dir / "listener-ca.pem"

    @property
    def issuer_root_file(self) -> Path:
        """Root of the certificates Pebble issues (new at every start)."""
        return self.state_dir / "issuer-root.pem"

    @property
    def issuer_intermediate_file(self) -> Path:
        return self.state_dir / "issuer-intermediate.pem"

    @property
    def issuer_bundle_file(self) -> Path:
        """Intermediate then root."""
        return self.state_dir / "issuer-bundle.pem"

    @property
    def config_file(self) -> Path:
        return self.state_dir / "pebble-config.json"

    def _processes(self) -> list[Process]:
        challtestsrv = (
            find_binary("pebble-challtestsrv"),
            "-defaultIPv4",
            self.default_ipv4,
            "-defaultIPv6",
            "",
            "-dns01",
            f"127.0.0.1:{self.dns_port}",
            "-management",
            f"127.0.0.1:{self.challtestsrv_management_port}",
            # Its own challenge servers are not needed: the proxies answer challenges.
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
        )
        pebble = (
            find_binary("pebble"),
            "-config",
            str(self.config_file),
            "-dnsserver",
            self.dns_server or f"127.0.0.1:{self.dns_port}",
        )
        pebble_process = Process(
            "pebble", pebble, self._pid_file("pebble"), self._log_file("pebble")
        )
        if self.dns_server:
            return [pebble_process]
        return [
            Process(
                "pebble-challtestsrv",
                challtestsrv,
                self._pid_file("pebble-challtestsrv"),
                self._log_file("pebble-challtestsrv"),
            ),
            pebble_process,
        ]

    def _pid_file(self, name: str) -> Path:
        return self.state_dir / f"{name}.pid"

    def _log_file(self, name: str) -> Path:
        return self.state_dir / f"{name}.log"

    # ----------------------------------------------------------------- lifecycle

    def start(self, *, detach: bool = False) -> Self:
        """Start both processes and wait until the directory answers; fetch the roots.

        With ``detach``, the processes outlive this Python process (CLI use); stop
        them later with ``PebbleCA(state_dir).stop()``.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.stop()  # processes left by an earlier start in this state dir
        self._refuse_busy_ports()
        write_listener_pair(
            self.listener_ca_file,
            self.state_dir / "listener-cert.pem",
            self.state_dir / "listener-key.pem",
        )
        self._write_config()
        try:
            for process in self._processes():
                self._spawn(process, detach=detach)
            self._wait_for_directory()
            self._fetch_issuer_chain()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Terminate both processes (bounded wait, then kill); safe to call twice."""
        for process in reversed(self._processes()):
            child = self._children.pop(process.name, None)
            if child is not None:  # our own child: Popen knows its state exactly
                stop_child(child)
            elif (pid := read_pid(process.pid_file)) is not None:  # started by another run
                terminate(pid, process.name)
            process.pid_file.unlink(missing_ok=True)

    @property
    def running(self) -> bool:
        return all(
            (pid := read_pid(p.pid_file)) is not None and pid_alive(pid, p.name)
            for p in self._processes()
        )

    def log_tail(self, lines: int = 40) -> str:
        """The end of both processes' logs, for failure reports."""
        parts = []
        for process in self._processes():
            try:
                text = process.log_file.read_text(errors="replace")
            except OSError:
                text = "(no log)"
            tail = "\n".join(text.rstrip().splitlines()[-lines:])
            parts.append(f"--- {process.log_file} ---\n{tail}")
        return "\n".join(parts)

    def info(self) -> dict[str, object]:
        """Paths, URLs and pids as JSON-ready data (the CLI prints this)."""
        return {
            "state_dir": str(self.state_dir),
            "directory_url": self.directory_url,
            "host_directory_url": self.host_directory_url,
            "management_url": self.management_url,
            "listener_ca_file": str(self.listener_ca_file),
            "issuer_root_file": str(self.issuer_root_file),
            "issuer_intermediate_file": str(self.issuer_intermediate_file),
            "issuer_bundle_file": str(self.issuer_bundle_file),
            "http_port": self.http_port,
            "tls_port": self.tls_port,
            "dns_server": self.dns_server or f"127.0.0.1:{self.dns_port}",
            "pids": {p.name: read_pid(p.pid_file) for p in self._processes()},
            "logs": {p.name: str(p.log_file) for p in self._processes()},
        }

    # ----------------------------------------------------------------- steps

    def _refuse_busy_ports(self) -> None:
        busy = [
            port
            for port in (
                self.acme_port,
                self.management_port,
                *(() if self.dns_server else (self.dns_port, self.challtestsrv_management_port)),
            )
            if port_in_use("127.0.0.1", port)
        ]
        if busy:
            raise PebbleError(
                f"ports {busy} already in use on 127.0.0.1 (a Pebble from another state dir? "
                "stop it with `python -m stackgen.testing.pebble stop --state DIR`)"
            )

    def _write_config(self) -> None:
        config = {
            "pebble": {
                "listenAddress": f"0.0.0.0:{self.acme_port}",
                "managementListenAddress": f"127.0.0.1:{self.management_port}",
                "certificate": str(self.state_dir / "listener-cert.pem"),
                "privateKey": str(self.state_dir / "listener-key.pem"),
                "httpPort": self.http_port,
                "tlsPort": self.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
                # Like Let's Encrypt (Pebble's default is 5 years, which Mozilla's
                # intermediate profile and its scanners flag as too long).
                "certificateValidityPeriod": self.cert_validity_seconds,
            }
        }
        self.config_file.write_text(json.dumps(config, indent=2) + "\n")

    def _spawn(self, process: Process, *, detach: bool) -> None:
        env = {
            **os.environ,
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_WFE_NONCEREJECT": str(self.nonce_reject_percent),
        }
        with process.log_file.open("wb") as log:  # fresh per start: logs tell this run
            child = subprocess.Popen(
                process.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.state_dir,
                # Own session: Ctrl-C in a terminal does not reach it; stop() does.
                start_new_session=True,
                preexec_fn=None if detach else die_with_parent,
            )
        process.pid_file.write_text(f"{child.pid}\n")
        # Kept even when detached: poll() tells an early exit and its status.
        self._children[process.name] = child

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.listener_ca_file))

    def _get(self, url: str) -> bytes:
        # No proxy from the environment: these requests stay on loopback.
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=self._ssl_context()),
        )
        with opener.open(url, timeout=5) as response:
            body: bytes = response.read()
            return body

    def _wait_for_directory(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            for name, child in self._children.items():
                if child.poll() is not None:
                    raise PebbleError(
                        f"{name} exited with status {child.returncode} at start:\n{self.log_tail()}"
                    )
            if "address already in use" in self.log_tail():
                # pebble-challtestsrv logs a failed bind and keeps running.
                raise PebbleError(f"a port is taken by another process:\n{self.log_tail()}")
            try:
                directory = json.loads(self._get(self.host_directory_url))
                if "newAccount" in directory:
                    return
            except (OSError, urllib.error.URLError, ValueError) as exc:
                last_error = exc
            time.sleep(0.1)
        raise PebbleError(
            f"{self.host_directory_url} did not answer within {self.start_timeout}s "
            f"({last_error}):\n{self.log_tail()}"
        )

    def _fetch_issuer_chain(self) -> None:
        root = self._get(f"{self.management_url}/roots/0")
        intermediate = self._get(f"{self.management_url}/intermediates/0")
        self.issuer_root_file.write_bytes(root)
        self.issuer_intermediate_file.write_bytes(intermediate)
        self.issuer_bundle_file.write_bytes(intermediate.rstrip(b"\n") + b"\n" + root)


def main(argv: list[str] | None = None) -> int:
    parser, start = start_stop_parser(
        "Run Debian's Pebble ACME CA for stackgen tests.",
        start_help="start detached; print JSON with paths and URLs",
        stop_help="stop what `start` started in this state dir",
    )
    start.add_argument("--http-port", type=int, default=80, help="proxy's HTTP port on loopback")
    start.add_argument("--tls-port", type=int, default=443, help="proxy's HTTPS port on loopback")
    start.add_argument("--dns-port", type=int, default=8053, help="fake DNS port on loopback")
    start.add_argument(
        "--dns-server",
        default=None,
        help="resolve through this DNS server (host:port, e.g. a bind9) instead of the fake DNS",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            ca = PebbleCA(
                args.state,
                http_port=args.http_port,
                tls_port=args.tls_port,
                dns_port=args.dns_port,
                dns_server=args.dns_server,
            )
            ca.start(detach=True)
            print(json.dumps(ca.info(), indent=2))
        else:
            PebbleCA(args.state).stop()
            print(f"stopped Pebble in {args.state}", file=sys.stderr)
    except PebbleError as exc:
        print(f"pebble: ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
