"""Try one tuning by hand on a rendered stack and measure it against the untouched one.

Usage (root; it takes the `BENCH_SLOT` of `make bench`, and waits for no one: a run
already holding that slot makes it stop at once):

    python -m bench.tune PROXY VARIANT

Two copies of stackgen's stack for PROXY run side by side: A as rendered, B with the
variant's edits applied to its rendered files (scratch folders under .cache/bench/work; the
templates are not touched). `stackgen bench --url B --direct A` then compares them
interleaved, so `compare` is tuned/untouched (ratios) or tuned - untouched (ms). The
`healthcheck` variant times `stackgen up` instead, alternating A and B.
Results: RESULTS/tuning/PROXY-VARIANT.json (RESULTS: BENCH_OUT, default .cache/bench/results).

    python -m bench.tune PROXY gate-token|rate-limit|allow-list|ban-list|geo

does the same for a setting of stackgen.toml, on any proxy: A rendered without it, B with it
(`setting_variant`), so `compare` is with/without; `gate-token` streams and seeks with the
bench's API key in the query, on both sides.

    python -m bench.tune PROXY paced-control     (or `baseline paced-control`)

runs the paced players against the bare TLS server, Jellyfin direct and PROXY in one run
(RESULTS/tuning/control-paced-streams-*.json).

    python -m bench.old_images COMMIT TAG; TUNE_OLD_TAG=TAG python -m bench.tune PROXY version-old

sets a proxy's earlier test image (built by `bench.old_images` from COMMIT's image folder) in
B against today's in A, each with the render it parses: B gets the variant's edits where
today's render is not valid on the old version. `compare` is then old/new.

TUNE_UPLOAD_MIB=N adds uploads to any variant but `healthcheck`: UPLOADS_PER_RUN POSTs of N
MiB to the stand-in's upload endpoint per run, interleaved A-B-B-A over the same pairs, so
`compare` gains `upload_ms` (the median POST's time, tuned/untouched).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench import run as runner
from bench import slot
from bench.proxy_facts import local_image_name
from stackgen.bench import curl
from stackgen.bench.cgroup import Cgroup
from stackgen.bench.endpoint import url_endpoint
from stackgen.bench.measure import BenchSettings
from stackgen.bench.stats import abba_order, compare_pairs
from stackgen.config_file import load_config
from stackgen.testing.mmdb import many_networks, write_database

# (file in the stack, text to find, replacement). Ports in the text are A's; B's rendered
# files name B's own ports, so the edits below avoid port numbers.
Edit = tuple[str, str, str]
# B runs the proxy's image tagged TUNE_OLD_TAG (`python -m bench.old_images COMMIT TAG`).
OLD_VERSION = "version-old"
OLD_TAG = os.environ.get("TUNE_OLD_TAG", "previous")
HEALTHCHECK: list[Edit] = [("docker-compose.yml", "interval: 10s", "interval: 1s")]
VARIANTS: dict[tuple[str, str], list[Edit]] = {
    ("haproxy", "bufsize"): [
        (
            "haproxy/haproxy.cfg",
            "    hard-stop-after 1h",
            "    hard-stop-after 1h\n    tune.bufsize 65536",
        )
    ],
    ("apache", "iobuffer"): [
        ("apache/httpd.conf", "ProxyTimeout 3600", "ProxyTimeout 3600\nProxyIOBufferSize 65536")
    ],
    ("caddy", "buffers"): [
        (
            "caddy/etc/Caddyfile",
            "\t\tflush_interval -1\n",
            "\t\tflush_interval -1\n\t\ttransport http {\n\t\t\tread_buffer 64KiB\n"
            "\t\t\twrite_buffer 64KiB\n\t\t}\n",
        )
    ],
    # Buffering on, in memory only: nginx reads the next chunk from Jellyfin while the
    # previous one is still being written to the client (off: one read, then one write).
    ("nginx", "buffering-memory"): [
        (
            "nginx/conf.d/jellyfin.conf",
            "    proxy_buffering off;\n",
            "    proxy_buffering on;\n    proxy_max_temp_file_size 0;\n",
        )
    ],
    # Last session's change, undone: "-1s" flushes a response head at once (the lost
    # upload race of docs/flakes.md comes back with it, so it can never be kept).
    ("traefik", "flush-immediate"): [
        ("traefik/dynamic.toml", 'flushInterval = "100ms"', 'flushInterval = "-1s"')
    ],
    # HAProxy's own buffer size (16 KiB) instead of stackgen's 64 KiB; run it over h2 too
    # (TUNE_HTTP2=1): the size was chosen over HTTP/1.1 only.
    ("haproxy", "bufsize-default"): [
        ("haproxy/haproxy.cfg", "    tune.bufsize 65536", "    tune.bufsize 16384")
    ],
    # A larger h2 stream window than HAProxy's 64 KiB default (what a client may have in
    # flight per stream before it waits for a WINDOW_UPDATE).
    ("haproxy", "h2-window"): [
        (
            "haproxy/haproxy.cfg",
            "    tune.bufsize 65536",
            "    tune.bufsize 65536\n    tune.h2.initial-window-size 1048576",
        )
    ],
    # httpd's defaults (100 requests per connection, 5 s idle) against a longer-lived
    # connection: a player's API calls then reuse one connection instead of reconnecting.
    ("apache", "keepalive"): [
        (
            "apache/httpd.conf",
            "ProxyTimeout 3600",
            "ProxyTimeout 3600\nMaxKeepAliveRequests 1000\nKeepAliveTimeout 15",
        )
    ],
    # Last session's changes, undone one at a time: nginx's error log at its default
    # level instead of `crit`, and the proxy without its memory and process limits.
    ("nginx", "error-log-default"): [
        (
            "nginx/conf.d/jellyfin.conf",
            "error_log /var/log/nginx/error.log crit;",
            "error_log /var/log/nginx/error.log error;",
        )
    ],
    # Apache's pooled connections to Jellyfin without the 60 s idle limit (the setting before
    # the keep-alive race of docs/flakes.md was fixed): retiring a connection idle 60 s
    # should cost nothing while a client keeps it busy.
    ("apache", "no-idle-limit"): [
        ("apache/httpd.conf", " timeout=3600 ttl=60\n", " timeout=3600\n")
    ],
    **{
        (proxy, "no-limits"): [
            ("docker-compose.yml", '    mem_limit: "1g"\n    pids_limit: 1024\n', "")
        ]
        for proxy in runner.ALL_PROXIES
    },
    **{(proxy, "healthcheck"): HEALTHCHECK for proxy in runner.ALL_PROXIES},
    # The previous test images (Debian 12's builds, before the versions moved): nginx 1.22
    # knows no `http2 on;` (1.25.1+), so it gets the spelling stackgen rendered for it,
    # `listen ... http2`. HAProxy 2.6 and Apache parse today's render as it is (HAProxy's
    # render changed only where HTTP/3 is on, which the bench's stack is not).
    ("nginx", OLD_VERSION): [
        (
            "nginx/conf.d/jellyfin.conf",
            "    listen 443 ssl default_server;\n    http2 on;\n",
            "    listen 443 ssl http2 default_server;\n",
        )
    ],
    ("haproxy", OLD_VERSION): [],
    ("apache", OLD_VERSION): [],
}
# What a setting of stackgen.toml costs: A and B are both stackgen's stack, rendered with
# these tables merged in (A without the setting, B with it), for any proxy. "tuned" below is
# then the setting on, "untouched" off.
Settings = dict[str, Any]
SETTING_VARIANTS = ("gate-token", "rate-limit", "allow-list", "ban-list", "geo")
# access.geo's cost with a country of realistic size: this many ranges of the admitted
# country, every one sorting before the bench client's own (its veth pair, also placed in
# that country), so that a proxy that tries the ranges one by one (Caddy's remote_ip,
# Traefik's ipAllowList, Apache's Require ip) tries nearly all of them on every request.
GEO_RANGES = int(os.environ.get("TUNE_GEO_RANGES", "50000"))
# The gate lets a stream through only with a token Jellyfin confirms: the bench's own API
# key (the stand-in accepts it), on both sides so that they differ by the setting alone.
GATE_MEDIA_PATH = f"/Videos/stackgen-bench/stream?static=true&api_key={BenchSettings().token}"


def _client_link() -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(f"{runner.NS_IP}/30", strict=False)


def setting_variant(variant: str, images: dict[str, str]) -> tuple[Settings, Settings]:
    """(A's settings, B's settings) of a SETTING_VARIANTS entry."""
    variants: dict[str, tuple[Settings, Settings]] = {
        # The gate service runs from the test suite's Debian image (python3), as in tests.
        "gate-token": ({}, {"access": {"gate": {"mode": "token", "image": images["debian-base"]}}}),
        "rate-limit": ({"access": {"rate_limit": False}}, {}),
        # The bench client's veth pair (the namespace, and the host end `up` checks from):
        # everyone else would be refused.
        "allow-list": ({}, {"access": {"allow": [str(_client_link())]}}),
        "ban-list": ({"access": {"ban": {"enabled": False}}}, {}),
    }
    if variant == "geo":
        # Neither side has a LAN (the client's 10.x address would be admitted by it, first):
        # only the database admits the client, after GEO_RANGES other ranges.
        no_lan: Settings = {"access": {"lan": [], "lan_only": []}}
        database = _geo_database()
        geo = {"countries": ["FR"], "database": str(database)}
        return no_lan, {"access": {"lan": [], "lan_only": [], "geo": geo}}
    return variants[variant]


# The proxy's own CPU time per API request, A and B alternately (ABBA): what a per-request
# check costs, charged exactly from the proxy container's cgroup, so that the machine's load
# (which moves latencies by tens of percent) does not enter. One keep-alive connection per
# batch from the bench namespace; the handshake is spread over the batch.
API_CPU_REQUESTS = int(os.environ.get("TUNE_API_CPU_REQUESTS", "400"))
_API_CLIENT = """
import http.client, socket, ssl, sys
address, name, ca = sys.argv[1], sys.argv[3], sys.argv[4]
port, count = int(sys.argv[2]), int(sys.argv[5])
ctx = ssl.create_default_context(cafile=ca)
conn, done, bad = None, 0, 0
while done < count:
    if conn is None:
        conn = http.client.HTTPSConnection(name, port, context=ctx)
        raw = socket.create_connection((address, port), timeout=30)
        conn.sock = ctx.wrap_socket(raw, server_hostname=name)
    conn.request("GET", "/System/Info/Public")
    response = conn.getresponse()
    response.read()
    bad += response.status != 200
    done += 1
    if response.will_close:
        conn.close()
        conn = None
