#!/usr/bin/env python3
"""Jellyfin stand-in: a test double for the proxy-facing contract of Jellyfin 10.11.

This is NOT Jellyfin. No package registry we can reach ships a Jellyfin server, so
stackgen's tests put this small aiohttp app where the generated stacks expect the
``jellyfin/jellyfin`` image. It imitates only what a reverse proxy can observe (see
``docs/jellyfin.md`` in the repository); where that page and the Jellyfin source disagree,
the source wins and the difference is written down here.

It runs on Debian bookworm's ``python3-aiohttp`` (3.8.4) and Python 3.11, so it only
uses aiohttp APIs that exist there (it is also tested against newer aiohttp).

Configuration
-------------
Read once at start, like Jellyfin (changing ``network.xml`` needs a restart):

``$JELLYFIN_CONFIG_DIR/network.xml`` (root ``NetworkConfiguration``)
    ``BaseUrl`` (normalised as Jellyfin does: leading ``/`` added, one trailing ``/``
    removed, blank -> ""), ``KnownProxies`` (``<string>`` children: IPs, CIDRs or host
    names, names resolved once at start), ``InternalHttpPort`` (the listening port),
    ``EnableIPv4`` / ``EnableIPv6`` (default true / false: IPv6 proxy entries are
    dropped unless IPv6 is enabled, as in Jellyfin), ``EnablePublishedServerUriByRequest``
    (default false, see ``LocalAddress`` below), ``LocalNetworkSubnets`` (the LAN; empty:
    RFC 1918, plus ``fc00::/7`` and ``fec0::/10`` with IPv6; ``!`` entries exclude),
    ``PublishedServerUriBySubnet`` (``subnet=url``, ``internal=``, ``external=``, ``all=``,
    ``interface-name=``), ``IgnoreVirtualInterfaces`` / ``VirtualInterfaceNames`` (default
    true / ``veth``). Missing file -> written with defaults
    when the directory is writable (Jellyfin's pre-start routine does the same). A file
    that cannot be parsed is left alone, defaults are used and the error is logged and
    shown in the echo endpoint's ``config_errors``.

Environment
    ``JELLYFIN_CONFIG_DIR``        config dir (default ``/config/config``; else
                                   ``$JELLYFIN_DATA_DIR/config``)
    ``JELLYFIN_PublishedServerUrl`` URL advertised as ``LocalAddress`` (as in Jellyfin)
    ``STANDIN_BIND``               listen address (default: where Jellyfin listens, from
                                   ``EnableIPv4``/``EnableIPv6``, see "Listening")
    ``STANDIN_PORT``               listen port, overrides ``InternalHttpPort``; ``0`` picks
                                   a free port (the "listening on" log line names it)
    ``STANDIN_API_KEYS``           comma-separated API keys that authenticate (default:
                                   ``stackgen-standin-api-key``, ``DEFAULT_API_KEY``;
                                   empty: none)
    ``STANDIN_USERS``              comma-separated ``name:password`` users who can log in
                                   (default: none; names and passwords without ``,``)
    ``STANDIN_CLOSED_SECONDS``     start-up phase 0: nothing listens (default 0)
    ``STANDIN_STARTUP_SECONDS``    start-up phase 1: the start-up server (default 0)
    ``STANDIN_SWITCH_SECONDS``     after phase 1: port closed again (default 0.2)
    ``STANDIN_LOADING_SECONDS``    start-up phase 2: main app, still loading (default 0)
    ``STANDIN_MEDIA_BYTES``        size of the generated media file (default 64 MiB)
    ``STANDIN_MEDIA_FILE``         where that file is written (default
                                   ``$JELLYFIN_CACHE_DIR/standin-media-<size>.bin``, else
                                   the temp dir); ``memory`` serves it from memory instead
    ``STANDIN_SERVER_NAME``        ``ServerName`` (default: the host name)
    ``STANDIN_SHUTDOWN_SECONDS``   grace period for in-flight requests on SIGTERM (5)
    ``STANDIN_KEEPALIVE_SECONDS``  test knob: how long an idle kept-alive connection stays
                                   open before the stand-in closes it (default 130, Kestrel's
                                   ``KeepAliveTimeout``, which Jellyfin 10.11 leaves as is);
                                   a short value makes a proxy's pooled-connection race with
                                   that close happen within seconds
Command-line options of the real server that matter here are accepted
(``--configdir/-c``, ``--datadir/-d``, ``--published-server-url``); others are ignored,
so a compose file written for the official image still starts the stand-in.

Forwarded headers (Jellyfin 10.11 + ASP.NET Core ForwardedHeadersMiddleware)
---------------------------------------------------------------------------
* ``KnownProxies`` empty: ``X-Forwarded-For/-Proto/-Host`` are ignored; the client is
  the direct peer.
* Non-empty: the headers are honoured only while the current peer is trusted. Trusted
  = an entry of the list (IP equality or CIDR membership, IPv4-mapped IPv6 compared as
  IPv4) **or loopback**: Jellyfin adds its entries to ASP.NET's defaults
  (``127.0.0.0/8`` and ``::1``) without clearing them, so a client on the same host can
  always spoof XFF once the list is non-empty. The walk goes right to left through
  XFF (``ForwardLimit`` is null): each trusted hop is replaced by the address it
  reports, stopping at the first untrusted or unparsable one, so the client is the
  right-most address that is not itself a trusted proxy. ``X-Forwarded-Proto`` and
  ``-Host`` entries are aligned from the right with XFF entries.

Listening
---------
Like Kestrel under Jellyfin's NetworkManager.GetAllBindInterfaces (no
``LocalNetworkAddresses``): ``EnableIPv4`` and ``EnableIPv6`` -> one dual-mode socket on
``[::]`` (IPv4 clients appear as ``::ffff:a.b.c.d``, mapped back wherever Jellyfin maps);
IPv4 only (the default) -> ``0.0.0.0``; IPv6 only -> ``[::]`` with ``IPV6_V6ONLY`` (Jellyfin
binds each IPv6 interface address instead). Without IPv6 in the kernel: IPv4, logged.

Authentication
--------------
Tokens are read as AuthorizationContext does with legacy authorization on (the 10.11
default), first non-empty wins: ``Authorization: MediaBrowser ... Token="..."`` (or the
``Emby`` scheme; ``X-Emby-Authorization`` only without ``Authorization``), ``X-Emby-Token``,
``X-MediaBrowser-Token``, query ``ApiKey``, query ``api_key`` (query names in any case). A
token authenticates when it is one of the configured API keys or a session token a login
handed out and no logout revoked (sessions live in memory: a restart forgets them, where
Jellyfin keeps them in its database). An API key acts like an administrator's key.

Users and logins (UserController, SessionController, UserManager in Jellyfin 10.11)
* ``POST {base}/Users/AuthenticateByName`` with JSON ``{"Username", "Pw"}``: 200 with
  ``AccessToken`` (a new session token), ``User`` (``Name``, ``Id``) and ``ServerId``; a
  wrong name or password: 401 and UserManager's line ``Authentication request for
  {UserName} has been denied (IP: {IP}).`` in both of Jellyfin's renderings: unquoted on
  the console (what ``docker logs`` shows) and quoted (``"name"``, ``"ip"``) in the file
  log, ``$JELLYFIN_LOG_DIR/log_standin.log`` (when that variable is set; Jellyfin names its
  files by date). The IP is the client after forwarded headers. No lockout: Jellyfin
  disables an account after 3 failures (5 for an administrator); the stand-in never does,
  so a test can fail logins at will.
* ``POST {base}/Users/{id}/Authenticate?pw=``: the same by user id (404 for an unknown id).
* ``GET {base}/Users/Me``: 200 with the user for a session token; 400 for an API key (it
  has no user: GetCurrentUser's BadRequest); 401 without a valid token.
* ``POST {base}/Sessions/Logout``: revokes the session token sent (204); 401 without one.
* ``GET {base}/Users/Public``: the users' names and ids, anonymous (Jellyfin filters hidden
  users; the stand-in has none).
* Quick Connect (QuickConnectController, QuickConnectManager; enabled, Jellyfin's default):
  ``GET {base}/QuickConnect/Enabled`` -> ``true``; ``POST {base}/QuickConnect/Initiate``
  with the client's ``Authorization: MediaBrowser Client, Device, DeviceId, Version`` ->
  ``{Authenticated, Secret, Code, DeviceId, DeviceName, AppName, AppVersion, DateAdded}``
  (400 when one is missing); ``GET {base}/QuickConnect/Connect?secret=`` -> that state
  (404 "Unknown secret"); ``POST {base}/QuickConnect/Authorize?code=`` with a user's session
  token -> ``true`` (404 for an unknown code); ``POST {base}/Users/AuthenticateWithQuickConnect``
  with ``{"Secret"}`` -> a new session once authorised (404 before). Requests never expire
  (Jellyfin's time out after 10 minutes).
* ``POST {base}/Users/ForgotPassword`` (``{"EnteredUsername"}``) -> ``Action`` ``PinCode``
  with a ``PinFile`` and ``PinExpirationDate`` whoever asks, as the default reset provider
  (which writes the pin file only for a known user on the LAN; the stand-in writes none);
  ``POST {base}/Users/ForgotPassword/Pin`` -> ``{"Success": false, "UsersReset": []}``.
Not imitated: account policies, password changes.

Endpoints (every route lives under ``BaseUrl``; paths match case-insensitively)
-----------------------------------------------------------------------------
* Outside the prefix, ``/``, ``{base}`` and ``{base}/``: ``302`` to ``{base}/web/`` with a
  **relative** ``Location`` (Uri.MakeRelativeUri: ``/`` -> ``web/``, ``/jellyfin`` ->
  ``jellyfin/web/``, ``/a/b`` -> ``../jellyfin/web/``); ``/health`` -> ``{base}/health``.
  Exactly Jellyfin's BaseUrlRedirectionMiddleware, which runs before forwarded headers.
* ``{base}/health`` (any method): 200 ``text/plain`` ``Healthy``.
* ``GET|POST {base}/System/Ping``: 200 ``"Jellyfin Server"`` (JSON string).
* ``GET {base}/System/Info/Public``: JSON ``LocalAddress, ServerName, Version
  ("10.11.0-standin"), ProductName ("Jellyfin Server"), OperatingSystem, Id,
  StartupWizardCompleted``; ``OperatingSystem`` is ``""`` (obsolete, never set by Jellyfin).
  ``LocalAddress`` follows Jellyfin's ``GetSmartApiUrl``:
  with ``EnablePublishedServerUriByRequest`` true it is ``scheme://host[:port]{base}``
  from the request *after* forwarded-header processing; otherwise
  ``JELLYFIN_PublishedServerUrl`` if set (it then applies to every client and the subnet
  list is not read, as Jellyfin's startup override); otherwise the
  ``PublishedServerUriBySubnet`` entry for the client address after forwarded headers
  (``NetworkManager.MatchesPublishedServerUrl``: a LAN client takes the most specific
  internal entry containing it, anyone else the most specific external one, and a subnet
  entry counts only while one of the server's interfaces is inside it); otherwise
  ``http://<local address the request arrived on>:<port>{base}``. So it reflects forwarded
  headers only when ``EnablePublishedServerUriByRequest`` is true (Jellyfin's default is
  false), or through the client address a subnet entry is chosen by.
* ``{base}/web`` -> 301 with an **absolute** ``Location``
  ``{scheme}://{host}{base}/web/[?query]`` (ASP.NET DefaultFiles' RedirectToPathWithSlash),
  scheme and host as forwarded-header processing left them: behind a proxy that is not in
  ``KnownProxies`` it names the internal ``http://`` host. ``GET|HEAD {base}/web/`` and
  ``{base}/web/index.html``: an HTML page titled "Jellyfin stand-in".
* WebSocket upgrade on any path under the base (clients use
  ``{base}/socket?api_key=TOKEN&deviceId=ID``). As WebSocketManager: no token or a token
  that is not a configured key -> **403** ``text/plain`` ``Error processing request.``
  (ExceptionMiddleware's answer to SecurityException; never 401, never 101); a valid key
  -> 101. Without the Upgrade headers ``/socket`` is no route: 404. On connect the
  server sends ``{"MessageType": "ForceKeepAlive", "Data": 60, "MessageId": ...}``;
  every client ``{"MessageType": "KeepAlive"}`` is answered with
  ``{"MessageType": "KeepAlive", "MessageId": ...}``.
* ``GET|HEAD {base}/Videos/{id}/stream[.{container}]`` (any query, e.g.
  ``static=true``): a generated file of ``STANDIN_MEDIA_BYTES`` bytes whose byte at
  offset ``i`` is ``i % 251`` (see ``media_bytes``), ``video/mp4``. Like Jellyfin's
  direct play (ASP.NET ``PhysicalFileResult``), the body goes from a real file on disk
  with ``sendfile`` (zero-copy); the file is written once at start-up, in the
  background. Where no file can be written, or the transport cannot ``sendfile``, the
  same bytes are streamed from memory in 64 KiB chunks. Range handling is ASP.NET's:
  ``Accept-Ranges: bytes``, a fixed
  ``Last-Modified`` (``MEDIA_LAST_MODIFIED``) and **no ETag**; one range ``a-b``/``a-``/
  ``-n`` -> 206 + ``Content-Range``; several ranges or a malformed header -> full 200;
  unsatisfiable -> 416 + ``Content-Range: bytes */N``. ``If-Range`` with an HTTP date
  older than ``Last-Modified`` -> full 200; a date at or after it -> 206; an entity-tag
  ``If-Range`` is honoured (206), because the resource has no ETag to contradict it.
  ``If-Modified-Since`` at/after ``Last-Modified`` -> 304.
* Uploads behind ``[Authorize]``: ``POST {base}/Items/{id}/Images/{type}[/{index}]``,
  ``{base}/Users/{id}/Images/{type}[/{index}]``, ``{base}/UserImage``,
  ``{base}/Videos/{id}/Subtitles``. Without a valid key: **401**, empty, answered before
  any of the body is read (aiohttp then discards the rest for up to 10 s, as Kestrel
  drains it, and closes the connection if it cannot). With one: the body is consumed
  streaming, no size limit, 204 (Jellyfin would decode and store the image).
* CORS as Jellyfin's default policy: ``Access-Control-Allow-Origin: *`` when a request
  carries ``Origin``; preflights answered 204. Every response says ``Server: Kestrel``.

* ``/emby/...`` and ``/mediabrowser/...`` (any case, below the base) are served as ``/...``
  (LegacyEmbyRouteRewriteMiddleware of 10.x).
* ``GET {base}/System/Endpoint``: 200 JSON ``{"IsLocal", "IsInNetwork"}`` with a valid token,
  401 without one (DefaultAuthorization: a user's token and an API key both pass) - the
  token gate's validation request.
* ``DELETE {base}/Auth/Keys/{key}`` (with a valid token): 204, and ``key`` no longer
  authenticates (revoked until the stand-in restarts).
* ``GET|HEAD {base}/Videos/{id}/{mediaSourceId}/Subtitles/{index}/Stream.{format}``:
  a small ``text/vtt``, anonymous as in Jellyfin 10.11.

Test-only endpoints (under the base too)
    ``{base}/__standin/echo`` (any method) -> JSON of what the server understood::

        {"method", "http_version", "path" (raw, as received, without query),
         "query_string" (raw), "query" ({name: value}, last one wins),
         "headers" ({lower-case name: value}, repeated headers joined with ", "),
         "header_list" ([[name, value], ...] in arrival order, original case),
         "peer_address", "peer_port"      (the TCP peer),
         "client_address", "client_port"  (after forwarded-header processing),
         "scheme", "host"                  (after forwarded-header processing),
         "forwarded_headers_honoured" (true when a forwarded value was applied),
         "peer_trusted" (the direct peer may forward), "known_proxies" (the configured
         strings), "trusted_proxies" (effective list incl. loopback; [] when disabled),
         "base_url", "config_errors"}

    ``POST|PUT {base}/__standin/upload`` -> ``{"bytes": N, "sha256": "<hex>"}``.

Start-up, in Jellyfin 10.11's order (Program.StartServer), each phase switched on by its
variable (all 0 by default: ready at once):

0. ``STANDIN_CLOSED_SECONDS``: the process runs, the port is closed.
1. ``STANDIN_STARTUP_SECONDS``: the start-up server (SetupServer), a separate app that
   knows nothing of ``BaseUrl``: ``/health`` at the root answers **200** ``Degraded``
   (ASP.NET maps Degraded to 200 - only the body tells; ``curl -f`` passes),
   ``/System/Info/Public`` at the root answers JSON with ``StartupWizardCompleted`` false,
   and everything else - ``/System/Ping`` and ``{base}/...`` included - gets 503
   ``text/html`` with ``Retry-After: 005``. Then it stops: the port is closed for
   ``STANDIN_SWITCH_SECONDS`` (its connections are closed too).
2. ``STANDIN_LOADING_SECONDS``: the main app with start-up tasks still running
   (ServerStartupMessageMiddleware): the BaseUrl redirects, CORS preflights, ``/web``,
   the 401 of unauthenticated uploads and WebSockets answer as usual; ``{base}/System/Ping``
   answers 200; everything else, ``{base}/health`` included, 503 ``text/html``
   "Jellyfin Server is loading. Please try again shortly." (no ``Retry-After``).
3. Ready. Each transition is logged (``listening on ... phase=...``, ``start-up server
   stopped``, ``start-up complete``).

Departures from Jellyfin (what the stand-in does not do, on purpose)
-------------------------------------------------------------------
* No users, sessions, library or database: authentication knows only the configured API
  keys (every key acts as an administrator's); logins, Quick Connect and every route not
  listed above answer 404; ``/health`` never reports ``Unhealthy``, and a failed start-up
  (SetupServer's 10-minute ``Unhealthy``) is not emulated.
* Remote-access rules (IpBasedAccessValidationMiddleware, ``EnableRemoteAccess``,
  ``RemoteIPFilter``) are not applied; ``LocalNetworkAddresses`` and per-interface binding
  are not read.
* The web client is one HTML page; ``Version`` is ``10.11.0-standin``; ``Server: Kestrel``.
* ``Items/.../Images`` with a valid key stores nothing; ``/Videos/{id}/stream`` serves the
  same generated file for every id.
* The start-up server serves neither ``/startup/logger`` nor a real log page.
* Test-only endpoints exist (``/__standin/echo``, ``/__standin/upload``, anonymous).

Access log: one line per request on stdout; ``api_key``/``ApiKey`` query values (any
case, also percent-encoded names) are replaced by ``***``. SIGTERM/SIGINT: stop
listening, close WebSockets with 1001, let in-flight requests finish for up to
``STANDIN_SHUTDOWN_SECONDS``, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import fcntl
import hashlib
import html
import ipaddress
import json
import logging
import os
import re
import secrets
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import unquote_plus

from aiohttp import WSCloseCode, WSMsgType, web

VERSION: Final = "10.11.0-standin"
PRODUCT_NAME: Final = "Jellyfin Server"
DEFAULT_CONFIG_DIR: Final = "/config/config"
DEFAULT_PORT: Final = 8096
DEFAULT_MEDIA_BYTES: Final = 64 * 1024 * 1024
CHUNK_SIZE: Final = 64 * 1024
# Prime, so the pattern never lines up with power-of-two chunk or buffer sizes: a
# dropped, repeated or reordered chunk anywhere in a proxied body shows up.
MEDIA_MODULUS: Final = 251
# Fixed so Last-Modified (and therefore If-Range by date) is stable across restarts.
MEDIA_LAST_MODIFIED: Final = datetime(2025, 1, 1, tzinfo=UTC)
# Jellyfin's WebSocketLostTimeout, sent as the ForceKeepAlive interval.
WEBSOCKET_KEEPALIVE_SECONDS: Final = 60
# SetupServer formats its 5 s retry interval with "000".
STARTUP_RETRY_AFTER: Final = "005"
TOKEN_QUERY_NAMES: Final = frozenset({"api_key", "apikey"})
# The API key the stand-in accepts when STANDIN_API_KEYS is unset, so every test knows one.
DEFAULT_API_KEY: Final = "stackgen-standin-api-key"
# ExceptionMiddleware's body outside Development, for the SecurityException of a refused
# WebSocket (403).
ERROR_BODY: Final = "Error processing request."
# ServerStartupMessageMiddleware's text ("StartupEmbyServerIsLoading", en-US).
LOADING_MESSAGE: Final = "Jellyfin Server is loading. Please try again shortly."
# SetupServer stops before the main host starts: a short moment with nothing listening.
DEFAULT_SWITCH_SECONDS: Final = 0.2
# Kestrel's KeepAliveTimeout (ASP.NET Core 6 and later; Jellyfin 10.11 does not set it):
# an idle connection is closed after 130 s. aiohttp's own default is 75 s, which would
# make every proxy's pooled connections meet a stricter server than users run.
KESTREL_KEEPALIVE_SECONDS: Final = 130.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

log = logging.getLogger("jellyfin_standin")
access_log = logging.getLogger("jellyfin_standin.access")


# --------------------------------------------------------------------------------------
# network.xml
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """The fields of Jellyfin's NetworkConfiguration that a proxy can observe."""

    base_url: str = ""
    known_proxies: tuple[str, ...] = ()
    internal_http_port: int = DEFAULT_PORT
    enable_ipv4: bool = True
    enable_ipv6: bool = False
    enable_published_server_uri_by_request: bool = False
    local_network_subnets: tuple[str, ...] = ()
    published_server_uri_by_subnet: tuple[str, ...] = ()
    ignore_virtual_interfaces: bool = True
    virtual_interface_names: tuple[str, ...] = ("veth",)
    errors: tuple[str, ...] = ()


