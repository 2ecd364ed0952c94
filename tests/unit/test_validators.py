"""Validators of stackgen.toml values: examples plus properties."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from stackgen.models import (
    StackConfig,
    parse_config,
    validate_domain,
    validate_email,
    validate_port,
    validate_subpath,
)

LABEL = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=20)
DOMAIN = st.lists(LABEL, min_size=1, max_size=4).map(lambda labels: ".".join([*labels, "com"]))


@given(DOMAIN)
def test_generated_domains_are_accepted_and_stable(domain: str) -> None:
    assert validate_domain(domain) == domain
    assert validate_domain(domain.upper()) == domain


@given(DOMAIN, st.sampled_from(["_", " ", "!", "/", "*"]))
def test_a_bad_character_anywhere_is_refused(domain: str, bad: str) -> None:
    for position in range(len(domain.split(".")[0]) + 1):
        broken = domain[:position] + bad + domain[position:]
        with pytest.raises(ValueError):
            validate_domain(broken)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "localhost",
        "jelly fin.example.com",
        "jelly_fin.example.com",
        "a..example.com",
        ".example.com",
        "-a.example.com",
        "a-.example.com",
        "a" * 64 + ".example.com",
        ".".join(["a" * 60] * 5),
        "192.168.1.10",
        "::1",
        "example.123",
    ],
)
def test_bad_domains(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_domain(bad)


@pytest.mark.parametrize("good", ["admin@example.com", "first.last+tag@mail.example.org"])
def test_good_emails(good: str) -> None:
    assert validate_email(good) == good


@pytest.mark.parametrize(
    "bad", ["admin", "@example.com", "admin@", "a b@example.com", "a..b@example.com", "a@b"]
)
def test_bad_emails(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_email(bad)


@given(st.integers())
def test_ports(port: int) -> None:
    if 1 <= port <= 65535:
        assert validate_port(port) == port
    else:
        with pytest.raises(ValueError):
            validate_port(port)


@pytest.mark.parametrize(
    ("raw", "normal"), [("", ""), ("/", ""), ("/jellyfin", "/jellyfin"), ("/a/b/", "/a/b")]
)
def test_subpaths_are_normalised(raw: str, normal: str) -> None:
    assert validate_subpath(raw) == normal


@pytest.mark.parametrize("bad", ["jellyfin", "/a/../b", "/..", "/a//b", "/a b", "/a?x"])
def test_bad_subpaths(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_subpath(bad)


@given(st.lists(st.text(string.ascii_letters + string.digits + "._~-", min_size=1), max_size=3))
def test_subpath_round_trip(segments: list[str]) -> None:
    if any(s in (".", "..") for s in segments):
        return
    path = "/" + "/".join(segments) if segments else ""
    assert validate_subpath(validate_subpath(path)) == validate_subpath(path)


def _config(**overrides: object) -> StackConfig:
    data: dict[str, object] = {"proxy": "traefik", "domain": "jf.example.com", "email": "a@b.co"}
    data.update(overrides)
    return parse_config(data, Path("."))


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        _config(colour="blue")
    with pytest.raises(ValidationError, match="Extra inputs"):
        _config(tls={"mode": "acme", "sslRedirect": True})


def test_http_and_https_must_differ() -> None:
    with pytest.raises(ValidationError, match="both 8443"):
        _config(ports={"http": 8443, "https": 8443})


def test_acme_needs_an_email_but_internal_does_not() -> None:
    with pytest.raises(ValidationError, match="email is required"):
        _config(email=None)
    assert _config(email=None, tls={"mode": "internal"}).email is None


def test_mode_requirements() -> None:
    with pytest.raises(ValidationError, match="dns_provider"):
        _config(tls={"mode": "acme-dns"})
    with pytest.raises(ValidationError, match="cert_file"):
        _config(tls={"mode": "files"})


def test_missing_media_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        parse_config(
            {
                "proxy": "traefik",
                "domain": "jf.example.com",
                "email": "a@b.co",
                "jellyfin": {"media": [{"source": str(tmp_path / "nope")}]},
            },
            tmp_path,
        )


def test_derived_facts() -> None:
    config = _config(subpath="/jellyfin", ports={"http": 8080, "https": 8443})
    assert config.public_url == "https://jf.example.com:8443/jellyfin/"
    assert config.known_proxies == ["172.30.77.2"]
    assert config.jellyfin_upstream == "http://host.docker.internal:8096"
    assert config.health_path == "/jellyfin/health"
    bridge = _config(jellyfin={"network_mode": "bridge"}, network={"subnet": "10.9.8.0/24"})
    assert bridge.jellyfin_upstream == "http://jellyfin:8096"
    assert bridge.known_proxies == ["10.9.8.2"]


def test_proxy_address_must_be_usable() -> None:
    with pytest.raises(ValidationError, match="gateway"):
        _config(network={"subnet": "10.9.8.0/24", "proxy_address": "10.9.8.1"})
    with pytest.raises(ValidationError, match="usable"):
        _config(network={"subnet": "10.9.8.0/24", "proxy_address": "10.9.9.5"})
    with pytest.raises(ValidationError, match="upper half"):
        _config(network={"subnet": "10.9.8.0/24", "proxy_address": "10.9.8.200"})
    assert str(_config(network={"subnet": "10.9.8.0/24"}).network.dynamic_range) == "10.9.8.128/25"
