"""`make bench`'s harness (`bench/`): an importable package that takes its proxy facts from
stackgen's registry and writes its results outside the tracked tree."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report, tune
from bench import run as runner
from bench.proxy_facts import certificate_paths, config_targets, local_image_name, proxy_names
from stackgen.models import parse_config
from stackgen.proxies import available
from stackgen.render import render_stack
from tests.unit.import_support import make_cert
from tests.unit.test_cli import stackgen

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "bench" / "fixtures" / "docs-configs"


def _init(tmp_path: Path, proxy: str, *args: str) -> Path:
    """A stack as `bench.run` makes one (`stackgen init`)."""
    stack = tmp_path / "stack"
    result = stackgen(
        "init", proxy, "--domain", "jellyfin.bench.test", "--dir", str(stack), *args
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return stack


def test_the_harness_proxies_are_the_registrys() -> None:
    assert proxy_names() == tuple(available())


@pytest.mark.parametrize("proxy", available())
def test_each_proxy_has_a_test_image_and_a_docs_config(proxy: str) -> None:
    assert (REPO / "tests" / "images" / local_image_name(proxy) / "Dockerfile").is_file()
    assert any((FIXTURES / proxy).iterdir()), f"no Jellyfin-docs config for {proxy}"


@pytest.mark.parametrize("proxy", available())
def test_the_docs_config_goes_where_the_proxy_reads_its_files(proxy: str, tmp_path: Path) -> None:
    """The docs fixtures replace the files the proxy renders, and name the certificate the
    stack's proxy serves (the stack the bench makes: certificates from files)."""
    # A real matched pair: init reads the user's files as untrusted input.
    pair = make_cert("jellyfin.bench.test")
    (tmp_path / "fullchain.pem").write_bytes(pair.chain_pem)
    (tmp_path / "privkey.pem").write_bytes(pair.key_pem)
    stack = _init(
        tmp_path, proxy, "--tls", "files", "--cert-file", str(tmp_path / "fullchain.pem"),
        "--key-file", str(tmp_path / "privkey.pem"),
    )  # fmt: skip
    names = sorted(path.name for path in (FIXTURES / proxy).iterdir())
    targets = config_targets(proxy, stack, names)
    assert sorted(targets) == names
    assert all((stack / target).is_file() for target in targets.values()), targets
    cert, key = certificate_paths(proxy, stack)
    compose = (stack / "docker-compose.yml").read_text()
    assert cert.rsplit("/", 1)[0] in compose  # the folder the stack mounts into the proxy
    assert cert != key


def test_an_unknown_config_file_is_named(tmp_path: Path) -> None:
    stack = _init(tmp_path, "nginx", "--tls", "internal")
    with pytest.raises(RuntimeError, match=r"nginx renders no \['nginx.conf'\]"):
        config_targets("nginx", stack, ["nginx.conf"])


def test_results_go_outside_the_tracked_tree() -> None:
    # The defaults, whatever knobs this run was started with (a BENCH_SLOT moves the work
    # folder to its own work-slotN).
    env = {k: v for k, v in os.environ.items() if k not in ("BENCH_OUT", "BENCH_SLOT")}
    found = subprocess.run(
        [sys.executable, "-c", "from bench import run; print(run.OUT); print(run.WORK)"],
        capture_output=True, text=True, cwd=REPO, env=env, check=True, timeout=60,
    ).stdout.split()  # fmt: skip
    assert [Path(p) for p in found] == [
        REPO / ".cache" / "bench" / "results",
        REPO / ".cache" / "bench" / "work",
    ]
    assert ".cache/" in (REPO / ".gitignore").read_text().splitlines()


def test_the_report_is_written_into_the_results_folder(tmp_path: Path) -> None:
    summary = {
        "started": "2026-01-01T00:00:00Z",
        "finished": "2026-01-01T00:30:00Z",
        "machine": {"nproc": 2, "loadavg_before": [0, 0, 0], "loadavg_after": [1, 1, 1]},
        "knobs": {"proxies": ["nginx"], "configs": ["stackgen"], "http": ["1.1"],
                  "size_bytes": 1, "pairs": 1, "api_seconds": 1, "streams": 0,
                  "stream_seconds": 1, "bitrate_mbps": 1},
        "baselines": {},
        "proxies": {"nginx": {"proxy": "nginx", "error": "the stack did not start"}},
        "goals": [],
    }  # fmt: skip
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert report.main(tmp_path) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "![throughput](plots/throughput.svg)" in text
    assert (tmp_path / "plots" / "throughput.svg").is_file()
    assert "issue" not in text.lower()  # the report stands on its own


