"""Every proxy stops reusing an idle connection to Jellyfin before Jellyfin closes it.

A proxy that reuses a pooled connection the server is closing at that moment sends the
request into a reset; a request with a body is not retried and the client gets 502
(docs/flakes.md, "a pooled connection Jellyfin was closing"). So each proxy's idle limit for
its kept-alive connections to Jellyfin is read back from the rendered config and must sit
well below Jellyfin's keep-alive, which the stand-in keeps too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stackgen.proxies import get_proxy
from stackgen.proxies.base import JELLYFIN_KEEPALIVE_SECONDS
from tests.unit.rendering import config_for, rendered

STANDIN = (
    Path(__file__).resolve().parents[1] / "images" / "jellyfin-standin" / "jellyfin_standin.py"
)

# Where each proxy's idle limit for pooled upstream connections is rendered: file, pattern
# (its one group: whole seconds).
IDLE_LIMIT = {
    "apache": ("apache/httpd.conf", r"ProxyPass / http://[^ ]+ .*\bttl=(\d+)\b"),
    "nginx": (
        "nginx/conf.d/jellyfin.conf",
        r"upstream jellyfin_upstream \{[^}]*keepalive_timeout (\d+)s;",
    ),
    "caddy": (
        "caddy/etc/Caddyfile",
        r"transport http \{\s*(?:#[^\n]*\n\s*)*keepalive (\d+)s\s*\}",
    ),
    "traefik": (
        "traefik/traefik.toml",
        r'\[serversTransport\.forwardingTimeouts\]\s*(?:#[^\n]*\n\s*)*idleConnTimeout = "(\d+)s"',
    ),
}
# Enough room that a connection picked just before the limit is still far from Jellyfin's
# close (and a loaded host's scheduling delays do not close the gap).
MARGIN_SECONDS = 30


def _rendered_limit(proxy: str, tmp: Path) -> int:
    path, pattern = IDLE_LIMIT[proxy]
    text = rendered(config_for(proxy, tmp), tmp)[path]
    match = re.search(pattern, text)
    assert match, f"{proxy}: no idle limit for pooled connections to Jellyfin in {path}"
    return int(match.group(1))


@pytest.mark.parametrize("proxy", sorted(IDLE_LIMIT))
def test_pooled_connections_retire_well_before_jellyfin_closes_them(
    proxy: str, tmp_path: Path
) -> None:
    limit = _rendered_limit(proxy, tmp_path)
    assert limit == get_proxy(proxy).upstream_idle_timeout.seconds
    assert 0 < limit <= JELLYFIN_KEEPALIVE_SECONDS - MARGIN_SECONDS, limit


def test_haproxy_keeps_its_short_idle_purge(tmp_path: Path) -> None:
    """HAProxy has no per-connection idle limit: with its defaults (`http-reuse safe`,
    `pool-purge-delay 5s`) a client's first request never takes a pooled connection and
    idle ones are purged within seconds. Overriding either would reopen the race."""
    text = rendered(config_for("haproxy", tmp_path), tmp_path)["haproxy/haproxy.cfg"]
    assert "pool-purge-delay" not in text
    assert not re.search(r"http-reuse\s+(always|aggressive)", text)


def test_the_stand_in_keeps_jellyfins_keepalive() -> None:
    source = STANDIN.read_text()
    match = re.search(r"^KESTREL_KEEPALIVE_SECONDS: Final = ([\d.]+)$", source, re.MULTILINE)
    assert match, "the stand-in declares no keep-alive"
    assert float(match.group(1)) == JELLYFIN_KEEPALIVE_SECONDS
