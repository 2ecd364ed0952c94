"""The `jellyfin` table: its image, network, folders, media and published URLs."""

from __future__ import annotations

from enum import StrEnum
from pathlib import PurePosixPath
from typing import Annotated, Final

from pydantic import (
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from stackgen import validation
from stackgen.models.fields import (
    Image,
    LanSubnet,
    Port,
    Strict,
    Timezone,
    Url,
    _base_dir,
    _must_exist,
    validate_host_path,
)
from stackgen.options import Setting


class JellyfinNetwork(StrEnum):
    HOST = "host"
    BRIDGE = "bridge"


# Jellyfin's own folders: a media mount on, above or inside one hides it from Jellyfin.
JELLYFIN_DIRS: Final = ("/config", "/cache")


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(f"{b.rstrip('/')}/") or b.startswith(f"{a.rstrip('/')}/")


class MediaMount(Strict):
    source: str
    target: str = ""
    read_only: StrictBool = True

    @field_validator("source")
    @classmethod
    def _source(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip() or any(ord(c) < 32 for c in value):
            raise ValueError(f"media source {value!r} is empty or has control characters")
        # A ':' is fine (the compose file then uses the long volume syntax).
        if "$" in value:
            raise ValueError(
                f"media source {value!r} contains '$', which Compose reads as a variable"
            )
        validation.validate_mount_source(value, _base_dir(info))
        return _must_exist(info, value, "media path")

    @model_validator(mode="after")
    def _target(self) -> MediaMount:
        default = PurePosixPath(self.source).name.replace(":", "_") or "media"
        target = self.target or f"/media/{default}"
        if not target.startswith("/") or ".." in PurePosixPath(target).parts:
            raise ValueError(f"media target {target!r} must be an absolute path without '..'")
        if any(c in ":$" or ord(c) < 32 for c in target):
            raise ValueError(
                f"media target {target!r} must not contain ':', '$' or control characters"
            )
        # '/media//x/', '//media/x' and '/media/x' are one folder.
        target = "/" + str(PurePosixPath(target)).lstrip("/")
        for folder in JELLYFIN_DIRS:
            if _overlaps(target, folder):
                raise ValueError(
                    f"media target {target!r} collides with Jellyfin's {folder}: "
                    "Docker would mount the media over it (choose e.g. /media/...)"
                )
        object.__setattr__(self, "target", target)
        return self


class JellyfinConfig(Strict):
    image: Annotated[
        Image,
        Setting(
            "Jellyfin's image (`init --image jellyfin=IMAGE`)",
            flag="",
            readme="an image reference in Docker's grammar "
            "(`[registry[:port]/]name[:tag][@digest]`), as every `images.*`",
        ),
    ] = "jellyfin/jellyfin:10.11.11"
    network_mode: Annotated[
        JellyfinNetwork,
        Setting(
            "`host` (DLNA, HDHomeRun) or `bridge`",
            flag="jellyfin-network",
            readme="host: multicast works; the proxy reaches Jellyfin via "
            "`host.docker.internal` (the host gateway). bridge: on the proxy network, no "
            "published port",
        ),
    ] = JellyfinNetwork.HOST
    port: Annotated[Port, Setting("Jellyfin's HTTP port", flag="jellyfin-port", port=True)] = 8096
    config_dir: Annotated[
        str,
        Setting(
            "Jellyfin's configuration folder",
            flag="",
            readme="never a host system folder (as `jellyfin.media`)",
        ),
    ] = "jellyfin/config"
    cache_dir: Annotated[
        str,
        Setting(
            "Jellyfin's cache folder",
            flag="",
            readme="never a host system folder (as `jellyfin.media`)",
        ),
    ] = "jellyfin/cache"
    media: Annotated[
        list[MediaMount],
        Setting(
            "a media folder SOURCE[:TARGET][:rw], read-only by default; repeatable",
            readme='in stackgen.toml `[[jellyfin.media]] source = "/srv/movies"`, optional '
            "`target` (default `/media/NAME`), `read_only = true`. Targets are distinct and "
            "never on, above or inside `/config` or `/cache`. A source containing `:` is "
            "written in Compose's long volume syntax. A source (or a link to one) that is `/`, "
            "inside `/etc`, `/proc`, `/sys`, `/dev`, `/boot`, `/usr` or the Docker engine's "
            "socket and state, or above one of them (`/var`), or a socket or device, is refused "
            "([docs/security.md](docs/security.md#input-imports-files-and-values))",
        ),
    ] = Field(default_factory=list)
    published_url: Annotated[
        Url | None,
        Setting(
            "the URL Jellyfin advertises",
            default="the public URL",
            readme="an `http://` or `https://` URL with a host",
        ),
    ] = None
    # The URL LAN clients (and cast devices) are sent to instead of the public one,
    # through network.xml's PublishedServerUriBySubnet; lan_subnets say who is LAN.
    lan_url: Annotated[
        Url | None,
        Setting(
            "the URL Jellyfin gives LAN clients (needs `jellyfin.lan_subnets`)",
            readme="LAN clients (and cast devices) are sent to it, everyone else to the public "
            'URL (`PublishedServerUriBySubnet`). Needs `network_mode = "host"` and, on the '
            "host, an address in each subnet: Jellyfin skips a subnet's entry otherwise",
        ),
    ] = None
    lan_subnets: Annotated[
        list[LanSubnet],
        Setting(
            "a private subnet whose clients get `jellyfin.lan_url`; repeatable",
            flag="lan-subnet",
            readme="RFC 1918 or `fc00::/7`, not overlapping each other or the proxy network; "
            "they become Jellyfin's `LocalNetworkSubnets`",
        ),
    ] = Field(default_factory=list)
    timezone: Annotated[
        Timezone, Setting("Jellyfin's timezone, a tz database name such as `Europe/Paris`")
    ] = "Etc/UTC"
    start_seconds: Annotated[
        Annotated[StrictInt, Field(ge=10, le=3600)],
        Setting(
            "how long Jellyfin may take to start before its healthcheck counts (10-3600 s)",
            flag="jellyfin-start-seconds",
            readme="a large library or a database migration after an upgrade can take longer "
            "than the default; `up` then waits for it instead of failing on an unhealthy "
            "Jellyfin",
        ),
    ] = 60

    @field_validator("media")
    @classmethod
    def _distinct_targets(cls, value: list[MediaMount]) -> list[MediaMount]:
        seen: set[str] = set()
        for mount in value:
            if mount.target in seen:
                raise ValueError(f"two media folders are mounted on {mount.target!r}")
            seen.add(mount.target)
        return value

    @model_validator(mode="after")
    def _lan(self) -> JellyfinConfig:
        if self.lan_url and not self.lan_subnets:
            raise ValueError("jellyfin.lan_url needs jellyfin.lan_subnets (who is on the LAN)")
        if self.lan_subnets and not self.lan_url:
            raise ValueError("jellyfin.lan_subnets needs jellyfin.lan_url (where LAN clients go)")
        for url in (self.lan_url, self.published_url if self.lan_url else None):
            if url and "=" in url:
                # Jellyfin splits each entry at '=' and drops one with more than two parts.
                raise ValueError(f"{url!r}: a URL in PublishedServerUriBySubnet cannot hold '='")
        if self.lan_url and self.network_mode is not JellyfinNetwork.HOST:
            # NetworkManager.MatchesPublishedServerUrl skips a subnet entry unless one of
            # the server's interfaces is in that subnet: a bridged container has none.
            raise ValueError(
                "jellyfin.lan_url needs network_mode 'host': Jellyfin applies a subnet's URL "
                "only when it has an address in that subnet"
            )
        for i, a in enumerate(self.lan_subnets):
            for b in self.lan_subnets[i + 1 :]:
                if a.version == b.version and a.overlaps(b):
                    raise ValueError(f"LAN subnets {a} and {b} overlap")
        return self

    @field_validator("config_dir", "cache_dir")
    @classmethod
    def _relative_dir(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip() or "\n" in value:
            raise ValueError("folder must not be empty")
        validate_host_path(value)
        if PurePosixPath(value.strip()) == PurePosixPath("/"):
            raise ValueError("the root folder cannot be Jellyfin's folder")
        return validation.validate_mount_source(value, _base_dir(info))
