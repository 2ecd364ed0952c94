"""Fuzzing `stackgen.toml` and every importer's input: whatever the bytes, stackgen answers
with its output or one error line and a documented exit code, never a traceback, writes
nothing outside the stack folder, and stays within a time and memory bound (each run is a
child process with an address-space limit and an alarm: `bounded.run_bounded`).

Derandomized, so CI runs the same examples every time: a failure is reproducible."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import tomlkit
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stackgen.errors import ExitCode
from tests.unit.hostile.bounded import Outcome, run_bounded
from tests.unit.import_support import EMAIL, FIXTURES

FUZZ = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DOCUMENTED = {int(code) for code in ExitCode}
SECONDS = 15  # CPU seconds (bounded.py: CPU time holds at any load)
MEMORY = 512 * 1024 * 1024


def _tree(root: Path) -> dict[str, str]:
    """Every path under root with a hash of its content (links by their target)."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if path.is_symlink():
            found[relative] = f"link:{path.readlink()}"
        elif path.is_file():
            found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[relative] = "dir"
    return found


def _judge(outcome: Outcome, allowed: set[int]) -> None:
    assert outcome.traceback == "", outcome.traceback
    assert outcome.code in allowed & DOCUMENTED, (outcome.code, outcome.stderr)
    errors = [line for line in outcome.lines if line.startswith("stackgen: error:")]
    if outcome.code == 0:
        assert errors == [], outcome.stderr
    else:
        assert len(errors) == 1 and outcome.lines[-1] == errors[0], outcome.stderr


# --- stackgen.toml -----------------------------------------------------------------------

BASE_CONFIG = {
    "proxy": "nginx",
    "domain": "jellyfin.example.com",
    "email": "admin@example.com",
    "tls": {"mode": "acme"},
}
FIELDS = [
    ("proxy",),
    ("domain",),
    ("email",),
    ("subpath",),
    ("project",),
    ("run_as",),
    ("schema_version",),
    ("tls", "mode"),
    ("tls", "ca_url"),
    ("tls", "dns_env"),
    ("tls", "cert_file"),
    ("tls", "key_file"),
    ("ports", "http"),
    ("ports", "listen_address"),
    ("network", "subnet"),
    ("network", "proxy_address"),
    ("jellyfin", "image"),
    ("jellyfin", "port"),
    ("jellyfin", "config_dir"),
    ("jellyfin", "cache_dir"),
    ("jellyfin", "media"),
    ("jellyfin", "published_url"),
    ("jellyfin", "timezone"),
    ("headers", "content_security_policy"),
    ("headers", "frame_options"),
    ("images", "nginx"),
    ("deploy", "target"),
    ("deploy", "gateway_subnet"),
]
HOSTILE_TEXT = st.sampled_from(
    [
        "/",
        "/etc",
        "/proc/self",
        "../../../etc/shadow",
        "/var/run/docker.sock",
        "$http_cookie",
        "%{X}e",
        "{env.X}",
        "0.0.0.0/0",
        "9999999999:0",
        "²",
        "\x1b]0;t\x07",
        "COMPOSE_FILE",
        "a" * 5000,
        "",
    ]
)
LEAF = st.one_of(
    HOSTILE_TEXT,
    st.text(max_size=40),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)
VALUES = st.recursive(
    LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["source", "target", "x", "mode"]), inner, max_size=3),
    ),
    max_leaves=8,
)


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(FIELDS), VALUES), min_size=1, max_size=4))
# The findings this suite was written against, always run besides the random examples.
@example(changes=[(("run_as",), "9999999999:0")])
@example(changes=[(("jellyfin", "cache_dir"), "/proc/self")])
@example(changes=[(("headers", "content_security_policy"), "default-src $http_cookie")])
@example(changes=[(("deploy", "gateway_subnet"), "0.0.0.0/0")])
@example(changes=[(("tls", "dns_env"), ["COMPOSE_FILE"])])
@example(changes=[(("jellyfin", "image"), "a::b")])
@example(changes=[(("network", "subnet"), "8.8.8.0/24")])
def test_fuzzed_stackgen_toml_fields(changes: list[tuple[tuple[str, ...], object]]) -> None:
    data: dict[str, object] = {
        k: dict(v) if isinstance(v, dict) else v for k, v in BASE_CONFIG.items()
    }
    for path, value in changes:
        table = data
        for key in path[:-1]:
            table = table.setdefault(key, {})  # type: ignore[assignment]
            if not isinstance(table, dict):
                break
        else:
            table[path[-1]] = value
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        stack = root / "stack"
        stack.mkdir()
        (root / "outside").mkdir()
        (root / "outside" / "canary").write_text("untouched")
        (stack / "stackgen.toml").write_text(tomlkit.dumps(data))
        before = {k: v for k, v in _tree(root).items() if not k.startswith("stack/")}
        for args in (["render"], ["check", "--no-docker"]):
            outcome = run_bounded(*args, "--dir", str(stack), seconds=SECONDS, memory=MEMORY)
            _judge(outcome, {0, 1, 3, 4, 5})
        after = {k: v for k, v in _tree(root).items() if not k.startswith("stack/")}
        assert after == before