def test_the_harness_changes_no_import_path() -> None:
    for path in sorted((REPO / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "path":
                assert not (isinstance(node.value, ast.Name) and node.value.id == "sys"), path
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("tests", "images", "limits")), path


@pytest.mark.parametrize("proxy", available())
def test_a_docs_stack_is_made_as_make_bench_makes_it(
    proxy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bench.run`'s own steps, without the engine: the run's CA, a stack with certificates
    from files, and the docs config in place of the rendered one, every placeholder filled."""
    from bench import run

    def in_process(cmd: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        assert cmd[0] == str(run.STACKGEN), cmd  # only `stackgen` runs here: no engine
        result = stackgen(*cmd[1:])
        assert result.returncode == 0, result.stderr
        return subprocess.CompletedProcess(cmd, 0, result.stdout, result.stderr)

    monkeypatch.setattr(run, "run", in_process)
    monkeypatch.setattr(run, "WORK", tmp_path / "work")
    tls = run.make_certificate()
    images = {name: f"stackgen-test/{name}:local" for name in ("jellyfin-standin", "httpd")}
    images |= {p: f"stackgen-test/{p}:local" for p in available()}
    folder = run.init_stack(proxy, "docs", images, tls)
    assert "STANDIN_MEDIA_BYTES" in (folder / "docker-compose.yml").read_text()
    run.apply_docs_config(proxy, folder)
    names = sorted(p.name for p in (FIXTURES / proxy).iterdir())
    written = {
        name: (folder / target).read_text()
        for name, target in config_targets(proxy, folder, names).items()
    }
    for name, text in written.items():
        assert re.findall(r"@[A-Z_]+@", text) == [], name
        fixture = (FIXTURES / proxy / name).read_text()
        lines = [line for line in fixture.splitlines() if "@" not in line]
        assert all(line in text.splitlines() for line in lines), name  # the docs' own text
    together = "".join(written.values())
    assert run.DOMAIN in together
    assert certificate_paths(proxy, folder)[0] in together


def _judged_summary() -> dict[str, object]:
    """A summary as `bench.run` assembles it, with figures made up here (one proxy)."""
    from bench import run
    from bench.limits import LIMITS_VERSION
    from stackgen.bench.endpoint import TLS13_CIPHER
    from stackgen.bench.goals import GOALS_VERSION

    def interval(median: float, low: float, high: float) -> dict[str, float]:
        return {"median": median, "low": low, "high": high, "n": 8, "coverage": 0.93}

    tls = {"tls": "TLSv1.3", "cipher": TLS13_CIPHER, "alpn": "http/1.1",
           "protocol": "http/1.1", "path": "published port"}  # fmt: skip
    nginx = {
        "proxy": "nginx", "stream_mbps": 300.0, "ceiling_mbps": 360.0, "cpu_s_per_gb": 2.4,
        "ceiling_cpu_s_per_gb": 2.0, "tls": {"proxied": tls, "direct": tls},
        "intervals": {
            "relay_cpu_vs_ceiling": interval(1.2, 1.1, 1.3),  # met
            "h2_vs_h1": interval(0.91, 0.85, 0.97),  # straddles 0.90: inconclusive
            "stream_vs_docs": interval(1.1, 1.0, 1.2),  # missed
        },
        "relay_cpu_vs_ceiling": 1.2, "h2_vs_h1": 0.91, "stream_vs_docs": 1.1,
        "api_errors": 0,
    }  # fmt: skip
    _verdicts, goals = run.judge({"nginx": nginx}, {})
    return {
        "schema": "stackgen-make-bench/2", "goals_version": GOALS_VERSION,
        "limits_version": LIMITS_VERSION,
        "client_cipher": TLS13_CIPHER,
        "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:30:00Z",
        "machine": {"nproc": 2, "loadavg_before": [0, 0, 0], "loadavg_after": [1, 1, 1]},
        "knobs": {"proxies": ["nginx"], "pairs": 8},
        "baselines": {}, "proxies": {"nginx": nginx}, "goals": goals,
    }  # fmt: skip


def test_a_judged_summary_follows_its_schema_and_says_inconclusive(tmp_path: Path) -> None:
    from bench.summary_schema import validate_summary

    summary = _judged_summary()
    assert validate_summary(summary) == []
    goals = {g["key"]: g for g in summary["goals"]}  # type: ignore[attr-defined]
    assert goals["relay_cpu_vs_ceiling"]["state"] == "met"
    assert goals["relay_cpu_vs_ceiling"]["limit"] is None
    assert goals["h2_vs_h1"]["state"] == "inconclusive"
    assert goals["h2_vs_h1"]["limit"].startswith("inconclusive: the median's interval [0.85")
    assert goals["stream_vs_docs"]["state"] == "missed"
    assert goals["rss_growth_mib"]["state"] == "not measured"
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert report.main(tmp_path) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "Judged with goals/2" in text
    assert "| nginx | h2 stream >= 90 % of HTTP/1.1 on the same proxy | 0.91 [0.85, 0.97]" in text
    assert "**inconclusive** |" in text


def test_the_summary_schema_refuses_a_verdict_without_its_version_or_interval() -> None:
    from bench.summary_schema import validate_summary

    summary = _judged_summary()
    del summary["goals_version"]
    del summary["limits_version"]
    goals = summary["goals"]
    assert isinstance(goals, list)
    del goals[0]["low"]
    goals[1]["ok"] = True  # an inconclusive goal reported as met
    problems = validate_summary(summary)
    assert any("'goals_version' is a required property" in p for p in problems)
    assert any("'limits_version' is a required property" in p for p in problems)
    assert any(p.startswith("goals/0") and "'low'" in p for p in problems)
    assert any(p.startswith("goals/1/ok") for p in problems)
    old = _judged_summary()
    old["schema"] = "stackgen-make-bench/1"
    assert any(p.startswith("schema") for p in validate_summary(old))


@pytest.mark.parametrize(
    ("proxy", "variant"),
    sorted(k for k in tune.VARIANTS if k[1] != "healthcheck"),
)
def test_every_tuning_variant_edits_text_the_stack_renders(
    proxy: str, variant: str, tmp_path: Path
) -> None:
    """A variant whose text is no longer rendered would stop `bench.tune` mid-run (after
    two stacks were made): each edit must find its text in a freshly rendered stack."""
    stack = _init(tmp_path, proxy, "--tls", "internal")
    tune.apply(stack, tune.VARIANTS[proxy, variant], 8096)
    for rel, old, new in tune.VARIANTS[proxy, variant]:
        text = (stack / rel).read_text()
        assert new.replace("JF_PORT", "8096") in text
        assert new or old not in text  # a removal removed it


@pytest.mark.parametrize("variant", tune.SETTING_VARIANTS)
@pytest.mark.parametrize("proxy", ["nginx", "traefik"])
def test_every_setting_variant_renders_two_stacks_that_differ(
    proxy: str, variant: str, tmp_path: Path
) -> None:
    """Both sides of a setting variant are valid stackgen.toml tables, and the rendered
    stacks differ (a setting that rendered nothing would measure the noise)."""
    images = {"debian-base": "stackgen-test/debian-base:local"}
    rendered_sides = []
    for side, settings in zip("ab", tune.setting_variant(variant, images), strict=True):
        data = {
            "proxy": proxy, "domain": "jellyfin.bench.test", "email": "admin@example.com",
            "run_as": "1000:1000", "tls": {"mode": "internal"},
        }  # fmt: skip
        config = parse_config(runner._merged(data, settings), tmp_path / side, check_paths=False)
        files, _ = render_stack(config, tmp_path / side)
        rendered_sides.append({f.path: f.content for f in files})
    assert rendered_sides[0] != rendered_sides[1]


def test_the_old_version_variant_swaps_only_the_proxys_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    images = {name: f"stackgen-test/{name}:local" for name in ("httpd", "nginx", "debian-base")}
    monkeypatch.setattr(tune, "OLD_TAG", "previous")
    assert tune.images_for_b("apache", "version-old", images) == {
        **images,
        "httpd": "stackgen-test/httpd:previous",
    }
    assert tune.images_for_b("apache", "keepalive", images) == images
    # The old build under the current build's tag would measure today's version twice.
    monkeypatch.setattr(tune, "OLD_TAG", "local")
    with pytest.raises(RuntimeError, match="names the current image"):
        tune.images_for_b("nginx", "version-old", images)


def test_the_old_nginx_gets_the_http2_spelling_it_parses(tmp_path: Path) -> None:
    """nginx 1.22 stops at `http2 on;` (unknown before 1.25.1): its side of the comparison
    is the `listen ... http2` that stackgen rendered for it."""
    stack = _init(tmp_path, "nginx", "--tls", "internal")
    tune.apply(stack, tune.VARIANTS["nginx", "version-old"], 8096)
    text = (stack / "nginx" / "conf.d" / "jellyfin.conf").read_text()
    assert "\n    http2 on;" not in text  # the directive (the header comment names it)
    assert "    listen 443 ssl http2 default_server;\n" in text


@pytest.mark.parametrize("tag", ["local", "mine", "Not-A-Tag", ""])
def test_an_old_build_never_takes_a_tag_tests_use(
    tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench import old_images

    monkeypatch.setenv("STACKGEN_TEST_IMAGE_TAG", "mine")
    with pytest.raises(old_images.OldImageError) as refused:
        old_images.check_tag(tag)
    assert refused.value.exit_code == 2
    old_images.check_tag("previous")


def _uploads(folder: Path, answers: list[tuple[str, int, int]]) -> str:
    """curl's -w lines for uploads answered (status, bytes sent, bytes the stand-in got)."""
    lines = []
    for index, (status, sent, got) in enumerate(answers, start=1):
        (folder / f"{index}.json").write_text(json.dumps({"bytes": got, "sha256": "x"}))
        lines.append(f"{status} {sent} 0.{index}00")
    return "\n".join(lines) + "\n"


def test_an_upload_run_is_its_median_post_and_fails_on_a_lost_byte(tmp_path: Path) -> None:
    size = 20 << 20
    full = [("200", size, size)] * tune.UPLOADS_PER_RUN
    assert tune.upload_ms(_uploads(tmp_path, full), tmp_path, size) == pytest.approx(300.0)
    for bad in (("200", size, size - 1), ("413", size, 0), ("200", size - 1, size - 1)):
        written = _uploads(tmp_path, [*full[:-1], bad])
        with pytest.raises(RuntimeError, match="upload 5"):
            tune.upload_ms(written, tmp_path, size)
    with pytest.raises(RuntimeError, match="4 of 5 uploads"):
        tune.upload_ms(_uploads(tmp_path, full[:-1]), tmp_path, size)
