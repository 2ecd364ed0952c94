"""DNS-01 on every proxy: providers and their documented names, wildcards, no port 80,
credentials only in .env, and bad input refused in one line with nothing written."""

from __future__ import annotations

import base64
import tomllib
from pathlib import Path
from typing import Any

import pytest

from stackgen.dns_providers import PROVIDERS, provider
from stackgen.errors import InvalidInputError
from stackgen.proxies import available
from stackgen.proxies.registry import SERVICE_IMAGES
from stackgen.render import render_stack
from stackgen.stack import Stack
from stackgen.stack_checks import check_stack
from tests.unit.rendering import config_for, rendered
from tests.unit.test_cli import stackgen

# The variables each provider's lego code reads (Traefik), as documented:
# https://go-acme.github.io/lego/dns/<code>/ ("Credentials"), e.g.
# https://go-acme.github.io/lego/dns/rfc2136/ and https://go-acme.github.io/lego/dns/cloudflare/
LEGO_DOCUMENTED: dict[str, set[str]] = {
    "rfc2136": {
        "RFC2136_NAMESERVER",
        "RFC2136_TSIG_ALGORITHM",
        "RFC2136_TSIG_KEY",
        "RFC2136_TSIG_SECRET",
    },
    "cloudflare": {"CF_DNS_API_TOKEN", "CLOUDFLARE_DNS_API_TOKEN", "CF_API_EMAIL", "CF_API_KEY"},
    "route53": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_HOSTED_ZONE_ID"},
    "ovh": {"OVH_ENDPOINT", "OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY"},
    "digitalocean": {"DO_AUTH_TOKEN"},
    "linode": {"LINODE_TOKEN"},
    "dnsimple": {"DNSIMPLE_OAUTH_TOKEN"},
}
# The INI keys each certbot DNS plugin reads, as documented on its page:
# https://certbot-dns-<plugin>.readthedocs.io/en/stable/ ("Credentials"), e.g.
# https://certbot-dns-rfc2136.readthedocs.io/en/stable/ and
# https://certbot-dns-cloudflare.readthedocs.io/en/stable/ (Route 53: the AWS variables,
# https://certbot-dns-route53.readthedocs.io/en/stable/, so no INI).
CERTBOT_DOCUMENTED: dict[str, set[str]] = {
    "rfc2136": {
        "dns_rfc2136_server",
        "dns_rfc2136_port",
        "dns_rfc2136_name",
        "dns_rfc2136_secret",
        "dns_rfc2136_algorithm",
    },
    "cloudflare": {"dns_cloudflare_api_token", "dns_cloudflare_email", "dns_cloudflare_api_key"},
    "route53": set(),
    "ovh": {
        "dns_ovh_endpoint",
        "dns_ovh_application_key",
        "dns_ovh_application_secret",
        "dns_ovh_consumer_key",
    },
    "digitalocean": {"dns_digitalocean_token"},
    "linode": {"dns_linode_key", "dns_linode_version"},
    "dnsimple": {"dns_dnsimple_token"},
}
TSIG = base64.b64encode(bytes(range(32))).decode()


def _dns(proxy: str, tmp: Path, **tls: Any) -> Any:
    return config_for(
        proxy,
        tmp,
        domain="jellyfin.home.arpa",
        tls={"mode": "acme-dns", "dns_provider": "rfc2136", **tls},
    )


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_rendered_names_are_the_plugins_documented_names(name: str) -> None:
    entry = provider(name)
    assert set(entry.variables) <= LEGO_DOCUMENTED[name]
    assert {key for key, _ in entry.certbot_ini} <= CERTBOT_DOCUMENTED[name]
    # Every INI value comes from a variable the secrets file gives.
    assert {variable for _, variable in entry.certbot_ini} <= set(entry.variables)
    assert set(LEGO_DOCUMENTED) == set(PROVIDERS) == set(CERTBOT_DOCUMENTED)


@pytest.mark.parametrize("proxy", available())
def test_wildcard_on_every_proxy_without_port_80(proxy: str, tmp_path: Path) -> None:
    config = _dns(proxy, tmp_path, wildcard=True)
    assert config.certificate_names == ["*.home.arpa", "home.arpa"]
    files = rendered(config, tmp_path)
    compose = files["docker-compose.yml"]
    assert ":80:80" not in compose
    assert "env_file:\n      - .env" in compose
    assert files[".env"].splitlines()[1:] == [f"{n}=" for n in provider("rfc2136").variables]
    if proxy == "traefik":
        dynamic = tomllib.loads(files["traefik/dynamic.toml"])
        assert dynamic["http"]["routers"]["jellyfin"]["tls"]["domains"] == [
            {"main": "*.home.arpa", "sans": ["home.arpa"]}
        ]
        assert (
            tomllib.loads(files["traefik/traefik.toml"])["certificatesResolvers"]["acme"]["acme"][
                "dnsChallenge"
            ]["provider"]
            == "rfc2136"
        )
    else:
        run = files["certbot/run.sh"]
        assert "--authenticator dns-rfc2136" in run
        assert "-d '*.home.arpa' -d home.arpa" in run
        assert "set -f" in run
        assert '"grep", "-qxF", "*.home.arpa"' in compose
        # certbot/certbot has no DNS plugin: certbot's own per-plugin image is the default.
        tag = SERVICE_IMAGES["certbot"].partition(":")[2]
        assert f'image: "certbot/dns-rfc2136:{tag}"' in compose


