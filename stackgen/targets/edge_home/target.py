"""The edge-home target's operations: each side is a Compose project of its own, run by the
Compose target's operations in that side's folder; the tunnel's state from `wg show` in the
side's endpoint."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Final

from stackgen import engine
from stackgen.engine import DockerException
from stackgen.errors import DockerError, InvalidInputError, ProblemsFoundError
from stackgen.probe import Tunnel
from stackgen.stack import Stack
from stackgen.targets.base import Progress
from stackgen.targets.compose.target import Compose
from stackgen.targets.edge_home.config import EdgeHomeDeploy
from stackgen.targets.edge_home.stack_file import WG_CONF
from stackgen.targets.ports import held_by_us, port_free, port_holder, require_free_ports
from stackgen.tunnel.state import TunnelState, parse

ENDPOINT = "wireguard"
# `up`'s trial of what the endpoint needs: wg-quick brings up a throwaway interface in the
# endpoint's image given exactly the service's capability and device (userspace WireGuard
# where the kernel has none). The key is made and dropped inside the trial's container.
TUN_TRIAL: Final = (
    "set -e; umask 077; "
    'printf "[Interface]\\nPrivateKey = %s\\nAddress = 10.255.255.1/32\\n" "$(wg genkey)" '
    "> /run/wg0.conf; wg-quick up /run/wg0.conf"
)
# `reload`: wg0.conf's peers, keys, port and keepalive applied to the running interface
# without taking it down (an unchanged peer keeps its session); wg-quick's `strip` drops
# what only wg-quick reads (Address, which needs a restart of the endpoint).
TUNNEL_SYNC: Final = ("bash", "-c", "wg syncconf wg0 <(wg-quick strip wg0)")
# wg-quick's own fallback when the kernel has no WireGuard: expected, not the failure.
_EXPECTED_LINES: Final = ("Error: Unknown device type.",)


def trial_failure_line(output: str) -> str:
    """The line that says why the trial failed: wireguard-go's about the TUN device when
    it printed one, else the first error line (wg-quick's `[#]` steps and wireguard-go's
    banner are not)."""
    lines = [
        line.strip()
        for line in output.splitlines()
        if line.strip() and line.strip()[0] not in "\u2502\u250c\u2514"  # the banner's box
    ]
    for line in lines:
        if "TUN device" in line:
            return line
    errors = [
        line
        for line in lines
        if not line.startswith(("[#]", "[!]")) and line not in _EXPECTED_LINES
    ]
    return (errors or lines or ["no output"])[0]


def tun_trial_error(image: str, output: str) -> DockerError:
    return DockerError(
        f"the engine does not give the tunnel endpoint what it needs (NET_ADMIN and "
        f"/dev/net/tun; a trial of wg-quick in {image} failed: {trial_failure_line(output)}): "
        "see docs/edge-home.md"
    )


def wg_port_in_use(port: int, holder: str) -> DockerError:
    return DockerError(
        f"udp port {port} (deploy.wg_port) is in use by {holder}: free it or change "
        "deploy.wg_port (home dials the same port)"
    )


def edge_host_unresolved(host: str, reason: str) -> InvalidInputError:
    return InvalidInputError(
        f"deploy.edge_host {host!r} does not resolve here ({reason}): home could not dial "
        "the edge; give the edge's public name or address"
    )


def require_edge_host_resolves(
    host: str, port: int, resolve: Callable[..., object] = socket.getaddrinfo
) -> None:
    """Home dials the edge by this name (IPv4: the tunnel is IPv4)."""
    try:
        resolve(host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as error:
        reason = error.strerror if isinstance(error, socket.gaierror) else "not a valid name"
        raise edge_host_unresolved(host, str(reason)) from None


def _deploy(stack: Stack) -> EdgeHomeDeploy:
    deploy = stack.config.deploy
    if not isinstance(deploy, EdgeHomeDeploy):  # pragma: no cover - the registry's pairing
        raise TypeError(f"deploy.target {deploy.target!r} is not edge-home")
    return deploy


def tunnel_state(stack: Stack) -> TunnelState | None:
    """The tunnel as this side's endpoint sees it; None when the endpoint does not run."""
    outputs = []
    try:
        for field in ("latest-handshakes", "transfer", "endpoints", "allowed-ips"):
            argv = ["wg", "show", "wg0", field]
            outputs.append(engine.compose_exec_output(stack.compose, ENDPOINT, argv))
    except DockerException:
        return None
    handshakes, transfer, endpoints, allowed_ips = outputs
    return parse(handshakes, transfer, endpoints, allowed_ips, now=int(time.time()))


