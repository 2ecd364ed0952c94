"""`make bench`: every proxy, stackgen's config and the Jellyfin-docs config, HTTP/1.1 and
h2, against Jellyfin direct, a bare TLS file server (the ceiling) and plain HTTP.

Clients run in a network namespace of their own (`sgbench`, veth 10.203.0.1/30 on the
host side, 10.203.0.2 inside; other names and numbers in another `BENCH_SLOT`, see
bench/slot.py) and connect to 10.203.0.1, where the stacks publish: the
packets go through iptables DNAT like a remote client's, never through docker-proxy on
127.0.0.1. Every measurement is `stackgen bench` run inside that namespace.

Knobs (environment): BENCH_PROXIES, BENCH_CONFIGS ("stackgen docs"), BENCH_HTTP
("1.1 2"), BENCH_SIZE (MiB), BENCH_PAIRS, BENCH_API_SECONDS, BENCH_STREAMS,
BENCH_STREAM_SECONDS, BENCH_BITRATE (Mbit/s), BENCH_OUT (results folder, default
`.cache/bench/results`: results never go into the tracked tree), BENCH_SLOT (0..9: which
names, ports and subnets the run owns; two runs on one engine take different slots).

`python -m bench.run --report [RESULTS]` (`make bench-report`) judges an earlier run again
with the current goals and explanations, from its summary.json, and rewrites the report.

Everything made here (stacks, the baseline container, the namespace) is removed at the
end, on failure and on Ctrl-C; leftovers of a killed run are removed at the start.
Exit 0 when every goal holds, 1 when one is missed (listed), 2 when the run broke.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import netem, report, slot
from bench.limits import LIMITS_VERSION, explain
from bench.proxy_facts import certificate_paths, config_targets, local_image_name, proxy_names
from bench.slot import Layout
from bench.summary_schema import SUMMARY_SCHEMA, validate_summary
from stackgen.bench.cgroup import Cgroup, CgroupError
from stackgen.bench.endpoint import TLS13_CIPHER
from stackgen.bench.goals import GOALS_VERSION, Verdict, evaluate, interval
from stackgen.bench.measure import BenchSettings
from stackgen.certificates.source import OWN_CERT, OWN_KEY
from stackgen.config_file import build_config, dump_config, load_config

REPO = Path(__file__).resolve().parents[1]
PY = REPO / ".venv" / "bin" / "python"
STACKGEN = REPO / ".venv" / "bin" / "stackgen"
CACHE = REPO / ".cache" / "bench"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "docs-configs"

# Every machine-wide name, address and port of this run: its slot's (see bench/slot.py).
try:
    SLOT = slot.from_environment()
except slot.SlotError as _error:
    sys.exit(f"bench: {_error}")
NETNS = SLOT.netns
HOST_IF, NS_IF = SLOT.host_if, SLOT.ns_if
HOST_IP, NS_IP = SLOT.host_ip, SLOT.ns_ip
DOMAIN = "jellyfin.bench.test"
PROJECT_PREFIX = SLOT.project_prefix
BASELINE = SLOT.baseline
PIN = SLOT.pin
LAYOUT: dict[str, Layout] = SLOT.layout
CEILING_PORT, PLAIN_PORT = SLOT.ceiling_port, SLOT.plain_port
# Two slots may run from one checkout: each its own scratch and results folders.
_SLOT_SUFFIX = "" if SLOT.number == 0 else f"-slot{SLOT.number}"
WORK = CACHE / f"work{_SLOT_SUFFIX}"
OUT = Path(os.environ.get("BENCH_OUT") or CACHE / f"results{_SLOT_SUFFIX}")

ALL_PROXIES = proxy_names()
PROXIES = os.environ.get("BENCH_PROXIES", " ".join(ALL_PROXIES)).split()
CONFIGS = os.environ.get("BENCH_CONFIGS", "stackgen docs").split()
HTTP = os.environ.get("BENCH_HTTP", "1.1 2").split()
SIZE = int(os.environ.get("BENCH_SIZE", "512")) * 1024 * 1024
# 8 pairs: the fewest whose median interval reaches 90 % (see stats.median_interval);
# fewer make every paired verdict inconclusive.
PAIRS = int(os.environ.get("BENCH_PAIRS", "8"))
API_SECONDS = float(os.environ.get("BENCH_API_SECONDS", "8"))
STREAMS = int(os.environ.get("BENCH_STREAMS", "20"))
STREAM_SECONDS = float(os.environ.get("BENCH_STREAM_SECONDS", "60"))
BITRATE = float(os.environ.get("BENCH_BITRATE", "100"))
# Buffered players ramped until one stalls, per bitrate (Mbit/s); "" turns the ramp off.
RAMP = [float(b) for b in os.environ.get("BENCH_RAMP", "8 20 40 100").split()]
RAMP_SECONDS = float(os.environ.get("BENCH_RAMP_SECONDS", "30"))
RAMP_MAX = int(os.environ.get("BENCH_RAMP_MAX", "128"))
RELOADS = int(os.environ.get("BENCH_RELOADS", "20"))
# A netem profile on the client's link (bench/netem.py): none, lan, wan or delay=,loss=,rate=.
NETWORK_TEXT = os.environ.get("BENCH_NETWORK", "none")
# Only the reloads (a separate pass): writes OUT/reloads.json instead of summary.json.
RELOAD_ONLY = os.environ.get("BENCH_RELOAD_ONLY", "") == "1"


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(
    cmd: Sequence[str], *, check: bool = True, timeout: float = 600, quiet: bool = False
) -> subprocess.CompletedProcess[str]:
    # From the repository root: the namespace's helpers run as `python -m bench.<module>`.
    result = subprocess.run(
        list(cmd), capture_output=True, text=True, check=False, timeout=timeout, cwd=REPO
    )
    if check and result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-8:]
        raise RuntimeError(f"`{' '.join(cmd)}` exited {result.returncode}:\n" + "\n".join(tail))
    if not quiet and result.returncode != 0:
        say(f"(ignored) `{' '.join(cmd[:4])} ...` exited {result.returncode}")
    return result


# --- cleanup -----------------------------------------------------------------------------


def cleanup() -> None:
    """Remove everything this script makes, whether or not it exists (idempotent)."""
    listing = run(
        ["docker", "ps", "-a", "--format", '{{.Label "com.docker.compose.project"}}'],
        check=False,
        quiet=True,
    )
    for project in sorted(set(listing.stdout.split())):
        if project.startswith(PROJECT_PREFIX):
            run(
                ["docker", "compose", "-p", project, "down", "--remove-orphans", "-t", "2"],
                check=False,
                quiet=True,
                timeout=120,
            )
    run(["docker", "rm", "-f", BASELINE, PIN], check=False, quiet=True)
    networks = run(["docker", "network", "ls", "--format", "{{.Name}}"], check=False, quiet=True)
    for name in networks.stdout.split():
        if name.startswith(PROJECT_PREFIX):
            run(["docker", "network", "rm", name], check=False, quiet=True)
    run(["ip", "netns", "del", NETNS], check=False, quiet=True)
    run(["ip", "link", "del", HOST_IF], check=False, quiet=True)


def _on_signal(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --- network namespace ---------------------------------------------------------------------


def build_images_pinned() -> dict[str, str]:
    # The test images' own build command (cached by content: instant when `make images` ran).
    built = run([str(PY), str(REPO / "tests" / "images" / "build.py"), "--json"], timeout=3600)
    images: dict[str, str] = json.loads(built.stdout)
    # Our own tag: a build from another checkout on this engine may move
    # `stackgen-test/...:local` to its own version of the stand-in while a run is going on.
    pinned = SLOT.pinned_standin
    run(["docker", "tag", images["jellyfin-standin"], pinned])
    images["jellyfin-standin"] = pinned
    # Their build also removes the image it replaced, by id: with only our tag left on it,
    # that would delete it mid-run. A (never started) container keeps it referenced.
    run(["docker", "rm", "-f", PIN], check=False, quiet=True)
    run(["docker", "create", "--name", PIN, pinned, "true"])
    return images


def make_netns() -> None:
    steps = [
        ["ip", "netns", "add", NETNS],
        ["ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF],
        ["ip", "link", "set", NS_IF, "netns", NETNS],
        ["ip", "addr", "add", f"{HOST_IP}/30", "dev", HOST_IF],
        ["ip", "link", "set", HOST_IF, "up"],
        ["ip", "netns", "exec", NETNS, "ip", "addr", "add", f"{NS_IP}/30", "dev", NS_IF],
        ["ip", "netns", "exec", NETNS, "ip", "link", "set", NS_IF, "up"],
        ["ip", "netns", "exec", NETNS, "ip", "link", "set", "lo", "up"],
    ]
    for step in steps:
        run(step)


def shape_netns(profile: netem.Profile | None) -> None:
    """The run's network profile on the client's veth pair (nothing for none)."""
    if profile is not None:
        for step in netem.apply(NETNS, NS_IF, HOST_IF, profile):
            run(step)


# --- media, certificates, baseline server ---------------------------------------------------


def write_media(path: Path, size: int) -> None:
    """The stand-in's media bytes (byte i is i % 251), for the baseline servers."""
    if path.is_file() and path.stat().st_size == size:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    block = bytes(range(251)) * ((1 << 20) // 251)
    with path.open("wb") as out:
        left = size
        while left > 0:
            n = min(left, len(block))
            out.write(block[:n])
            left -= n


def make_certificate() -> Path:
    """One CA and one certificate for every server of the run (so one --ca-file trusts
    proxies and baselines alike): stackgen's own internal CA, made by a throwaway init."""
    folder = WORK / "pki"
    shutil.rmtree(folder, ignore_errors=True)
    run(
        [
            str(STACKGEN), "init", "nginx", "--tls", "internal", "--domain", DOMAIN,
            "--dir", str(folder), "--project", f"{PROJECT_PREFIX}pki",
        ]
    )  # fmt: skip
    return folder / "tls"


CIPHERS = ":".join(
    f"ECDHE-{kx}-{suite}"
    for suite in ("AES128-GCM-SHA256", "AES256-GCM-SHA384", "CHACHA20-POLY1305")
    for kx in ("ECDSA", "RSA")
)
BASELINE_CONF = """
# The TLS ceiling: nginx serving the media file itself, with stackgen's nginx TLS settings.
server {{
    listen 443 ssl http2;
    server_name {domain};
    ssl_certificate /certs/fullchain.pem;
    ssl_certificate_key /certs/privkey.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers {ciphers};
    ssl_prefer_server_ciphers off;
    ssl_ecdh_curve X25519:prime256v1:secp384r1;
    ssl_session_cache shared:ceiling:10m;
    ssl_session_tickets off;
    sendfile on;
    location /Videos/ {{ root /media; rewrite ^ /media.bin break; default_type video/mp4; }}
    location / {{ return 404; }}
}}
# Plain HTTP: the same file, no TLS.
server {{
    listen 80;
    sendfile on;
    location /Videos/ {{ root /media; rewrite ^ /media.bin break; default_type video/mp4; }}
    location / {{ return 404; }}
}}
"""


def start_baseline(image: str, tls: Path, media: Path) -> None:
    conf_dir = WORK / "baseline"
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "default.conf").write_text(BASELINE_CONF.format(domain=DOMAIN, ciphers=CIPHERS))
    run(
        [
            "docker", "run", "-d", "--name", BASELINE,
            "-p", f"{HOST_IP}:{CEILING_PORT}:443", "-p", f"{HOST_IP}:{PLAIN_PORT}:80",
            "-v", f"{conf_dir}:/etc/nginx/conf.d:ro",
            "-v", f"{tls}:/certs:ro", "-v", f"{media.parent}:/media:ro",
            image,
        ]
    )  # fmt: skip
    wait_https(CEILING_PORT, "/Videos/x/stream", tls / "ca.pem", expect=206)


