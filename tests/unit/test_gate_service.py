"""The token gate's service (compose-templates/gate/gate.py.j2), as rendered, against a fake
Jellyfin in this process: what passes without a token, what needs one Jellyfin confirms,
the attacker's spellings, the cache by hash, revocation, and the FastCGI side Apache uses.
The proxies' sub-requests to it are proven end to end in tests/integration/test_gate.py."""

from __future__ import annotations

import importlib.util
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.unit.rendering import config_for, rendered

VALID = "0123456789abcdef0123456789abcdef"
OTHER_VALID = "fedcba9876543210fedcba9876543210"


class FakeJellyfin:
    """Answers GET {base}/System/Endpoint as Jellyfin does: 200 for a valid token, 401
    otherwise; counts the questions."""

    def __init__(self, base: str) -> None:
        self.valid = {VALID, OTHER_VALID}
        self.asked: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.asked.append(self.headers.get("Authorization", ""))
                token = self.headers.get("Authorization", "").partition('Token="')[2][:-1]
                ok = self.path == f"{base}/System/Endpoint" and token in fake.valid
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def load_gate(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, port: int, base: str = "", **gate: Any
) -> ModuleType:
    config = config_for("nginx", tmp, subpath=base, access={"gate": {"mode": "token", **gate}})
    script = tmp / "gate.py"
    script.write_text(rendered(config, tmp)["gate/gate.py"])
    monkeypatch.setenv("GATE_UPSTREAM", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("GATE_BASE_PATH", base)
    monkeypatch.setenv("GATE_CACHE_SECONDS", str(config.token_gate.cache_seconds))
    monkeypatch.setenv("GATE_IMAGES", config.token_gate.images)
    spec = importlib.util.spec_from_file_location(f"gate_{id(tmp)}", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def shared_jellyfin() -> Iterator[FakeJellyfin]:
    fake = FakeJellyfin("")
    yield fake
    fake.close()


@pytest.fixture
def jellyfin(shared_jellyfin: FakeJellyfin) -> FakeJellyfin:
    shared_jellyfin.asked.clear()
    shared_jellyfin.valid = {VALID, OTHER_VALID}
    return shared_jellyfin


@pytest.fixture
def gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jellyfin: FakeJellyfin) -> ModuleType:
    return load_gate(tmp_path, monkeypatch, jellyfin.port)


def check(gate: ModuleType, target: str, headers: dict[str, str] | None = None) -> int:
    return int(gate.decide("GET", target, {k.lower(): v for k, v in (headers or {}).items()}))


GATED = [
    "/Videos/abc/stream.mkv?static=true",
    "/Videos/abc/def/Subtitles/0/Stream.vtt",
    "/Videos/abc/hls/playlist/0.ts",
    "/Videos/abc/def/Attachments/1",
    "/socket?deviceId=x",
    "/Users/Public",
    "/Items",
    "/System/Info",
]


@pytest.mark.parametrize("target", GATED)
def test_no_token_or_a_forged_one_is_refused(gate: ModuleType, target: str) -> None:
    assert check(gate, target) == 401
    assert check(gate, target, {"X-Emby-Token": "forged"}) == 401
    assert check(gate, target + ("&" if "?" in target else "?") + "api_key=forged") == 401


@pytest.mark.parametrize(
    "target",
    [
        # A proxy normalises dot segments for its routing; Jellyfin's Kestrel too, after
        # decoding: an anonymous prefix must not smuggle a gated route.
        "/web/../Videos/abc/stream",
        "/web/%2e%2e/Videos/abc/stream",
        "/web/%2E%2E/Users/Public",
        "/System/Info/Public/../../Info",
        "/health/./../Users/Public",
        # The prefix spellings Jellyfin does not strip are not anonymous either.
        "/embyweb/index.html",
        "/EMBY/Users/Public",
        "/mediabrowser/socket",
    ],
)
def test_smuggled_routes_still_need_a_token(gate: ModuleType, target: str) -> None:
    assert check(gate, target) == 401


def test_a_token_that_cannot_be_one_is_refused_without_asking(
    gate: ModuleType, jellyfin: FakeJellyfin
) -> None:
    for token in ('a" , Token="' + VALID, "a\r\nX: y", "x" * 300):
        assert check(gate, "/Items", {"X-Emby-Token": token}) == 401
    assert jellyfin.asked == []


@pytest.mark.parametrize(
    "target",
    [
        "",
        "/",
        "/web",
        "/web/",
        "/web/index.html",
        "/web/main.bundle.js?v=1",
        "/health",
        "/System/Info/Public",
        "/system/info/public/",
        "/System/Ping",
        "/GetUtcTime",
        "/Branding/Configuration",
        "/Branding/Css.css",
        "/Users/AuthenticateByName",
        "/users/0f0e/Authenticate",
        "/Users/AuthenticateWithQuickConnect",
        "/Users/ForgotPassword/Pin",
        "/QuickConnect/Initiate",
        "/QuickConnect/Connect?Secret=x",
        "/QuickConnect/Enabled",
        "/emby/System/Info/Public",
        "/MediaBrowser/web/index.html",
        "/Items/abc/Images/Primary?maxHeight=300",
        "/Users/abc/Images/Primary",
    ],
)
def test_what_clients_need_before_login_passes(gate: ModuleType, target: str) -> None:
    assert check(gate, target) == 200


def test_each_token_form_jellyfin_reads_passes(gate: ModuleType, jellyfin: FakeJellyfin) -> None:
    forms: list[tuple[str, dict[str, str]]] = [
        ("/Items", {"Authorization": f'MediaBrowser Client="t", Device="d", Token="{VALID}"'}),
        ("/Items", {"Authorization": f"Emby Token={VALID}"}),
        ("/Items", {"X-Emby-Authorization": f'MediaBrowser Token="{VALID}"'}),
        ("/Items", {"X-Emby-Token": VALID}),
        ("/Items", {"X-MediaBrowser-Token": VALID}),
        (f"/Videos/abc/stream?ApiKey={VALID}", {}),
        (f"/Videos/abc/stream?api_key={VALID}", {}),
        (f"/videos/abc/stream?API_KEY={VALID}", {}),
        (f"/Videos/abc/stream?apikey={VALID}", {}),
        (f"/emby/Videos/abc/stream?api_key={VALID}", {}),
        (f"/socket?api_key={VALID}&deviceId=x", {}),
    ]
    for target, headers in forms:
        assert check(gate, target, headers) == 200, (target, headers)
    # Jellyfin was asked with the client's own token, in the form every version reads.
    assert jellyfin.asked and all(f'Token="{VALID}"' in asked for asked in jellyfin.asked)


def test_the_token_jellyfin_would_read_is_the_one_checked(gate: ModuleType) -> None:
    # Jellyfin takes Authorization's token before X-Emby-Token and the query: a forged one
    # there is not saved by a valid one further down its list.
    forged_first = {"Authorization": 'MediaBrowser Token="forged"', "X-Emby-Token": VALID}
    assert check(gate, f"/Items?api_key={VALID}", forged_first) == 401
    assert check(gate, "/Items?api_key=forged", {"X-Emby-Token": VALID}) == 200


def test_answers_are_cached_by_a_hash_of_the_token(
    gate: ModuleType, jellyfin: FakeJellyfin
) -> None:
    for _ in range(5):
        assert check(gate, "/Items", {"X-Emby-Token": VALID}) == 200
        assert check(gate, "/Items", {"X-Emby-Token": "forged"}) == 401
    assert len(jellyfin.asked) == 2
    assert VALID not in repr(gate._cache) and "forged" not in repr(gate._cache)


def test_a_revoked_token_is_refused_after_the_cache_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jellyfin: FakeJellyfin
) -> None:
    gate = load_gate(tmp_path, monkeypatch, jellyfin.port, cache_seconds=1)
    assert check(gate, "/Items", {"X-Emby-Token": OTHER_VALID}) == 200
    jellyfin.valid.discard(OTHER_VALID)
    assert check(gate, "/Items", {"X-Emby-Token": OTHER_VALID}) == 200  # still cached
    time.sleep(1.2)
    assert check(gate, "/Items", {"X-Emby-Token": OTHER_VALID}) == 401


