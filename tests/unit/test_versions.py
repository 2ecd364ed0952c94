"""The versions a generated stack runs by default are the versions the tests run.

Each default image (`stackgen/proxies/*/__init__.py`, the certbot service) names an official
image whose local substitute (tests/images/) pins the version it is built at. The two must
agree in major.minor: a default moved without its test image (or the reverse) would prove
the end-to-end matrix on a version users never get. The README's "tested with" table is
generated from the same pins and must be the generated one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stackgen.proxies.registry import SERVICE_IMAGES, default_images
from tests.unit.test_images_manifest import build

README = Path(__file__).resolve().parents[2] / "README.md"


def major_minor(version: str) -> tuple[int, int]:
    match = re.match(r"v?(\d+)\.(\d+)(?:\.|$)", version)
    assert match, f"not a version: {version!r}"
    return int(match.group(1)), int(match.group(2))


def default_pairs() -> list[tuple[str, str]]:
    """(default image, its substitute's name) for every image a stack names by default."""
    pairs = []
    for image in default_images().values():
        repository, _, _tag = image.partition(":")
        pairs.append((image, build.SUBSTITUTES[repository]))
    # The DNS-01 stacks' certbot: certbot's per-plugin image at the same tag (the stacks'
    # own derivation is checked in test_dns).
    dns_image = SERVICE_IMAGES["certbot"].replace("certbot/certbot:", "certbot/dns-rfc2136:")
    pairs.append((dns_image, build.SUBSTITUTES[dns_image.partition(":")[0]]))
    return pairs


def drift(image: str, substitute: str, tested: str) -> str | None:
    """Why a default image and its substitute's pinned version disagree, or None."""
    tag = image.partition(":")[2]
    if major_minor(tag) == major_minor(tested):
        return None
    return f"stacks default to {image} but tests/images/{substitute} is built at {tested}"


@pytest.mark.parametrize(("image", "substitute"), default_pairs())
def test_default_image_and_tested_version_agree_in_major_minor(image: str, substitute: str) -> None:
    problem = drift(image, substitute, build.tested_version(build.SPECS[substitute]))
    assert problem is None, f"{problem}: move both together"


def test_every_default_image_has_a_pinned_substitute() -> None:
    names = {substitute for _image, substitute in default_pairs()}
    assert {"traefik", "caddy", "nginx", "haproxy", "httpd", "certbot", "certbot-dns"} <= names


def test_major_minor_reads_official_tags() -> None:
    assert major_minor("v3.7.15") == (3, 7)
    assert major_minor("1.30.6") == (1, 30)
    assert major_minor("2.4") == (2, 4)
    with pytest.raises(AssertionError):
        major_minor("latest")


def test_drift_is_caught() -> None:
    assert drift("nginx:1.28.0", "nginx", "1.30.6") is not None  # a default left behind
    assert drift("certbot/certbot:v4.2.0", "certbot", "5.8.0") is not None  # another major
    assert drift("nginx:1.30.0", "nginx", "1.30.6") is None  # patch releases may differ


def test_tested_versions_come_from_the_pins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "nginx").mkdir()
    (tmp_path / "nginx" / "Dockerfile").write_text("FROM x\nENV NGINX_VERSION=1.31.2\n")
    (tmp_path / "certbot").mkdir()
    (tmp_path / "certbot" / "requirements.txt").write_text("# pins\nacme==9.1.0\ncertbot==9.1.0\n")
    monkeypatch.setattr(build, "IMAGES_DIR", tmp_path)
    assert build.tested_version(build.SPECS["nginx"]) == "1.31.2"
    assert build.tested_version(build.SPECS["certbot"]) == "9.1.0"
    (tmp_path / "certbot" / "requirements.txt").write_text("certbot>=9\n")
    with pytest.raises(build.ImageBuildError, match="not an exact pin"):
        build.tested_version(build.SPECS["certbot"])


def test_readme_tested_with_table_is_generated_from_the_images() -> None:
    text = README.read_text()
    assert text == build.replace_tested_with(text), (
        "README's tested-with table is stale: run "
        "`python tests/images/build.py --tested-with README.md`"
    )
