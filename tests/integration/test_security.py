"""Running a generated stack as an attacker would look at it: what reaches the containers'
logs, and who the containers run as."""

from __future__ import annotations

import contextlib
import http.client
import os
import subprocess
import time
import uuid

import pytest
from integration import lowlevel
from integration.conftest import DOMAIN, HTTPS_PORT, Stack, StackFactory

from stackgen.models import STACK_USER
from stackgen.proxies import available

# Proxy failures a client sees when Jellyfin is gone: the proxy's own error page.
GATEWAY_ERRORS = (502, 503, 504)


def _container_logs(stack: Stack) -> str:
    """Every container's whole log (stopped ones included), stdout and stderr."""
    ids = stack.compose("ps", "-a", "-q").stdout.split()
    assert ids, "the stack has no containers"
    logs = []
    for container in ids:
        result = subprocess.run(
            ["docker", "logs", container],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        logs.append(f"--- {container}\n{result.stdout}{result.stderr}")
    return "\n".join(logs)


@pytest.mark.parametrize("proxy", available())
def test_a_token_in_a_failed_request_reaches_no_log(make_stack: StackFactory, proxy: str) -> None:
    """Before: nginx's and Caddy's error logs carried the query string (api_key) of a request
    that ended in a 502; only their access logs were scrubbed."""
    stack = make_stack(proxy, tls="internal", network="host")
    root = stack.ca_file
    assert root is not None
    secret = f"SECRET{uuid.uuid4().hex}"
    tokens = {
        "X-Emby-Token": f"{secret}h",
        "X-MediaBrowser-Token": f"{secret}m",
        "X-Emby-Authorization": f'MediaBrowser Client="pytest", Token="{secret}e"',
        "Authorization": f'MediaBrowser Client="pytest", Token="{secret}a"',
        "Cookie": f"token={secret}c",
    }
    # A stream cut when Jellyfin goes away: the proxies log an aborted response.
    conn = lowlevel._Conn(DOMAIN, HTTPS_PORT, lowlevel.tls_context(root))
    try:
        conn.request("GET", f"/Videos/standin/stream?static=true&api_key={secret}s", headers=tokens)
        stream = conn.getresponse()
        assert stream.status == 200
        stream.read(1024 * 1024)
        stopped = stack.compose("kill", "jellyfin")
        assert stopped.returncode == 0, stopped.stderr
        with contextlib.suppress(OSError, http.client.HTTPException):
            while stream.read(1024 * 1024):
                pass
    finally:
        conn.close()
    # A request Jellyfin can no longer answer: the proxy's own gateway error.
    reply = lowlevel.https(
        DOMAIN,
        HTTPS_PORT,
        root,
        f"/Items?api_key={secret}q&ApiKey={secret}Q&deviceId=pytest",
        headers=tokens,
    )
    assert reply.status in GATEWAY_ERRORS, (reply.status, reply.body[:200])
    time.sleep(2)  # a proxy's log line may be written after its answer
    logs = _container_logs(stack)
    # The failure is in the logs (the access log saw it), but none of the tokens is.
    assert str(reply.status) in logs, logs[-3000:]
    assert secret not in logs, "\n".join(line for line in logs.splitlines() if secret in line)


@pytest.mark.skipif(os.geteuid() != 0, reason="the default that matters when run as root")
def test_a_stack_made_by_root_runs_no_container_as_root(make_stack: StackFactory) -> None:
    """Before: run as root, stackgen defaulted run_as to 0:0 and every container ran as root;
    with another run_as that user was given the compose file and stackgen.toml."""
    stack = make_stack("nginx", tls="acme", network="bridge")
    assert stack.config.run_as == STACK_USER
    ids = stack.compose("ps", "-q").stdout.split()
    assert len(ids) == 4  # nginx, certbot, jellyfin, fail2ban (the ban list's feeder)
    for container in ids:
        user = subprocess.run(
            ["docker", "inspect", "--format", "{{.Config.User}}", container],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        assert user == STACK_USER, (container, user)
        top = subprocess.run(
            ["docker", "top", container, "-o", "pid,uid,gid,args"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.splitlines()[1:]
        assert top, container
        for line in top:
            _, uid, gid, _ = line.split(None, 3)
            assert (uid, gid) == tuple(STACK_USER.split(":")), (container, line)
    for name in ("stackgen.toml", "docker-compose.yml", ".stackgen", ".stackgen/manifest.json"):
        st = (stack.dir / name).stat()
        assert (st.st_uid, st.st_gid) == (0, 0), name
    for name in ("jellyfin/config", "jellyfin/cache", "letsencrypt", "certs", "acme-webroot"):
        st = (stack.dir / name).stat()
        assert f"{st.st_uid}:{st.st_gid}" == STACK_USER, name
