"""`up --side`'s own checks on the edge-home target (docs/edge-home.md, "Preflight"): the
engine gives the endpoint NET_ADMIN and /dev/net/tun (a trial in its image), the edge's
WireGuard port is free, home can resolve the edge. Each is one line with its exit code."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from stackgen.errors import DockerError, ExitCode, InvalidInputError
from stackgen.stack import Stack
from stackgen.targets.edge_home.target import (
    EdgeHome,
    require_edge_host_resolves,
    trial_failure_line,
    tun_trial_error,
)
from tests.unit.test_cli import stackgen
from tests.unit.test_edge_home import INIT

BANNER = (
    "┌──────────────────────────────────────────────────────┐\n"
    "│   Running wireguard-go is not required because this  │\n"
    "└──────────────────────────────────────────────────────┘\n"
)
FALLBACK = (
    "[#] ip link add wg0 type wireguard\nError: Unknown device type.\n"
    "[!] Missing WireGuard kernel module. Falling back to slow userspace implementation.\n"
    "[#] wireguard-go wg0\n"
)
WG_SETCONF_FAILED = (
    "Unable to access interface: Protocol not supported\n[#] ip link delete dev wg0\n"
    'Cannot find device "wg0"\n'
)
# What the trial printed on this engine, the device or the capability taken away (wg-quick
# and wireguard-go interleave their lines).
NO_DEVICE = (
    'ERROR: (wg0) 2026/12/07 03:09:01 Failed to create TUN device: CreateTUN("wg0") failed; '
    "/dev/net/tun does not exist\n" + FALLBACK + BANNER + WG_SETCONF_FAILED
)
NO_NET_ADMIN = (
    FALLBACK
    + BANNER
    + WG_SETCONF_FAILED
    + "ERROR: (wg0) 2026/12/07 03:08:58 Failed to create TUN device: operation not permitted\n"
)
# A kernel with WireGuard but no NET_ADMIN: ip's own refusal.
KERNEL_NO_NET_ADMIN = (
    "[#] ip link add wg0 type wireguard\nRTNETLINK answers: Operation not permitted\n"
)


@pytest.mark.parametrize(
    ("output", "line"),
    [
        (
            NO_DEVICE,
            'Failed to create TUN device: CreateTUN("wg0") failed; /dev/net/tun does not exist',
        ),
        (NO_NET_ADMIN, "Failed to create TUN device: operation not permitted"),
        (KERNEL_NO_NET_ADMIN, "RTNETLINK answers: Operation not permitted"),
        ("", "no output"),
    ],
)
def test_the_trials_failure_is_told_by_its_own_line(output: str, line: str) -> None:
    assert trial_failure_line(output).endswith(line)
    error = tun_trial_error("masipcat/wireguard-go:0.0.20230223", output)
    assert error.exit_code is ExitCode.DOCKER
    message = str(error)
    assert "\n" not in message
    assert "NET_ADMIN and /dev/net/tun" in message and line in message
    assert "Unknown device type" not in message  # wg-quick's expected fallback


def test_an_engine_that_cannot_hand_over_the_device_is_the_same_error() -> None:
    engine_said = (
        "running a container of img failed: error gathering device information while adding "
        'custom device "/dev/net/tun": no such file or directory'
    )
    message = str(tun_trial_error("img", engine_said))
    assert 'adding custom device "/dev/net/tun": no such file or directory' in message


def _resolver_failing(*_args: object, **_kwargs: object) -> object:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def test_home_refuses_an_edge_host_that_does_not_resolve() -> None:
    with pytest.raises(InvalidInputError) as raised:
        require_edge_host_resolves("edge.example.invalid", 51820, _resolver_failing)
    assert raised.value.exit_code is ExitCode.INVALID_INPUT
    assert str(raised.value) == (
        "deploy.edge_host 'edge.example.invalid' does not resolve here (Name or service not "
        "known): home could not dial the edge; give the edge's public name or address"
    )


def test_an_edge_host_given_as_an_address_needs_no_name_service() -> None:
    require_edge_host_resolves("192.0.2.10", 51820)


def _free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_the_edge_refuses_a_wireguard_port_in_use(tmp_path: Path) -> None:
    site = tmp_path / "site"
    http, https = _free_port(socket.SOCK_STREAM), _free_port(socket.SOCK_STREAM)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        wg_port = taken.getsockname()[1]
        run = stackgen(
            *INIT, "--dir", str(site), "--wg-port", str(wg_port),
            "--http-port", str(http), "--https-port", str(https),
            "--listen-address", "127.0.0.1",
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        edge = Stack.load(site / "edge")
        with pytest.raises(DockerError) as raised:
            edge.target.preflight(edge, lambda _line: None)
    assert raised.value.exit_code is ExitCode.DOCKER
    message = str(raised.value)
    assert message.startswith(f"udp port {wg_port} (deploy.wg_port) is in use by ")
    assert message.endswith(": free it or change deploy.wg_port (home dials the same port)")
    # Free again: the edge's preflight passes.
    edge.target.preflight(edge, lambda _line: None)
    assert isinstance(edge.target, EdgeHome)


def test_verify_tells_the_probe_the_edge_runs_the_token_gate(tmp_path: Path) -> None:
    from stackgen.verify import stack_target

    run = stackgen(*INIT, "--dir", str(tmp_path / "site"))
    assert run.returncode == 0, run.stderr
    edge = Stack.load(tmp_path / "site" / "edge")
    target = stack_target(edge, timeout=5.0)
    assert target.gate_offered is True and target.token_gate is True