def normalise_base_url(value: str | None) -> str:
    """Mirror NetworkConfiguration.BaseUrl's setter (one trailing slash only, no trim)."""
    if value is None or not value.strip():
        return ""
    if not value.startswith("/"):
        value = "/" + value
    if value.endswith("/"):
        value = value[:-1]
    return value


def _parse_bool(text: str) -> bool:
    # XmlSerializer accepts exactly these spellings.
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"not an xs:boolean: {text!r}")


def parse_network_xml(text: str) -> NetworkConfig:
    """Parse network.xml text; unknown elements are ignored, as XmlSerializer does."""
    # The file is written by the test's own generator; no untrusted XML reaches here.
    root = ET.fromstring(text)
    if root.tag != "NetworkConfiguration":
        raise ValueError(f"root element is <{root.tag}>, expected <NetworkConfiguration>")
    values: dict[str, Any] = {}
    errors: list[str] = []
    for child in root:
        name, body = child.tag, child.text or ""
        try:
            if name == "BaseUrl":
                values["base_url"] = normalise_base_url(body)
            elif name == "KnownProxies":
                entries = (item.text or "" for item in child if item.tag == "string")
                values["known_proxies"] = tuple(entry for entry in entries if entry.strip())
            elif name == "InternalHttpPort":
                values["internal_http_port"] = int(body)
            elif name in ("EnableIPv4", "EnableIPV4"):  # 10.8 spelled it IPV4
                values["enable_ipv4"] = _parse_bool(body)
            elif name in ("EnableIPv6", "EnableIPV6"):
                values["enable_ipv6"] = _parse_bool(body)
            elif name == "EnablePublishedServerUriByRequest":
                values["enable_published_server_uri_by_request"] = _parse_bool(body)
            elif name == "IgnoreVirtualInterfaces":
                values["ignore_virtual_interfaces"] = _parse_bool(body)
            elif name in ("LocalNetworkSubnets", "PublishedServerUriBySubnet"):
                field = {
                    "LocalNetworkSubnets": "local_network_subnets",
                    "PublishedServerUriBySubnet": "published_server_uri_by_subnet",
                }[name]
                entries = (item.text or "" for item in child if item.tag == "string")
                values[field] = tuple(entry for entry in entries if entry.strip())
            elif name == "VirtualInterfaceNames":
                entries = (item.text or "" for item in child if item.tag == "string")
                values["virtual_interface_names"] = tuple(e.strip() for e in entries if e.strip())
        except ValueError as exc:
            errors.append(f"<{name}>: {exc}")
    return NetworkConfig(**values, errors=tuple(errors))


