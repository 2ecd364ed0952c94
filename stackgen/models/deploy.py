"""The `deploy` table: which target runs the stack; each target declares its own table
(`stackgen/targets/<name>/config.py`)."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import (
    ModelWrapValidatorHandler,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails

from stackgen.models.fields import Strict
from stackgen.models.jellyfin import JellyfinNetwork
from stackgen.options import Setting
from stackgen.targets import registry as targets

if TYPE_CHECKING:
    from stackgen.models.stack import StackConfig


class DeployConfig(Strict):
    """The `deploy` table: which target runs the stack (`target`), and that target's own
    settings. Each target declares its table as a subclass (`stackgen/targets/<name>/
    config.py`), which says what the stack's facts depend on it: where the proxy's
    connections to Jellyfin come from, how the proxy reaches a host-network Jellyfin, the
    target's limits. Validating this class picks the target's own class by `target`."""

    target: Annotated[
        str,
        Setting(
            "where the stack runs: `compose` (docker compose on this machine), `swarm` "
            "(docker stack deploy) or `edge-home` (the proxy on a public edge server, Jellyfin "
            "at home behind NAT, joined by WireGuard)",
            default="`compose`",
            readme="[docs/swarm.md](docs/swarm.md), [docs/edge-home.md](docs/edge-home.md); "
            "`ipv6` is Compose only for now",
        ),
    ]
    # Whether the target moves services between addresses as it runs them (a bridged
    # Jellyfin's address then changes on every replacement: the proxies resolve it again).
    readdresses_services: ClassVar[bool] = False
    # Whether a host-network Jellyfin binds this machine's interfaces beside the proxy (a
    # swarm runs it on the media node instead, reached over the target's own link).
    jellyfin_beside_proxy: ClassVar[bool] = True
    # Whether the DNS-01 credentials reach the ACME client as the target's secrets, one file
    # each (`secrets/NAME`, mounted at /run/secrets/NAME), instead of `.env`: a swarm
    # resolves an `env_file` into the service spec, which `docker service inspect` shows.
    credentials_as_secrets: ClassVar[bool] = False
    # Whether the target can run the token gate (access.gate): `verify`'s fix texts name it
    # only where it can be turned on.
    offers_token_gate: ClassVar[bool] = True
    # Settings `init` turns on for this target when the command line leaves them out, by
    # dotted path, with the one line `init` says about each (why this target wants it).
    init_defaults: ClassVar[dict[str, tuple[object, str]]] = {}

    @model_validator(mode="wrap")
    @classmethod
    def _by_target(cls, data: Any, handler: ModelWrapValidatorHandler[DeployConfig]) -> Any:
        if cls is not DeployConfig or not isinstance(data, dict):
            return handler(data)
        name = data.get("target", targets.default())
        names = targets.available()
        if name not in names:
            choices = ", ".join(repr(n) for n in names[:-1]) + f" or {names[-1]!r}"
            raise ValidationError.from_exception_data(
                cls.__name__,
                [
                    InitErrorDetails(
                        type="enum", loc=("target",), input=name, ctx={"expected": choices}
                    )
                ],
            )
        own: type[DeployConfig] = targets.load(name, "config")
        given = dict(data)
        for key in [key for key in given if key not in own.model_fields]:
            owners = [n for n in names if key in targets.load(n, "config").model_fields]
            if not owners:
                continue  # an unknown field: the target's own class names it
            if given[key] in (None, [], {}) or _is_default(owners[0], key, given[key]):
                # Empty, as `init` wrote every target's settings before each target had
                # its own table, or the owner's default (`init`'s off switch): nothing is
                # lost in leaving it out.
                del given[key]
                continue
            raise ValueError(f"deploy.{key} applies to deploy.target {owners[0]!r} only")
        return own.model_validate({**given, "target": name})

    @classmethod
    def variants(cls) -> list[type[DeployConfig]]:
        """Each target's own table (their settings are the `deploy` table's)."""
        return [targets.load(name, "config") for name in targets.available()]

    # What a stack of this table runs: a target that splits one configuration into several
    # stacks (`sides`) gives each stack part of the services.
    @property
    def runs_proxy(self) -> bool:
        return True

    @property
    def runs_jellyfin(self) -> bool:
        return True

    @property
    def feeds_ban_list(self) -> bool:
        """Whether the ban list's feeder (an in-stack fail2ban) may run: it reads Jellyfin's
        log folder and writes a file the proxy reads, so both must be beside it."""
        return self.runs_proxy and self.runs_jellyfin

    @property
    def feeds_ban_list_from_proxy(self) -> bool:
        """Whether the feeder may run beside the proxy on the proxy's failed logins alone
        (access.ban.proxy_log): the proxy's socket and deny files are beside it, wherever
        Jellyfin runs (edge-home's edge side)."""
        return self.runs_proxy

    def sides(self, config: StackConfig) -> dict[str, StackConfig]:
        """The stacks `init` renders from this configuration, by sub-folder of the stack
        folder ("" for the folder itself): one, unless the target splits the services
        between machines (each side then gets a configuration of its own)."""
        return {"": config}

    def known_proxies(self, config: StackConfig) -> list[str]:
        """Where the proxy's connections to Jellyfin come from, as Jellyfin sees them."""
        raise NotImplementedError

    def jellyfin_address(self, config: StackConfig) -> str:
        """How the proxy container reaches Jellyfin: its service name on the stack's network,
        or, on a host network, as the target says (`media_host`)."""
        if config.jellyfin.network_mode is JellyfinNetwork.HOST:
            return self.media_host(config)
        return "jellyfin"

    def media_host(self, config: StackConfig) -> str:
        """How the proxy reaches a Jellyfin on a host network."""
        return "host.docker.internal"

    def gate_address(self, config: StackConfig) -> ipaddress.IPv4Address:
        """Where the proxy asks the token gate: the gate service's pinned address on the
        stack's network. The proxies name it by address, because Apache resolves its
        FastCGI authorizer once, at start (and nginx its upstreams), and a restarted
        container could come back elsewhere. The last usable host of the lower half, which
        Docker never hands out (or the one before, if the proxy holds it)."""
        lower = next(config.network.subnet.subnets(prefixlen_diff=1))
        address = lower.broadcast_address - 1
        return address - 1 if address == config.network.proxy_ip else address

    def proxy_host(self, config: StackConfig) -> str:
        """How a service beside the proxy (certbot) reaches it."""
        return str(config.network.proxy_ip)

    def check(self, config: StackConfig) -> None:
        """The target's limits on the rest of the configuration (a ValueError each)."""

    def exposure(self, config: StackConfig) -> list[str]:
        """What the target's own settings still expose, one line each (`init`, `check`)."""
        return []


def _is_default(target: str, key: str, value: Any) -> bool:
    default = (
        targets.load(target, "config").model_fields[key].get_default(call_default_factory=True)
    )
    return type(value) is type(default) and bool(value == default)


def _default_deploy() -> DeployConfig:
    return DeployConfig.model_validate({})
