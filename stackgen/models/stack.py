"""`stackgen.toml` as a whole (`StackConfig`): its tables, the settings at its top level, and
every fact derived from them, computed once (upstream address, Known Proxies, public URL,
...): no template and no proxy module computes a fact twice."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    SerializeAsAny,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from stackgen import dns_providers, validation
from stackgen.models.access import AccessSettings
from stackgen.models.deploy import DeployConfig, _default_deploy
from stackgen.models.fields import (
    _PROJECT,
    Domain,
    Email,
    Image,
    ProxyKind,
    Strict,
    Subpath,
    _exact_int,
    bind_source,
)
from stackgen.models.gate import GateSettings
from stackgen.models.jellyfin import JellyfinConfig, JellyfinNetwork
from stackgen.models.network import NetworkConfig, PortsConfig, ipv6_subnet_for
from stackgen.models.tls import TlsConfig, TlsMode
from stackgen.options import Setting
from stackgen.proxies import registry

SCHEMA_VERSION: Final = 1

# jellyfin-web 10.9+ needs 'unsafe-eval' and blob: workers; Chromecast needs gstatic.
# No frame-ancestors: it breaks the LG webOS app (docs/jellyfin.md).
DEFAULT_CSP: Final = (
    "default-src https: data: blob:; "
    "img-src 'self' https: data: blob:; "
    "style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline' 'unsafe-eval' https://www.gstatic.com "
    "https://www.youtube.com blob:; "
    "worker-src 'self' blob:; "
    "connect-src 'self' https: wss:; "
    "media-src 'self' https: blob: data:; "
    "object-src 'none'; "
    "font-src 'self' data:; "
    "base-uri 'self'; "
    "form-action 'self'"
)
DEFAULT_PERMISSIONS_POLICY: Final = (
    "accelerometer=(), ambient-light-sensor=(), bluetooth=(), camera=(), "
    "display-capture=(), geolocation=(), gyroscope=(), hid=(), magnetometer=(), "
    "microphone=(), payment=(), serial=(), usb=(), xr-spatial-tracking=()"
)
DEFAULT_REFERRER_POLICY: Final = "strict-origin-when-cross-origin"

# The containers' user when stackgen runs as root and none is given: 65532 is the
# container world's usual "nonroot" (distroless images), in Debian's reserved range
# 65000-65533 that no package or adduser hands out, so no account on the host is it.
STACK_USER: Final = "65532:65532"
# Where a target that hands DNS-01 credentials over as secrets keeps them: one file per
# variable, 0600, the invoking user's (stack-relative).
CREDENTIALS_DIR: Final = "secrets"


def default_run_as() -> str:
    """Whoever runs stackgen, unless that is root: then the dedicated STACK_USER."""
    uid, gid = os.geteuid(), os.getegid()
    return STACK_USER if uid == 0 else f"{uid}:{gid}"


_MEMORY = re.compile(r"^(\d{1,6})([kmg])$")
_MIN_MEMORY: Final = 32 * 2**20  # below this no proxy, Jellyfin or certbot starts


def validate_memory(value: str) -> str:
    """A memory limit as Compose and the swarm read it: a whole number and k, m or g."""
    match = _MEMORY.match(value)
    if match is None:
        raise ValueError(f"memory {value!r}: a whole number and k, m or g, e.g. '512m'")
    size = int(match.group(1)) * {"k": 2**10, "m": 2**20, "g": 2**30}[match.group(2)]
    if size < _MIN_MEMORY:
        raise ValueError(f"memory {value!r} is below 32m: the service would not start")
    return value


Memory = Annotated[str, AfterValidator(validate_memory)]
Pids = Annotated[StrictInt, Field(ge=16, le=1_000_000)]


class ServiceLimits(Strict):
    memory: Memory
    pids: Pids


_DEFAULT_LIMITS: Final = {
    "proxy": {"memory": "1g", "pids": 1024},
    "jellyfin": {"memory": "4g", "pids": 2048},
    "certbot": {"memory": "512m", "pids": 128},
    # fail2ban: one Python process with a few threads (about 12 MiB and 8 in the test
    # image at rest, docs/access.md).
    "fail2ban": {"memory": "128m", "pids": 64},
}


class LimitsConfig(Strict):
    """Per service, a memory limit (mem_limit) and a process/thread limit (pids_limit): a
    leak or a fork bomb in one container stops there. Generous by default (a limit above
    the machine's memory simply never binds): Jellyfin's transcodes need gigabytes and
    hundreds of threads; Apache's event workers are about 400 threads."""

    proxy: ServiceLimits = ServiceLimits.model_validate(_DEFAULT_LIMITS["proxy"])
    jellyfin: ServiceLimits = ServiceLimits.model_validate(_DEFAULT_LIMITS["jellyfin"])
    certbot: ServiceLimits = ServiceLimits.model_validate(_DEFAULT_LIMITS["certbot"])
    fail2ban: ServiceLimits = ServiceLimits.model_validate(_DEFAULT_LIMITS["fail2ban"])

    @model_validator(mode="before")
    @classmethod
    def _partial(cls, data: Any) -> Any:
        """`[limits.jellyfin] memory = "8g"` keeps the default pids."""
        if not isinstance(data, dict):
            return data
        return {
            name: {**_DEFAULT_LIMITS[name], **value}
            if name in _DEFAULT_LIMITS and isinstance(value, dict)
            else value
            for name, value in data.items()
        }


class ImagesConfig(BaseModel):
    """One image per proxy and per helper service (certbot), keyed by name. The names and
    their defaults (official images, pinned tags) come from the proxy registry, so a new
    proxy brings its own field."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, Image]

    @model_validator(mode="wrap")
    @classmethod
    def _registry_names(
        cls, data: Any, handler: ModelWrapValidatorHandler[ImagesConfig]
    ) -> ImagesConfig:
        if isinstance(data, dict):
            defaults = registry.default_images()
            unknown = [name for name in data if name not in defaults]
            if unknown:
                # The same error as an unknown field of a fixed model, at images.<name>.
                raise ValidationError.from_exception_data(
                    cls.__name__,
                    [
                        InitErrorDetails(type="extra_forbidden", loc=(name,), input=data[name])
                        for name in unknown
                    ],
                )
            # Registry order (then certbot), whatever order the file gives.
            data = {name: data.get(name, default) for name, default in defaults.items()}
        return handler(data)

    def of(self, name: str) -> str:
        return (self.__pydantic_extra__ or {})[name]


class HeadersConfig(Strict):
    content_security_policy: Annotated[
        str,
        Setting(
            "Content-Security-Policy",
            flag="",
            default="Jellyfin-safe CSP",
            readme="allows what jellyfin-web (10.9+) and Chromecast need",
        ),
    ] = DEFAULT_CSP
    referrer_policy: Annotated[
        str,
        Setting(
            "Referrer-Policy",
            flag="",
            default=f"`{DEFAULT_REFERRER_POLICY}`",
            readme="every header value is one line without quotes, backslashes, control "
            "characters, `$`, `%`, `{` or `}`: the proxies' own expansion syntax "
            "(`$http_cookie`, `%{X}e`, `%[fetch]`, `{env.X}`, `{{ }}`) is refused, so the "
            "value is sent as written",
        ),
    ] = DEFAULT_REFERRER_POLICY
    permissions_policy: Annotated[
        str,
        Setting("Permissions-Policy", flag="", default="every device feature off"),
    ] = DEFAULT_PERMISSIONS_POLICY
    # Off by default: X-Frame-Options breaks the LG webOS app.
    frame_options: Annotated[
        Literal["", "SAMEORIGIN", "DENY"],
        Setting(
            "X-Frame-Options: `SAMEORIGIN` or `DENY`",
            flag="",
            readme="off by default: it breaks the LG webOS app",
        ),
    ] = ""

    @field_validator("content_security_policy", "referrer_policy", "permissions_policy")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return validation.validate_header_value(value)


class StackConfig(Strict):
    schema_version: Annotated[
        Literal[1],
        BeforeValidator(_exact_int),
        Setting("the version of this file's format", flag=""),
    ] = SCHEMA_VERSION
    proxy: Annotated[
        ProxyKind,
        Setting(
            "the reverse proxy",
            argument=True,
            readme="`traefik`, `caddy`, `nginx`, `haproxy` or `apache` (or one a plugin registers)",
        ),
    ]
    domain: Annotated[
        Domain, Setting("public DNS name, e.g. jellyfin.example.com (no IP, no underscores)")
    ]
    email: Annotated[Email | None, Setting("ACME account email (required for ACME modes)")] = None
    subpath: Annotated[
        Subpath,
        Setting(
            "serve under a path, e.g. /jellyfin",
            readme="the prefix is kept end to end; `BaseUrl` set; `/jellyfin` → `/jellyfin/`",
        ),
    ] = ""
    project: Annotated[
        str,
        Setting("the stack's name: its Compose project or swarm stack", default="domain with `-`"),
    ] = ""
    run_as: Annotated[
        str,
        Setting(
            "user every container runs as (each number at most 4294967294), never root unless "
            "written (`0:0`, then `init` and `check` warn)",
            default="your `uid:gid`; as root `65532:65532`",
            init_default=default_run_as,
            readme="it owns only what the containers write (Jellyfin's folders, ACME state, "
            "certbot's folders); stackgen.toml, the compose file, `.env`, `.stackgen/`, the CA "
            "key and the proxy's configuration stay yours, and a key the proxy reads is yours "
            "with `run_as`'s group (0640). `check` fails when ownership or modes would stop a "
            "service from reading its keys or writing its folders, or let a container's user "
            "change a control file or key ([docs/security.md](docs/security.md))",
        ),
    ] = Field(default_factory=default_run_as)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    ports: PortsConfig = Field(default_factory=PortsConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    jellyfin: JellyfinConfig = Field(default_factory=JellyfinConfig)
    # A factory: a proxy registered after import still gets its default image.
    images: ImagesConfig = Field(default_factory=ImagesConfig)
    headers: HeadersConfig = Field(default_factory=HeadersConfig)
    access: AccessSettings = Field(default_factory=AccessSettings)
    # Off for clients that stall or cannot seek over h2 (Kodi, some TV apps): ALPN then
    # offers http/1.1 only, on every proxy.
    http2: Annotated[
        StrictBool,
        Setting(
            "offer HTTP/2",
            readme="`false` (`--no-http2`) makes every proxy's ALPN offer `http/1.1` only, for "
            "Kodi and TV apps that stall or cannot seek over h2",
        ),
    ] = True
    # QUIC on the HTTPS port's UDP twin, advertised with Alt-Svc; only proxies whose
    # official image has it (Proxy.supports_http3), refused with the reason otherwise.
    http3: Annotated[
        StrictBool,
        Setting(
            "offer HTTP/3 (QUIC) over UDP on the HTTPS port (not Apache)",
            readme="advertised with `Alt-Svc` naming the public port. Caddy, Traefik, nginx "
            "(`listen 443 quic`, the official image has `http_v3_module`) and HAProxy (`bind "
            "quic4@`, the official image is built with `USE_QUIC`); Apache httpd has no HTTP/3 "
            "at all and refuses it in one line",
        ),
    ] = False
    # The target's own class (SerializeAsAny: its fields are written too).
    deploy: SerializeAsAny[DeployConfig] = Field(default_factory=_default_deploy)
    limits: Annotated[
        LimitsConfig,
        Setting(
            "`memory` (`512m`, `4g`) and `pids` (processes and threads) of each service "
            "(`limits.proxy`, `limits.jellyfin`, `limits.certbot`, `limits.fail2ban`): "
            "`mem_limit`/`pids_limit`, "
            "on a swarm `deploy.resources.limits`",
            flag="",
            default="`1g`/1024, `4g`/2048, `512m`/128, `128m`/64",
            readme='`[limits.jellyfin] memory = "8g"` keeps the default `pids`',
        ),
    ] = Field(default_factory=LimitsConfig)

    @model_validator(mode="after")
    def _target_limits(self) -> StackConfig:
        self.deploy.check(self)
        return self

    # Dual-stack: the proxy network gets a pinned IPv6 subnet (network.subnet6), the ports
    # are published on IPv6 too (ports.listen_address6), every proxy listens on IPv6, and
    # Jellyfin's EnableIPv6 and KnownProxies follow.
    ipv6: Annotated[
        StrictBool,
        Setting(
            "dual-stack: IPv6 subnet, ports and Jellyfin's EnableIPv6",
            readme="the proxy network gets a pinned IPv6 subnet (`network.subnet6`) and the "
            "proxy a pinned IPv6 address, the ports are published on IPv6 too "
            "(`ports.listen_address6`), every proxy listens on IPv6, and Jellyfin gets "
            "`EnableIPv6 = true` with the proxy's IPv6 address in `KnownProxies`. IPv6 clients "
            'keep their address only when the engine has `"ip6tables": true` '
            "([docs/jellyfin.md](docs/jellyfin.md#ipv6-clients))",
        ),
    ] = False

    @model_validator(mode="after")
    def _ipv6_network(self) -> StackConfig:
        network = self.network
        if not self.ipv6:
            if network.subnet6 is not None:
                raise ValueError("network.subnet6 needs ipv6 = true")
            return self
        if network.subnet6 is None:
            # Pinned from here on: stackgen.toml is written with the derived value.
            object.__setattr__(network, "subnet6", ipv6_subnet_for(network.subnet))
        subnet6, proxy6 = network.subnet6, network.proxy_ip6
        lower_half = next(subnet6.subnets(prefixlen_diff=1)) if subnet6 else None
        if lower_half and proxy6 and proxy6 not in lower_half:
            raise ValueError(
                f"network.subnet6 {subnet6} is too small for the proxy's address {proxy6} "
                f"(the host number of {network.proxy_ip}) in its lower half"
            )
        return self

    @model_validator(mode="after")
    def _lan_not_the_proxy_network(self) -> StackConfig:
        for subnet in self.jellyfin.lan_subnets:
            proxy_net = self.network.subnet if subnet.version == 4 else self.network.subnet6
            if proxy_net is not None and subnet.overlaps(proxy_net):
                # The proxy's own address would count as a LAN client.
                raise ValueError(
                    f"jellyfin.lan_subnets: {subnet} overlaps the proxy network {proxy_net}"
                )
        return self

    @field_validator("run_as")
    @classmethod
    def _run_as(cls, value: str) -> str:
        return validation.validate_run_as(value)

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        if value and not _PROJECT.match(value):
            raise ValueError(f"project {value!r}: lower-case letters, digits, '-' and '_' only")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> StackConfig:
        if not self.project:
            object.__setattr__(self, "project", self.domain.replace(".", "-"))
        if self.tls.mode.is_acme and not self.email:
            # Not required by every CA, but it is the only way to hear about problems.
            raise ValueError(f"email is required with tls.mode {self.tls.mode.value!r}")
        zone = self.tls.dns_zone
        if zone is not None and not (self.domain == zone or self.domain.endswith(f".{zone}")):
            raise ValueError(f"tls.dns_zone {zone!r} does not contain the domain {self.domain!r}")
        if self.tls.wildcard and self.domain.count(".") < 2 and zone is None:
            raise ValueError(
                f"a wildcard for {self.domain!r} would be for its parent, a top-level domain "
                "(set tls.dns_zone)"
            )
        return self

    # --- derived facts (computed once, here) ---------------------------------------------

    @property
    def https_authority(self) -> str:
        return self.domain if self.ports.https == 443 else f"{self.domain}:{self.ports.https}"

    @property
    def public_url(self) -> str:
        """The URL users type, with a trailing slash."""
        return f"https://{self.https_authority}{self.subpath}/"

    @property
    def published_server_url(self) -> str:
        return self.jellyfin.published_url or self.public_url.rstrip("/")

    @property
    def publish_by_request(self) -> bool:
        """Jellyfin's EnablePublishedServerUriByRequest: LocalAddress from the request's
        (forwarded) scheme and host, which is what lets `verify` see the headers honoured.
        With a LAN URL it must be off, or the subnet list would never be read."""
        return self.jellyfin.lan_url is None

    @property
    def published_by_subnet(self) -> list[str]:
        """PublishedServerUriBySubnet: each LAN subnet to the LAN URL, everyone else
        ("external") to the public one."""
        if self.jellyfin.lan_url is None:
            return []
        lan = [
            f"{subnet}={self.jellyfin.lan_url.rstrip('/')}" for subnet in self.jellyfin.lan_subnets
        ]
        return [*lan, f"external={self.published_server_url}"]

    @property
    def published_server_url_env(self) -> str | None:
        """JELLYFIN_PublishedServerUrl, unless a LAN URL is set: Jellyfin then uses the
        variable for every client and never reads PublishedServerUriBySubnet."""
        return None if self.jellyfin.lan_url else self.published_server_url

    @property
    def dns_zone(self) -> str:
        """The zone the DNS-01 record goes in: as configured, or the domain's parent."""
        return self.tls.dns_zone or self.domain.partition(".")[2]

    @property
    def certificate_names(self) -> list[str]:
        """The names the certificate is issued for: the domain, or with a wildcard `*.ZONE`
        and `ZONE` (plus the domain when it is deeper than the wildcard reaches)."""
        if not self.tls.wildcard:
            return [self.domain]
        zone = self.dns_zone
        names = [f"*.{zone}", zone]
        if self.domain != zone and self.domain.partition(".")[2] != zone:
            names.append(self.domain)
        return names

    @property
    def publishes_http(self) -> bool:
        """Port 80 is published: HTTP-01 needs it; DNS-01 and TLS-ALPN-01 do not, so there
        it is published only for a redirect listener the user asks for."""
        if self.tls.redirect_http is not None:
            return self.tls.redirect_http
        return self.tls.mode not in (TlsMode.ACME_DNS, TlsMode.ACME_TLS_ALPN)

    @property
    def dns_provider(self) -> dns_providers.DnsProvider | None:
        if self.tls.mode is not TlsMode.ACME_DNS or not self.tls.dns_provider:
            return None
        return dns_providers.provider(self.tls.dns_provider)

    @property
    def certbot_image(self) -> str:
        """The certbot service's image. The official `certbot/certbot` has no DNS plugin;
        certbot publishes one image per plugin (`certbot/dns-cloudflare`, same tags), used
        for DNS-01 unless images.certbot names another."""
        image = self.images.of("certbot")
        default = registry.SERVICE_IMAGES["certbot"]
        provider = self.dns_provider
        if provider is None or image != default:
            return image
        return default.replace("certbot/certbot:", f"certbot/dns-{provider.certbot_plugin}:", 1)

    @property
    def dns_secret_names(self) -> list[str]:
        """The variables the secrets file (.env) must give: the provider's, then dns_env."""
        provider = self.dns_provider
        names = list(provider.variables) if provider else []
        return names + [name for name in self.tls.dns_env if name not in names]

    @property
    def dns_credential_files(self) -> dict[str, str]:
        """Each DNS-01 credential's own file in the stack (0600), by variable, where the
        target hands credentials over as secrets; empty where `.env` holds them."""
        if not self.deploy.credentials_as_secrets:
            return {}
        return {name: f"{CREDENTIALS_DIR}/{name}" for name in self.dns_secret_names}

    @property
    def dns_env_file(self) -> bool:
        """Whether the ACME client's container reads the credentials from `.env`."""
        return bool(self.dns_secret_names) and not self.deploy.credentials_as_secrets

    @property
    def jellyfin_host(self) -> str:
        """How the proxy container reaches Jellyfin (as the target says)."""
        return self.deploy.jellyfin_address(self)

    @property
    def upstream_moves(self) -> bool:
        """Jellyfin's address changes while the stack runs (a bridged Jellyfin on a target
        that readdresses services): a proxy must resolve its name again, not once."""
        bridged = self.jellyfin.network_mode is JellyfinNetwork.BRIDGE
        return bridged and self.deploy.readdresses_services

    @property
    def proxy_host(self) -> str:
        """How a service beside the proxy (certbot) reaches it."""
        return self.deploy.proxy_host(self)

    @property
    def ban_reads_jellyfin_log(self) -> bool:
        """Whether the feeder reads Jellyfin's log: asked, and beside the proxy."""
        return self.access.ban.jellyfin_log and self.deploy.feeds_ban_list

    @property
    def ban_reads_proxy_log(self) -> bool:
        """Whether the feeder reads the proxy's failed logins: asked, a target where the
        feeder can run beside the proxy, and a proxy that sends them
        (`ProxySpec.no_login_log`)."""
        return (
            self.access.ban.proxy_log
            and self.deploy.feeds_ban_list_from_proxy
            and not registry.spec(self.proxy).no_login_log
        )

    @property
    def ban_feeder_on(self) -> bool:
        """Whether the ban list's feeder runs (with a proxy that has a deny file:
        `Proxy.feeder_on`), with something to read."""
        ban = self.access.ban
        return (
            ban.enabled and ban.feeder and (self.ban_reads_jellyfin_log or self.ban_reads_proxy_log)
        )

    @property
    def token_gate(self) -> GateSettings:
        """The token gate's settings, wherever the file keeps them."""
        return self.access.gate

    @property
    def gate_address(self) -> ipaddress.IPv4Address:
        """Where the proxy reaches the token gate service (as the target says)."""
        return self.deploy.gate_address(self)

    @property
    def gate_listen(self) -> str:
        """The address the gate binds: loopback only when the proxy asks it there (it then
        shares a network namespace that others reach too), every address otherwise."""
        return "127.0.0.1" if self.gate_address.is_loopback else "0.0.0.0"  # noqa: S104

    @property
    def gate_check_url(self) -> str:
        """Where the proxies' HTTP sub-requests ask the gate (every proxy but Apache)."""
        gate = self.token_gate
        return f"http://{self.gate_address}:{gate.http_port}{gate.check_path}"

    @property
    def jellyfin_upstream(self) -> str:
        return f"http://{self.jellyfin_host}:{self.jellyfin.port}"

    @property
    def known_proxies(self) -> list[str]:
        """Where the proxy's connections to Jellyfin come from, as Jellyfin sees them (the
        target says: docs/ARCHITECTURE.md, "A deploy target")."""
        return self.deploy.known_proxies(self)

    @property
    def health_path(self) -> str:
        return f"{self.subpath}/health"

    @property
    def tls_files(self) -> tuple[str, str] | None:
        """Bind sources of the served certificate chain and key (modes internal and files)."""
        if self.tls.mode is TlsMode.INTERNAL:
            return "./tls/fullchain.pem", "./tls/privkey.pem"
        if self.tls.mode is TlsMode.FILES and self.tls.cert_file and self.tls.key_file:
            return bind_source(self.tls.cert_file), bind_source(self.tls.key_file)
        return None

    @property
    def acme_ca_bundle(self) -> str | None:
        return bind_source(self.tls.ca_bundle) if self.tls.ca_bundle else None

    @property
    def client_trust_file(self) -> str | None:
        """What a client of this stack must trust beyond the system store (stack-relative)."""
        if self.tls.mode is TlsMode.INTERNAL:
            return "tls/ca.pem"
        return self.tls.trust_bundle

    @property
    def connect_address(self) -> str:
        """Where this machine reaches the published ports."""
        address = str(self.ports.listen_address)
        return "127.0.0.1" if address == "0.0.0.0" else address  # noqa: S104

    @property
    def uid(self) -> int:
        return int(self.run_as.split(":")[0])

    @property
    def gid(self) -> int:
        return int(self.run_as.split(":")[1])


def parse_config(data: dict[str, Any], base_dir: Path, *, check_paths: bool = True) -> StackConfig:
    return StackConfig.model_validate(
        data, context={"base_dir": str(base_dir), "check_paths": check_paths}
    )