DEFAULT_NETWORK_XML: Final = """\
<?xml version="1.0" encoding="utf-8"?>
<!-- Written by the Jellyfin stand-in (a test double, not Jellyfin) because none existed. -->
<NetworkConfiguration xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <BaseUrl />
  <EnableHttps>false</EnableHttps>
  <RequireHttps>false</RequireHttps>
  <InternalHttpPort>8096</InternalHttpPort>
  <InternalHttpsPort>8920</InternalHttpsPort>
  <PublicHttpPort>8096</PublicHttpPort>
  <PublicHttpsPort>8920</PublicHttpsPort>
  <AutoDiscovery>true</AutoDiscovery>
  <EnableUPnP>false</EnableUPnP>
  <EnableIPv4>true</EnableIPv4>
  <EnableIPv6>false</EnableIPv6>
  <EnableRemoteAccess>true</EnableRemoteAccess>
  <LocalNetworkSubnets />
  <LocalNetworkAddresses />
  <KnownProxies />
  <EnablePublishedServerUriByRequest>false</EnablePublishedServerUriByRequest>
  <PublishedServerUriBySubnet />
  <RemoteIPFilter />
  <IsRemoteIPFilterBlacklist>false</IsRemoteIPFilterBlacklist>
</NetworkConfiguration>
"""


def load_network_config(config_dir: Path) -> NetworkConfig:
    """Read network.xml, creating it with defaults when missing (as Jellyfin does)."""
    path = config_dir / "network.xml"
    if not path.exists():
        try:
            config_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(DEFAULT_NETWORK_XML, encoding="utf-8")
            log.info("created default %s", path)
        except OSError as exc:
            # Read-only config mounts are legitimate in tests; keep running on defaults.
            log.warning("no %s and cannot create it (%s); using defaults", path, exc)
        return NetworkConfig()
    try:
        config = parse_network_xml(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, ET.ParseError) as exc:
        # Jellyfin logs and falls back to defaults; we do too, but loudly, and the echo
        # endpoint reports it so a test can fail on a generator's broken file.
        log.error("cannot use %s (%s); using defaults", path, exc)
        return NetworkConfig(errors=(f"{path}: {exc}",))
    for error in config.errors:
        log.error("%s: %s (default used)", path, error)
    return config


# --------------------------------------------------------------------------------------
# Forwarded headers
# --------------------------------------------------------------------------------------


def _unmap(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# --------------------------------------------------------------------------------------
# LAN and PublishedServerUriBySubnet (src/Jellyfin.Networking/Manager/NetworkManager.cs)
# --------------------------------------------------------------------------------------

_RFC1918: Final = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
_IPV6_LAN: Final = ("fc00::/7", "fec0::/10")
_ANY: Final = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
_SIOCGIFADDR: Final = 0x8915
_SIOCGIFNETMASK: Final = 0x891B


@dataclasses.dataclass(frozen=True)
class Interface:
    name: str
    address: IPAddress
    network: IPNetwork


def host_interfaces() -> list[Interface]:
    """This host's interface addresses (IPv4 through ioctl, IPv6 from /proc), which is
    what Jellyfin's InitializeInterfaces sees (in a host-network container: the host's)."""
    found: list[Interface] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _index, name in socket.if_nameindex():
            packed = struct.pack("256s", name.encode()[:15])
            try:
                address = socket.inet_ntoa(fcntl.ioctl(sock, _SIOCGIFADDR, packed)[20:24])
                mask = socket.inet_ntoa(fcntl.ioctl(sock, _SIOCGIFNETMASK, packed)[20:24])
            except OSError:
                continue  # no IPv4 address on this interface
            network = ipaddress.ip_network(f"{address}/{mask}", strict=False)
            found.append(Interface(name, ipaddress.ip_address(address), network))
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            fields = line.split()
            if len(fields) == 6:
                raw, prefix, name = fields[0], int(fields[2], 16), fields[5]
                address6 = ipaddress.IPv6Address(int(raw, 16))
                network6 = ipaddress.ip_network(f"{address6}/{prefix}", strict=False)
                found.append(Interface(name, address6, network6))
    return found


def _networks(entries: Iterable[str]) -> list[IPNetwork]:
    networks = []
    for entry in entries:
        with contextlib.suppress(ValueError):
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
    return networks


@dataclasses.dataclass(frozen=True)
class PublishedUris:
    """NetworkManager's LAN (InitializeLan) and overrides (InitializeOverrides)."""

    lan: tuple[IPNetwork, ...]
    excluded: tuple[IPNetwork, ...]
    # (subnet, url, internal, external), in file order
    overrides: tuple[tuple[IPNetwork, str, bool, bool], ...]

    @classmethod
    def from_config(cls, config: NetworkConfig, interfaces: Sequence[Interface]) -> PublishedUris:
        given = [e for e in config.local_network_subnets if not e.strip().startswith("!")]
        excluded = _networks(
            e.strip()[1:] for e in config.local_network_subnets if e.strip().startswith("!")
        )
        lan = _networks(given)
        if not lan:
            lan = _networks(_RFC1918) + (_networks(_IPV6_LAN) if config.enable_ipv6 else [])
        overrides: list[tuple[IPNetwork, str, bool, bool]] = []
        for entry in config.published_server_uri_by_subnet:
            parts = entry.split("=")
            if len(parts) != 2:
                log.error("Unable to parse bind override: %s", entry)
                return cls(tuple(lan), tuple(excluded), ())  # Jellyfin stops reading here
            identifier, replacement = parts[0], parts[1].strip()
            if identifier.lower() == "all":
                overrides = [(any_net, replacement, True, True) for any_net in _ANY]
                break
            if identifier.lower() == "external":
                overrides += [(any_net, replacement, False, True) for any_net in _ANY]
            elif identifier.lower() == "internal":
                overrides += [(net, replacement, True, False) for net in lan]
            else:
                try:
                    subnet = ipaddress.ip_network(identifier, strict=False)
                except ValueError:
                    named = [i for i in interfaces if i.name.lower() == identifier.lower()]
                    if not named:
                        log.error("Unable to parse bind override: %s", entry)
                    overrides += [(i.network, replacement, True, True) for i in named]
                else:
                    overrides.append((subnet, replacement, True, True))
        return cls(tuple(lan), tuple(excluded), tuple(overrides))

    def is_local(self, address: IPAddress) -> bool:
        """IsInLocalNetwork: loopback, or in the LAN and not excluded."""
        if address.is_loopback:
            return True
        return any(address in n for n in self.lan if n.version == address.version) and not any(
            address in n for n in self.excluded if n.version == address.version
        )

    def match(self, source: IPAddress, interfaces: Sequence[Interface]) -> str | None:
        """MatchesPublishedServerUrl: the override for this client, or None."""
        external = not self.is_local(source)
        candidates = [
            (subnet, url)
            for subnet, url, internal, is_external in self.overrides
            if (is_external if external else internal)
            and subnet.version == source.version
            and source in subnet
        ]
        candidates.sort(key=lambda c: c[0].prefixlen, reverse=True)  # stable, like OrderBy
        for subnet, url in candidates:
            if subnet in _ANY or any(
                i.address.version == subnet.version and i.address in subnet for i in interfaces
            ):
                return url
        return None


def usable_interfaces(config: NetworkConfig, interfaces: Iterable[Interface]) -> list[Interface]:
    """InitializeInterfaces' filters: virtual interfaces (by name prefix) and disabled
    address families are left out."""
    usable = []
    for interface in interfaces:
        if config.ignore_virtual_interfaces and any(
            interface.name.lower().startswith(prefix.lower())
            for prefix in config.virtual_interface_names
        ):
            continue
        if interface.address.version == 4 and not config.enable_ipv4:
            continue
        if interface.address.version == 6 and not config.enable_ipv6:
            continue
        usable.append(interface)
    return usable


def smart_url(override: str, port: int, base: str) -> str:
    """GetSmartApiUrl on an override: a URL as given (trimmed of '/'), a host or address
    (with an optional ':port') made into http://host:port (no BaseUrl on a URL)."""
    parts = override.split(":")
    host, chosen = override, port
    if len(parts) > 1 and parts[1].isdigit():
        host, chosen = parts[0], int(parts[1])
    if host.lower().startswith("http"):
        return host.strip("/")
    return f"http://{host.strip('/')}:{chosen}{base}"


@dataclasses.dataclass(frozen=True)
class ProxyTrust:
    """ForwardedHeadersOptions.KnownProxies + KnownIPNetworks, as Jellyfin fills them."""

    addresses: frozenset[IPAddress]
    networks: tuple[IPNetwork, ...]

    def is_known(self, address: IPAddress) -> bool:
        """ASP.NET's CheckKnownAddress: an IPv4-mapped address also matches as IPv4."""
        candidates = {address, _unmap(address)}
        if candidates & self.addresses:
            return True
        return any(candidate in network for candidate in candidates for network in self.networks)

    def describe(self) -> list[str]:
        return sorted(str(a) for a in self.addresses) + [str(n) for n in self.networks]


def _resolve_host(name: str) -> list[IPAddress]:
    infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def build_proxy_trust(
    config: NetworkConfig,
    resolve: Callable[[str], Iterable[IPAddress]] = _resolve_host,
) -> ProxyTrust | None:
    """Return the trusted set, or None when forwarded headers are disabled.

    Jellyfin 10.11 disables forwarding entirely when KnownProxies is empty. Otherwise it
    *adds* the entries to ASP.NET's defaults (127.0.0.0/8 and ::1) - it never clears
    them - which is why loopback stays trusted.
    """
    if not config.known_proxies:
        return None
    addresses: set[IPAddress] = {ipaddress.IPv6Address("::1")}
    networks: list[IPNetwork] = [ipaddress.IPv4Network("127.0.0.0/8")]

    def add(network: IPNetwork, entry: str) -> None:
        mapped = network.network_address
        if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped is not None:
            # Jellyfin maps IPv4-mapped entries to IPv4 before adding them.
            network = ipaddress.IPv4Network((mapped.ipv4_mapped, max(network.prefixlen - 96, 0)))
        if (network.version == 4 and not config.enable_ipv4) or (
            network.version == 6 and not config.enable_ipv6
        ):
            log.warning(
                "KnownProxies entry %r (%s) ignored: IPv%d is disabled",
                entry,
                network,
                network.version,
            )
            return
        if network.prefixlen == network.max_prefixlen:
            addresses.add(network.network_address)
        else:
            networks.append(network)

    for raw in config.known_proxies:
        entry = raw.strip()
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            pass
        else:
            if "/" in entry and network.network_address != ipaddress.ip_interface(entry).ip:
                log.warning("KnownProxies entry %r has host bits set; using %s", entry, network)
            add(network, entry)
            continue
        try:
            resolved = list(resolve(entry))
        except (OSError, UnicodeError) as exc:
            # Names are resolved once, at start: a proxy container that is not up yet
            # stays untrusted until the next restart - exactly like Jellyfin.
            log.warning("KnownProxies entry %r not resolvable at start (%s); ignored", entry, exc)
            continue
        for address in resolved:
            add(ipaddress.ip_network(address), entry)
    return ProxyTrust(frozenset(addresses), tuple(networks))


def _split_header(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def parse_ip_endpoint(text: str) -> tuple[IPAddress, int | None] | None:
    """IPEndPoint.TryParse: ``ip``, ``ipv4:port``, ``[ipv6]`` or ``[ipv6]:port``."""
    host, port = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                return None
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not port_text.isdigit():
            return None
        port = int(port_text)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if port is not None and port > 65535:
        return None
    return address, port


_SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_HOST_RE: Final = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]*)?")


