"""What the pytest plugin needs at startup, kept free of heavy imports.

pytest imports every installed plugin in every run (and in every xdist worker), whether a
test asks for a stack or not; the rest of stackgen.testing is imported on first use.
"""

from __future__ import annotations

from collections.abc import Collection

DEFAULT_DOMAIN = "jellyfin.stackgen.test"
DEFAULT_TIMEOUT = 300
# Services whose image `--stackgen-image` may replace: `jellyfin` and the fields of
# stackgen.toml's [images] table (`apache` is the httpd image); a unit test keeps them equal.
IMAGE_SERVICES = ("jellyfin", "traefik", "caddy", "nginx", "haproxy", "apache", "certbot")


def parse_images(values: Collection[str]) -> dict[str, str]:
    """SERVICE=IMAGE pairs, checked against the services a stack has."""
    images: dict[str, str] = {}
    for value in values:
        service, sep, image = value.partition("=")
        service = service.strip()
        if not sep or not image.strip():
            raise ValueError(f"--stackgen-image {value!r}: expected SERVICE=IMAGE")
        if service not in IMAGE_SERVICES:
            raise ValueError(
                f"--stackgen-image {value!r}: unknown service {service!r} "
                f"(one of: {', '.join(IMAGE_SERVICES)})"
            )
        images[service] = image.strip()
    return images
