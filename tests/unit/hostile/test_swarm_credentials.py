"""DNS-01 credentials on the swarm target: Swarm secrets read through files, never the spec.

`docker stack deploy` resolves an `env_file` and stores every value in the service spec,
where `docker service inspect` (anyone with API access to a manager) reads it. An attacker
with that access must find no credential in the stack file, an environment, a command line
or a label: each value lives only in its own file (0600, the invoking user's), and the
ACME client reads it from /run/secrets.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from stackgen.dns_providers import provider
from stackgen.stack import Stack
from stackgen.stack_checks import check_stack
from tests.unit.test_cli import stackgen

TSIG = base64.b64encode(b"attacker-wants-this-tsig-secret!").decode()
# Distinctive values: each one found anywhere but in its own file is a leak.
VALUES: dict[str, dict[str, str]] = {
    "rfc2136": {
        "RFC2136_NAMESERVER": "192.0.2.153:5353",
        "RFC2136_TSIG_KEY": "leaky-key-name.",
        "RFC2136_TSIG_SECRET": TSIG,
        "RFC2136_TSIG_ALGORITHM": "hmac-sha512.",
    },
    "cloudflare": {"CF_DNS_API_TOKEN": "cf-token-that-must-stay-secret-4242"},
}
# The proxy, and the service whose ACME client takes the credentials.
CLIENTS = {
    "traefik": "traefik",  # lego, inside Traefik
    "caddy": "certbot",  # the official image has no DNS module: certbot's plugins
    "nginx": "certbot",
    "haproxy": "certbot",
    "apache": "certbot",
}


def _init(folder: Path, proxy: str, dns: str, *extra: str) -> None:
    credentials = [
        arg
        for name, value in VALUES[dns].items()
        for arg in ("--dns-credential", f"{name}={value}")
    ]
    result = stackgen(
        *("init", proxy, "--domain", "jellyfin.example.com", "--email", "a@example.com"),
        *("--target", "swarm", "--jellyfin-network", "bridge", "--run-as", "1000:1000"),
        *("--tls", "acme-dns", "--dns-provider", dns, *credentials, *extra),
        *("--dir", str(folder)),
    )
    assert result.returncode == 0, result.stderr


def _holding(folder: Path, value: str) -> list[str]:
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and value.encode() in path.read_bytes()
    )


def _walk(node: Any) -> list[str]:
    """Every key and scalar of a YAML document, as text."""
    if isinstance(node, dict):
        return [text for key, value in node.items() for text in (str(key), *_walk(value))]
    if isinstance(node, list):
        return [text for item in node for text in _walk(item)]
    return [str(node)]


@pytest.mark.parametrize("dns", sorted(VALUES))
@pytest.mark.parametrize("proxy", sorted(CLIENTS))
def test_a_credential_lives_only_in_its_own_secret_file(
    proxy: str, dns: str, tmp_path: Path
) -> None:
    """Before: the stack file gave the ACME client `env_file: .env`, which the swarm CLI
    resolves into the service spec."""
    folder = tmp_path / "stack"
    _init(folder, proxy, dns)
    for name, value in VALUES[dns].items():
        assert _holding(folder, value) == [f"secrets/{name}"], name
        own = (folder / "secrets" / name).stat()
        assert own.st_mode & 0o777 == 0o600
        assert own.st_uid == os.getuid()
    stack = yaml.safe_load((folder / "docker-compose.yml").read_text())
    for service_name, service in stack["services"].items():
        assert "env_file" not in service, service_name
        environment = service.get("environment") or {}
        assert not set(environment) & set(VALUES[dns]), service_name
        texts = _walk(service)
        for value in VALUES[dns].values():
            assert not any(value in text for text in texts), (service_name, value)


@pytest.mark.parametrize("dns", sorted(VALUES))
@pytest.mark.parametrize("proxy", sorted(CLIENTS))
def test_the_client_reads_each_credential_from_its_secret(
    proxy: str, dns: str, tmp_path: Path
) -> None:
    folder = tmp_path / "stack"
    _init(folder, proxy, dns)
    stack = yaml.safe_load((folder / "docker-compose.yml").read_text())
    client = stack["services"][CLIENTS[proxy]]
    mounted = {secret["target"]: secret for secret in client.get("secrets", [])}
    for name in VALUES[dns]:
        secret = mounted[f"/run/secrets/{name}"]
        # For the service's non-root user alone.
        assert (secret["uid"], secret["gid"], secret["mode"]) == ("1000", "1000", 0o400)
        assert stack["secrets"][secret["source"]]["file"] == f"./secrets/{name}"
    if CLIENTS[proxy] == "traefik":
        # lego reads `<VAR>_FILE` for every variable it takes.
        environment = client["environment"]
        for name in VALUES[dns]:
            assert environment[f"{name}_FILE"] == f"/run/secrets/{name}"
    else:
        run = (folder / "certbot" / "run.sh").read_text()
        for name in VALUES[dns]:
            assert f"/run/secrets/{name}" in run
        # The plugin's INI comes from the secrets; the path it is given is its tmpfs.
        ini_key = provider(dns).certbot_ini[0][0]
        assert ini_key in run
    # No other service is given a credential it does not use.
    for name, service in stack["services"].items():
        if name != CLIENTS[proxy]:
            assert not service.get("secrets") or all(
                not s["target"].startswith("/run/secrets/") for s in service["secrets"]
            ), name


def test_a_changed_credential_is_a_new_secret_and_force_replaces_it(tmp_path: Path) -> None:
    """A Swarm secret is immutable: a new value must get a new name, or the old one stays."""
    folder = tmp_path / "stack"
    _init(folder, "traefik", "cloudflare")
    before = yaml.safe_load((folder / "docker-compose.yml").read_text())["secrets"]
    result = stackgen(
        *("init", "traefik", "--domain", "jellyfin.example.com", "--email", "a@example.com"),
        *("--target", "swarm", "--jellyfin-network", "bridge", "--run-as", "1000:1000"),
        *("--tls", "acme-dns", "--dns-provider", "cloudflare"),
        *("--dns-credential", "CF_DNS_API_TOKEN=a-new-token", "--force", "--dir", str(folder)),
    )
    assert result.returncode == 0, result.stderr
    assert (folder / "secrets" / "CF_DNS_API_TOKEN").read_text() == "a-new-token"
    after = yaml.safe_load((folder / "docker-compose.yml").read_text())["secrets"]
    assert before.keys() == after.keys()
    assert all(before[k]["name"] != after[k]["name"] for k in before)
    # A value filled by hand: `render` names the new content.
    (folder / "secrets" / "CF_DNS_API_TOKEN").write_text("edited-by-hand\n")
    assert stackgen("render", "--dir", str(folder)).returncode == 0
    edited = yaml.safe_load((folder / "docker-compose.yml").read_text())["secrets"]
    assert all(after[k]["name"] != edited[k]["name"] for k in after)


def _check_failures(folder: Path) -> list[str]:
    return [
        f.message
        for f in check_stack(Stack.load(folder), use_docker=False)
        if f.status.value == "fail"
    ]


def test_check_passes_the_rendered_stack(tmp_path: Path) -> None:
    folder = tmp_path / "stack"
    _init(folder, "traefik", "cloudflare")
    assert _check_failures(folder) == []


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        # What an older stackgen wrote: the CLI resolves it into the spec.
        ({"env_file": [".env"]}, "env_file"),
        ({"environment": {"CF_DNS_API_TOKEN": "cf-token-that-must-stay-secret-4242"}}, "CF_DNS"),
        ({"environment": {"SOMETHING": "cf-token-that-must-stay-secret-4242"}}, "SOMETHING"),
        ({"labels": {"x": "cf-token-that-must-stay-secret-4242"}}, "labels"),
        ({"command": ["--x=cf-token-that-must-stay-secret-4242"]}, "command"),
    ],
)
def test_check_fails_a_swarm_spec_that_carries_a_credential_in_clear(
    edit: dict[str, Any], named: str, tmp_path: Path
) -> None:
    folder = tmp_path / "stack"
    _init(folder, "traefik", "cloudflare")
    compose = folder / "docker-compose.yml"
    stack = yaml.safe_load(compose.read_text())
    stack["services"]["traefik"].update(edit)
    compose.write_text(yaml.safe_dump(stack))
    failures = [m for m in _check_failures(folder) if "credential" in m]
    assert failures, _check_failures(folder)
    assert any(named in m and "docker service inspect" in m for m in failures), failures
    # The value itself is never printed.
    assert not any("cf-token-that-must-stay-secret-4242" in m for m in failures)


def test_check_names_an_empty_secret_file(tmp_path: Path) -> None:
    folder = tmp_path / "stack"
    result = stackgen(
        *("init", "nginx", "--domain", "jellyfin.example.com", "--email", "a@example.com"),
        *("--target", "swarm", "--jellyfin-network", "bridge", "--run-as", "1000:1000"),
        *("--tls", "acme-dns", "--dns-provider", "cloudflare", "--dir", str(folder)),
    )
    assert result.returncode == 0, result.stderr
    assert not (folder / ".env").exists()
    failures = _check_failures(folder)
    path = folder / "secrets" / "CF_DNS_API_TOKEN"
    assert any(m.startswith("CF_DNS_API_TOKEN is empty") and str(path) in m for m in failures)


def test_a_short_setting_among_the_credentials_is_no_false_alarm(tmp_path: Path) -> None:
    """lego's own settings (`RFC2136_POLLING_INTERVAL=1`, through tls.dns_env) are secrets
    too; "1" is in every stack file (`replicas: 1`) without being a leak."""
    folder = tmp_path / "stack"
    _init(
        folder,
        "traefik",
        "rfc2136",
        *("--dns-env", "RFC2136_POLLING_INTERVAL"),
        *("--dns-credential", "RFC2136_POLLING_INTERVAL=1"),
    )
    assert (folder / "secrets" / "RFC2136_POLLING_INTERVAL").read_text() == "1"
    assert _check_failures(folder) == []


def test_an_older_swarm_stacks_env_file_is_named_with_the_move(tmp_path: Path) -> None:
    """An older stackgen kept a swarm's credentials in `.env`: nothing reads it now."""
    folder = tmp_path / "stack"
    _init(folder, "traefik", "cloudflare")
    env = folder / ".env"
    env.write_text("CF_DNS_API_TOKEN=cf-token-that-must-stay-secret-4242\n")
    env.chmod(0o600)
    warnings = [
        f.message
        for f in check_stack(Stack.load(folder), use_docker=False)
        if f.check == "dns" and f.status.value == "warn"
    ]
    assert any(str(env) in w and "secrets/NAME" in w for w in warnings), warnings
    assert not any("cf-token" in w for w in warnings)