@dataclasses.dataclass(frozen=True)
class RequestView:
    """The request as the server understood it, after forwarded-header processing."""

    peer_address: str
    peer_port: int | None
    client_address: str
    client_port: int | None
    scheme: str
    host: str
    peer_trusted: bool
    honoured: bool


def apply_forwarded_headers(
    peer: tuple[str, int | None],
    scheme: str,
    host: str,
    headers: Mapping[str, Sequence[str]],
    trust: ProxyTrust | None,
) -> RequestView:
    """ASP.NET Core's ForwardedHeadersMiddleware.ApplyForwarders, as Jellyfin 10.11 sets it up.

    ``headers`` maps lower-case ``x-forwarded-for/-proto/-host`` to their raw header lines.
    """
    peer_ip, peer_port = peer
    try:
        peer_address: IPAddress | None = ipaddress.ip_address(peer_ip)
    except ValueError:
        peer_address = None
    peer_trusted = trust is not None and peer_address is not None and trust.is_known(peer_address)
    view = RequestView(peer_ip, peer_port, peer_ip, peer_port, scheme, host, peer_trusted, False)
    if trust is None or peer_address is None:
        return view

    xff = _split_header(headers.get("x-forwarded-for", ()))
    xfp = _split_header(headers.get("x-forwarded-proto", ()))
    xfh = _split_header(headers.get("x-forwarded-host", ()))
    current_ip: IPAddress = peer_address
    current_port = peer_port
    new_scheme: str | None = None
    new_host: str | None = None
    applied = False
    # Entry i pairs the i-th values counted from the right of each header.
    for i in range(max(len(xff), len(xfp), len(xfh))):
        if not trust.is_known(current_ip):
            break  # first untrusted hop: keep what was applied so far
        if i < len(xff):
            endpoint = parse_ip_endpoint(xff[-1 - i])
            if endpoint is None:
                break  # unparsable address stops the walk
            current_ip, current_port = endpoint
            applied = True
        # Invalid proto/host values are skipped, not fatal (RequireHeaderSymmetry=false).
        if i < len(xfp) and _SCHEME_RE.fullmatch(xfp[-1 - i]):
            new_scheme = xfp[-1 - i]
            applied = True
        if i < len(xfh) and _HOST_RE.fullmatch(xfh[-1 - i]):
            new_host = xfh[-1 - i]
            applied = True
    if not applied:
        return view
    return dataclasses.replace(
        view,
        client_address=str(current_ip),
        client_port=current_port,
        scheme=new_scheme or scheme,
        host=new_host or host,
        honoured=True,
    )


# --------------------------------------------------------------------------------------
# Media and ranges
# --------------------------------------------------------------------------------------

