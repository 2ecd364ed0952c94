"""What the pytest plugin needs at startup, kept free of heavy imports.

pytest imports every installed plugin in every run (and in every xdist worker), whether a
test asks for a stack or not; the rest of stackgen.testing is imported on first use.
"""

from __future__ import annotations

from collections.abc import Collection

DEFAULT_DOMAIN = "jellyfin.stackgen.test"
DEFAULT_TIMEOUT = 300


def image_services() -> tuple[str, ...]:
    """Services whose image `--stackgen-image` may replace: `jellyfin` and the keys of
    stackgen.toml's [images] table, which the proxy registry defines (`apache` is the httpd
    image). Imported on use: only a run that passes the option pays for the registry."""
    from stackgen.proxies import registry

    return ("jellyfin", *registry.default_images())


def parse_images(values: Collection[str]) -> dict[str, str]:
    """SERVICE=IMAGE pairs, checked against the services a stack has."""
    images: dict[str, str] = {}
    services = image_services() if values else ()
    for value in values:
        service, sep, image = value.partition("=")
        service = service.strip()
        if not sep or not image.strip():
            raise ValueError(f"--stackgen-image {value!r}: expected SERVICE=IMAGE")
        if service not in services:
            raise ValueError(
                f"--stackgen-image {value!r}: unknown service {service!r} "
                f"(one of: {', '.join(services)})"
            )
        images[service] = image.strip()
    return images