def test_no_answer_from_jellyfin_refuses_and_is_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    gate = load_gate(tmp_path, monkeypatch, port)
    assert check(gate, "/Items", {"X-Emby-Token": VALID}) == 503
    assert gate._cache == {}


def test_under_a_base_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeJellyfin("/jellyfin")
    try:
        gate = load_gate(tmp_path, monkeypatch, fake.port, base="/jellyfin")
        assert check(gate, "/jellyfin/web/index.html") == 200
        assert check(gate, "/JELLYFIN/System/Info/Public") == 200
        assert check(gate, "/jellyfin/emby/System/Ping") == 200
        assert check(gate, "/") == 200  # outside the base: Jellyfin only redirects
        assert check(gate, "/jellyfin/Videos/abc/stream") == 401
        assert check(gate, "/JellyFin/videos/abc/stream") == 401
        assert check(gate, f"/jellyfin/Videos/abc/stream?ApiKey={VALID}") == 200
    finally:
        fake.close()


def test_images_can_need_a_token_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jellyfin: FakeJellyfin
) -> None:
    gate = load_gate(tmp_path, monkeypatch, jellyfin.port, images="token")
    assert check(gate, "/Items/abc/Images/Primary") == 401
    assert check(gate, f"/Items/abc/Images/Primary?api_key={VALID}") == 200


