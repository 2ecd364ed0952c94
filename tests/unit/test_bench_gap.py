"""`stackgen bench --ceiling` and `--via both`: the gap split into TLS, the proxy's relay
and docker-proxy, from pairs run side by side; the bare TLS server's locked-down start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from stackgen import engine
from stackgen.bench import ceiling, gap, measure, report, schema
from stackgen.bench.endpoint import PATH_CONTAINER, PATH_LOOPBACK, url_endpoint
from stackgen.errors import InvalidInputError
from stackgen.stack import Stack
from tests.unit.test_bench import _doc, _target

MBPS = {
    "proxied": [200.0, None, 240.0],
    "ceiling": [400.0, 410.0, 400.0],
    "plain": [1000.0, 1025.0, 800.0],
    "published": [100.0, 90.0, 120.0],
}


def test_each_part_is_a_per_pair_ratio_and_a_failed_run_leaves_a_hole() -> None:
    found = gap.split(MBPS, {"proxied": [3.0, 3.0, 4.0], "ceiling": [2.0, 2.0, 2.0]})
    parts = found["parts"]
    assert parts["tls"]["n"] == 3 and parts["tls"]["median"] == pytest.approx(0.4)
    # Pair 1's proxied run failed: relay and docker-proxy come from pairs 0 and 2 only.
    assert parts["relay"]["n"] == 2
    assert (parts["relay"]["min"], parts["relay"]["max"]) == (0.5, 0.6)
    assert (parts["docker_proxy"]["min"], parts["docker_proxy"]["max"]) == (0.5, 0.5)
    assert found["relay_cpu"]["median"] == 1.5  # 3/2, 3/2, 4/2
    assert found["stream_mbps"] == MBPS


def test_a_part_whose_side_did_not_run_is_null() -> None:
    found = gap.split({k: v for k, v in MBPS.items() if k != "published"})
    assert found["parts"]["docker_proxy"] is None and found["relay_cpu"] is None
    assert found["parts"]["relay"] is not None


def test_every_extra_side_goes_first_in_turn() -> None:
    sides = list(gap.EXTRA_SIDES)
    firsts = [gap.rotation(sides, pair)[0] for pair in range(len(sides))]
    assert sorted(firsts) == sorted(sides)
    assert all(sorted(gap.rotation(sides, p)) == sorted(sides) for p in range(7))
    assert gap.rotation([], 3) == []


def _with_gap() -> dict[str, Any]:
    doc = _doc()
    doc["gap"] = gap.split(MBPS)
    doc["gap"]["sides"] = {
        "ceiling": _target(PATH_CONTAINER),
        "plain": {**_target(PATH_CONTAINER), "tls": None, "cipher": None, "alpn": None},
        "published": _target(PATH_LOOPBACK),
    }
    return doc


def test_the_schema_takes_a_gap_and_names_what_is_wrong_in_one() -> None:
    doc = _with_gap()
    assert schema.validate(doc) == []
    del doc["gap"]["parts"]["tls"]
    doc["gap"]["parts"]["relay"]["kind"] = "added"
    doc["gap"]["sides"]["bogus"] = _target()
    doc["gap"]["stream_mbps"]["proxied"] = ["fast"]
    problems = schema.validate(doc)
    assert any(p.startswith("gap.parts must name exactly") for p in problems), problems
    assert "gap.parts.relay must be a ratio" in problems
    assert any(p.startswith("gap.sides must name") for p in problems), problems
    assert "gap.stream_mbps must map each side to its runs" in problems


def test_the_table_prints_the_split_with_its_intervals() -> None:
    table = report.render_table(_with_gap())
    assert "gap (full GET, per pair, median [interval]):" in table
    assert "  tls: x0.40 [" in table and "TLS itself" in table
    assert "  relay: x0.55 [0.50, 0.60] (n=2)" in table
    assert "  docker-proxy: x0.50 [" in table
    assert "gap (full GET" not in report.render_table(_doc())


def test_the_extra_sides_stream_right_after_the_proxied_side_in_a_rotating_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[tuple[int, str]] = []
    figures = {"proxied": 200.0, "direct": 300.0, "ceiling": 400.0, "plain": 1000.0}

    def stream(ep: Any, _size: int, _s: Any, got: Any, _group: Any) -> str:
        ran.append((got.pair, ep.name))
        if (got.pair, ep.name) == (1, "plain"):
            raise OSError("refused")  # a failed run: a hole, not a shift
        got.add("stream_mbps", ep.name, figures[ep.name])
        return "ok"

    monkeypatch.setattr(measure, "media_size", lambda *_: 1000)
    monkeypatch.setattr(measure, "_negotiated", lambda *_: {"tls": None, "cipher": None,
                                                            "alpn": None})  # fmt: skip
    monkeypatch.setattr(measure, "_stream", stream)
    monkeypatch.setattr(measure.curl, "curl_version", lambda: "curl")

    def ep(name: str) -> Any:
        return url_endpoint(name, "http://jf.test:8096", resolve={}, ca_file=None, http2=False)

    settings = measure.BenchSettings(pairs=3, only=frozenset({"stream"}), streams=0, seeks=1)
    doc = measure.run_bench(
        ep("proxied"), ep("direct"), settings, lambda _m: None,
        extras={"ceiling": ep("ceiling"), "plain": ep("plain")},
    )  # fmt: skip
    assert ran == [
        (0, "proxied"), (0, "ceiling"), (0, "plain"), (0, "direct"),
        (1, "direct"), (1, "proxied"), (1, "plain"), (1, "ceiling"),
        (2, "proxied"), (2, "ceiling"), (2, "plain"), (2, "direct"),
    ]  # fmt: skip
    assert doc["gap"]["stream_mbps"]["plain"] == [1000.0, None, 1000.0]
    assert doc["gap"]["parts"]["tls"]["n"] == 2
    assert doc["gap"]["parts"]["relay"]["median"] == 0.5
    assert set(doc["gap"]["sides"]) == {"ceiling", "plain"}
    assert any("pair 2/3 plain: stream failed" in e for e in doc["errors"])
    with pytest.raises(ValueError, match="unknown extra side"):
        measure.run_bench(ep("proxied"), None, settings, lambda _m: None,
                          extras={"bogus": ep("x")})  # fmt: skip


LAYOUT = engine.ContainerLayout(
    user="1000:1000",
    networks={"demo_proxy": "172.30.77.2"},
    mounts=(
        engine.ContainerMount("/srv/demo/nginx/conf.d", "/etc/nginx/conf.d"),
        engine.ContainerMount("/srv/demo/certs", "/etc/stackgen/certs"),
        engine.ContainerMount("/srv/demo", "/etc/stackgen"),
    ),
)


def test_the_ceiling_mounts_the_proxys_own_certificate_folder_read_only() -> None:
    paths = ("/etc/stackgen/certs/fullchain.pem", "/etc/stackgen/certs/privkey.pem")
    assert ceiling._mounts_for(paths, LAYOUT) == [("/srv/demo/certs", "/etc/stackgen/certs")]
    with pytest.raises(InvalidInputError, match="no mount of the proxy container holds /x"):
        ceiling._mounts_for(("/x/cert.pem",), LAYOUT)
    assert ceiling._network_of("172.30.77.2", LAYOUT) == "demo_proxy"


def test_the_ceiling_config_serves_one_file_over_tls13_and_plain() -> None:
    conf = ceiling.NGINX_CONF.format(tls_port=8443, plain_port=8080, cert="/c", key="/k")
    assert "listen 8443 ssl;" in conf and "listen 8080;" in conf
    assert "ssl_protocols TLSv1.3;" in conf and "ssl_certificate_key /k;" in conf
    assert "pid /tmp/nginx.pid;" in conf  # the root file system is read-only


def _stack(tmp_path: Path, proxy: str, *args: str) -> Stack:
    from tests.unit.test_bench_harness import _init

    return Stack.load(_init(tmp_path, proxy, *args))


def test_the_ceiling_refuses_a_certificate_kept_in_acme_storage(tmp_path: Path) -> None:
    stack = _stack(tmp_path, "traefik", "--tls", "acme", "--email", "admin@bench.test")
    with pytest.raises(InvalidInputError, match="own ACME storage, not in PEM files"):
        ceiling._served_paths(stack)


def test_the_ceiling_refuses_a_proxy_running_as_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = _stack(tmp_path, "nginx", "--tls", "internal")
    monkeypatch.setattr(type(stack.target), "proxy_container", lambda *_: ("c0ffee", []))
    monkeypatch.setattr(engine, "container_layout", lambda _id: engine.ContainerLayout("", {}, ()))
    proxied = url_endpoint("proxied", "https://jf.test", resolve={}, ca_file=None, http2=False)
    with (
        pytest.raises(InvalidInputError, match="this proxy runs as root"),
        ceiling.ceiling_server(stack, proxied, media_path="/v", size=10, image="x", timeout=1),
    ):
        pass
    big = ceiling.MAX_MEDIA_BYTES + 1
    with (
        pytest.raises(InvalidInputError, match="copies the media file"),
        ceiling.ceiling_server(stack, proxied, media_path="/v", size=big, image="x", timeout=1),
    ):
        pass


@pytest.mark.skipif(os.geteuid() != 0, reason="handing files to another user needs root")
def test_the_scratch_copy_of_the_media_is_for_the_servers_user_only(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "media.bin").write_bytes(b"x")
    ceiling._readable_by(scratch, "1000:1001")
    for path, mode in ((scratch, 0o700), (scratch / "media.bin", 0o600)):
        info = path.stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (1000, 1001, mode), path
