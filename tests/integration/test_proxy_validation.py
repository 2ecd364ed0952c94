"""A configuration the proxy itself rejects reaches the user with the proxy's own error text,
and `stackgen up` starts nothing (it runs `check`, whose last step is the proxy's own test:
`nginx -t`, `httpd -t`, in the proxy's image)."""

from __future__ import annotations

import subprocess

import pytest
from integration.conftest import StackFactory, stackgen

# proxy -> (file in the stack, a line it contains, what is added after it, the proxy's words)
BREAKAGES = {
    "nginx": (
        "nginx/conf.d/jellyfin.conf",
        "server_tokens off;",
        "no_such_directive on;",
        'unknown directive "no_such_directive"',
    ),
    "caddy": (
        "caddy/etc/Caddyfile",
        "\thttps_port 443",
        "\tno_such_option on",
        "no_such_option",
    ),
    "haproxy": (
        "haproxy/haproxy.cfg",
        "    log stdout format raw local0 info",
        "    no-such-keyword on",
        "no-such-keyword",
    ),
    "apache": (
        "apache/httpd.conf",
        "ServerSignature Off",
        "NoSuchDirective On",
        "Invalid command 'NoSuchDirective'",
    ),
}


@pytest.mark.parametrize("proxy", sorted(BREAKAGES))
def test_a_config_the_proxy_rejects_is_reported_and_nothing_starts(
    make_stack: StackFactory, proxy: str
) -> None:
    stack = make_stack(proxy, start=False)
    name, anchor, addition, expected = BREAKAGES[proxy]
    path = stack.directory / name
    text = path.read_text()
    assert anchor in text
    path.write_text(text.replace(anchor, f"{anchor}\n{addition}", 1))

    check = stackgen("check", "--dir", str(stack.directory), check=False)
    assert check.returncode == 1, check.stderr
    assert expected in check.stdout + check.stderr

    up = stackgen("up", "--dir", str(stack.directory), "--timeout", "60", check=False)
    assert up.returncode == 1, up.stderr
    assert "refusing to start" in up.stderr
    assert expected in up.stderr

    label = f"label=com.docker.compose.project={stack.config.project}"
    containers = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", label], capture_output=True, text=True, check=True
    ).stdout.split()
    assert containers == []