@FUZZ
@example(garbage=b"x = " + b"[" * 100_000 + b"]" * 100_000)
@example(garbage=b"[" + b"a." * 50_000 + b"b]")
@given(
    garbage=st.binary(max_size=300)
    | st.text(alphabet="[]{}\"'=\n #\x00\x1b²", max_size=3000).map(str.encode)
)
def test_fuzzed_stackgen_toml_bytes(garbage: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Path(tmp) / "stack"
        stack.mkdir()
        (stack / "stackgen.toml").write_bytes(tomlkit.dumps(BASE_CONFIG).encode() + b"\n" + garbage)
        _judge(
            run_bounded("render", "--dir", str(stack), seconds=SECONDS, memory=MEMORY),
            {0, 3, 4, 5},
        )


# --- importers ---------------------------------------------------------------------------

SOURCES = {
    "nginx": FIXTURES / "nginx" / "jellyfin.conf",
    "apache": FIXTURES / "apache" / "jellyfin.conf",
    "haproxy": FIXTURES / "haproxy" / "haproxy-1.8.cfg",
    "caddy": FIXTURES / "caddy" / "Caddyfile",
    "traefik.toml": FIXTURES / "traefik" / "docs-folder" / "traefik.toml",
    "docker-compose.yml": FIXTURES / "traefik" / "labels-bridge" / "docker-compose.yml",
    "acme.json": None,
}
# Pieces of each format's syntax, and of what attacks a parser: nesting, aliases, paths out
# of the root, non-ASCII digits, control characters.
SNIPPETS = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        "<IfModule x>",
        "</IfModule>",
        "<VirtualHost *:443>",
        ";",
        "\n",
        '"',
        "'",
        "*a",
        "&a ",
        "- *a\n",
        "ssl_certificate_key /../../../etc/shadow;\n",
        "SSLCertificateKeyFile ../../x\n",
        "crt /dev/zero\n",
        "tls /proc/self/environ /etc/shadow\n",
        "traefik.port=²\n",
        "proxy_pass http://127.0.0.1:99999;\n",
        "listen ٣;\n",
        "\x1b[2J",
        "\x00",
        "{" * 200,
        "[" * 200,
    ]
)


LAUGHS = "\n".join(
    ['x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"x{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
)


def _mutate(text: str, edits: list[tuple[int, str]]) -> str:
    for position, piece in edits:
        at = position % (len(text) + 1)
        text = text[:at] + piece + text[at:]
    return text


@settings(parent=FUZZ, max_examples=12)
@example(source="acme.json", edits=[(0, "[" * 100_000)])
@example(source="traefik.toml", edits=[(0, "x = " + "[" * 100_000 + "\n")])
@example(source="docker-compose.yml", edits=[(0, "x: " + "[" * 100_000 + "\n")])
@example(source="apache", edits=[(0, "<IfModule x>\n" * 20_000)])
@example(source="caddy", edits=[(0, "x {\n" * 20_000)])
@example(source="docker-compose.yml", edits=[(10**9, "\n" + LAUGHS)])
@example(source="docker-compose.yml", edits=[(10**9, "\n    labels: [traefik.port=²]\n")])
@given(
    source=st.sampled_from(sorted(SOURCES)),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), SNIPPETS | st.text(max_size=20)), max_size=6
    ),
)
def test_fuzzed_importer_input(source: str, edits: list[tuple[int, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        old = root / "old"
        if source == "acme.json":
            folder = FIXTURES / "traefik" / "docs-folder"
            for name in ("traefik.toml", "docker-compose.yml"):
                (old / name).parent.mkdir(parents=True, exist_ok=True)
                (old / name).write_text((folder / name).read_text())
            target, text = old / "acme.json", (folder / "acme.json").read_text()
            path = old
        else:
            fixture = SOURCES[source]
            assert fixture is not None
            name = fixture.name if source != "traefik.toml" else "traefik.toml"
            target, text = old / name, fixture.read_text()
            path = target
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_mutate(text, edits))
        (root / "oldroot" / "etc").mkdir(parents=True)
        (root / "outside").mkdir()
        (root / "outside" / "canary").write_text("untouched")
        before = {k: v for k, v in _tree(root).items() if not k.startswith("stack")}
        outcome = run_bounded(
            "import",
            str(path),
            "--dir",
            str(root / "stack"),
            "--email",
            EMAIL,
            "--root",
            str(root / "oldroot"),
            seconds=SECONDS,
            memory=MEMORY,
        )
        _judge(outcome, {0, 3, 5})
        after = {k: v for k, v in _tree(root).items() if not k.startswith("stack")}
        assert after == before
        if outcome.code != 0:
            assert not (root / "stack").exists() or not any((root / "stack").iterdir())
