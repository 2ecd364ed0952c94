"""Pure parts of verify and lifecycle: target building, resolve parsing, port probing."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from stackgen.errors import InvalidInputError
from stackgen.lifecycle import _port_free, probe_target
from stackgen.models import parse_config
from stackgen.verify import known_proxies_on_disk, parse_resolve, target_for_url


def test_parse_resolve() -> None:
    assert parse_resolve(["jf.example.com:192.0.2.7", "b.example.com:[2001:db8::1]"]) == {
        "jf.example.com": "192.0.2.7",
        "b.example.com": "2001:db8::1",
    }
    for bad in ("jf.example.com", ":192.0.2.7", "jf.example.com:"):
        with pytest.raises(InvalidInputError):
            parse_resolve([bad])


def test_bad_url_is_a_one_line_input_error() -> None:
    with pytest.raises(InvalidInputError, match="https"):
        target_for_url(
            "http://jf.example.com",
            resolve=[],
            ca_file=None,
            http_port=80,
            media_path=None,
            known_proxies=[],
            proxy_address=[],
            frames_allowed=False,
            timeout=5,
        )


def test_probe_target_follows_the_config(tmp_path: Path) -> None:
    config = parse_config(
        {
            "proxy": "traefik",
            "domain": "jf.example.com",
            "subpath": "/jf",
            "tls": {"mode": "internal"},
            "ports": {"http": 8080, "https": 8443},
        },
        tmp_path,
    )
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls/ca.pem").write_text("x")
    target = probe_target(config, tmp_path)
    assert target.url == "https://jf.example.com:8443/jf"
    assert target.resolve == {"jf.example.com": "127.0.0.1"}
    assert target.http_port == 8080
    assert target.ca_file == tmp_path / "tls/ca.pem"


def test_known_proxies_are_read_from_the_file_on_disk(tmp_path: Path) -> None:
    config = parse_config(
        {"proxy": "traefik", "domain": "jf.example.com", "email": "a@example.com"}, tmp_path
    )
    xml = tmp_path / "jellyfin/config/config/network.xml"
    xml.parent.mkdir(parents=True)
    xml.write_text(
        "<NetworkConfiguration><KnownProxies><string>10.0.0.9</string>"
        "</KnownProxies></NetworkConfiguration>"
    )
    assert known_proxies_on_disk(config, tmp_path) == ["10.0.0.9"]
    xml.write_text("<NetworkConfiguration><KnownProxies /></NetworkConfiguration>")
    assert known_proxies_on_disk(config, tmp_path) == []


def test_port_free_sees_a_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not _port_free("127.0.0.1", port)
    assert _port_free("127.0.0.1", port)
