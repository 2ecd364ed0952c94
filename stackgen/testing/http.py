"""A `requests` session that reaches a test stack by its public name.

The stack's name (e.g. jellyfin.stackgen.test) is in no DNS, and editing /etc/hosts would
touch the whole machine. Instead the session's connection pools connect to the mapped
address while everything else — URL, Host header, SNI, certificate name check, cookies —
keeps the public name, like `curl --resolve`.

`requests` is no new weight: `docker` (a stackgen dependency) already requires it, and its
API is what most test authors know.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


def _pool_classes(
    resolve: Mapping[str, str],
) -> dict[str, type[HTTPConnectionPool]]:
    table = {host.lower().rstrip("."): address for host, address in resolve.items()}

    def connect(conn: HTTPConnection, new_conn: type[HTTPConnection]) -> socket.socket:
        # urllib3 connects to `_dns_host` and uses `host` for SNI and the name check; the
        # swap lasts for the TCP connect only, so TLS still sees the public name.
        name = conn._dns_host
        conn._dns_host = table.get(name.lower().rstrip("."), name)
        try:
            return new_conn._new_conn(conn)
        finally:
            conn._dns_host = name

    class Connection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return connect(self, HTTPConnection)

    class SecureConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return connect(self, HTTPSConnection)

    class Pool(HTTPConnectionPool):
        ConnectionCls = Connection

    class SecurePool(HTTPSConnectionPool):
        ConnectionCls = SecureConnection

    return {"http": Pool, "https": SecurePool}


class ResolvingAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections go to `resolve[host]` instead of asking DNS."""

    def __init__(self, resolve: Mapping[str, str]) -> None:
        self._pools = _pool_classes(resolve)
        super().__init__()

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]
        self.poolmanager.pool_classes_by_scheme = self._pools


def resolving_session(resolve: Mapping[str, str], ca_file: Path | None) -> requests.Session:
    """A session that trusts `ca_file` (else the system store) and maps names to addresses."""
    session = requests.Session()
    # No proxy from the environment: test traffic stays on this machine.
    session.trust_env = False
    if ca_file is not None:
        session.verify = str(ca_file)
    adapter = ResolvingAdapter(resolve)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
