"""`stackgen bench --ceiling`: a throwaway bare TLS file server beside the stack's proxy.

It serves the stack's own bytes (the media file, fetched once through the proxy) with the
stack's own certificate (the very files the proxy reads: its certificate mounts, read-only,
at the same paths), on the proxy's own network, so a client reaches it by the same path as
the proxy: what remains between the two is the proxy's relay (`gap.py`). It serves the
same file over plain HTTP too, which prices TLS itself.

Locked down like the stack's containers: the proxy's own user (never root), read-only root,
no capability, no new privileges, bounded memory and processes. It is removed, and its
scratch folder with it, when the run ends, fails or is interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from stackgen import engine
from stackgen.bench import curl
from stackgen.bench.endpoint import PATH_CONTAINER, Endpoint
from stackgen.errors import InvalidInputError, ProblemsFoundError
from stackgen.proxies.registry import spec
from stackgen.redaction import redact
from stackgen.stack import Stack

# Unprivileged ports: the server runs as the proxy's user, with no capability.
TLS_PORT, PLAIN_PORT = 8443, 8080
LABEL = "io.stackgen.bench-ceiling"
# The media file is copied into a scratch folder: bounded, so a run never fills a disk.
MAX_MEDIA_BYTES = 4 << 30
READY_SECONDS = 30.0

NGINX_CONF = """\
# The ceiling of `stackgen bench --ceiling`: nginx serving one file, nothing else.
worker_processes auto;
pid /tmp/nginx.pid;
error_log stderr error;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path /tmp/body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    server {{
        listen {tls_port} ssl;
        http2 on;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        location / {{ root /ceiling; rewrite ^ /media.bin break; }}
    }}
    server {{
        listen {plain_port};
        location / {{ root /ceiling; rewrite ^ /media.bin break; }}
    }}
}}
"""


@dataclass(frozen=True)
class Ceiling:
    tls: Endpoint  # side "ceiling"
    plain: Endpoint  # side "plain"
    container_id: str


def default_image(stack: Stack) -> str:
    """The stack's own nginx image when its proxy is nginx, else stackgen's default one."""
    if stack.proxy.spec.name == "nginx":
        return stack.proxy.image(stack.config)
    return spec("nginx").default_image


def _served_paths(stack: Stack) -> tuple[str, str]:
    source = stack.proxy.certificates(stack.config)
    if not source.proxy_reads_files:
        raise InvalidInputError(
            f"--ceiling: {stack.proxy.spec.name} keeps this stack's certificate in its own "
            "ACME storage, not in PEM files a bare server could read"
        )
    served = source.served
    if served.combined:  # one PEM with chain and key: nginx reads the key from it too
        return served.combined, served.combined
    return served.fullchain, served.privkey


def _mounts_for(paths: tuple[str, ...], layout: engine.ContainerLayout) -> list[tuple[str, str]]:
    """The proxy's own mounts that hold `paths` (the longest destination for each)."""
    chosen: dict[str, str] = {}
    for path in paths:
        holding = [
            m
            for m in layout.mounts
            if path == m.destination or path.startswith(m.destination.rstrip("/") + "/")
        ]
        if not holding:
            raise InvalidInputError(f"--ceiling: no mount of the proxy container holds {path}")
        best = max(holding, key=lambda m: len(m.destination))
        chosen[best.destination] = best.source
    return [(source, destination) for destination, source in chosen.items()]


def _network_of(address: str, layout: engine.ContainerLayout) -> str:
    for name, ip in layout.networks.items():
        if ip == address:
            return name
    if not layout.networks:
        raise InvalidInputError("--ceiling: the proxy container is on no network")
    return sorted(layout.networks)[0]