def test_an_upload_to_an_image_route_needs_a_token(gate: ModuleType) -> None:
    assert gate.decide("POST", "/Items/abc/Images/Primary", {}) == 401
    assert gate.decide("OPTIONS", "/Items/abc/Images/Primary", {}) == 200  # a preflight


def _serve_once(gate: ModuleType, handler: type, request: bytes) -> bytes:
    """One connection to one of the gate's handlers, over a socket pair."""
    ours, theirs = socket.socketpair()
    with ours:
        ours.sendall(request)
        ours.shutdown(socket.SHUT_WR)
        thread = threading.Thread(target=handler, args=(theirs, ("test", 0), None))
        thread.start()
        thread.join(10)
        assert not thread.is_alive()
        theirs.close()  # the server's part (socketserver closes it after the handler)
        chunks = []
        while chunk := ours.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _fcgi_request(gate: ModuleType, params: dict[str, str]) -> bytes:
    def pair(name: str, value: str) -> bytes:
        encoded = [name.encode(), value.encode()]
        lengths = b"".join(
            bytes([len(x)]) if len(x) < 128 else struct.pack("!I", len(x) | 0x80000000)
            for x in encoded
        )
        return lengths + b"".join(encoded)

    body = b"".join(pair(k, v) for k, v in params.items())
    begin = struct.pack("!HB5x", 2, 0)  # the authorizer role, no keep-alive
    return (
        gate.fcgi_record(gate.FCGI_BEGIN_REQUEST, 1, begin)
        + gate.fcgi_record(gate.FCGI_PARAMS, 1, body)
        + gate.fcgi_record(gate.FCGI_PARAMS, 1)
    )


def _fcgi_status(reply: bytes) -> str:
    kind = reply[1]
    size = struct.unpack("!H", reply[4:6])[0]
    assert kind == 6  # FCGI_STDOUT
    return reply[8 : 8 + size].decode().split("\r\n")[0]


def test_fastcgi_authorizer_side_apache_uses(gate: ModuleType) -> None:
    refused = _fcgi_request(
        gate, {"REQUEST_METHOD": "GET", "REQUEST_URI": "/Videos/abc/stream", "X": "y" * 200}
    )
    assert _fcgi_status(_serve_once(gate, gate.FastCgiHandler, refused)) == "Status: 401"
    passed = _fcgi_request(
        gate,
        {
            "REQUEST_METHOD": "GET",
            "REQUEST_URI": "/Videos/abc/stream",
            "HTTP_AUTHORIZATION": f'MediaBrowser Token="{VALID}"',
        },
    )
    reply = _serve_once(gate, gate.FastCgiHandler, passed)
    assert _fcgi_status(reply) == "Status: 200"
    assert b"Variable-GATE_CLIENT: token" in reply


