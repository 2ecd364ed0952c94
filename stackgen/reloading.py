"""What `stackgen reload` does, decided from what changed alone (no engine, no files): the
least disruptive way to apply a re-render."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from enum import StrEnum

from stackgen import feeder
from stackgen.models import StackConfig
from stackgen.proxies.base import Proxy
from stackgen.render import COMPOSE_FILE, GATE_SCRIPT, network_xml_path


class ProxyAction(StrEnum):
    RESTART = "restart"  # drops connections: only where the software offers nothing else
    RELOAD = "reload"  # the proxy's graceful reload command, in its container
    WATCH = "watch"  # the proxy watches its files and applies them by itself


@dataclass(frozen=True)
class ReloadPlan:
    recreate: bool  # docker-compose.yml changed: `compose up` recreates what it changes
    restart_jellyfin: bool  # network.xml changed: Jellyfin reads it at start only
    restart_feeder: bool  # fail2ban's configuration changed: it reads it at start only
    proxy: ProxyAction | None  # None: this stack runs no proxy (edge-home's home side)
    reload_command: tuple[str, ...] | None  # with RELOAD
    # The gate's script changed: the gate reads it at start only (gated requests get the
    # proxy's error for the second or two it restarts).
    restart_gate: bool = False


def plan_reload(proxy: Proxy, config: StackConfig, changed: Set[str]) -> ReloadPlan:
    """What to do, for what this stack runs: a side of a split stack (edge-home) runs only
    the proxy or only Jellyfin (`DeployConfig.runs_proxy`, `runs_jellyfin`)."""
    deploy = config.deploy
    action: ProxyAction | None
    command: tuple[str, ...] | None = None
    if not deploy.runs_proxy:
        action = None
    elif proxy.needs_restart(config, set(changed)):
        action, command = ProxyAction.RESTART, None
    elif (reload := proxy.reload_command(config)) is not None:
        action, command = ProxyAction.RELOAD, tuple(reload)
    else:
        action, command = ProxyAction.WATCH, None
    return ReloadPlan(
        recreate=COMPOSE_FILE in changed,
        restart_jellyfin=deploy.runs_jellyfin and network_xml_path(config) in changed,
        restart_feeder=deploy.runs_proxy
        and proxy.feeder_on(config)
        and any(path.startswith(f"{feeder.CONF_DIR}/") for path in changed),
        proxy=action,
        reload_command=command,
        restart_gate=deploy.runs_proxy and config.token_gate.on and GATE_SCRIPT in changed,
    )
