"""The ban list (`access.ban`): which client addresses the proxy refuses, kept in the deny
file the proxy reads natively (its syntax is the proxy's own: `Proxy.deny_file`).

The deny file is the one record of the list: reading it back takes every address written in
it, so nothing else has to stay in step with it. Writes go through `stackgen.writer`; the
proxy applies a change through the target's reload (the engine boundary).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from stackgen.errors import InvalidInputError
from stackgen.models import StackConfig
from stackgen.proxies.base import BAN_DIR, Proxy
from stackgen.stack import Stack
from stackgen.writer import write_atomic

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Anything that may be an address in a deny file; `ipaddress` decides which are.
_CANDIDATE: Final = re.compile(r"[0-9A-Fa-f:.]*[.:][0-9A-Fa-f:.]*")


def parse_address(text: str, config: StackConfig) -> Address:
    """One client address, refused in one line when it is not one or when banning it would
    lock out the stack itself (loopback, the proxy network: the proxy, Jellyfin and
    Docker's gateway, through which `docker-proxy` clients arrive)."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        raise InvalidInputError(f"{text!r} is not an IP address such as 203.0.113.7") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # the proxies see an IPv4 client as IPv4
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        raise InvalidInputError(f"{address} is never a remote client's address: not banned")
    for network in (config.network.subnet, config.network.subnet6):
        if network is not None and address in network:
            raise InvalidInputError(
                f"{address} is in the proxy network {network} (the proxy, Jellyfin or "
                "Docker's gateway): banning it would lock out the stack itself"
            )
    return address


def deny_path(folder: Path, proxy: Proxy, config: StackConfig) -> Path:
    name = proxy.ban_file_name(config)
    if name is None:
        why = proxy.ban_refusal if config.access.ban.enabled else "access.ban.enabled = false"
        raise InvalidInputError(f"no ban list with {proxy.kind}: {why}")
    return folder / BAN_DIR / name


def addresses_in(content: str) -> list[Address]:
    """The addresses a deny file names, in order, each once. The unspecified address is
    never one (`parse_address` refuses it): a deny file may use it to admit no one."""
    found: list[Address] = []
    for candidate in _CANDIDATE.findall(content):
        try:
            address = ipaddress.ip_address(candidate)
        except ValueError:
            continue
        if not address.is_unspecified and address not in found:
            found.append(address)
    return found


def read(path: Path) -> list[Address]:
    try:
        return addresses_in(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []


def write(path: Path, proxy: Proxy, addresses: Iterable[Address], stack_dir: Path) -> None:
    write_atomic(path, proxy.deny_file(sorted(addresses, key=_order)).encode(), 0o644, (stack_dir,))


def _order(address: Address) -> tuple[int, int]:
    return address.version, int(address)


def banned(stack: Stack) -> list[Address]:
    """`stackgen ban list`: the addresses the proxy refuses now (as its deny file says)."""
    return read(deny_path(stack.folder, stack.proxy, stack.config))


def change(stack: Stack, text: str, *, ban: bool, progress: Callable[[str], None]) -> bool:
    """`stackgen ban add|remove`: the deny file with `text` added or removed, then the
    proxy's graceful reload when the stack runs. False when there was nothing to change."""
    path = deny_path(stack.folder, stack.proxy, stack.config)
    address = parse_address(text, stack.config) if ban else _any_address(text)
    current = read(path)
    if (address in current) == ban:
        return False
    wanted = [*current, address] if ban else [a for a in current if a != address]
    write(path, stack.proxy, wanted, stack.folder)
    if any(s.state == "running" for s in stack.target.states(stack)):
        stack.target.reload(stack, {path.relative_to(stack.folder).as_posix()}, progress)
    else:
        progress(f"{stack.config.project} is not running: the proxy reads the list when it starts")
    return True


def _any_address(text: str) -> Address:
    # Removing is never refused for where the address is: an old list may hold anything.
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        raise InvalidInputError(f"{text!r} is not an IP address such as 203.0.113.7") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
