"""The substitute-image manifest (tests/images/build.py), checked without Docker.

Catches the mistakes that would otherwise surface minutes into a CI build: an image
folder without a Dockerfile, a Dockerfile that does not build on the local base, an
entrypoint script committed without its executable bit, a cache hash that ignores a
changed file.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

IMAGES_DIR = Path(__file__).resolve().parents[1] / "images"


def load_builder() -> ModuleType:
    # Loaded by path under its own name: "build" is also the PyPA package's name.
    spec = importlib.util.spec_from_file_location("stackgen_image_build", IMAGES_DIR / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build = load_builder()
DOCKERFILE_IMAGES = [
    name
    for name in build.SPECS
    if name not in build.DEBIAN_BASES and build.is_present(build.SPECS[name])
]


def test_every_official_image_has_a_substitute() -> None:
    official = {
        "traefik",
        "caddy",
        "nginx",
        "haproxy",
        "httpd",
        "certbot/certbot",
        "jellyfin/jellyfin",
    }
    assert official <= set(build.SUBSTITUTES)
    assert build.SUBSTITUTES["jellyfin/jellyfin"] == "jellyfin-standin"


def test_tags_follow_one_scheme() -> None:
    # STACKGEN_TEST_IMAGE_TAG moves every tag at once (parallel checkouts); the scheme holds
    # whichever tag the run uses.
    assert (os.environ.get("STACKGEN_TEST_IMAGE_TAG") or "local") == build.TAG_VERSION
    for name, spec in build.SPECS.items():
        assert spec.tag == f"stackgen-test/{name}:{build.TAG_VERSION}"


# Images that build on another substitute rather than on a Debian base.
CHILD_IMAGES = {"certbot-dns": "certbot"}


@pytest.mark.parametrize("name", DOCKERFILE_IMAGES)
def test_dockerfile_builds_on_a_local_base(name: str) -> None:
    bases = build.dockerfile_bases(build.SPECS[name])
    if name in CHILD_IMAGES:
        assert bases == [CHILD_IMAGES[name]]
    else:
        assert len(bases) == 1 and bases[0] in build.DEBIAN_BASES


def test_the_proxies_users_get_build_on_testing() -> None:
    for name in ("nginx", "haproxy", "httpd"):
        assert build.dockerfile_bases(build.SPECS[name]) == [build.FORKY_BASE]
    assert build.mmdebstrap_args(build.FORKY_BASE)[-2:] == ("forky", "-")
    # The Debian 12 base keeps its recipe: its hash (and every image on it) stays cached.
    assert build.mmdebstrap_args(build.BASE)[-2:] == ("bookworm", "-")
    assert not any("aptopt" in arg for arg in build.mmdebstrap_args(build.BASE))


# Instructions of the official images that stacks rely on (command semantics, users,
# graceful stop signals). A substitute drifting from them would test the wrong thing.
OFFICIAL_CONTRACT = {
    "traefik": ['ENTRYPOINT ["/entrypoint.sh"]', 'CMD ["traefik"]'],
    "caddy": [
        'CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]',
        "ENV XDG_CONFIG_HOME=/config",
        "ENV XDG_DATA_HOME=/data",
    ],
    "nginx": [
        'ENTRYPOINT ["/docker-entrypoint.sh"]',
        'CMD ["nginx", "-g", "daemon off;"]',
        "STOPSIGNAL SIGQUIT",
    ],
    "haproxy": [
        'ENTRYPOINT ["docker-entrypoint.sh"]',
        'CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]',
        "USER haproxy",
        "STOPSIGNAL SIGUSR1",
    ],
    "httpd": ['CMD ["httpd-foreground"]', "STOPSIGNAL SIGWINCH", "WORKDIR /usr/local/apache2"],
    "certbot": [
        'ENTRYPOINT ["certbot"]',
        "VOLUME /etc/letsencrypt /var/lib/letsencrypt",
    ],
}


@pytest.mark.parametrize("name", sorted(OFFICIAL_CONTRACT))
def test_dockerfile_keeps_the_official_contract(name: str) -> None:
    lines = {line.strip() for line in (IMAGES_DIR / name / "Dockerfile").read_text().splitlines()}
    missing = [line for line in OFFICIAL_CONTRACT[name] if line not in lines]
    assert not missing, f"{name}/Dockerfile lost official instructions: {missing}"


def test_build_order_puts_the_base_first() -> None:
    groups = build.waves(DOCKERFILE_IMAGES)
    assert groups[0] == sorted(build.DEBIAN_BASES)
    assert sorted(name for group in groups[1:] for name in group) == sorted(DOCKERFILE_IMAGES)


def test_hashes_are_stable_and_chain_through_the_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = tmp_path / "images"
    for name in (build.BASE, "nginx"):
        (images / name).mkdir(parents=True)
    (images / build.BASE / "policy-rc.d").write_text("exit 101\n")
    dockerfile = images / "nginx" / "Dockerfile"
    dockerfile.write_text("FROM stackgen-test/debian-base:local\nRUN true\n")
    monkeypatch.setattr(build, "IMAGES_DIR", images)

    first = build.content_hashes(["nginx"])
    assert first == build.content_hashes(["nginx"])
    assert set(first) == {"nginx", build.BASE}

    (images / "nginx" / "README.md").write_text("docs only\n")
    (images / "nginx" / "__pycache__").mkdir()
    (images / "nginx" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert build.content_hashes(["nginx"]) == first

    dockerfile.chmod(0o755)
    assert build.content_hashes(["nginx"])["nginx"] != first["nginx"]
    dockerfile.chmod(0o644)

    (images / build.BASE / "policy-rc.d").write_text("exit 0\n")
    changed = build.content_hashes(["nginx"])
    assert changed[build.BASE] != first[build.BASE]
    assert changed["nginx"] != first["nginx"]


def test_unknown_and_missing_images_are_usage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(build.ImageBuildError) as unknown:
        build.select(["no-such-image"])
    assert unknown.value.exit_code == 2

    monkeypatch.setattr(build, "IMAGES_DIR", tmp_path)  # no image folders at all
    with pytest.raises(build.ImageBuildError) as missing:
        build.select(["jellyfin-standin"])
    assert missing.value.exit_code == 2
    with pytest.raises(build.ImageBuildError, match="traefik: missing"):
        build.select(None)  # only the optional stand-in may be absent by default

    for spec in build.SPECS.values():
        if not spec.optional and spec.name not in build.DEBIAN_BASES:
            (tmp_path / spec.name).mkdir()
            (tmp_path / spec.name / "Dockerfile").write_text("FROM scratch\n")
    selected = [spec.name for spec in build.select(None)]
    assert "jellyfin-standin" not in selected
    assert build.BASE in selected