def _wait_ready(ep: Endpoint, media_path: str, container_id: str) -> None:
    deadline = time.monotonic() + READY_SECONDS
    last = ""
    while time.monotonic() < deadline:
        try:
            curl.negotiated(ep, media_path, max_time=3)
            return
        except (OSError, curl.CurlError) as error:
            last = str(error)
        time.sleep(0.5)
    logs = engine.container_logs(container_id)
    raise ProblemsFoundError(
        f"bench: the ceiling server did not answer within {READY_SECONDS:.0f} s "
        f"({redact(last)}); its log: {redact(logs.strip())[-600:]}"
    )


def _readable_by(scratch: Path, user: str) -> None:
    """The scratch folder for the server's user only: the user's media is nobody else's
    to read. As root it is handed to that user; as that user it is already theirs; as
    another user it must be readable by all (the server cannot read it otherwise)."""
    uid_text, _, gid_text = user.partition(":")
    files = [scratch, *scratch.iterdir()]
    if os.geteuid() == 0 and uid_text.isdigit():
        uid, gid = int(uid_text), int(gid_text) if gid_text.isdigit() else int(uid_text)
        for path in files:
            os.chown(path, uid, gid)
    elif not uid_text.isdigit() or int(uid_text) != os.geteuid():
        for path in files:
            path.chmod(0o755 if path.is_dir() else 0o644)
        return
    for path in files:
        path.chmod(0o700 if path.is_dir() else 0o600)


@contextlib.contextmanager
def ceiling_server(
    stack: Stack,
    proxied: Endpoint,
    *,
    media_path: str,
    size: int,
    image: str | None,
    timeout: float,
) -> Iterator[Ceiling]:
    if size > MAX_MEDIA_BYTES:
        raise InvalidInputError(
            f"--ceiling copies the media file: {size} bytes is more than "
            f"{MAX_MEDIA_BYTES >> 30} GiB (pick a smaller --media-path)"
        )
    found = stack.target.proxy_container(stack)
    if found is None:
        raise InvalidInputError(
            "--ceiling needs the stack's proxy running as one container on this machine"
        )
    layout = engine.container_layout(found[0])
    uid = layout.user.partition(":")[0]
    if uid in ("", "0", "root"):
        raise InvalidInputError(
            "--ceiling runs its server as the proxy's user, and this proxy runs as root"
        )
    cert, key = _served_paths(stack)
    mounts = _mounts_for((cert, key), layout)
    network = _network_of(proxied.address, layout)
    # The pid names the run in the folder as in the container: leftovers say whose they are.
    scratch = Path(tempfile.mkdtemp(prefix=f"stackgen-ceiling-{os.getpid()}-"))
    container_id = ""
    try:
        media = scratch / "media.bin"
        curl.download(proxied, media_path, media, size=size, max_time=max(60.0, timeout * 30))
        conf = scratch / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(tls_port=TLS_PORT, plain_port=PLAIN_PORT, cert=cert, key=key),
            encoding="utf-8",
        )
        _readable_by(scratch, layout.user)
        container_id, address = engine.start_helper(
            f"stackgen-bench-ceiling-{os.getpid()}",
            image or default_image(stack),
            argv=["nginx", "-c", "/ceiling/nginx.conf", "-g", "daemon off;"],
            network=network,
            user=layout.user,
            mounts=[(str(scratch), "/ceiling"), *mounts],
            label=LABEL,
        )
        tls = dataclasses.replace(
            proxied, name="ceiling", address=address, connect_port=TLS_PORT,
            path_kind=PATH_CONTAINER,
        )  # fmt: skip
        plain = dataclasses.replace(
            proxied, name="plain", scheme="http", address=address, connect_port=PLAIN_PORT,
            path_kind=PATH_CONTAINER, http2=False, context=None, ca_file=None,
        )  # fmt: skip
        _wait_ready(tls, media_path, container_id)
        yield Ceiling(tls, plain, container_id)
    except curl.CurlError as error:
        raise ProblemsFoundError(f"bench: --ceiling: {redact(str(error))}") from None
    finally:
        if container_id:
            engine.remove_container(container_id)
        shutil.rmtree(scratch, ignore_errors=True)