def test_http_side_believes_only_the_proxys_request_line(gate: ModuleType) -> None:
    asked = b"GET /check HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n"
    # Without X-Forwarded-Uri nobody says what is asked about: refused.
    reply = _serve_once(gate, gate.CheckHandler, asked + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 401")
    reply = _serve_once(
        gate, gate.CheckHandler, asked + b"X-Forwarded-Uri: /System/Info/Public\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 200")
    reply = _serve_once(
        gate, gate.CheckHandler, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 200")


def test_the_script_is_the_standard_library_only(tmp_path: Path) -> None:
    config = config_for("nginx", tmp_path, access={"gate": {"mode": "token"}})
    source = rendered(config, tmp_path)["gate/gate.py"]
    imports = {
        line.split()[1].split(".")[0]
        for line in source.splitlines()
        if line.startswith(("import ", "from "))
    }
    assert imports <= set(sys.stdlib_module_names), imports - set(sys.stdlib_module_names)


def test_off_by_default_renders_no_gate(tmp_path: Path) -> None:
    files = rendered(config_for("nginx", tmp_path), tmp_path)
    assert "gate/gate.py" not in files
    assert "auth_request" not in files["nginx/conf.d/jellyfin.conf"]


# --- the model -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ({"mode": "on"}, "gate.mode"),
        ({"mode": "token", "cache_seconds": -1}, "gate.cache_seconds"),
        ({"mode": "token", "cache_seconds": 3601}, "gate.cache_seconds"),
        ({"mode": "token", "cache_seconds": "30"}, "gate.cache_seconds"),
        ({"mode": "token", "images": "some"}, "gate.images"),
        ({"mode": "token", "image": "python:3.13 ; rm -rf /"}, "gate.image"),
        ({"mode": "token", "token": "x"}, "gate.token"),
    ],
)
def test_bad_gate_settings_are_refused_by_name(
    tmp_path: Path, gate: dict[str, Any], message: str
) -> None:
    with pytest.raises(Exception, match=message.replace(".", r"\.")):
        config_for("nginx", tmp_path, access={"gate": gate})


def test_the_swarm_target_refuses_the_gate_in_one_line(tmp_path: Path) -> None:
    deploy = {"target": "swarm"}
    with pytest.raises(Exception, match=r"gate\.mode 'token': not on the swarm target yet"):
        config_for("nginx", tmp_path, access={"gate": {"mode": "token"}}, deploy=deploy)


def test_the_gate_has_a_pinned_address_no_container_is_given(tmp_path: Path) -> None:
    config = config_for("apache", tmp_path, access={"gate": {"mode": "token"}})
    assert config.gate_address not in config.network.dynamic_range
    assert config.gate_address != config.network.proxy_ip
    files = rendered(config, tmp_path)
    assert f"fcgi://{config.gate_address}:9091/" in files["apache/httpd.conf"]
    assert f'ipv4_address: "{config.gate_address}"' in files["docker-compose.yml"]
    moved = config_for(
        "apache",
        tmp_path,
        access={"gate": {"mode": "token"}},
        network={"subnet": "10.9.0.0/24", "proxy_address": "10.9.0.126"},
    )
    assert str(moved.gate_address) == "10.9.0.125"


def test_the_gate_service_is_hardened(tmp_path: Path) -> None:
    import yaml

    config = config_for("nginx", tmp_path, access={"gate": {"mode": "token"}})
    service = yaml.safe_load(rendered(config, tmp_path)["docker-compose.yml"])["services"]["gate"]
    assert service["user"] == "1000:1000"
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert service["security_opt"] == ["no-new-privileges:true"]
    assert service["mem_limit"] == "64m" and service["pids_limit"] == 64
    assert "ports" not in service
    assert service["volumes"] == ["./gate:/gate:ro"]