class EdgeHome(Compose):
    name = "edge-home"

    def preflight(self, stack: Stack, progress: Progress) -> None:
        deploy = _deploy(stack)
        if deploy.side is None:
            raise ProblemsFoundError(
                f"{stack.folder} holds no side of an edge-home pair: run `stackgen up` with "
                "`--side edge` or `--side home` (its edge/ and home/ folders)"
            )
        if not (stack.folder / WG_CONF).is_file():
            raise ProblemsFoundError(
                f"{stack.folder / WG_CONF} is missing: `stackgen init --target edge-home` makes "
                "the keys of both sides at once (init again with --force, and copy both folders)"
            )
        if deploy.runs_proxy:
            # Home publishes nothing; the edge the proxy's ports (the endpoint holds them).
            own = self._own(stack)
            require_free_ports(stack.config, own)
            address = str(stack.config.ports.listen_address)
            if not port_free(address, deploy.wg_port, socket.SOCK_DGRAM):
                holder = port_holder(deploy.wg_port, "udp")
                if not held_by_us(holder, own):  # our own endpoint: `up` is re-runnable
                    raise wg_port_in_use(deploy.wg_port, holder.description)
        elif deploy.edge_host is not None:
            require_edge_host_resolves(deploy.edge_host, deploy.wg_port)

    def ensure_images(self, stack: Stack, progress: Progress) -> None:
        """The images, then a trial that the engine gives the endpoint NET_ADMIN and the
        TUN device: without them the endpoint would restart forever, the stack half up."""
        super().ensure_images(stack, progress)
        image = stack.config.images.of(ENDPOINT)
        progress(f"trying the tunnel endpoint's device and capability in {image}")
        try:
            ok, output = engine.run_tunnel_trial(image, TUN_TRIAL)
        except DockerError as error:  # e.g. the host has no /dev/net/tun to hand over
            raise tun_trial_error(image, str(error)) from None
        if not ok:
            raise tun_trial_error(image, output)

    def apply(self, stack: Stack, *, timeout: int, progress: Progress) -> None:
        deploy = _deploy(stack)
        if deploy.side == "home":
            progress(
                f"home dials the edge at {deploy.edge_host}:{deploy.wg_port} (udp): its "
                "endpoint is healthy after the first handshake"
            )
        super().apply(stack, timeout=timeout, progress=progress)

    def reload(self, stack: Stack, changed: set[str], progress: Progress) -> None:
        """The Compose target's reload for what this side runs (the edge's proxy and gate,
        home's Jellyfin), then the tunnel's settings applied in place."""
        super().reload(stack, changed, progress)
        progress(f"{ENDPOINT}: tunnel settings applied in place (wg syncconf; the tunnel stays up)")
        try:
            engine.compose_exec(stack.compose, ENDPOINT, list(TUNNEL_SYNC))
        except DockerException as error:
            reason = " ".join(str(error.stderr or error).split())
            raise DockerError(f"reload failed: the tunnel endpoint: {reason}") from None

    def awaits_jellyfin(self, stack: Stack, progress: Progress) -> bool:
        """The edge waits for Jellyfin through the proxy once home has dialled in; before,
        its `up` ends with the proxy serving and says what is missing."""
        state = tunnel_state(stack)
        if state is not None and state.up:
            return True
        home = _deploy(stack)
        progress(
            f"the edge is up; home has not dialled in yet (udp {home.wg_port}): run `stackgen up "
            "--side home` at home, then `stackgen status --side edge` shows the tunnel"
        )
        return False

    def proxy_addresses(self, stack: Stack) -> list[str]:
        """The proxy shares the edge endpoint's network namespace: its connections to
        Jellyfin leave from the edge's tunnel address, whatever its container reports."""
        deploy = _deploy(stack)
        if not deploy.runs_proxy or self.proxy_container(stack) is None:
            return []
        return [str(deploy.edge_address)]

    def proxy_container(self, stack: Stack) -> tuple[str, list[str]] | None:
        """The proxy's container, with the endpoint's addresses (it has none of its own)."""
        found = super().proxy_container(stack)
        if found is None:
            return None
        try:
            endpoints = engine.compose_containers(stack.compose, [ENDPOINT])
        except DockerException:
            return None
        addresses = [a for c in endpoints for a in c.addresses if ":" not in a]
        return found[0], addresses

    def client_route(self, stack: Stack) -> list[str]:
        deploy = _deploy(stack)
        if not deploy.runs_proxy:
            return []
        return [
            f"the edge proxy ({stack.config.proxy}), in the edge tunnel endpoint's network "
            "namespace",
            f"WireGuard {deploy.edge_address} -> {deploy.home_address} (home dials the edge)",
            f"Jellyfin at home, {stack.config.jellyfin_upstream}",
        ]

    def tunnel(self, stack: Stack) -> Tunnel | None:
        deploy = _deploy(stack)
        state = tunnel_state(stack)
        peer = deploy.home_address if deploy.side == "edge" else deploy.edge_address
        if state is None:
            return Tunnel(handshake_age=None, allowed_ips=(), expected_peer=f"{peer}/32")
        return Tunnel(state.handshake_age, state.allowed_ips, f"{peer}/32")

    def report(self, stack: Stack) -> dict[str, object]:
        state = tunnel_state(stack)
        side = _deploy(stack).side
        if state is None:
            summary = "down: its endpoint does not run"
            return {
                "side": side,
                "tunnel": {"up": False, "summary": summary},
                "problems": [f"tunnel ({summary})"],
            }
        problems = [] if state.up else [f"tunnel ({state.line()})"]
        return {"side": side, "tunnel": state.to_json(), "problems": problems}
