"""The probe's Target: built from a stack (the one builder `up`, `status`, `reload` and
`verify` share) or from a bare URL.

For `verify` of a stack stackgen generated, Known Proxies come from the `network.xml` on
disk (what Jellyfin will read), and the proxy's address from the running container (where
it really connects from), so a stale or hand-edited file is caught.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path

from stackgen.errors import InvalidInputError, StackgenError
from stackgen.inputs import read_bytes
from stackgen.models import TlsMode
from stackgen.probe import GeoFacts, Target
from stackgen.proxies.base import GEO_FILE_HEAD
from stackgen.stack import Stack

# The allow file of a country as large as the United States, with room to spare.
GEO_FILE_LIMIT = 64 * 1024 * 1024


def known_proxies_on_disk(stack: Stack) -> list[str]:
    path = stack.network_xml
    try:
        root = ET.parse(path).getroot()  # noqa: S314 - the user's own file
    except (OSError, ET.ParseError):
        return []
    return [(e.text or "").strip() for e in root.findall("./KnownProxies/string") if e.text]


def geo_on_disk(stack: Stack) -> GeoFacts | None:
    """What the rendered allow file of access.geo says of itself (its summary line): the
    countries, when the database was built, how many networks. None: GeoIP off, or no
    readable summary (the exposure check then judges nothing)."""
    name = stack.proxy.geo_summary_file(stack.config)
    if name is None:
        return None
    try:
        text = read_bytes(stack.folder / name, limit=GEO_FILE_LIMIT).decode("utf-8", "replace")
    except StackgenError:
        return None
    for line in text.splitlines():
        if line.startswith(GEO_FILE_HEAD):
            try:
                summary = json.loads(line.removeprefix(GEO_FILE_HEAD))
                return GeoFacts(
                    countries=[str(c) for c in summary["countries"]],
                    database_built=str(summary["database_built"]),
                    country_networks=int(summary["country_networks"]),
                    admitted=int(summary["admitted"]),
                )
            except (ValueError, KeyError, TypeError):
                return None
    return None


def proxy_addresses(stack: Stack) -> list[str]:
    """Where the proxy connects from, as the engine reports it (empty when not running)."""
    return stack.target.proxy_addresses(stack)


def stack_target(
    stack: Stack,
    *,
    timeout: float,
    observed: bool = False,
    media_path: str | None = None,
    ca_file: Path | None = None,
    from_lan: bool = False,
) -> Target:
    """The stack as a client on this machine sees it: the public name, resolved locally.
    `observed`: Known Proxies as Jellyfin reads them from disk and the proxy's address as
    the engine reports it (verify), instead of what the configuration says (up, status)."""
    config = stack.config
    trust = config.client_trust_file
    address = stack.target.connect_address(stack)
    if observed and config.deploy.runs_jellyfin:
        known: Sequence[str] = known_proxies_on_disk(stack)
        addresses = proxy_addresses(stack) or None
    elif observed:
        # Jellyfin runs on another machine (one side of a split stack): its network.xml is
        # rendered there from the same configuration; the proxy's address is observed here.
        known = tuple(config.known_proxies)
        addresses = proxy_addresses(stack) or None
    else:
        known, addresses = tuple(config.known_proxies), None
    return _validated(
        lambda: Target(
            url=config.public_url.rstrip("/"),
            resolve={config.domain: address},
            ca_file=ca_file or ((stack.folder / trust) if trust else None),
            http_port=config.ports.http,
            plain_http=config.publishes_http,
            media_path=media_path,
            known_proxies=known,
            proxy_addresses=addresses,
            frames_allowed=bool(config.headers.frame_options),
            # Only mode `acme` answers HTTP-01; the others redirect the path like any other.
            acme_http01=config.tls.mode is TlsMode.ACME,
            http2=config.http2,
            http3=config.http3,
            lan_url=config.jellyfin.lan_url,
            from_lan=from_lan,
            timeout=timeout,
            tunnel=stack.target.tunnel(stack) if observed else None,
            token_gate=config.token_gate.on,
            gate_offered=config.deploy.offers_token_gate,
            geo=geo_on_disk(stack),
        )
    )


def parse_resolve(values: Sequence[str]) -> dict[str, str]:
    """HOST:IP pairs; a host name has no ':', so everything after the first one is the IP."""
    resolve: dict[str, str] = {}
    for value in values:
        host, _, address = value.partition(":")
        if not host or not address:
            raise InvalidInputError(f"--resolve {value!r}: expected HOST:IP")
        resolve[host] = address.strip("[]")
    return resolve


def target_for_url(
    url: str,
    *,
    resolve: Sequence[str],
    ca_file: Path | None,
    http_port: int,
    media_path: str | None,
    known_proxies: Sequence[str],
    proxy_address: Sequence[str],
    frames_allowed: bool,
    timeout: float,
    acme_http01: bool | None = None,
    lan_url: str | None = None,
    from_lan: bool = False,
) -> Target:
    return _validated(
        lambda: Target(
            url=url.rstrip("/"),
            resolve=parse_resolve(resolve),
            ca_file=ca_file,
            http_port=http_port,
            media_path=media_path,
            known_proxies=list(known_proxies) or None,
            proxy_addresses=list(proxy_address) or None,
            frames_allowed=frames_allowed,
            acme_http01=acme_http01,
            lan_url=lan_url,
            from_lan=from_lan,
            timeout=timeout,
        )
    )


def _validated(build: Callable[[], Target]) -> Target:
    try:
        return build()
    except ValueError as error:
        raise InvalidInputError(str(error)) from None
