"""What the harness needs to know about a proxy, read from stackgen's own registry and proxy
classes instead of restated here: the proxies there are, the local test image that stands in
for each one's official image, where a rendered stack's proxy reads its certificate, and where
its configuration files are in the stack folder."""

from __future__ import annotations

from pathlib import Path

from stackgen.config_file import load_config
from stackgen.proxies import available, get_proxy
from stackgen.proxies.registry import spec


def proxy_names() -> tuple[str, ...]:
    """Every proxy stackgen has, in its listing order."""
    return tuple(available())


def local_image_name(proxy: str) -> str:
    """The `tests/images/` image that stands in for the proxy's official one: named after the
    official image's repository (`httpd:2.4.65` -> `httpd` for apache)."""
    repository = spec(proxy).default_image.rsplit(":", 1)[0]
    return repository.rsplit("/", 1)[-1]


def certificate_paths(proxy: str, stack: Path) -> tuple[str, str]:
    """Container paths of the certificate and key the stack's proxy serves (HAProxy reads
    one combined PEM: both paths name it and the key beside it)."""
    config = load_config(stack, check_paths=False)
    served = get_proxy(proxy).certificates(config).served
    if served.combined:
        return served.combined, f"{served.combined}.key"
    return served.fullchain, served.privkey


def config_targets(proxy: str, stack: Path, names: list[str]) -> dict[str, str]:
    """Where each named configuration file (by file name: `jellyfin.conf`, `Caddyfile`) is
    rendered in the stack folder, from the proxy's own templates."""
    config = load_config(stack, check_paths=False)
    rendered = {Path(f.target).name: f.target for f in get_proxy(proxy).own_templates(config)}
    missing = [name for name in names if name not in rendered]
    if missing:
        raise RuntimeError(f"{proxy} renders no {missing} (it renders {sorted(rendered)})")
    return {name: rendered[name] for name in names}
