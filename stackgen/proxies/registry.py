"""The list of proxies: every package under `stackgen/proxies/` that declares a `SPEC`, plus
any registered at run time (a plugin, a test's fixture).

Imports no configuration model: `stackgen.models` derives the proxy names and the image
fields from here.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Final

from stackgen.errors import InvalidInputError
from stackgen.proxies.spec import ProxySpec

if TYPE_CHECKING:
    from stackgen.proxies.base import Proxy

# Images of services that are not proxies but that run beside one: certbot (a certificate
# source), fail2ban (the ban list's feeder), and the WireGuard endpoint of the edge-home
# target (a maintained userspace image whose wireguard-go has packet batching, 0.0.20230223:
# docs/edge-home.md).
SERVICE_IMAGES: Final = {
    "certbot": "certbot/certbot:v5.8.0",
    "wireguard": "masipcat/wireguard-go:0.0.20230223",
    # The ban list's feeder: the most used fail2ban image (Alpine; fail2ban-server and
    # fail2ban-client on the path, python3), run with stackgen's own command and files.
    "fail2ban": "crazymax/fail2ban:1.0.2",
}

_registered: dict[str, ProxySpec] = {}
_loaded: dict[str, Proxy] = {}


@cache
def _builtin() -> tuple[ProxySpec, ...]:
    package = importlib.import_module("stackgen.proxies")
    specs = []
    for info in pkgutil.iter_modules(package.__path__):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"stackgen.proxies.{info.name}")
        spec = getattr(module, "SPEC", None)
        if isinstance(spec, ProxySpec):
            specs.append(spec)
    return tuple(specs)


def specs() -> list[ProxySpec]:
    found = {spec.name: spec for spec in _builtin()} | _registered
    return sorted(found.values(), key=lambda spec: (spec.rank, spec.name))


def available() -> list[str]:
    return [spec.name for spec in specs()]


def spec(name: str) -> ProxySpec:
    for candidate in specs():
        if candidate.name == name:
            return candidate
    raise InvalidInputError(f"unknown proxy {name!r} (available: {', '.join(available())})")


def register(new: ProxySpec) -> None:
    """Add a proxy that does not live in `stackgen/proxies/` (or replace one, by name)."""
    if new.name in SERVICE_IMAGES:
        raise ValueError(f"{new.name!r} names a service, not a proxy")
    _registered[new.name] = new
    _loaded.pop(new.name, None)


def unregister(name: str) -> None:
    _registered.pop(name, None)
    _loaded.pop(name, None)


def get_proxy(name: str) -> Proxy:
    """The proxy's module, imported on first use (its class needs the configuration model,
    which needs this registry)."""
    found = spec(str(name))
    if found.name not in _loaded:
        module_name, _, attribute = found.factory.partition(":")
        factory = getattr(importlib.import_module(module_name), attribute)
        _loaded[found.name] = factory()
    return _loaded[found.name]


def template_dir(name: str) -> Path | None:
    """The template folder of a proxy that brings its own (None: compose-templates/)."""
    found = {spec.name: spec for spec in specs()}.get(name)
    return found.template_dir if found else None


def default_images() -> dict[str, str]:
    """Every `images` key with its default: the proxies in listing order, then services."""
    return {spec.name: spec.default_image for spec in specs()} | SERVICE_IMAGES