def wait_https(port: int, path: str, ca: Path, *, expect: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    code = ""
    while time.monotonic() < deadline:
        result = run(
            [
                "ip", "netns", "exec", NETNS, "curl", "-sS", "-o", "/dev/null", "-w",
                "%{http_code}", "--max-time", "3", "-r", "0-0", "--cacert", str(ca),
                "--resolve", f"{DOMAIN}:{port}:{HOST_IP}", f"https://{DOMAIN}:{port}{path}",
            ],
            check=False,
            quiet=True,
        )  # fmt: skip
        code = result.stdout.strip()
        if code == str(expect):
            return
        time.sleep(0.5)
    raise RuntimeError(f"https://{DOMAIN}:{port}{path} not ready (last status {code!r})")


# --- stacks ----------------------------------------------------------------------------------


def image_for(images: dict[str, str], proxy: str) -> str:
    return images[local_image_name(proxy)]


def _merged(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        old = merged.get(key)
        merged[key] = (
            _merged(old, value) if isinstance(value, Mapping) and isinstance(old, dict) else value
        )
    return merged


def init_stack(
    proxy: str,
    config: str,
    images: dict[str, str],
    tls: Path,
    settings: Mapping[str, Any] | None = None,
) -> Path:
    """stackgen's stack for `proxy` in `config`'s layout; `settings` (tables of
    stackgen.toml, e.g. {"access": {"rate_limit": False}}) merged in and rendered."""
    layout = LAYOUT[config]
    folder = WORK / f"{proxy}-{config}"
    shutil.rmtree(folder, ignore_errors=True)
    run(
        [
            str(STACKGEN), "init", proxy, "--tls", "files", "--domain", DOMAIN,
            "--cert-file", str(tls / "fullchain.pem"), "--key-file", str(tls / "privkey.pem"),
            "--trust-bundle", str(tls / "ca.pem"),
            "--dir", str(folder), "--project", f"{PROJECT_PREFIX}{proxy}-{config}",
            "--http-port", str(layout["http"]), "--https-port", str(layout["https"]),
            "--listen-address", HOST_IP, "--subnet", str(layout["subnet"]),
            "--jellyfin-network", "host", "--jellyfin-port", str(layout["jellyfin"]),
            "--image", f"jellyfin={images['jellyfin-standin']}",
            "--image", f"{proxy}={image_for(images, proxy)}",
            *(["--image", f"fail2ban={images['fail2ban']}"] if "fail2ban" in images else []),
        ]
    )  # fmt: skip
    if settings:
        data = load_config(folder).model_dump(mode="json", exclude_none=True)
        (folder / "stackgen.toml").write_text(
            dump_config(build_config(_merged(data, settings), folder))
        )
        run([str(STACKGEN), "render", "--dir", str(folder)])
    compose = folder / "docker-compose.yml"
    text = compose.read_text()
    anchor = '      TZ: "Etc/UTC"\n'
    if anchor not in text:
        raise RuntimeError(f"{compose}: Jellyfin's environment block not found")
    # The media size is the bench's, not the stand-in's default, and the WebSocket phase's
    # token is an API key the stand-in accepts (hand edits: a scratch stack).
    compose.write_text(
        text.replace(
            anchor,
            anchor
            + f'      STANDIN_MEDIA_BYTES: "{SIZE}"\n'
            + f'      STANDIN_API_KEYS: "{BenchSettings().token}"\n',
        )
    )
    return folder


def apply_docs_config(proxy: str, folder: Path) -> None:
    layout = LAYOUT["docs"]
    # The docs point at Jellyfin by address; from a bridge container that is the host's
    # docker0 address (host-gateway), where the host-network stand-in listens.
    upstream_host = "172.17.0.1"
    cert, key = certificate_paths(proxy, folder)
    values = {
        "@DOMAIN@": DOMAIN,
        "@UPSTREAM@": f"{upstream_host}:{layout['jellyfin']}",
        "@UPSTREAM_HOST@": upstream_host,
        "@UPSTREAM_PORT@": str(layout["jellyfin"]),
        "@CERT@": cert,
        "@KEY@": key,
        "@HTTPS_PORT@": str(layout["https"]),
    }
    fixtures = sorted(path.name for path in (FIXTURES / proxy).iterdir() if path.is_file())
    for fixture, target in config_targets(proxy, folder, fixtures).items():
        text = (FIXTURES / proxy / fixture).read_text()
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        (folder / target).write_text(text)


def compose(folder: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run(["docker", "compose", "--project-directory", str(folder), *args], timeout=timeout)


def wait_media_file(folder: Path, timeout: float = 120) -> None:
    path = folder / "jellyfin" / "cache" / f"standin-media-{SIZE}.bin"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.stat().st_size == SIZE:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the stand-in did not write its media file {path}")


def container_id(folder: Path, service: str) -> str:
    result = compose(folder, "ps", "-q", service)
    cid = result.stdout.strip().splitlines()
    if not cid:
        raise RuntimeError(f"no {service} container in {folder}")
    return run(["docker", "inspect", "-f", "{{.Id}}", cid[0]]).stdout.strip()


# --- cgroup statistics of the proxy container ------------------------------------------------


@contextlib.contextmanager
def sample_memory(group: Cgroup, period: float = 0.2) -> Iterator[dict[str, int]]:
    """Peak anonymous memory while the block runs (sampled), and the value before it."""
    stats = {"before": group.anon_bytes(), "peak": 0}
    stats["peak"] = stats["before"]
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(period):
            with contextlib.suppress(OSError, CgroupError, ValueError):
                stats["peak"] = max(stats["peak"], group.anon_bytes())

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield stats
    finally:
        stop.set()
        thread.join(timeout=5)


# --- measurements --------------------------------------------------------------------------


def bench(name: str, url_port: int, args: Sequence[str], ca: Path) -> dict[str, Any]:
    """`stackgen bench` inside the namespace, proxied side at https://DOMAIN:url_port.

    Entered with nsenter (the network namespace only), not `ip netns exec`, which mounts a
    fresh /sys and so hides the containers' cgroups that `--cpu-container` reads."""
    out = OUT / f"{name}.json"
    for folder in (out.parent, OUT / "plots" / Path(name).parent):
        folder.mkdir(parents=True, exist_ok=True)
    cmd = [
        "nsenter", f"--net=/run/netns/{NETNS}", "--", str(STACKGEN), "bench",
        "--url", f"https://{DOMAIN}:{url_port}", "--resolve", f"{DOMAIN}:{HOST_IP}",
        "--ca-file", str(ca), "--output", str(out), "--plot", str(OUT / "plots" / f"{name}.svg"),
        *args,
    ]  # fmt: skip
    say(f"{name}: stackgen bench {' '.join(args)}")
    result = run(cmd, check=False, timeout=3600, quiet=True)
    if not out.is_file():
        raise RuntimeError(f"{name}: stackgen bench wrote no result:\n{result.stderr[-2000:]}")
    doc: dict[str, Any] = json.loads(out.read_text())
    if result.returncode != 0:
        say(f"{name}: stackgen bench reported: {result.stderr.strip().splitlines()[-1]}")
    return doc


def ceiling_id() -> str:
    return run(["docker", "inspect", "-f", "{{.Id}}", BASELINE]).stdout.strip()


def _tls(doc: dict[str, Any], side: str) -> dict[str, Any] | None:
    """What the run's client negotiated with one side: protocol, cipher, ALPN, path."""
    target = (doc.get("targets") or {}).get(side)
    if not target:
        return None
    return {key: target.get(key) for key in ("tls", "cipher", "alpn", "protocol", "path")}


def compare(doc: dict[str, Any], metric: str) -> float | None:
    found = doc.get("metrics", {}).get(metric, {}).get("compare")
    return float(found["median"]) if found else None


def common(pairs: int) -> list[str]:
    return ["--pairs", str(pairs), "--duration", str(API_SECONDS), "--streams", "0"]


def direct_url(config: str) -> str:
    return f"http://{HOST_IP}:{LAYOUT[config]['jellyfin']}"


def https_url(port: int) -> str:
    return f"https://{DOMAIN}:{port}"


def measure_baselines(ca: Path) -> dict[str, Any]:
    """The origin's headroom, the ceiling's own cost, and what paced players see from the
    ceiling itself (the machine's share of any gap), with stackgen's stack up (its stand-in
    is Jellyfin direct)."""
    only = ["--only", "stream", "--only", "seek"]
    ceiling_group = Cgroup(run(["docker", "inspect", "-f", "{{.Id}}", BASELINE]).stdout.strip())
    cpu0 = ceiling_group.cpu_seconds()
    headroom = bench(
        "baseline-ceiling-vs-standin",
        CEILING_PORT,
        [*common(PAIRS), *only, "--direct", direct_url("stackgen")],
        ca,
    )
    cpu = ceiling_group.cpu_seconds() - cpu0
    settings = headroom["settings"]
    served = PAIRS * (SIZE + settings["seeks"] * settings["seek_bytes"])
    plain = bench(
        "baseline-ceiling-vs-plain",
        CEILING_PORT,
        [*common(PAIRS), *only, "--direct", f"http://{HOST_IP}:{PLAIN_PORT}"],
        ca,
    )
    baselines: dict[str, Any] = {
        "ceiling_mbps": _median(headroom["metrics"]["stream_mbps"]["proxied"]),
        "standin_direct_mbps": _median(headroom["metrics"]["stream_mbps"]["direct"]),
        "ceiling_vs_standin": compare(headroom, "stream_mbps"),
        "plain_http_mbps": _median(plain["metrics"]["stream_mbps"]["direct"]),
        "ceiling_vs_plain": compare(plain, "stream_mbps"),
        "ceiling_cpu_s_per_gb": round(cpu / (served / 1e9), 3),
    }
    if RAMP:
        baselines["ceiling_capacity"] = ramp_capacity("baseline-ceiling-ramp", CEILING_PORT, ca)
    if STREAMS > 0:
        streams = paced_players("baseline-ceiling-paced-streams", CEILING_PORT, ca)
        baselines.update({f"ceiling_streams_{key}": streams.get(key) for key in PACED_FIGURES})
        baselines["ceiling_streams_errors"] = streams.get("errors")
        # The origin alone: the same players straight at Jellyfin (the stand-in), no TLS.
        streams = origin_players("baseline-direct-paced-streams", direct_url("stackgen"))
        baselines.update({f"direct_streams_{key}": streams.get(key) for key in PACED_FIGURES})
        baselines["direct_streams_errors"] = streams.get("errors")
    return baselines


def origin_players(name: str, url: str) -> dict[str, Any]:
    """The same paced players at Jellyfin's own http:// address (`bench.origin_players`)."""
    say(f"{name}: {STREAMS} paced players at {url}")
    result = run(
        ["ip", "netns", "exec", NETNS, str(PY), "-m", "bench.origin_players",
         "--url", url, "--streams", str(STREAMS), "--bitrate", str(BITRATE),
         "--seconds", str(STREAM_SECONDS)],
        timeout=STREAM_SECONDS + 300,
    )  # fmt: skip
    found: dict[str, Any] = json.loads(result.stdout)
    (OUT / f"{name}.json").write_text(json.dumps(found, indent=2) + "\n")
    return found


# The paced-stream figures copied into summaries (as streams_* and ceiling_streams_*).
PACED_FIGURES = ("max_gap_ms", "max_gap_at_s", "max_head_gap_ms", "first_byte_ms_max")


def ramp_capacity(name: str, port: int, ca: Path) -> dict[str, int | None]:
    """The largest stall-free count of buffered players per RAMP bitrate (`--ramp`)."""
    args = ["--only", "streams", "--streams", "0", "--check-bytes",
            "--ramp-seconds", str(RAMP_SECONDS), "--ramp-max", str(RAMP_MAX)]  # fmt: skip
    for bitrate in RAMP:
        args += ["--ramp", f"{bitrate:g}"]
    found = (bench(name, port, args, ca).get("ramp") or {}).get("per_bitrate") or {}
    return {f"{b:g}": (found.get(f"{b:g}") or {}).get("stall_free") for b in RAMP}


def paced_players(name: str, port: int, ca: Path, *, check_bytes: bool = False) -> dict[str, Any]:
    """STREAMS paced players at BITRATE for STREAM_SECONDS; the result's `streams` part."""
    args = ["--only", "streams", "--streams", str(STREAMS), "--bitrate", str(BITRATE),
            "--duration", str(STREAM_SECONDS)]  # fmt: skip
    if check_bytes:
        args.append("--check-bytes")
    found: dict[str, Any] = bench(name, port, args, ca).get("streams") or {}
    return found


def _median(values: Sequence[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def measure_proxy(
    proxy: str, images: dict[str, str], tls: Path, baselines: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    ca = tls / "ca.pem"
    summary: dict[str, Any] = {"proxy": proxy}
    folder = init_stack(proxy, "stackgen", images, tls)
    port = LAYOUT["stackgen"]["https"]
    say(f"{proxy}: stackgen up")
    started = time.monotonic()
    run([str(STACKGEN), "up", "--dir", str(folder), "--timeout", "180"], timeout=300)
    summary["up_seconds_first"] = round(time.monotonic() - started, 2)
    wait_media_file(folder)
    group_id = container_id(folder, proxy)
    group = Cgroup(group_id)
    intervals: dict[str, Any] = {}
    summary["intervals"] = intervals

    if baselines is None:
        baselines = measure_baselines(ca)

    docs_folder = None
    if "docs" in CONFIGS:
        docs_folder = init_stack(proxy, "docs", images, tls)
        apply_docs_config(proxy, docs_folder)
        say(f"{proxy}: docs config up")
        compose(docs_folder, "up", "-d")
        wait_media_file(docs_folder)
        wait_https(LAYOUT["docs"]["https"], "/Videos/x/stream", ca, expect=206)

    # Streaming and seeking, proxied (h1) vs Jellyfin direct; proxy CPU per GB.
    cpu0 = group.cpu_seconds()
    main = bench(
        f"{proxy}-h1-vs-direct",
        port,
        [*common(PAIRS), "--only", "stream", "--only", "seek", "--only", "ws",
         "--direct", direct_url("stackgen")],
        ca,
    )  # fmt: skip
    cpu = group.cpu_seconds() - cpu0
    proxied_bytes = PAIRS * (SIZE + main["settings"]["seeks"] * main["settings"]["seek_bytes"])
    summary["cpu_s_per_gb_stream_and_seek"] = round(cpu / (proxied_bytes / 1e9), 3)
    summary["stream_vs_direct"] = compare(main, "stream_mbps")
    summary["seek_ttfb_added_ms"] = compare(main, "seek_ttfb_p50_ms")
    intervals["seek_ttfb_added_ms"] = interval(main["metrics"]["seek_ttfb_p50_ms"]["compare"])
    summary["ws_connect_added_ms"] = compare(main, "ws_connect_p50_ms")

    # API at 200/s, open loop; proxy CPU per 1,000 calls.
    cpu0 = group.cpu_seconds()
    api = bench(
        f"{proxy}-api-vs-direct",
        port,
        [*common(PAIRS), "--only", "api", "--direct", direct_url("stackgen")],
        ca,
    )
    cpu = group.cpu_seconds() - cpu0
    calls = PAIRS * (200 * API_SECONDS + 1)
    summary["cpu_s_per_1000_api"] = round(cpu / (calls / 1000), 4)
    summary["api_p50_added_ms"] = compare(api, "api_p50_ms")
    summary["api_p99_added_ms"] = compare(api, "api_p99_ms")
    intervals["api_p50_added_ms"] = interval(api["metrics"]["api_p50_ms"]["compare"])
    intervals["api_p99_added_ms"] = interval(api["metrics"]["api_p99_ms"]["compare"])
    summary["api_errors"] = api["api"]["errors"] if api.get("api") else None
    # New connections the client had to open for the same calls, per side: keep-alive
    # closed by the proxy (not load) is what puts handshakes into the tail.
    opened = (api.get("api") or {}).get("connections_by_side") or {}
    summary["api_connections"] = opened.get("proxied")
    summary["api_connections_direct"] = opened.get("direct")
    summary["api_calls"] = calls

    # Against the TLS ceiling, HTTP/1.1 (and h2 if asked), interleaved: each side's CPU is
    # charged per transfer from its container's cgroup, so the relay goal (CPU per GB
    # against the bare TLS server's) is one run's pairs, not figures of two runs. The
    # table's MB/s, "/ ceiling" and CPU rows all come from this one run.
    ceiling = bench(
        f"{proxy}-h1-vs-ceiling",
        port,
        [*common(PAIRS), "--only", "stream", "--direct", https_url(CEILING_PORT),
         "--cpu-container", f"proxied={group_id}",
         "--cpu-container", f"direct={ceiling_id()}"],
        ca,
    )  # fmt: skip
    summary["stream_vs_ceiling"] = compare(ceiling, "stream_mbps")
    summary["stream_mbps"] = _median(ceiling["metrics"]["stream_mbps"]["proxied"])
    summary["ceiling_mbps"] = _median(ceiling["metrics"]["stream_mbps"]["direct"])
    cpu_runs = ceiling["metrics"].get("cpu_s_per_gb") or {}
    summary["cpu_s_per_gb"] = _median(cpu_runs.get("proxied") or [])
    summary["ceiling_cpu_s_per_gb"] = _median(cpu_runs.get("direct") or [])
    summary["relay_cpu_vs_ceiling"] = compare(ceiling, "cpu_s_per_gb")
    intervals["relay_cpu_vs_ceiling"] = interval(cpu_runs.get("compare"))
    intervals["stream_vs_ceiling"] = interval(ceiling["metrics"]["stream_mbps"].get("compare"))
    summary["tls"] = {side: _tls(ceiling, side) for side in ("proxied", "direct")}
    if "2" in HTTP:
        h2 = bench(
            f"{proxy}-h2-vs-h1",
            port,
            [*common(PAIRS), "--only", "stream", "--only", "seek", "--http2",
             "--direct", https_url(port)],
            ca,
        )  # fmt: skip
        summary["h2_vs_h1"] = compare(h2, "stream_mbps")
        intervals["h2_vs_h1"] = interval(h2["metrics"]["stream_mbps"]["compare"])
        summary["stream_h2_mbps"] = _median(h2["metrics"]["stream_mbps"]["proxied"])
        h2c = bench(
            f"{proxy}-h2-vs-ceiling-h2",
            port,
            [*common(PAIRS), "--only", "stream", "--http2", "--direct-http2",
             "--direct", https_url(CEILING_PORT)],
            ca,
        )  # fmt: skip
        summary["h2_stream_vs_ceiling_h2"] = compare(h2c, "stream_mbps")

    if docs_folder is not None:
        docs = bench(
            f"{proxy}-h1-vs-docs",
            port,
            [*common(PAIRS), "--only", "stream", "--only", "seek", "--only", "api",
             "--direct", https_url(LAYOUT["docs"]["https"])],
            ca,
        )  # fmt: skip
        summary["stream_vs_docs"] = compare(docs, "stream_mbps")
        intervals["stream_vs_docs"] = interval(docs["metrics"]["stream_mbps"]["compare"])
        summary["docs_stream_mbps"] = _median(docs["metrics"]["stream_mbps"]["direct"])
        summary["api_p50_added_vs_docs_ms"] = compare(docs, "api_p50_ms")
        if "2" in HTTP:
            docs2 = bench(
                f"{proxy}-h2-vs-docs-h2",
                port,
                [*common(PAIRS), "--only", "stream", "--http2", "--direct-http2",
                 "--direct", https_url(LAYOUT["docs"]["https"])],
                ca,
            )  # fmt: skip
            summary["stream_vs_docs_h2"] = compare(docs2, "stream_mbps")
        compose(docs_folder, "down", "-t", "2")

    # Capacity: buffered players ramped until one stalls, per bitrate, byte-checked; at
    # 100 Mbit/s judged against the bare TLS server's own capacity.
    if RAMP:
        capacity = ramp_capacity(f"{proxy}-ramp", port, ca)
        summary["capacity"] = capacity
        own_100 = capacity.get("100")
        ceiling_100 = (baselines.get("ceiling_capacity") or {}).get("100")
        if isinstance(own_100, int) and isinstance(ceiling_100, int) and ceiling_100:
            summary["capacity_100_vs_ceiling"] = round(own_100 / ceiling_100, 3)

    # Paced streams, byte-exact; proxy RSS growth meanwhile.
    if STREAMS > 0:
        with sample_memory(group) as memory:
            paced = paced_players(f"{proxy}-paced-streams", port, ca, check_bytes=True)
        summary.update({f"streams_{key}": paced.get(key) for key in PACED_FIGURES})
        summary["streams_failures"] = (
            (paced.get("errors") or 0) + (paced.get("byte_mismatches") or 0) if paced else None
        )
        summary["rss_before_mib"] = round(memory["before"] / 2**20, 1)
        summary["rss_peak_mib"] = round(memory["peak"] / 2**20, 1)
        summary["rss_growth_mib"] = round((memory["peak"] - memory["before"]) / 2**20, 1)

    if RELOADS > 0:
        say(f"{proxy}: {RELOADS} reloads and a certificate rotation under load")
        reloads = measure_reloads(proxy, folder, tls)
        summary["reload"] = reloads
        incomplete = reloads["reloads_done"] < RELOADS or not reloads.get(
            "rotation_served_new_certificate"
        )
        summary["reload_failures"] = None if incomplete else reloads["failures"]
        summary["reload_websocket_kept"] = reloads["websocket_kept"]

    # `stackgen up` on a warm machine: images, networks' driver and caches all warm.
    run([str(STACKGEN), "down", "--dir", str(folder)], timeout=300)
    started = time.monotonic()
    run([str(STACKGEN), "up", "--dir", str(folder), "--timeout", "180"], timeout=300)
    summary["up_seconds"] = round(time.monotonic() - started, 2)
    run([str(STACKGEN), "down", "--dir", str(folder)], timeout=300)
    return summary, baselines


def rotate_certificate(tls: Path, stack: Path) -> bytes:
    """A new key and leaf from the run's CA (in `tls`), written *in place* over the pair the
    stack serves: its own copy, which `init --cert-file` made (`OWN_CERT`, `OWN_KEY`), not the
    run's files it was copied from (the proxy bind-mounts each file: a rename would leave
    the container on the old inode). Returns the new leaf (DER)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from stackgen import pki

    ca_cert = x509.load_pem_x509_certificate((tls / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((tls / "ca-key.pem").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    leaf = pki.server_certificate(
        key.public_key(),
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)]),
        [x509.DNSName(DOMAIN)],
        now - dt.timedelta(minutes=5),
        now + dt.timedelta(days=30),
        issuer=ca_cert.subject,
        issuer_key=ca_key,
    )
    key_pem = pki.key_pem(key)
    for name, data in (
        (OWN_KEY, key_pem),
        (OWN_CERT, leaf.public_bytes(serialization.Encoding.PEM)),
    ):
        with (stack / name).open("r+b") as handle:
            handle.truncate(0)
            handle.write(data)
    return leaf.public_bytes(serialization.Encoding.DER)


def served_certificate(port: int) -> bytes:
    import socket
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((HOST_IP, port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname=DOMAIN) as tls_sock,
    ):
        return tls_sock.getpeercert(binary_form=True) or b""


def toggle_config(folder: Path, step: int) -> None:
    """A real change of the rendered proxy config: the Referrer-Policy header value."""
    path = folder / "stackgen.toml"
    text = path.read_text()
    values = ("strict-origin-when-cross-origin", "same-origin")
    old, new = (values[0], values[1]) if step % 2 == 0 else (values[1], values[0])
    line = 'referrer_policy = "{}"'
    if line.format(old) not in text:
        raise RuntimeError(f"{path}: referrer_policy {old!r} not found")
    path.write_text(text.replace(line.format(old), line.format(new)))


def measure_reloads(proxy: str, folder: Path, tls: Path) -> dict[str, Any]:
    """RELOADS real reloads and one certificate rotation while API calls (200/s), a paced
    byte-checked stream and a WebSocket run from the client namespace."""
    port = LAYOUT["stackgen"]["https"]
    # `stackgen reload` re-renders and runs `check` (the proxy's own validator in a
    # container) before reloading: seconds each on two busy cores.
    seconds = RELOADS * 8 + 20
    probe = subprocess.Popen(
        [
            "ip", "netns", "exec", NETNS, str(PY), "-m", "bench.reload_probe",
            "--url", f"https://{DOMAIN}:{port}", "--address", HOST_IP,
            "--ca-file", str(tls / "ca.pem"), "--seconds", str(seconds), "--size", str(SIZE),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )  # fmt: skip
    reload_seconds: list[float] = []
    result: dict[str, Any] = {}
    try:
        time.sleep(3)
        deadline = time.monotonic() + seconds - 8
        for step in range(RELOADS + 1):
            if time.monotonic() > deadline:
                break
            if step == RELOADS:
                new_leaf = rotate_certificate(tls, folder)
            toggle_config(folder, step)
            started = time.monotonic()
            run([str(STACKGEN), "reload", "--dir", str(folder)], timeout=120)
            reload_seconds.append(round(time.monotonic() - started, 2))
            time.sleep(0.5)
        result["reloads_done"] = len(reload_seconds) - 1
        result["reload_seconds_max"] = max(reload_seconds, default=None)
        if len(reload_seconds) == RELOADS + 1:
            served = b""
            for _ in range(20):  # a file-watching proxy applies the change on its own time
                served = served_certificate(port)
                if served == new_leaf:
                    break
                time.sleep(0.5)
            result["rotation_served_new_certificate"] = served == new_leaf
        out, err = probe.communicate(timeout=seconds + 60)
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait(timeout=10)
    if probe.returncode != 0 or not out.strip():
        raise RuntimeError(f"{proxy}: reload probe failed: {err[-1000:]}")
    load = json.loads(out)
    result["probe"] = load
    result["failures"] = (
        load["api"]["errors"] + len(load["stream"]["errors"]) + load["stream"]["mismatches"]
    )
    result["websocket_kept"] = bool(load["websocket"].get("kept"))
    return result


def reload_pass(proxy: str, images: dict[str, str], tls: Path) -> dict[str, Any]:
    folder = init_stack(proxy, "stackgen", images, tls)
    try:
        run([str(STACKGEN), "up", "--dir", str(folder), "--timeout", "180"], timeout=300)
        wait_media_file(folder)
        say(f"{proxy}: {RELOADS} reloads and a certificate rotation under load")
        result = measure_reloads(proxy, folder, tls)
        say(f"{proxy}: {json.dumps(result)}")
        return result
    except RuntimeError as error:
        say(f"{proxy}: FAILED: {error}")
        return {"error": str(error)[:2000]}
    finally:
        run([str(STACKGEN), "down", "--dir", str(folder)], check=False, timeout=300)


def judge(
    summaries: dict[str, dict[str, Any]], baselines: dict[str, Any]
) -> tuple[list[Verdict], list[dict[str, Any]]]:
    """The goals over the run's figures, each missed one with what limits it."""
    verdicts = evaluate(summaries)
    ratios = [s.get("stream_vs_ceiling") for s in summaries.values()]
    known = [r for r in ratios if isinstance(r, int | float)]
    context = {**baselines, "best_stream_vs_ceiling": max(known) if known else None}
    goals = [
        {"proxy": v.proxy, "goal": v.goal.text, "key": v.goal.key, "measured": v.measured,
         "low": v.figure.low if v.figure else None,
         "high": v.figure.high if v.figure else None,
         "pairs": v.figure.n if v.figure else None,
         "coverage": v.figure.coverage if v.figure else None,
         "target": v.goal.target, "unit": v.goal.unit, "op": v.goal.op, "state": v.state,
         "ok": v.ok, "short_by": v.short_by,
         "limit": None if v.ok else explain(v, summaries[v.proxy], context)}
        for v in verdicts
    ]  # fmt: skip
    return verdicts, goals


def report_only(results: Path) -> int:
    """Judge an earlier run again with the current goals and explanations (the figures are
    the run's own, untouched) and rewrite its report."""
    path = results / "summary.json"
    doc = json.loads(path.read_text())
    verdicts, doc["goals"] = judge(doc["proxies"], doc.get("baselines") or {})
    doc["goals_version"] = GOALS_VERSION
    doc["limits_version"] = LIMITS_VERSION
    problems = validate_summary(doc)
    if problems:
        say(f"{path}: does not follow {SUMMARY_SCHEMA}: {problems[0]}")
        return 2
    path.write_text(json.dumps(doc, indent=2) + "\n")
    report.main(results)
    print("\n".join(v.line() for v in verdicts))
    return 1 if any(not v.ok for v in verdicts) else 0


def main() -> int:
    if sys.argv[1:2] == ["--report"]:
        return report_only(Path(sys.argv[2]) if len(sys.argv) > 2 else OUT)
    try:
        with slot.holding(SLOT):
            return measure_all()
    except slot.SlotError as error:
        say(str(error))
        return 2


def measure_all() -> int:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    if os.geteuid() != 0:
        say("needs root (network namespaces, cgroup statistics)")
        return 2
    unknown = set(PROXIES) - set(ALL_PROXIES)
    if unknown:
        say(f"unknown proxies in BENCH_PROXIES: {sorted(unknown)}")
        return 2
    try:
        profile = netem.parse(NETWORK_TEXT)
    except netem.ProfileError as error:
        say(f"BENCH_NETWORK: {error}")
        return 2
    if profile is not None and (failed := netem.check(profile)) is not None:
        say(f"BENCH_NETWORK={NETWORK_TEXT}: this kernel cannot apply it: {failed}")
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "plots").mkdir(exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    say(f"cleaning leftovers; proxies {PROXIES}, configs {CONFIGS}, http {HTTP}")
    cleanup()
    summaries: dict[str, dict[str, Any]] = {}
    baselines: dict[str, Any] | None = None
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = os.getloadavg()
    try:
        images = build_images_pinned()
        make_netns()
        shape_netns(profile)
        tls = make_certificate()
        media = WORK / "media" / "media.bin"
        write_media(media, SIZE)
        start_baseline(images["nginx"], tls, media)
        if RELOAD_ONLY:
            reloads = {proxy: reload_pass(proxy, images, tls) for proxy in PROXIES}
            (OUT / "reloads.json").write_text(json.dumps(reloads, indent=2) + "\n")
            return 0
        for proxy in PROXIES:
            try:
                summary, baselines = measure_proxy(proxy, images, tls, baselines)
            except RuntimeError as error:
                say(f"{proxy}: FAILED: {error}")
                summary = {"proxy": proxy, "error": str(error)[:2000]}
            summaries[proxy] = summary
            say(f"{proxy}: {json.dumps(summary)}")
            for project_dir in WORK.glob(f"{proxy}-*"):
                run(
                    ["docker", "compose", "--project-directory", str(project_dir), "down",
                     "-t", "2"],
                    check=False,
                    quiet=True,
                )  # fmt: skip
    except KeyboardInterrupt:
        say("interrupted: cleaning up")
        cleanup()
        return 130
    finally:
        cleanup()
    verdicts, goals = judge(summaries, baselines or {})
    doc = {
        "schema": SUMMARY_SCHEMA,
        "goals_version": GOALS_VERSION,
        "limits_version": LIMITS_VERSION,
        "client_cipher": TLS13_CIPHER,
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "nproc": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "knobs": {
            "proxies": PROXIES, "configs": CONFIGS, "http": HTTP, "size_bytes": SIZE,
            "pairs": PAIRS, "api_seconds": API_SECONDS, "streams": STREAMS,
            "stream_seconds": STREAM_SECONDS, "bitrate_mbps": BITRATE,
            "ramp_mbps": RAMP, "ramp_seconds": RAMP_SECONDS, "ramp_max": RAMP_MAX,
            "network": None if profile is None else profile.to_json(),
        },
        "baselines": baselines,
        "proxies": summaries,
        "goals": goals,
    }  # fmt: skip
    (OUT / "summary.json").write_text(json.dumps(doc, indent=2) + "\n")
    problems = validate_summary(doc)
    if problems:
        say(f"summary.json does not follow {SUMMARY_SCHEMA}: " + "; ".join(problems[:5]))
        return 2
    report.main(OUT)
    missed = [v for v in verdicts if not v.ok]
    print("\n".join(v.line() for v in verdicts))
    if missed:
        print(f"\nmake bench: {len(missed)} goal(s) missed of {len(verdicts)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
