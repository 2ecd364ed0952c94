"""The edge-home target's operations: each side is a Compose project of its own, run by the
Compose target's operations in that side's folder; the tunnel's state from `wg show` in the
side's endpoint."""

from __future__ import annotations

import time

from stackgen import engine
from stackgen.engine import DockerException
from stackgen.errors import ProblemsFoundError
from stackgen.probe import Tunnel
from stackgen.stack import Stack
from stackgen.targets.base import Progress
from stackgen.targets.compose.target import Compose
from stackgen.targets.edge_home.config import EdgeHomeDeploy
from stackgen.targets.edge_home.stack_file import WG_CONF
from stackgen.targets.ports import require_free_ports
from stackgen.tunnel.state import TunnelState, parse

ENDPOINT = "wireguard"


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
            require_free_ports(stack.config, self._own(stack))

    def apply(self, stack: Stack, *, timeout: int, progress: Progress) -> None:
        deploy = _deploy(stack)
        if deploy.side == "home":
            progress(
                f"home dials the edge at {deploy.edge_host}:{deploy.wg_port} (udp): its "
                "endpoint is healthy after the first handshake"
            )
        super().apply(stack, timeout=timeout, progress=progress)

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