print(bad)
"""


def api_cpu(folders: dict[str, Path], ports: dict[str, int], ca: Path) -> dict[str, Any]:
    """Per side, the proxy container's CPU microseconds per API request, over PAIRS pairs
    in the order A-B-B-A; and B/A per pair."""
    groups = {
        side: Cgroup(runner.container_id(folder, _proxy_service(folder)))
        for side, folder in folders.items()
    }
    per_request: dict[str, list[float]] = {side: [] for side in folders}
    for pair in range(runner.PAIRS):
        order = ("untouched", "tuned") if pair % 2 == 0 else ("tuned", "untouched")
        for side in order:
            before = groups[side].cpu_seconds()
            done = runner.run(
                ["nsenter", f"--net=/run/netns/{runner.NETNS}", "--", sys.executable, "-c",
                 _API_CLIENT, runner.HOST_IP, str(ports[side]), runner.DOMAIN, str(ca),
                 str(API_CPU_REQUESTS)],
                timeout=600, quiet=True,
            )  # fmt: skip
            if done.stdout.strip() != "0":
                raise RuntimeError(f"{side}: {done.stdout.strip()} API requests were not 200")
            spent = groups[side].cpu_seconds() - before
            per_request[side].append(round(spent / API_CPU_REQUESTS * 1e6, 1))
    ratios = sorted(
        t / u for t, u in zip(per_request["tuned"], per_request["untouched"], strict=True) if u
    )
    spread = [round(ratios[1], 3), round(ratios[-2], 3)] if len(ratios) >= 4 else None
    return {
        "requests_per_batch": API_CPU_REQUESTS,
        "cpu_us_per_request": per_request,
        "median_us": {side: runner._median(v) for side, v in per_request.items()},
        "ratio_tuned_vs_untouched": runner._median(ratios),
        "ratio_interval": spread,
        "anon_bytes": {side: group.anon_bytes() for side, group in groups.items()},
    }


def _proxy_service(folder: Path) -> str:
    return str(load_config(folder).proxy)


def _geo_database() -> Path:
    networks = many_networks(GEO_RANGES, "FR", start="1.0.0.0")
    networks[_client_link()] = "FR"
    path = runner.WORK / "geo" / "country.mmdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(write_database(networks))
    return path


# TUNE_HTTP2=1: stream and seek over h2 (the API stays HTTP/1.1, as in `stackgen bench`).
HTTP2 = os.environ.get("TUNE_HTTP2", "") == "1"
UPLOAD_MIB = int(os.environ.get("TUNE_UPLOAD_MIB", "0"))
UPLOADS_PER_RUN = 5
# The stand-in's test endpoint: anonymous, it reads the whole body and answers its size
# and hash, so a proxy that lost bytes is caught (Jellyfin's own uploads need a session).
UPLOAD_PATH = "/__standin/upload"


def images_for_b(proxy: str, variant: str, images: dict[str, str]) -> dict[str, str]:
    """The images of B's stack: for `version-old`, the proxy's old build in place of its
    current one (a tag that is not the current build's, never `local`)."""
    if variant != OLD_VERSION:
        return images
    name = local_image_name(proxy)
    old = f"stackgen-test/{name}:{OLD_TAG}"
    if old == images[name] or OLD_TAG == "local":
        raise RuntimeError(f"TUNE_OLD_TAG={OLD_TAG!r} names the current image {images[name]}")
    return {**images, name: old}


def apply(folder: Path, edits: list[Edit], jellyfin_port: int) -> None:
    for rel, old, new in edits:
        path = folder / rel
        text = path.read_text()
        old = old.replace("JF_PORT", str(jellyfin_port))
        new = new.replace("JF_PORT", str(jellyfin_port))
        if old not in text:
            raise RuntimeError(f"{path}: {old.splitlines()[0]!r} not found")
        path.write_text(text.replace(old, new))


def upload_command(port: int, body: Path, out_dir: Path, ca: Path) -> list[str]:
    """One curl, inside the client namespace, POSTing `body` UPLOADS_PER_RUN times on one
    connection; each answer goes to OUT_DIR/N.json."""
    ep = url_endpoint(
        "upload", runner.https_url(port), resolve={runner.DOMAIN: runner.HOST_IP},
        ca_file=ca, http2=HTTP2,
    )  # fmt: skip
    return [
        "nsenter", f"--net=/run/netns/{runner.NETNS}", "--", curl.curl_path(),
        "-sS", "--noproxy", "*", "--max-time", "120", "--data-binary", f"@{body}",
        "-H", "Content-Type: application/octet-stream",
        "-w", "%{http_code} %{size_upload} %{time_total}\\n", "-o", f"{out_dir}/#1.json",
        *ep.curl_args(), ep.url(f"{UPLOAD_PATH}?n=[1-{UPLOADS_PER_RUN}]"),
    ]  # fmt: skip


def upload_ms(written: str, out_dir: Path, size: int) -> float:
    """The median POST's time (ms) of one run, from curl's -w lines and the stand-in's
    answers; any POST that was refused or lost bytes fails the run."""
    rows = [line.split() for line in written.strip().splitlines()]
    if len(rows) != UPLOADS_PER_RUN:
        raise RuntimeError(f"{len(rows)} of {UPLOADS_PER_RUN} uploads answered: {written!r}")
    for index, (status, sent, _) in enumerate(rows, start=1):
        answer = json.loads((out_dir / f"{index}.json").read_text() or "{}")
        if status != "200" or int(sent) != size or answer.get("bytes") != size:
            raise RuntimeError(f"upload {index}: {status}, sent {sent}, stand-in got {answer}")
    median = runner._median([float(total) * 1000 for _, _, total in rows])
    assert median is not None
    return median


def upload_pairs(ports: dict[str, int], ca: Path) -> dict[str, Any]:
    """UPLOADS_PER_RUN uploads of UPLOAD_MIB per side and pair, A-B-B-A like the bench."""
    size = UPLOAD_MIB << 20
    body = runner.WORK / "upload.bin"
    body.write_bytes(os.urandom(size))
    runs: dict[str, list[float | None]] = {side: [None] * runner.PAIRS for side in ports}
    errors: list[str] = []
    for pair, side in abba_order(runner.PAIRS):
        name = "tuned" if side == "A" else "untouched"
        out_dir = runner.WORK / "uploads" / f"{pair}-{name}"
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        done = runner.run(upload_command(ports[name], body, out_dir, ca), check=False)
        try:
            if done.returncode != 0:
                raise RuntimeError(f"curl exited {done.returncode}: {done.stderr.strip()[-300:]}")
            runs[name][pair] = upload_ms(done.stdout, out_dir, size)
        except (RuntimeError, ValueError, OSError) as error:
            errors.append(f"pair {pair + 1} {name}: {error}"[:300])
    spread = compare_pairs(runs["tuned"], runs["untouched"], "ratio")
    return {
        "mib": UPLOAD_MIB,
        "per_run": UPLOADS_PER_RUN,
        "path": UPLOAD_PATH,
        "upload_ms": runs,
        "compare": spread.to_json() if spread else None,
        "errors": errors,
    }


def wait_healthy(port: int, ca: Path, timeout: float = 120) -> None:
    """Until Jellyfin answers `Healthy` through the proxy, as `stackgen up` waits: a proxy
    that checks its upstream (HAProxy) answers 503 until a check has passed."""
    url = f"{runner.https_url(port)}/health"
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        got = runner.run(
            [curl.curl_path(), "-sS", "--max-time", "5", "--cacert", str(ca),
             "--resolve", f"{runner.DOMAIN}:{port}:{runner.HOST_IP}", url],
            check=False, quiet=True,
        )  # fmt: skip
        if got.returncode == 0 and got.stdout.strip() == "Healthy":
            return
        last = (got.stdout + got.stderr).strip()[-200:]
        time.sleep(1)
    raise RuntimeError(f"{url} not Healthy within {timeout:.0f} s: {last}")


def timed_up(folder: Path) -> float:
    runner.run([str(runner.STACKGEN), "down", "--dir", str(folder)], timeout=300)
    started = time.monotonic()
    runner.run([str(runner.STACKGEN), "up", "--dir", str(folder), "--timeout", "180"], timeout=300)
    return round(time.monotonic() - started, 2)


def paced_control(proxy: str | None) -> int:
    """The paced players against the bare TLS file server (no proxy, no Jellyfin) and, with
    a proxy named, against Jellyfin direct (the stand-in, no TLS) and through that proxy, in
    one run: the machine's, the origin's and the proxy's share of a gap, side by side."""
    out_dir = runner.OUT / "tuning"
    out_dir.mkdir(parents=True, exist_ok=True)
    runner.cleanup()
    try:
        images = runner.build_images_pinned()
        runner.make_netns()
        tls = runner.make_certificate()
        ca = tls / "ca.pem"
        media = runner.WORK / "media" / "media.bin"
        runner.write_media(media, runner.SIZE)
        runner.start_baseline(images["nginx"], tls, media)
        runner.paced_players(
            "tuning/control-paced-streams-ceiling", runner.CEILING_PORT, ca, check_bytes=True
        )
        if proxy is not None:
            folder = runner.init_stack(proxy, "stackgen", images, tls)
            runner.run(
                [str(runner.STACKGEN), "up", "--dir", str(folder), "--timeout", "180"],
                timeout=300,
            )
            runner.wait_media_file(folder)
            runner.origin_players(
                "tuning/control-paced-streams-direct", runner.direct_url("stackgen")
            )
            runner.paced_players(
                f"tuning/control-paced-streams-{proxy}",
                runner.LAYOUT["stackgen"]["https"],
                ca,
                check_bytes=True,
            )
    finally:
        runner.cleanup()
    return 0


def main(proxy: str, variant: str) -> int:
    if variant == "paced-control":
        return paced_control(None if proxy == "baseline" else proxy)
    edits = VARIANTS.get((proxy, variant))
    if variant in SETTING_VARIANTS and proxy in runner.ALL_PROXIES:
        edits = []
    if edits is None:
        known = ", ".join(
            [*(f"{p} {v}" for p, v in VARIANTS), *(f"PROXY {v}" for v in SETTING_VARIANTS)]
        )
        print(f"unknown variant; known: {known}", file=sys.stderr)
        return 2
    out_dir = runner.OUT / "tuning"
    out_dir.mkdir(parents=True, exist_ok=True)
    runner.cleanup()
    result: dict[str, Any] = {
        "proxy": proxy,
        "variant": variant,
        "http": "h2" if HTTP2 else "1.1",
        "edits": [{"file": f, "from": o, "to": n} for f, o, n in edits],
        "loadavg_before": list(os.getloadavg()),
    }
    try:
        images = runner.build_images_pinned()
        runner.make_netns()
        tls = runner.make_certificate()
        settings: tuple[Settings, Settings] = ({}, {})
        if variant in SETTING_VARIANTS:
            settings = setting_variant(variant, images)
            result["settings"] = {"untouched": settings[0], "tuned": settings[1]}
            if variant == "geo":
                result["geo_ranges"] = GEO_RANGES
        a = runner.init_stack(proxy, "stackgen", images, tls, settings[0])
        images_b = images_for_b(proxy, variant, images)
        if variant == OLD_VERSION:
            name = local_image_name(proxy)
            result["images"] = {"untouched": images[name], "tuned": images_b[name]}
        b = runner.init_stack(proxy, "docs", images_b, tls, settings[1])
        apply(b, edits, runner.LAYOUT["docs"]["jellyfin"])
        if variant == "healthcheck":
            ups: dict[str, list[float]] = {"untouched": [], "tuned": []}
            for _ in range(3):
                ups["untouched"].append(timed_up(a))
                runner.run([str(runner.STACKGEN), "down", "--dir", str(a)], timeout=300)
                ups["tuned"].append(timed_up(b))
                runner.run([str(runner.STACKGEN), "down", "--dir", str(b)], timeout=300)
            result["up_seconds"] = ups
        else:
            for folder in (a, b):
                if folder == b and variant == OLD_VERSION:
                    # What `stackgen up` does, without its `check`: that lints for today's
                    # versions and refuses the old spelling the old version needs.
                    runner.compose(folder, "up", "-d", "--wait", "--wait-timeout", "180")
                    wait_healthy(runner.LAYOUT["docs"]["https"], tls / "ca.pem")
                else:
                    runner.run(
                        [str(runner.STACKGEN), "up", "--dir", str(folder), "--timeout", "180"],
                        timeout=300,
                    )
                runner.wait_media_file(folder)
            port_b = runner.LAYOUT["docs"]["https"]
            port_a = runner.LAYOUT["stackgen"]["https"]
            # Beside the summary below, never under its name (an h2 run's would replace
            # the HTTP/1.1 run's summary of the same variant).
            doc = runner.bench(
                f"tuning/{proxy}-{variant}{'-h2' if HTTP2 else ''}-bench",
                port_b,
                [*runner.common(runner.PAIRS),
                 *(["--only", "stream", "--only", "seek"] if variant != "geo" else []),
                 "--only", "api", "--direct", runner.https_url(port_a),
                 *(["--media-path", GATE_MEDIA_PATH] if variant == "gate-token" else []),
                 *(["--http2", "--direct-http2"] if HTTP2 else [])],
                tls / "ca.pem",
            )  # fmt: skip
            result["compare_tuned_vs_untouched"] = {
                name: metric.get("compare") for name, metric in doc["metrics"].items()
            }
            result["medians"] = {
                name: {
                    "tuned": runner._median(metric["proxied"]),
                    "untouched": runner._median(metric["direct"]),
                }
                for name, metric in doc["metrics"].items()
            }
            result["api"] = doc.get("api")
            if UPLOAD_MIB > 0:
                result["uploads"] = upload_pairs(
                    {"tuned": port_b, "untouched": port_a}, tls / "ca.pem"
                )
                result["compare_tuned_vs_untouched"]["upload_ms"] = result["uploads"]["compare"]
            if variant == "geo":
                result["api_cpu"] = api_cpu(
                    {"untouched": a, "tuned": b}, {"untouched": port_a, "tuned": port_b},
                    tls / "ca.pem",
                )  # fmt: skip
    finally:
        runner.cleanup()
    result["loadavg_after"] = list(os.getloadavg())
    (out_dir / f"{proxy}-{variant}{'-h2' if HTTP2 else ''}.json").write_text(
        json.dumps(result, indent=2) + "\n"
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        with slot.holding(runner.SLOT):
            sys.exit(main(sys.argv[1], sys.argv[2]))
    except slot.SlotError as error:
        print(f"bench.tune: {error}", file=sys.stderr)
        sys.exit(2)