# Long enough that any CHUNK_SIZE window starting at any phase is one slice.
_PATTERN: Final = bytes(range(MEDIA_MODULUS)) * (CHUNK_SIZE // MEDIA_MODULUS + 2)


def write_media_file(path: Path, size: int) -> bool:
    """Make ``path`` hold the ``size``-byte media pattern; False when it cannot be written.

    An existing file of the right size is reused (a restart need not rewrite 512 MiB);
    a new one is written beside it and renamed, so a reader never sees half a file.
    """
    try:
        if path.is_file() and path.stat().st_size == size:
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        # Whole pattern periods per write, so every block starts at phase 0.
        block = bytes(range(MEDIA_MODULUS)) * ((1 << 20) // MEDIA_MODULUS)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".standin-media-")
        try:
            with os.fdopen(fd, "wb") as out:
                left = size
                while left > 0:
                    n = min(left, len(block))
                    out.write(block[:n])
                    left -= n
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        log.warning("media file %s not written (%s): serving media from memory", path, exc)
        return False
    return True


def media_bytes(offset: int, length: int) -> bytes:
    """The generated file's bytes ``[offset, offset + length)``: byte ``i`` is ``i % 251``."""
    out = bytearray()
    while length > 0:
        n = min(length, CHUNK_SIZE)
        start = offset % MEDIA_MODULUS
        out += _PATTERN[start : start + n]
        offset, length = offset + n, length - n
    return bytes(out)


UNSATISFIABLE: Final = "unsatisfiable"
_RANGE_RE: Final = re.compile(r"bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)


def select_range(
    range_headers: Sequence[str], length: int
) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """ASP.NET's RangeHelper: one inclusive ``(first, last)``, UNSATISFIABLE, or None (full).

    Multiple ranges are deliberately unsupported (served in full), as in ASP.NET.
    """
    if len(range_headers) != 1 or "," in range_headers[0]:
        return None
    match = _RANGE_RE.fullmatch(range_headers[0].strip())
    if match is None or not (match.group(1) or match.group(2)):
        return None
    first_text, last_text = match.groups()
    if first_text:
        first = int(first_text)
        last = int(last_text) if last_text else None
        if last is not None and last < first:
            return None  # syntactically invalid -> header ignored
        if length == 0 or first >= length:
            return UNSATISFIABLE
        return first, length - 1 if last is None or last >= length else last
    suffix = int(last_text)
    if length == 0 or suffix == 0:
        return UNSATISFIABLE
    count = min(suffix, length)
    return length - count, length - 1


def if_range_allows_partial(if_range: str | None, last_modified: datetime) -> bool:
    """ASP.NET's IfRangeValid for a resource that has a Last-Modified but no ETag."""
    if not if_range:
        return True
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        return True  # no ETag on the resource, so nothing contradicts the validator
    try:
        date = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return True  # unparsable If-Range is dropped by the header parser
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    return last_modified <= date


def _parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        date = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return date if date.tzinfo else date.replace(tzinfo=UTC)


# --------------------------------------------------------------------------------------
# Access log
# --------------------------------------------------------------------------------------


def scrub_tokens(target: str) -> str:
    """Replace ``api_key``/``ApiKey`` query values (matched as Jellyfin would) by ``***``."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    parts = []
    for part in query.split("&"):
        name, eq, _value = part.partition("=")
        if eq and unquote_plus(name).lower() in TOKEN_QUERY_NAMES:
            part = f"{name}=***"
        parts.append(part)
    return f"{path}?{'&'.join(parts)}"


def authorization_parts(value: str) -> dict[str, str] | None:
    """AuthorizationContext.GetAuthorization + GetParts: ``MediaBrowser k="v", ...`` (or
    the legacy ``Emby`` scheme) as a dictionary; None for any other scheme."""
    scheme, space, rest = value.partition(" ")
    if not space or scheme.lower() not in ("mediabrowser", "emby"):
        return None
    parts: dict[str, str] = {}
    escaped, start, key = False, 0, ""
    for index, char in enumerate(rest):
        if char in '",':
            # Jellyfin's XOR: a quote toggles, a comma keeps the state.
            escaped = (not escaped) == (char == '"')
            if char == "," and not escaped:
                if start < index:
                    parts[key] = unquote_plus(rest[start:index].strip('"'))
                    key = ""
                start = index + 1
        elif not escaped and char == "=":
            key = rest[start:index].strip()
            start = index + 1
    if start < len(rest):
        parts[key] = unquote_plus(rest[start:].strip('"'))
    return parts


def request_token(headers: Mapping[str, str], query: Iterable[tuple[str, str]]) -> str | None:
    """The token Jellyfin 10.11 reads (AuthorizationContext.GetAuthorizationInfoFromDictionary,
    legacy authorization on, its default): the first non-empty of ``Authorization``'s
    ``Token`` (``X-Emby-Authorization`` only when ``Authorization`` is absent),
    ``X-Emby-Token``, ``X-MediaBrowser-Token``, query ``ApiKey``, query ``api_key`` (query
    names in any case)."""
    header = headers.get("Authorization") or headers.get("X-Emby-Authorization") or ""
    parts = authorization_parts(header) if header else None
    candidates = [
        (parts or {}).get("Token"),
        headers.get("X-Emby-Token"),
        headers.get("X-MediaBrowser-Token"),
    ]
    pairs = list(query)
    for name in ("apikey", "api_key"):
        candidates.append(next((v for k, v in pairs if k.lower() == name and v), None))
    return next((token for token in candidates if token), None)


LEGACY_PREFIXES: Final = ("/emby", "/mediabrowser")


def strip_legacy_prefix(path: str) -> str:
    """Jellyfin 10.x's LegacyEmbyRouteRewriteMiddleware: ``/emby/...`` and
    ``/mediabrowser/...`` (any case) are served as ``/...``."""
    lower = path.lower()
    for prefix in LEGACY_PREFIXES:
        if lower == prefix or lower.startswith(prefix + "/"):
            return path[len(prefix) :] or "/"
    return path


AuthState = Literal["none", "invalid", "valid"]


def authenticate(token: str | None, api_keys: frozenset[str]) -> AuthState:
    """AuthService.Authenticate: no token, a token no key matches, or a valid key."""
    if not token:
        return "none"
    return "valid" if token in api_keys else "invalid"


# --------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Settings:
    bind: str | None  # None: what Jellyfin binds for EnableIPv4/EnableIPv6 (listen_socket)
    port: int | None  # None: use InternalHttpPort from network.xml
    config_dir: Path
    phases: StartupPhases
    api_keys: frozenset[str]
    users: tuple[tuple[str, str], ...]  # (name, password)
    media_bytes: int
    media_file: Path | None  # None: serve the pattern from memory
    server_name: str
    published_server_url: str
    shutdown_seconds: float
    keepalive_seconds: float = KESTREL_KEEPALIVE_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str], argv: Sequence[str] = ()) -> Settings:
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument("-c", "--configdir")
        parser.add_argument("-d", "--datadir")
        parser.add_argument("--published-server-url")
        args, _unknown = parser.parse_known_args(list(argv))
        data_dir = args.datadir or env.get("JELLYFIN_DATA_DIR")
        config_dir = (
            args.configdir
            or env.get("JELLYFIN_CONFIG_DIR")
            or (str(Path(data_dir) / "config") if data_dir else DEFAULT_CONFIG_DIR)
        )
        port_text = env.get("STANDIN_PORT", "").strip()
        media_size = int(env.get("STANDIN_MEDIA_BYTES", str(DEFAULT_MEDIA_BYTES)))
        return cls(
            bind=env.get("STANDIN_BIND", "").strip() or None,
            port=int(port_text) if port_text else None,
            config_dir=Path(config_dir),
            phases=StartupPhases(
                closed=_seconds(env, "STANDIN_CLOSED_SECONDS"),
                setup=_seconds(env, "STANDIN_STARTUP_SECONDS"),
                switch=_seconds(env, "STANDIN_SWITCH_SECONDS", DEFAULT_SWITCH_SECONDS),
                loading=_seconds(env, "STANDIN_LOADING_SECONDS"),
            ),
            api_keys=_api_keys(env.get("STANDIN_API_KEYS")),
            users=_users(env.get("STANDIN_USERS", "")),
            media_bytes=media_size,
            media_file=_media_file(env, media_size),
            server_name=env.get("STANDIN_SERVER_NAME") or socket.gethostname(),
            published_server_url=(
                args.published_server_url or env.get("JELLYFIN_PublishedServerUrl", "")
            ),
            shutdown_seconds=float(env.get("STANDIN_SHUTDOWN_SECONDS", "5")),
            keepalive_seconds=_seconds(env, "STANDIN_KEEPALIVE_SECONDS", KESTREL_KEEPALIVE_SECONDS),
        )


@dataclasses.dataclass(frozen=True)
class StartupPhases:
    """How long each of Jellyfin 10.11's start-up phases lasts (seconds, 0: skipped)."""

    closed: float = 0.0  # the process runs, nothing listens yet
    setup: float = 0.0  # SetupServer: /health "Degraded", everything else 503
    switch: float = DEFAULT_SWITCH_SECONDS  # port closed between the two servers (after setup)
    loading: float = 0.0  # main app, start-up tasks running: 503 "loading" but /System/Ping


def _seconds(env: Mapping[str, str], name: str, default: float = 0.0) -> float:
    text = env.get(name, "").strip()
    value = float(text) if text else default
    if value < 0:
        raise ValueError(f"{name} must not be negative: {text!r}")
    return value


def _api_keys(text: str | None) -> frozenset[str]:
    """STANDIN_API_KEYS: comma-separated keys; unset means the one documented test key
    (Jellyfin keeps keys in its database; an empty value means no key at all)."""
    if text is None:
        return frozenset({DEFAULT_API_KEY})
    return frozenset(key.strip() for key in text.split(",") if key.strip())


def _users(text: str) -> tuple[tuple[str, str], ...]:
    """STANDIN_USERS: comma-separated name:password pairs."""
    users = []
    for entry in text.split(","):
        if entry.strip():
            name, sep, password = entry.strip().partition(":")
            if not sep or not name:
                raise ValueError(f"STANDIN_USERS entry {entry!r} is not name:password")
            users.append((name, password))
    return tuple(users)


def user_id(name: str) -> str:
    """A user's Id: stable per name (Jellyfin's are random GUIDs, "N" format)."""
    return hashlib.sha256(f"jellyfin-standin-user:{name}".encode()).hexdigest()[:32]


def _media_file(env: Mapping[str, str], size: int) -> Path | None:
    chosen = env.get("STANDIN_MEDIA_FILE", "").strip()
    if chosen.lower() == "memory":
        return None
    if chosen:
        return Path(chosen)
    cache = env.get("JELLYFIN_CACHE_DIR", "").strip()
    folder = Path(cache) if cache and os.access(cache, os.W_OK) else Path(tempfile.gettempdir())
    return folder / f"standin-media-{size}.bin"


@dataclasses.dataclass
class Exchange:
    """Per-request state shared by the router, the handlers and the access log."""

    request: web.BaseRequest
    view: RequestView
    bytes_sent: int = 0  # counted by streaming handlers, which may be cut short


Handler = Callable[[Exchange, "re.Match[str]"], Awaitable[web.StreamResponse]]
Phase = Literal["setup", "loading", "ready"]


@dataclasses.dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    methods: frozenset[str] | None  # None: any method
    handler: Handler


def _empty(status: int, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, headers=headers)


def _html(title: str, body: str, status: int = 200) -> web.Response:
    page = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><h1>{title}</h1><p>{body}</p></body></html>\n"
    )
    return web.Response(status=status, text=page, content_type="text/html")


class StandinServer:
    def __init__(self, settings: Settings, network: NetworkConfig) -> None:
        self.settings = settings
        self.network = network
        self.trust = build_proxy_trust(network)
        self.base = network.base_url
        self.port = settings.port if settings.port is not None else network.internal_http_port
        self.server_id = hashlib.sha256(
            f"jellyfin-standin:{settings.server_name}".encode()
        ).hexdigest()[:32]
        # serve() moves it: "setup" (SetupServer), "loading" (start-up tasks), "ready".
        self.phase: Phase = "ready"
        self.websockets: set[web.WebSocketResponse] = set()
        # Keys revoked at run time (DELETE {base}/Auth/Keys/{key}).
        self.revoked: set[str] = set()
        self.shutting_down = False
        # Set once the media file exists; until then (or if it never can) media comes
        # from memory, so start-up is not delayed by writing a large file.
        self.media_ready = threading.Event()
        # Session tokens handed out by a login, to the user's name.
        self.sessions: dict[str, str] = {}
        # Quick Connect requests by code, and the user each authorised one logs in as.
        self.quick_requests: dict[str, dict[str, object]] = {}
        self.quick_users: dict[str, str] = {}  # secret -> user name
        self.routes = [
            Route(self._re("/users/authenticatebyname"), frozenset({"POST"}), self.login),
            Route(
                self._re(r"/users/(?P<user>[^/]+)/authenticate"),
                frozenset({"POST"}),
                self.login_by_id,
            ),
            Route(self._re("/users/me"), frozenset({"GET"}), self.current_user),
            Route(self._re("/users/public"), frozenset({"GET"}), self.public_users),
            Route(self._re("/sessions/logout"), frozenset({"POST"}), self.logout),
            Route(
                self._re("/users/authenticatewithquickconnect"),
                frozenset({"POST"}),
                self.quick_connect_login,
            ),
            Route(self._re("/users/forgotpassword"), frozenset({"POST"}), self.forgot_password),
            Route(self._re("/users/forgotpassword/pin"), frozenset({"POST"}), self.forgot_pin),
            Route(self._re("/quickconnect/enabled"), frozenset({"GET"}), self.quick_enabled),
            Route(self._re("/quickconnect/initiate"), frozenset({"POST"}), self.quick_initiate),
            Route(self._re("/quickconnect/connect"), frozenset({"GET"}), self.quick_connect),
            Route(self._re("/quickconnect/authorize"), frozenset({"POST"}), self.quick_authorize),
            Route(self._re("/health"), None, self.health),
            Route(self._re("/system/ping"), frozenset({"GET", "POST"}), self.ping),
            Route(self._re("/system/info/public"), frozenset({"GET"}), self.public_info),
            Route(
                self._re(r"/videos/(?P<item>[^/]+)/stream(?:\.(?P<container>[^/]+))?"),
                frozenset({"GET", "HEAD"}),
                self.video_stream,
            ),
            # Uploads behind [Authorize]: ImageController (item and user images) and
            # SubtitleController.UploadSubtitle.
            Route(
                self._re(r"/items/(?P<item>[^/]+)/images/(?P<type>[^/]+)(?:/(?P<index>\d+))?"),
                frozenset({"POST"}),
                self.authorized_upload,
            ),
            Route(
                self._re(r"/users/(?P<user>[^/]+)/images/(?P<type>[^/]+)(?:/(?P<index>\d+))?"),
                frozenset({"POST"}),
                self.authorized_upload,
            ),
            Route(self._re("/userimage"), frozenset({"POST"}), self.authorized_upload),
            Route(
                self._re(r"/videos/(?P<item>[^/]+)/subtitles"),
                frozenset({"POST"}),
                self.authorized_upload,
            ),
            # The token gate's needs (docs/access.md): a route that answers 200 for any
            # valid token and 401 otherwise (SystemController.GetEndpointInfo,
            # DefaultAuthorization), revoking a key (ApiKeyController.RevokeKey), and a
            # subtitle that Jellyfin serves without a token (SubtitleController).
            Route(self._re("/system/endpoint"), frozenset({"GET"}), self.endpoint_info),
            Route(self._re("/auth/keys/(?P<key>[^/]+)"), frozenset({"DELETE"}), self.revoke_key),
            Route(
                self._re(
                    r"/videos/(?P<item>[^/]+)/(?P<source>[^/]+)/subtitles/(?P<index>\d+)"
                    r"/stream\.(?P<format>[a-z0-9]+)"
                ),
                frozenset({"GET", "HEAD"}),
                self.subtitle_stream,
            ),
            Route(self._re("/__standin/echo"), None, self.echo),
            Route(self._re("/__standin/upload"), frozenset({"POST", "PUT"}), self.upload),
        ]

    @staticmethod
    def _re(pattern: str) -> re.Pattern[str]:
        return re.compile(pattern, re.IGNORECASE)  # ASP.NET routing ignores case

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        app.on_response_prepare.append(self._common_headers)
        app.on_shutdown.append(self._close_websockets)
        return app

    def make_setup_app(self) -> web.Application:
        """Jellyfin 10.11's SetupServer: a host of its own on the same port, stopped before
        the main one starts."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.dispatch_setup)
        app.on_response_prepare.append(self._common_headers)
        return app

    def auth_state(self, request: web.BaseRequest) -> AuthState:
        token = request_token(request.headers, request.query.items())
        return authenticate(
            token, (self.settings.api_keys - self.revoked) | frozenset(self.sessions)
        )

    # ---- plumbing -----------------------------------------------------------------

    def _view(self, request: web.BaseRequest) -> RequestView:
        transport = request.transport
        peername = transport.get_extra_info("peername") if transport is not None else None
        if isinstance(peername, tuple) and len(peername) >= 2:
            peer: tuple[str, int | None] = (str(peername[0]), int(peername[1]))
        else:
            peer = (request.remote or "", None)
        forwarded = {
            name: request.headers.getall(name, [])
            for name in ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host")
        }
        host = request.headers.get("Host", "")
        return apply_forwarded_headers(peer, request.scheme, host, forwarded, self.trust)

    async def _common_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        # Jellyfin runs on Kestrel, which names itself; proxies may be tested on hiding it.
        response.headers["Server"] = "Kestrel"
        # Jellyfin's default CORS policy: any origin, no credentials.
        if "Origin" in request.headers:
            response.headers["Access-Control-Allow-Origin"] = "*"
            response.headers.setdefault("Access-Control-Expose-Headers", "Content-Disposition")

    async def _close_websockets(self, _app: web.Application) -> None:
        self.shutting_down = True
        for ws in list(self.websockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"stand-in shutting down")

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        return await self._dispatch(request, self._route)

    async def dispatch_setup(self, request: web.Request) -> web.StreamResponse:
        return await self._dispatch(request, self._route_setup)

    async def _dispatch(
        self, request: web.Request, route: Callable[[Exchange], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        exchange = Exchange(request, self._view(request))
        started = time.monotonic()
        response: web.StreamResponse | None = None
        try:
            response = await route(exchange)
            if not response.prepared:
                # Prepare here so the access log below knows the real status and size.
                await response.prepare(request)
                await response.write_eof()
            return response
        finally:
            self._log_access(exchange, response, time.monotonic() - started)

    def _log_access(
        self, exchange: Exchange, response: web.StreamResponse | None, elapsed: float
    ) -> None:
        request, view = exchange.request, exchange.view
        status = response.status if response is not None else 0  # 0: handler failed/cut off
        sent = exchange.bytes_sent  # streamed bodies, counted as written
        if isinstance(response, web.Response) and request.method != "HEAD":
            sent = len(response.body) if isinstance(response.body, bytes) else 0
        via = f" via {view.peer_address}" if view.client_address != view.peer_address else ""
        access_log.info(
            '%s%s "%s %s HTTP/%d.%d" %d %d %.1fms "%s"',
            view.client_address,
            via,
            request.method,
            scrub_tokens(request.raw_path),
            request.version.major,
            request.version.minor,
            status,
            sent,
            elapsed * 1000,
            request.headers.get("User-Agent", "-"),
        )

    async def _route(self, exchange: Exchange) -> web.StreamResponse:
        """Jellyfin's main pipeline (Startup.Configure), in its order."""
        request = exchange.request
        path = request.path
        lower, base = path.lower(), self.base.lower()

        # BaseUrlRedirectionMiddleware: plain, case-insensitive string prefix test, before
        # the forwarded headers; a relative Location, except for /health.
        if lower in (base + "/", base) or not path or not lower.startswith(base):
            if lower in ("/health", "/health/"):
                return _empty(302, {"Location": f"{self.base}/health"})
            return _empty(302, {"Location": relative_reference(path, f"{self.base}/web/")})
        rel = path[len(self.base) :]
        if rel and not rel.startswith("/"):
            return _empty(404)  # app.Map(BaseUrl) matches whole segments only

        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return self._cors_preflight(request)

        rel = strip_legacy_prefix(rel)
        rel_lower = rel.lower()
        trimmed = rel.rstrip("/")  # Jellyfin's PathTrimMiddleware
        if rel_lower == "/web":
            # DefaultFiles' RedirectToPathWithSlash: absolute, from the request's scheme and
            # host as the forwarded headers left them.
            raw_query = request.rel_url.raw_query_string
            query = f"?{raw_query}" if raw_query else ""
            view = exchange.view
            location = f"{view.scheme}://{view.host}{self.base}/web/{query}"
            return _empty(301, {"Location": location})
        if rel_lower in ("/web/", "/web/index.html"):
            if request.method not in ("GET", "HEAD"):
                return _empty(405, {"Allow": "GET, HEAD"})
            return self.web_index(request)
        if rel_lower.startswith("/web/"):
            return _empty(404)

        matched = self._match(trimmed)
        if (
            matched is not None
            and matched[0].handler == self.authorized_upload
            and request.method == "POST"
            and self.auth_state(request) != "valid"
        ):
            # UseAuthorization challenges before the controller reads the body.
            return _empty(401)
        if "Upgrade" in request.headers and web.WebSocketResponse().can_prepare(request).ok:
            return await self.websocket(exchange)
        if self.phase == "loading" and rel_lower != "/system/ping":
            # ServerStartupMessageMiddleware, after the WebSocket handler.
            return web.Response(status=503, text=LOADING_MESSAGE, content_type="text/html")

        if matched is None:
            return _empty(404)
        route, match = matched
        if route.methods is not None and request.method not in route.methods:
            return _empty(405, {"Allow": ", ".join(sorted(route.methods))})
        return await route.handler(exchange, match)

    def _match(self, path: str) -> tuple[Route, re.Match[str]] | None:
        for route in self.routes:
            match = route.pattern.fullmatch(path)
            if match is not None:
                return route, match
        return None

    async def _route_setup(self, exchange: Exchange) -> web.StreamResponse:
        # Jellyfin 10.11's SetupServer: its own tiny app, unaware of BaseUrl.
        request = exchange.request
        lower = request.path.lower()
        if lower in ("/health", "/health/"):
            return self._health_response("Degraded")  # ASP.NET: Degraded -> 200
        if lower == "/system/info/public" or lower.startswith("/system/info/public/"):
            return self._public_info_response(exchange, wizard_completed=False)
        response = _html(
            "Jellyfin stand-in is starting",
            "This is a test stand-in emulating Jellyfin's start-up phase.",
            status=503,
        )
        response.headers["Retry-After"] = STARTUP_RETRY_AFTER
        return response

    @staticmethod
    def _cors_preflight(request: web.BaseRequest) -> web.Response:
        headers = {
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Allow-Methods": request.headers["Access-Control-Request-Method"],
        }
        if "Access-Control-Request-Headers" in request.headers:
            headers["Access-Control-Allow-Headers"] = request.headers[
                "Access-Control-Request-Headers"
            ]
        return _empty(204, headers)

    # ---- Jellyfin endpoints -------------------------------------------------------

    @staticmethod
    def _health_response(status_text: str) -> web.Response:
        return web.Response(
            text=status_text,
            content_type="text/plain",
            # HealthCheckMiddleware forbids caching of the result.
            headers={
                "Cache-Control": "no-store, no-cache",
                "Pragma": "no-cache",
                "Expires": "Thu, 01 Jan 1970 00:00:00 GMT",
            },
        )

    async def health(self, _exchange: Exchange, _match: re.Match[str]) -> web.StreamResponse:
        return self._health_response("Healthy")

    @staticmethod
    def _ping_response() -> web.Response:
        return web.json_response(PRODUCT_NAME)

    async def ping(self, _exchange: Exchange, _match: re.Match[str]) -> web.StreamResponse:
        return self._ping_response()

    def local_address(self, exchange: Exchange) -> str:
        """Jellyfin's ApplicationHost.GetSmartApiUrl(HttpRequest)."""
        view = exchange.view
        if self.network.enable_published_server_uri_by_request:
            hostname, port = _split_host_port(view.host)
            default = {"http": 80, "https": 443}.get(view.scheme.lower())
            port_part = "" if port is None or port == default else f":{port}"
            return f"{view.scheme}://{hostname}{port_part}{self.base}"
        if self.settings.published_server_url:
            return self.settings.published_server_url.strip("/")
        if self.network.published_server_uri_by_subnet:
            interfaces = usable_interfaces(self.network, host_interfaces())
            uris = PublishedUris.from_config(self.network, interfaces)
            with contextlib.suppress(ValueError):
                client = _unmap(ipaddress.ip_address(view.client_address.split("%")[0]))
                override = uris.match(client, interfaces)
                if override is not None:
                    return smart_url(override, self.port, self.base)
        # Jellyfin picks the bind address facing the client; the local end of this
        # connection is the same thing for every setup the tests build.
        transport = exchange.request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        local = str(sockname[0]) if isinstance(sockname, tuple) else "127.0.0.1"
        address = _unmap(ipaddress.ip_address(local.split("%")[0]))
        host = f"[{address}]" if address.version == 6 else str(address)
        return f"http://{host}:{self.port}{self.base}"

    def _public_info_response(self, exchange: Exchange, *, wizard_completed: bool) -> web.Response:
        return web.json_response(
            {
                "LocalAddress": self.local_address(exchange),
                "ServerName": self.settings.server_name,
                "Version": VERSION,
                "ProductName": PRODUCT_NAME,
                "OperatingSystem": "",  # [Obsolete("This is no longer set")]
                "Id": self.server_id,
                "StartupWizardCompleted": wizard_completed,
            }
        )

    async def public_info(self, exchange: Exchange, _match: re.Match[str]) -> web.StreamResponse:
        return self._public_info_response(exchange, wizard_completed=True)

    def web_index(self, request: web.BaseRequest) -> web.Response:
        page = _html(
            "Jellyfin stand-in",
            "Test stand-in for the Jellyfin web client (stackgen test suite). "
            f"This is not Jellyfin. Base URL: <code>{html.escape(self.base or '/')}</code>.",
        )
        # Jellyfin serves /web through ASP.NET static files, which honour byte ranges.
        body = page.body if isinstance(page.body, bytes) else b""
        page.headers["Accept-Ranges"] = "bytes"
        selected = select_range(request.headers.getall("Range", []), len(body))
        if selected == UNSATISFIABLE:
            return _empty(416, {"Content-Range": f"bytes */{len(body)}"})
        if isinstance(selected, tuple):
            first, last = selected
            return web.Response(
                status=206,
                body=body[first : last + 1],
                content_type="text/html",
                headers={
                    "Accept-Ranges": "bytes",
                    "Content-Range": f"bytes {first}-{last}/{len(body)}",
                },
            )
        return page

    async def video_stream(self, exchange: Exchange, _match: re.Match[str]) -> web.StreamResponse:
        request = exchange.request
        length = self.settings.media_bytes
        headers = {
            "Accept-Ranges": "bytes",
            "Last-Modified": format_datetime(MEDIA_LAST_MODIFIED, usegmt=True),
        }
        since = _parse_http_date(request.headers.get("If-Modified-Since"))
        if since is not None and since >= MEDIA_LAST_MODIFIED:
            return _empty(304, headers)
        unmodified = _parse_http_date(request.headers.get("If-Unmodified-Since"))
        if unmodified is not None and unmodified < MEDIA_LAST_MODIFIED:
            return _empty(412, headers)

        selected: tuple[int, int] | Literal["unsatisfiable"] | None = None
        if if_range_allows_partial(request.headers.get("If-Range"), MEDIA_LAST_MODIFIED):
            selected = select_range(request.headers.getall("Range", []), length)
        if selected == UNSATISFIABLE:
            return _empty(416, {**headers, "Content-Range": f"bytes */{length}"})
        status, first, last = 200, 0, length - 1
        if isinstance(selected, tuple):
            status, (first, last) = 206, selected
            headers["Content-Range"] = f"bytes {first}-{last}/{length}"

        response = web.StreamResponse(status=status, headers=headers)
        response.content_type = "video/mp4"
        response.content_length = last - first + 1
        await response.prepare(request)
        if request.method == "HEAD":
            await response.write_eof()
            return response
        offset, remaining = first, last - first + 1
        try:
            if await self._sendfile(request, offset, remaining):
                exchange.bytes_sent += remaining
                await response.write_eof()
                return response
            while remaining > 0:
                n = min(remaining, CHUNK_SIZE)
                start = offset % MEDIA_MODULUS
                # memoryview: no per-chunk copy; write() applies back-pressure.
                await response.write(memoryview(_PATTERN)[start : start + n])
                offset, remaining = offset + n, remaining - n
                exchange.bytes_sent += n
            await response.write_eof()
        except (ConnectionResetError, BrokenPipeError):
            pass  # the client seeked or stopped; normal for players
        return response

    async def endpoint_info(self, exchange: Exchange, _match: re.Match[str]) -> web.StreamResponse:
        if self.auth_state(exchange.request) != "valid":
            return _empty(401)
        return web.json_response({"IsLocal": False, "IsInNetwork": True})

    async def revoke_key(self, exchange: Exchange, match: re.Match[str]) -> web.StreamResponse:
        # RequiresElevation: every key of the stand-in is an administrator's.
        if self.auth_state(exchange.request) != "valid":
            return _empty(401)
        self.revoked.add(unquote_plus(match.group("key")))
        return _empty(204)

    async def subtitle_stream(self, exchange: Exchange, match: re.Match[str]) -> web.StreamResponse:
        # Anonymous, as in Jellyfin 10.11 (no [Authorize] on this route).
        text = f"WEBVTT\n\n00:00.000 --> 00:01.000\nsubtitle {match.group('index')}\n"
        return web.Response(text=text, content_type="text/vtt")

    def prepare_media_file(self) -> None:
        """Write the media file (in a worker thread at start-up)."""
        path = self.settings.media_file
        if path is not None and write_media_file(path, self.settings.media_bytes):
            self.media_ready.set()
            log.info("media file ready: %s (%d bytes, sendfile)", path, self.settings.media_bytes)

    async def _sendfile(self, request: web.BaseRequest, offset: int, count: int) -> bool:
        """Send the body from the file with zero-copy; False when the caller must stream."""
        path = self.settings.media_file
        transport = request.transport
        if path is None or not self.media_ready.is_set() or transport is None:
            return False
        try:
            handle = path.open("rb")
        except OSError:
            return False
        with handle:
            loop = asyncio.get_running_loop()
            try:
                # Headers were written by prepare(); sendfile waits for them to flush.
                await loop.sendfile(transport, handle, offset, count, fallback=False)
            except (NotImplementedError, asyncio.SendfileNotAvailableError):
                return False
        return True

    async def _consume_body(self, request: web.BaseRequest) -> tuple[int, str]:
        digest, total = hashlib.sha256(), 0
        async for chunk in request.content.iter_chunked(CHUNK_SIZE):
            digest.update(chunk)
            total += len(chunk)
        return total, digest.hexdigest()

    # ---- users and sessions -----------------------------------------------------------

    def _user_dto(self, name: str) -> dict[str, object]:
        return {"Name": name, "Id": user_id(name), "ServerId": self.server_id}

    def _log_denied(self, name: str, exchange: Exchange) -> None:
        ip = exchange.view.client_address
        log.warning("Authentication request for %s has been denied (IP: %s).", name, ip)
        # Serilog's file sink renders string values quoted (a quote inside escaped).
        quoted = name.replace('"', '\\"')
        file_log(
            "WRN",
            "Jellyfin.Server.Implementations.Users.UserManager",
            f'Authentication request for "{quoted}" has been denied (IP: "{ip}").',
        )

    def _authenticate(self, name: str, password: str, exchange: Exchange) -> web.Response:
        if (name, password) not in self.settings.users:
            self._log_denied(name, exchange)
            return _empty(401)
        return self._new_session(name)

    async def login(self, exchange: Exchange, _match: re.Match[str]) -> web.StreamResponse:
        try:
            body = await exchange.request.json()
        except ValueError:
            return _empty(400)
        if not isinstance(body, dict):
            return _empty(400)
        name, password = body.get("Username"), body.get("Pw")
        if not isinstance(name, str) or not isinstance(password, str | None):
            return _empty(400)
        return self._authenticate(name, password or "", exchange)

    async def login_by_id(self, exchange: Exchange, match: re.Match[str]) -> web.StreamResponse:
        wanted = match.group("user").lower()
        name = next((n for n, _ in self.settings.users if user_id(n) == wanted), None)
        if name is None:
            return web.Response(status=404, text="User not found")
        pw = next((v for k, v in exchange.request.query.items() if k.lower() == "pw"), "")
        return self._authenticate(name, pw, exchange)

    async def current_user(self, exchange: Exchange, _match: re.Match[str]) -> web.StreamResponse:
        request = exchange.request
        token = request_token(request.headers, request.query.items())
        if token in self.sessions:
            return web.json_response(self._user_dto(self.sessions[token]))
        if token in self.settings.api_keys:
            return _empty(400)  # an API key has no user
        return _empty(401)

    async def public_users(self, _exchange: Exchange, _match: re.Match[str]) -> web.StreamResponse:
        return web.json_response([self._user_dto(name) for name, _ in self.settings.users])

    async def logout(self, exchange: Exchange, _match: re.Match[str]) -> web.StreamResponse:
        request = exchange.request
        token = request_token(request.headers, request.query.items())
        if token in self.sessions:
            del self.sessions[token]
            return _empty(204)
        return _empty(204) if token in self.settings.api_keys else _empty(401)

    async def _json_body(self, request: web.BaseRequest) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _new_session(self, name: str) -> web.Response:
        token = secrets.token_hex(16)
        self.sessions[token] = name
        return web.json_response(
            {"User": self._user_dto(name), "AccessToken": token, "ServerId": self.server_id}
        )

    async def quick_enabled(self, _exchange: Exchange, _match: re.Match[str]) -> web.StreamResponse:
        return web.json_response(True)

    async def quick_initiate(self, exchange: Exchange, _match: re.Match[str]) -> web.StreamResponse:
        header = exchange.request.headers.get("Authorization") or exchange.request.headers.get(
            "X-Emby-Authorization", ""
        )
        parts = authorization_parts(header) if header else None
        fields = [(parts or {}).get(k) for k in ("DeviceId", "Device", "Client", "Version")]
        if not all(fields):
            return _empty(400)  # TryConnect: ArgumentException
        device_id, device, app, version = fields
        code = f"{secrets.randbelow(900000) + 100000}"
        result: dict[str, object] = {
            "Authenticated": False,
            "Secret": secrets.token_hex(32).upper(),
            "Code": code,
            "DeviceId": device_id,
            "DeviceName": device,
            "AppName": app,
            "AppVersion": version,
            "DateAdded": datetime.now(UTC).isoformat(),
        }
        self.quick_requests[code] = result
        return web.json_response(result)

    async def quick_connect(self, exchange: Exchange, _match: re.Match[str]) -> web.StreamResponse:
        query = exchange.request.query
        secret = next((v for k, v in query.items() if k.lower() == "secret"), "")
        found = next((r for r in self.quick_requests.values() if r["Secret"] == secret), None)
        if found is None:
            return web.Response(status=404, text="Unknown secret")
        return web.json_response(found)

    async def quick_authorize(
        self, exchange: Exchange, _match: re.Match[str]
    ) -> web.StreamResponse:
        request = exchange.request
        token = request_token(request.headers, request.query.items())
        if token not in self.sessions:
            return _empty(401)
        code = next((v for k, v in request.query.items() if k.lower() == "code"), "")
        found = self.quick_requests.get(code)
        if found is None:
            return _empty(404)
        found["Authenticated"] = True
        self.quick_users[str(found["Secret"])] = self.sessions[token]
        return web.json_response(True)

    async def quick_connect_login(
        self, exchange: Exchange, _match: re.Match[str]
    ) -> web.StreamResponse:
        body = await self._json_body(exchange.request)
        if body is None or not isinstance(body.get("Secret"), str):
            return _empty(400)
        name = self.quick_users.pop(body["Secret"], None)
        if name is None:
            return _empty(404)  # GetAuthorizedRequest: ResourceNotFoundException
        return self._new_session(name)

    async def forgot_password(
        self, exchange: Exchange, _match: re.Match[str]
    ) -> web.StreamResponse:
        body = await self._json_body(exchange.request)
        if body is None:
            return _empty(400)
        entered = str(body.get("EnteredUsername") or "")
        digest = hashlib.md5(entered.upper().encode(), usedforsecurity=False).hexdigest()
        expires = datetime.now(UTC).timestamp() + 30 * 60
        return web.json_response(
            {
                "Action": "PinCode",
                "PinFile": f"/config/passwordreset{digest}.json",
                "PinExpirationDate": datetime.fromtimestamp(expires, UTC).isoformat(),
            }
        )

    async def forgot_pin(self, exchange: Exchange, _match: re.Match[str]) -> web.StreamResponse:
        if await self._json_body(exchange.request) is None:
            return _empty(400)
        return web.json_response({"Success": False, "UsersReset": []})

    async def authorized_upload(
        self, exchange: Exchange, _match: re.Match[str]
    ) -> web.StreamResponse:
        # Reached with a valid key only (_route answers 401 first).
        await self._consume_body(exchange.request)
        return _empty(204)

    async def websocket(self, exchange: Exchange) -> web.StreamResponse:
        request = exchange.request
        if self.auth_state(request) != "valid":
            # WebSocketManager throws SecurityException (no token, or an invalid one);
            # ExceptionMiddleware makes it a 403 - never a 401, never a 101.
            return web.Response(status=403, text=ERROR_BODY, content_type="text/plain")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.websockets.add(ws)
        try:
            await ws.send_str(_ws_message("ForceKeepAlive", WEBSOCKET_KEEPALIVE_SECONDS))
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    payload = json.loads(message.data)
                except ValueError:
                    continue  # Jellyfin logs and ignores malformed frames
                if isinstance(payload, dict) and payload.get("MessageType") == "KeepAlive":
                    await ws.send_str(_ws_message("KeepAlive"))
            if self.shutting_down and not ws.closed:
                # aiohttp 3.8 lets the handler's implicit close (1000) overtake the
                # shutdown's close; send "going away" from here so clients see 1001.
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"stand-in shutting down")
        finally:
            self.websockets.discard(ws)
        return ws

    # ---- test-only endpoints ------------------------------------------------------

    async def echo(self, exchange: Exchange, _match: re.Match[str]) -> web.StreamResponse:
        request, view = exchange.request, exchange.view
        joined: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            joined.setdefault(name.lower(), []).append(value)
        return web.json_response(
            {
                "method": request.method,
                "http_version": f"{request.version.major}.{request.version.minor}",
                "path": request.rel_url.raw_path,
                "query_string": request.rel_url.raw_query_string,
                "query": dict(request.query.items()),  # last value wins
                "headers": {name: ", ".join(values) for name, values in joined.items()},
                "header_list": [
                    [name.decode("latin-1"), value.decode("latin-1")]
                    for name, value in request.raw_headers
                ],
                "peer_address": view.peer_address,
                "peer_port": view.peer_port,
                "client_address": view.client_address,
                "client_port": view.client_port,
                "scheme": view.scheme,
                "host": view.host,
                "forwarded_headers_honoured": view.honoured,
                "peer_trusted": view.peer_trusted,
                "known_proxies": list(self.network.known_proxies),
                "trusted_proxies": self.trust.describe() if self.trust else [],
                "base_url": self.base,
                "config_errors": list(self.network.errors),
            }
        )

    async def upload(self, exchange: Exchange, _match: re.Match[str]) -> web.StreamResponse:
        total, digest = await self._consume_body(exchange.request)
        return web.json_response({"bytes": total, "sha256": digest})


def _ws_message(message_type: str, data: Any = None) -> str:
    message: dict[str, Any] = {"MessageType": message_type}
    if data is not None:
        message["Data"] = data
    message["MessageId"] = uuid.uuid4().hex
    return json.dumps(message)


def relative_reference(from_path: str, to_path: str) -> str:
    """Uri.MakeRelativeUri between two paths of one origin, as BaseUrlRedirectionMiddleware
    sends it: ``/`` -> ``web/``, ``/jellyfin`` -> ``jellyfin/web/``, ``/a/b`` ->
    ``../jellyfin/web/`` (segments compared case-sensitively, as for http URIs)."""
    from_dirs = from_path.split("/")[:-1]
    to_parts = to_path.split("/")
    common = 0
    while (
        common < len(from_dirs)
        and common < len(to_parts) - 1
        and from_dirs[common] == to_parts[common]
    ):
        common += 1
    return "../" * (len(from_dirs) - common) + "/".join(to_parts[common:])


def _split_host_port(host: str) -> tuple[str, int | None]:
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[: end + 1], host[end + 1 :]
    else:
        name, colon, port_text = host.partition(":")
        rest = colon + port_text
    port_text = rest[1:] if rest.startswith(":") else ""
    return name, int(port_text) if port_text.isdigit() else None


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------


def listen_socket(bind: str | None, network: NetworkConfig, port: int) -> socket.socket:
    """A bound socket where Jellyfin listens (NetworkManager.GetAllBindInterfaces without
    LocalNetworkAddresses): IPv4 and IPv6 -> ``[::]`` dual-mode; IPv4 only -> ``0.0.0.0``;
    IPv6 only -> ``[::]`` with IPV6_V6ONLY. ``STANDIN_BIND`` overrides it."""
    if bind is not None:
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        address, v6only = bind, None
    elif network.enable_ipv6:
        family, address, v6only = socket.AF_INET6, "::", not network.enable_ipv4
    else:
        family, address, v6only = socket.AF_INET, "0.0.0.0", None
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        if bind is not None or family != socket.AF_INET6:
            raise
        log.warning("no IPv6 here (%s); listening on IPv4 only", exc)
        return listen_socket("0.0.0.0", network, port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if v6only is not None:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
    sock.bind((address, port))
    return sock


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


async def serve(settings: Settings) -> None:
    network = load_network_config(settings.config_dir)
    server = StandinServer(settings, network)
    phases = settings.phases
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async def wait(seconds: float) -> bool:
        """Sleep, unless a signal comes first; True when it did."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=seconds)
        return stop.is_set()

    async def listen(app: web.Application) -> web.AppRunner:
        # access_log=None: our own access log (with token scrubbing) replaces aiohttp's.
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=settings.keepalive_seconds)
        await runner.setup()
        sock = listen_socket(settings.bind, network, server.port)
        server.port = sock.getsockname()[1]  # resolves STANDIN_PORT=0
        await web.SockSite(runner, sock).start()
        log.info(
            "jellyfin stand-in %s listening on http://%s:%d phase=%s base_url=%r "
            "known_proxies=%s trusted=%s",
            VERSION,
            _url_host(sock.getsockname()[0]),
            server.port,
            server.phase,
            server.base,
            list(network.known_proxies),
            server.trust.describe() if server.trust else "forwarding disabled",
        )
        return runner

    async def close(runner: web.AppRunner) -> None:
        # A bounded wait instead of aiohttp's shutdown_timeout keyword, whose home moved
        # between aiohttp 3.8 and 3.9.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runner.cleanup(), timeout=settings.shutdown_seconds)

    if phases.closed > 0:
        log.info("start-up: port closed for %ss", phases.closed)
    if await wait(phases.closed):
        return
    media = asyncio.create_task(asyncio.to_thread(server.prepare_media_file))
    try:
        if phases.setup > 0:
            server.phase = "setup"
            setup = await listen(server.make_setup_app())
            stopped = await wait(phases.setup)
            await close(setup)
            log.info("start-up server stopped")
            if stopped or await wait(phases.switch):
                return
        server.phase = "loading" if phases.loading > 0 else "ready"
        runner = await listen(server.make_app())
        if not await wait(phases.loading):
            server.phase = "ready"
            if phases.loading > 0:
                log.info("start-up complete")
            await stop.wait()
        log.info("shutting down (grace %ss)", settings.shutdown_seconds)
        await close(runner)
        log.info("stopped")
    finally:
        media.cancel()


def file_log(level: str, source: str, message: str) -> None:
    """One line of Jellyfin's file log, `$JELLYFIN_LOG_DIR/log_standin.log` (when set), in
    its template: `[{Timestamp:yyyy-MM-dd HH:mm:ss.fff zzz}] [{Level:u3}] [{ThreadId}]
    {SourceContext}: {Message}`."""
    folder = os.environ.get("JELLYFIN_LOG_DIR", "").strip()
    if not folder:
        return
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    offset = time.strftime("%z", time.localtime(now))
    zone = f"{offset[:3]}:{offset[3:]}"
    millis = int(now * 1000) % 1000
    with (
        contextlib.suppress(OSError),
        open(Path(folder) / "log_standin.log", "a", encoding="utf-8") as file,
    ):
        file.write(f"[{stamp}.{millis:03d} {zone}] [{level}] [1] {source}: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    settings = Settings.from_env(os.environ, sys.argv[1:] if argv is None else argv)
    # Jellyfin writes its file log from the start (a log watcher finds the file at once).
    folder = os.environ.get("JELLYFIN_LOG_DIR", "").strip()
    if folder:
        with contextlib.suppress(OSError):
            Path(folder).mkdir(parents=True, exist_ok=True)
    file_log("INF", "Main", "Jellyfin stand-in starting (not Jellyfin)")
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
