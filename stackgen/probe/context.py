"""State shared by the checks of one run: TLS contexts and memoised fetches.

Several checks look at the same response (the web page's headers, /System/Info/Public,
the control ClientHello); fetching once keeps a run to a few seconds and gives every
check the same view of the server. A memoised failure is re-raised to each check that
asks, so each one reports it as its own fail instead of crashing the run.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast
from urllib.parse import urlsplit

from stackgen.probe import client, hello
from stackgen.probe.target import BaseURL, Target

T = TypeVar("T")


@dataclass
class Trail:
    """The responses met while following redirects from one path."""

    hops: list[client.Response] = field(default_factory=list)
    final: client.Response | None = None  # the first non-redirect response
    problem: str | None = None  # loop / left the base / too many redirects

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.hops]


class _Raised:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc


class ProbeContext:
    """`protocol` is the HTTP version of every https request made through this context
    (its TLS contexts offer just that in ALPN); plain HTTP is always HTTP/1.1."""

    def __init__(self, target: Target, protocol: str = client.HTTP1) -> None:
        self.target = target
        self.url: BaseURL = target.base_url
        self.protocol = protocol
        self._memo: dict[tuple[object, ...], object] = {}

    def memo(self, key: tuple[object, ...], compute: Callable[[], T]) -> T:
        if key not in self._memo:
            try:
                self._memo[key] = compute()
            except Exception as exc:
                self._memo[key] = _Raised(exc)
        value = self._memo[key]
        if isinstance(value, _Raised):
            raise value.exc
        return cast(T, value)

    # --- TLS contexts ---------------------------------------------------------------

    def verifying_context(self) -> ssl.SSLContext:
        return self.memo(
            ("ctx", "verify"), lambda: client.verifying_context(self.target, (self.protocol,))
        )

    def insecure_context(self) -> ssl.SSLContext:
        return self.memo(("ctx", "insecure"), lambda: client.insecure_context((self.protocol,)))

    def offered_protocol(self) -> str | None:
        """What the server selects when offered h2 and http/1.1 (None: no ALPN answer)."""

        def run() -> str | None:
            offer = (client.HTTP2, client.HTTP1)  # a browser's offer, h2 first
            return client.handshake(self.target, client.insecure_context(offer)).alpn

        return self.memo(("alpn",), run)

    # --- HTTP -----------------------------------------------------------------------

    def https(self, path: str) -> client.Response:
        """GET over HTTPS without verifying the certificate (see client.insecure_context).
        Only probe-made paths go through here; user secrets use `https_verified`."""
        return self.memo(
            ("https", path),
            lambda: client.request(
                self.target, path, context=self.insecure_context(), protocol=self.protocol
            ),
        )

    def http(self, path: str) -> client.Response:
        return self.memo(("http", path), lambda: client.request(self.target, path, scheme="http"))

    def follow(self, path: str, max_hops: int) -> Trail:
        """Follow redirects from `path` within the base, at most `max_hops` times."""
        return self.memo(("follow", path, max_hops), lambda: self._follow(path, max_hops))

    def _follow(self, path: str, max_hops: int) -> Trail:
        trail = Trail()
        seen: set[str] = set()
        for _ in range(max_hops + 1):
            resp = self.https(path)
            trail.hops.append(resp)
            seen.add(resp.url)
            if not resp.is_redirect:
                trail.final = resp
                return trail
            location = resp.location
            parts = urlsplit(location)
            if not self.url.same_origin(parts):
                trail.problem = f"redirect leaves {self.url.origin}: {location}"
                return trail
            if not self.url.within_base(parts.path):
                trail.problem = f"redirect leaves the base {self.url.base or '/'}: {location}"
                return trail
            if location in seen:
                trail.problem = f"redirect loop back to {location}"
                return trail
            path = parts.path + (f"?{parts.query}" if parts.query else "")
        trail.problem = f"more than {max_hops} redirects"
        return trail

    def web_page(self) -> client.Response:
        """The web client's page, the response whose headers a browser really gets."""
        trail = self.follow(self.url.base + "/web/", 3)
        if trail.final is None:
            raise client.ProbeError(f"{self.url.base}/web/ did not load: {trail.problem}")
        return trail.final

    def error_page(self) -> client.Response:
        """A 404 under the base: proxies often forget headers on error responses."""
        return self.https(self.url.base + "/stackgen-probe-not-found")

    # --- TLS probing ----------------------------------------------------------------

    def tls12(self) -> client.HandshakeInfo | None:
        """A real TLS 1.2 handshake with the ssl module; None when the server refuses 1.2."""

        def run() -> client.HandshakeInfo | None:
            try:
                return client.handshake(self.target, client.pinned_context(ssl.TLSVersion.TLSv1_2))
            except ssl.SSLError:
                return None

        return self.memo(("tls12",), run)

    def raw_hello(
        self,
        version: int,
        suites: Sequence[int],
        *,
        groups: Sequence[int] | None = None,
        offer_compression: bool = False,
        want_flight: bool = False,
    ) -> hello.HelloOutcome:
        """Send one hand-built ClientHello (see hello.py); not memoised."""
        message = hello.build_client_hello(
            version=version,
            suites=suites,
            server_name=self.url.host,
            groups=groups if groups is not None else hello.DEFAULT_GROUPS,
            offer_compression=offer_compression,
        )
        sock = client.open_tcp(self.target, self.url.host, self.url.port)
        try:
            return hello.exchange(
                sock, message, timeout=self.target.timeout, want_flight=want_flight
            )
        finally:
            _close(sock)

    def control_hello(self) -> hello.HelloOutcome:
        """TLS 1.2, every suite we know, compression offered, first flight read: answers
        compression, renegotiation_info and the served chain in one exchange."""
        return self.memo(
            ("control-hello",),
            lambda: self.raw_hello(
                hello.TLS12, hello.ALL_SUITES, offer_compression=True, want_flight=True
            ),
        )


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