def test_secrets_never_reach_stackgen_toml_or_compose(tmp_path: Path) -> None:
    result = stackgen(
        "init",
        "nginx",
        "--domain",
        "jellyfin.home.arpa",
        "--email",
        "a@home.arpa",
        "--tls",
        "acme-dns",
        "--dns-provider",
        "rfc2136",
        "--wildcard",
        "--dns-credential",
        f"RFC2136_TSIG_SECRET={TSIG}",
        "--dir",
        str(tmp_path / "s"),
    )
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "s"
    env = folder / ".env"
    assert env.stat().st_mode & 0o777 == 0o600
    assert f"RFC2136_TSIG_SECRET='{TSIG}'" in env.read_text()  # read literally by Compose
    for name in ("stackgen.toml", "docker-compose.yml", "certbot/run.sh"):
        assert TSIG not in (folder / name).read_text()
    # check names the variable and the file still to fill.
    findings = check_stack(Stack.load(folder), use_docker=False)
    failing = [f.message for f in findings if f.check == "dns" and f.status.value == "fail"]
    assert failing and all(str(env) in message for message in failing)
    assert any(message.startswith("RFC2136_NAMESERVER is empty") for message in failing)


def test_a_redirect_listener_is_published_when_asked(tmp_path: Path) -> None:
    compose = rendered(_dns("nginx", tmp_path, redirect_http=True), tmp_path)["docker-compose.yml"]
    assert ":80:80" in compose
    alpn = config_for("caddy", tmp_path, tls={"mode": "acme-tls-alpn"})
    assert ":80:80" not in rendered(alpn, tmp_path)["docker-compose.yml"]


def test_zone_override_adds_the_domain_when_the_wildcard_does_not_reach_it(tmp_path: Path) -> None:
    config = config_for(
        "traefik",
        tmp_path,
        domain="jellyfin.lan.home.arpa",
        tls={
            "mode": "acme-dns",
            "dns_provider": "rfc2136",
            "wildcard": True,
            "dns_zone": "home.arpa",
        },
    )
    assert config.certificate_names == ["*.home.arpa", "home.arpa", "jellyfin.lan.home.arpa"]


@pytest.mark.parametrize(
    ("proxy", "tls", "message"),
    [
        ("traefik", {"mode": "acme", "source": "certbot"}, "cannot take its certificate"),
        ("nginx", {"mode": "acme", "source": "proxy"}, "no ACME client of its own"),
    ],
)
def test_sources_a_proxy_cannot_use_are_refused(
    proxy: str, tls: dict[str, str], message: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        render_stack(config_for(proxy, tmp_path, tls=tls), tmp_path)


BASE = ["init", "caddy", "--domain", "jellyfin.home.arpa", "--email", "a@home.arpa"]
DNS = ["--tls", "acme-dns", "--dns-provider", "rfc2136"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--wildcard"], "a wildcard certificate needs the DNS-01 challenge"),
        (["--tls", "acme-dns", "--dns-provider", "nope"], "known: rfc2136, cloudflare"),
        ([*DNS, "--dns-credential", "RFC2136_TSIG_SECRET=not base64!"], "is not base64"),
        ([*DNS, "--zone", "example.com"], "does not contain the domain"),
        ([*DNS, "--dns-resolver", "bind9:53"], "is not IP:port"),
        ([*DNS, "--dns-credential", "CF_DNS_API_TOKEN=x"], "not a variable of this DNS"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = stackgen(*BASE, *args, "--dir", str(tmp_path / "s"))
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("stackgen: error")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert not (tmp_path / "s").exists()


def test_short_lived_certificates_plan_traefiks_renewals(tmp_path: Path) -> None:
    config = _dns("traefik", tmp_path, certificate_hours=160)
    static = tomllib.loads(rendered(config, tmp_path)["traefik/traefik.toml"])
    assert static["certificatesResolvers"]["acme"]["acme"]["certificatesDuration"] == 160


def test_up_refuses_before_starting_anything_when_a_credential_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stackgen import engine, lifecycle
    from stackgen.allocate import bind_free_port
    from stackgen.errors import ProblemsFoundError
    from stackgen.targets.compose.target import Compose
    from stackgen.targets.ports import Own

    folder = tmp_path / "s"
    ports = ["--https-port", str(bind_free_port()), "--jellyfin-port", str(bind_free_port())]
    result = stackgen(*BASE, *DNS, *ports, "--dir", str(folder))
    assert result.returncode == 0, result.stderr
    # No engine here: everything before `docker compose up` runs as in `stackgen up`.
    monkeypatch.setattr(lifecycle, "require_engine", lambda: None)
    monkeypatch.setattr(lifecycle, "network_subnets", lambda: [])
    monkeypatch.setattr(Compose, "_own", lambda self, stack: Own())
    monkeypatch.setattr(engine, "image_present", lambda image: True)
    monkeypatch.setattr(
        lifecycle, "check_stack", lambda stack: check_stack(stack, use_docker=False)
    )
    started: list[str] = []
    monkeypatch.setattr(Stack, "compose", property(lambda self: started.append("compose") or None))
    with pytest.raises(
        ProblemsFoundError, match=r"RFC2136_NAMESERVER is empty: fill it in .*\.env"
    ):
        lifecycle.up(Stack.load(folder), timeout=1, progress=lambda line: None)
    assert started == []
