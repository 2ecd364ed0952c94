"""Refusing the dangerous values: what would hand a container the host, trust everyone's
X-Forwarded-For, steer Compose, or reach a proxy's own expansion syntax. Plain functions
that raise ValueError with the reason; the model (`stackgen.models`) calls them where a
value enters, so a refusal is one line naming the field (exit 3) before anything is written.
See docs/security.md ("Input: imports, files and values").
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from pathlib import Path, PurePosixPath
from typing import Final

# Host folders a container must never get: the host's configuration and credentials, the
# kernel's views of every process and device, the engine's socket and state. A mount of one,
# inside one, or above one (`/`, `/var`) is refused.
HOST_CONTROL_PATHS: Final = (
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/docker",
    "/run/containerd",
    "/var/lib/docker",
    "/var/lib/containerd",
)


def _related(path: PurePosixPath, control: PurePosixPath) -> bool:
    return path == control or control in path.parents or path in control.parents


def validate_mount_source(value: str, base_dir: str = ".") -> str:
    """A host folder mounted into a container (media, Jellyfin's config and cache): never a
    host control path, nor a link to one, nor a socket or device."""
    raw = Path(value).expanduser()
    where = raw if raw.is_absolute() else Path(base_dir) / raw
    # Followed as the engine will follow it: a link to /etc is /etc.
    resolved = PurePosixPath(os.path.realpath(where))
    if str(resolved) == "/":
        raise ValueError(f"{value!r} is the host's root folder: mount a folder of media")
    for control in HOST_CONTROL_PATHS:
        for candidate in {PurePosixPath(control), PurePosixPath(os.path.realpath(control))}:
            if _related(resolved, candidate):
                shown = value if str(resolved) == value else f"{value} ({resolved})"
                raise ValueError(
                    f"{shown} would give the container the host's {candidate}: "
                    "mount a folder of its own"
                )
    try:
        mode = os.stat(where).st_mode
    except OSError:
        return value  # not there (yet): existence is checked where it matters
    if stat.S_ISSOCK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise ValueError(f"{value!r} is a socket or a device, not a folder")
    return value


# Where a Docker network of this stack may be: RFC 1918 and the shared address space of
# RFC 6598, never public, loopback, link-local or multicast space (a proxy network there
# would shadow real hosts, and KnownProxies would name them).
PRIVATE_IPV4: Final = tuple(
    ipaddress.IPv4Network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)


def validate_private_subnet(value: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    if not any(value.subnet_of(r) for r in PRIVATE_IPV4):
        raise ValueError(
            f"{value} is not a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or "
            "100.64.0.0/10)"
        )
    return value


# Variables Compose reads from `.env` as its own settings, and ones that steer the programs
# in a container or on the host: never a DNS credential's name.
_STEERING_PREFIXES: Final = ("COMPOSE_", "DOCKER_", "BUILDKIT_", "LD_", "PYTHON", "BASH_FUNC_")
_STEERING_NAMES: Final = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "SHELL",
        "IFS",
        "ENV",
        "BASH_ENV",
        "PWD",
        "OLDPWD",
        "TMPDIR",
        "HOSTNAME",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    }
)


def validate_credential_name(value: str) -> str:
    """A DNS credential's variable name (`.env`): not one that steers Compose or a program."""
    if value in _STEERING_NAMES or value.startswith(_STEERING_PREFIXES):
        raise ValueError(
            f"{value!r} steers Compose, the shell or the programs in a container: "
            "not a credential's name"
        )
    return value


# nginx `$var`, Apache `%{X}e` and `${X}`, HAProxy `%[...]`, Caddy `{placeholder}`,
# Traefik's Go templates `{{ ... }}`: refused in every header value for every proxy, so
# the value is sent exactly as written, whichever proxy renders it.
_EXPANSION: Final = re.compile(r"[$%{}]")


def validate_header_value(value: str) -> str:
    if any(c in value for c in '\r\n"`\\') or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(
            "header values must be one line without quotes, backslashes or control characters"
        )
    found = _EXPANSION.search(value)
    if found:
        raise ValueError(
            f"header value has {found.group()!r}, which a proxy expands ($var, %{{X}}e, "
            "%[fetch], {placeholder}): not accepted in a header value"
        )
    return value


# Docker's image reference grammar (distribution's `reference` package): an optional
# registry host[:port], path components of lower-case letters and digits joined by '.', '_',
# '__' or dashes, an optional tag, an optional digest.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"\w[\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"({_NAME})(?::{_TAG})?(?:@{_DIGEST})?", re.ASCII)


def validate_image_reference(value: str) -> str:
    match = _REFERENCE.fullmatch(value)
    if match is None or len(match.group(1)) > 255:
        raise ValueError(
            f"{value!r} is not an image reference ([registry[:port]/]name[:tag][@digest])"
        )
    return value


# uid_t and gid_t are 32 bits, and (uid_t)-1 means "unchanged" to chown.
MAX_ID: Final = 2**32 - 2


def validate_run_as(value: str) -> str:
    """`uid:gid`, both numbers a kernel can hold."""
    uid, sep, gid = value.partition(":")
    if not sep or not re.fullmatch(r"[0-9]{1,10}", uid) or not re.fullmatch(r"[0-9]{1,10}", gid):
        raise ValueError(f"run_as {value!r} must be 'uid:gid' (numbers)")
    if int(uid) > MAX_ID or int(gid) > MAX_ID:
        raise ValueError(f"run_as {value!r}: a uid or gid is at most {MAX_ID}")
    return value
