"""The ban list (`access.ban`): which client addresses the proxy refuses, kept in the deny
file the proxy reads natively (its syntax is the proxy's own: `Proxy.deny_file`).

The deny file is the one record of the list: reading it back takes every address written in
it, so nothing else has to stay in step with it. Writes go through `stackgen.writer`; the
proxy applies a change by itself: its file watcher (`Proxy.watched_files`) reloads it
gracefully, or it watches the file natively.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from stackgen import feeder
from stackgen.errors import FilesystemError, InvalidInputError
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
    """The user's list: the addresses `stackgen ban add` put in the user's deny file."""
    return read(deny_path(stack.folder, stack.proxy, stack.config))


def fed(stack: Stack) -> list[Address]:
    """The feeder's list: the addresses fail2ban bans now (as its deny file says)."""
    name = stack.proxy.fed_file(stack.config)
    return [] if name is None else addresses_in(_read_written(stack.folder / name))


# fail2ban's deny file holds at most a few thousand addresses.
_MAX_FED_BYTES: Final = 4 * 1024 * 1024


def _read_written(path: Path) -> str:
    """A file a container writes (fail2ban's deny file), read without following a link it
    may have planted there, as a regular file of bounded size; "" when missing."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return ""
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise FilesystemError(
                f"{path} is a symbolic link: not read (a container made it)"
            ) from None
        raise FilesystemError(f"{path}: cannot read: {error.strerror or error}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise FilesystemError(f"{path} is not a regular file: not read")
        return handle.read(_MAX_FED_BYTES).decode("utf-8", "replace")


def unban_fed(stack: Stack, address: Address, progress: Callable[[str], None]) -> None:
    """Lift one of fail2ban's bans through its own client (its socket is in its container):
    fail2ban then rewrites its deny file, which the proxy applies by itself."""
    argv = ["fail2ban-client", "-c", feeder.CONF_PATH, "unban", str(address)]
    stack.target.run_in_service(stack, feeder.SERVICE, argv)
    progress(f"fail2ban lifted its ban on {address}")


def change(stack: Stack, text: str, *, ban: bool, progress: Callable[[str], None]) -> bool:
    """`stackgen ban add|remove`: the deny file with `text` added or removed, which the proxy
    applies by itself (its file watcher's graceful reload, or its own watch); a proxy that
    does neither is reloaded through the target. False when there was nothing to change."""
    path = deny_path(stack.folder, stack.proxy, stack.config)
    address = parse_address(text, stack.config) if ban else _any_address(text)
    current = read(path)
    if not ban and address in fed(stack):
        unban_fed(stack, address, progress)
        if address not in current:
            return True
    if (address in current) == ban:
        return False
    wanted = [*current, address] if ban else [a for a in current if a != address]
    write(path, stack.proxy, wanted, stack.folder)
    if applies_by_itself(stack.proxy, stack.config):
        progress("the proxy applies it by itself within a few seconds (a graceful reload)")
    elif any(s.state == "running" for s in stack.target.states(stack)):
        stack.target.reload(stack, {path.relative_to(stack.folder).as_posix()}, progress)
    else:
        progress(f"{stack.config.project} is not running: the proxy reads the list when it starts")
    return True


def applies_by_itself(proxy: Proxy, config: StackConfig) -> bool:
    """Whether the proxy sees a changed deny file without being told: its command is wrapped
    by the file watcher, which polls the deny files."""
    watched = set(proxy.watched_files(config))
    return proxy.command(config) is not None and set(proxy.deny_files(config)) <= watched


def _any_address(text: str) -> Address:
    # Removing is never refused for where the address is: an old list may hold anything.
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        raise InvalidInputError(f"{text!r} is not an IP address such as 203.0.113.7") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
