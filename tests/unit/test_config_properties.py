"""Property-based: any value of any field of stackgen.toml is refused in one line, or the
stack renders (and stackgen.toml written back reads as the same configuration)."""

from __future__ import annotations

import enum
import ipaddress
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from stackgen.config_file import build_config, dump_config
from stackgen.errors import InvalidInputError
from stackgen.models import ImagesConfig, StackConfig, parse_config
from stackgen.proxies import registry
from stackgen.render import render_stack

BASE: dict[str, Any] = {
    "proxy": "traefik",
    "domain": "jellyfin.example.com",
    "email": "admin@example.com",
}


def field_types(model: type[BaseModel] = StackConfig, prefix: tuple[str, ...] = ()) -> dict:
    """Every field of stackgen.toml (path -> type), nested tables included, from the models."""
    fields: dict[tuple[str, ...], Any] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        nested = [
            t
            for t in (annotation, *typing.get_args(annotation))
            if isinstance(t, type) and issubclass(t, BaseModel)
        ]
        if nested and nested[0] is ImagesConfig:
            # Its fields come from the proxy registry (one image per proxy and helper).
            fields |= {(*prefix, name, image): str for image in registry.default_images()}
        elif nested and typing.get_origin(annotation) is not list:
            fields |= field_types(nested[0], (*prefix, name))
        else:
            fields[(*prefix, name)] = annotation
    return fields


TYPES = field_types()
FIELDS = list(TYPES)

# Values that have broken real tools: separators, quoting, interpolation, paths, unicode.
TRICKY_VALUES = [
    "",
    " ",
    "/",
    "/config",
    "/cache",
    "/media/x",
    "a:b",
    "/srv/a:b",
    "/t:rw:ro",
    "./rel",
    "../up",
    "~/m",
    "$HOME",
    "${X}",
    "$$",
    "a\nb",
    "a\tb",
    '"',
    "'",
    "\\",
    "#",
    "{{ x }}",
    "é",
    "\u202e",
    "0.0.0.0",
    "10.0.0.0/8",
    "172.30.77.0/24",
    "172.30.77.3",
    "::1",
    "1000:1000",
    "0:0",
    "Europe/Paris",
    "Mars/Olympus",
    "https://jf.example.com",
    "http://[::1]:8096/x",
    "not a url",
    "traefik",
    "acme",
    "internal",
    "files",
    "host",
    "bridge",
    "jellyfin/jellyfin:10.11.11",
    "jf.example.com",
    "a@example.com",
    "/jellyfin",
    "SAMEORIGIN",
    "CF_DNS_API_TOKEN",
    "cloudflare",
]
TRICKY = st.sampled_from(TRICKY_VALUES)
SCALAR = st.one_of(
    TRICKY,
    st.text(max_size=30),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-2, max_value=70000),
    st.floats(allow_nan=False, allow_infinity=False),
)
MEDIA = st.fixed_dictionaries(
    {"source": st.one_of(TRICKY, st.text(max_size=20))},
    optional={"target": st.one_of(TRICKY, st.text(max_size=20)), "read_only": SCALAR},
)
VALUE = st.one_of(
    SCALAR,
    st.lists(SCALAR, max_size=3),
    st.lists(MEDIA, max_size=3),
    st.dictionaries(st.text(max_size=8), SCALAR, max_size=2),
)


MEDIA_SOURCES = ["/srv/movies", "/srv/a:b", "./rel", "/srv/tv shows", "/srv/é", "m"]
PLAUSIBLE_MEDIA = st.fixed_dictionaries(
    {"source": st.one_of(st.sampled_from(MEDIA_SOURCES), st.text(max_size=12))},
    optional={
        "target": st.one_of(TRICKY, st.sampled_from(["/media/a", "/data/x y", "/media/é"])),
        "read_only": st.booleans(),
    },
)


# Good values of string fields (besides the default), by field name.
VALID: dict[str, list[str]] = {
    "domain": ["jf.example.com", "a-b.example.org", "x.y.z.example.net"],
    "email": ["me@example.com", "a.b+c@example.org"],
    "subpath": ["", "/jf", "/a/b", "/a.b_~-"],
    "project": ["", "my-stack", "a_b"],
    "run_as": ["1000:1000", "0:0", "4294967295:1"],
    "ca_url": ["https://acme.example.com:14000/dir"],
    "published_url": ["https://jf.example.com/x", "http://10.0.0.2:8096", "http://jellyfin"],
    "timezone": ["Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT+5"],
    "image": ["nginx:1.27", "registry.example.com:5000/a/b:tag", "jellyfin/jellyfin"],
    "config_dir": ["jellyfin/config", "/srv/jf/config", "../cfg", "with space", "é"],
    "dns_provider": ["cloudflare", "route53"],
    "content_security_policy": ["default-src 'self'", "img-src * data:"],
    "cert_file": ["/etc/ssl/a.pem", "certs/a.pem"],
}
VALID["cache_dir"] = VALID["config_dir"]
VALID["key_file"] = VALID["ca_bundle"] = VALID["trust_bundle"] = VALID["cert_file"]
for _name in ("traefik", "caddy", "nginx", "haproxy", "apache", "certbot"):
    VALID[_name] = VALID["image"]


def plausible(path: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """Values of the field's own type: many of them should render."""
    annotation = TYPES[path]
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is list:
        if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            return st.lists(PLAUSIBLE_MEDIA, max_size=3)
        return st.lists(st.sampled_from(["CF_DNS_API_TOKEN", "X_1", "bad name", ""]), max_size=2)
    if typing.get_origin(annotation) is typing.Literal:
        return st.sampled_from(args)
    base = args[0] if args and typing.get_origin(annotation) is not None else annotation
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return st.sampled_from([member.value for member in base])
    if base is bool:
        return st.booleans()
    if base is int:
        return st.integers(min_value=0, max_value=70000)
    if base is ipaddress.IPv4Address:
        return st.ip_addresses(v=4).map(str)
    if base is ipaddress.IPv4Network:
        return st.sampled_from(["172.30.77.0/24", "10.9.0.0/16", "192.168.50.0/29", "10.0.0.0/31"])
    good = VALID.get(path[-1], [])
    return st.one_of(st.sampled_from(good), TRICKY) if good else st.one_of(TRICKY, st.text())


def _with(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    result = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    table = result
    for key in path[:-1]:
        table = table.setdefault(key, {})
    table[path[-1]] = value
    return result


CHANGE = st.sampled_from(FIELDS).flatmap(
    lambda path: st.tuples(st.just(path), st.one_of(plausible(path), VALUE))
)
CHANGES = st.lists(CHANGE, min_size=1, max_size=3)
# Type-correct values only: most render, so the rendered files get judged.
PLAUSIBLE_CHANGES = st.lists(
    st.sampled_from(FIELDS).flatmap(lambda path: st.tuples(st.just(path), plausible(path))),
    min_size=1,
    max_size=4,
)


def refused_or_rendered(data: dict[str, Any], tmp: Path) -> StackConfig | None:
    """None when refused (in one line); the configuration when it renders."""
    try:
        config = build_config(data, tmp, check_paths=False)
        render_stack(config, tmp)
    except InvalidInputError as error:
        assert str(error) and "\n" not in str(error)
        return None
    # What init writes reads back as the same configuration.
    again = parse_config(tomllib.loads(dump_config(config)), tmp, check_paths=False)
    assert again == config
    return config


def test_every_field_is_covered() -> None:
    names = {".".join(path) for path in FIELDS}
    assert {"ports.http", "jellyfin.media", "jellyfin.timezone", "headers.frame_options"} <= names
    assert len(names) >= 35


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,  # CI runs the same examples every time: a red run is a real bug
    suppress_health_check=[HealthCheck.too_slow],
)
@given(CHANGES)
def test_any_value_is_refused_in_one_line_or_renders(
    changes: list[tuple[tuple[str, ...], Any]],
) -> None:
    data = BASE
    for path, value in changes:
        data = _with(data, path, value)
    refused_or_rendered(data, Path("/nonexistent-stack"))


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(PLAUSIBLE_CHANGES)
def test_type_correct_values_are_refused_in_one_line_or_render(
    changes: list[tuple[tuple[str, ...], Any]],
) -> None:
    data = BASE
    for path, value in changes:
        data = _with(data, path, value)
    refused_or_rendered(data, Path("/nonexistent-stack"))


@pytest.mark.parametrize("path", FIELDS, ids=[".".join(p) for p in FIELDS])
def test_each_field_with_tricky_values(path: tuple[str, ...]) -> None:
    values: list[Any] = [True, 1.5, -1, 0, 80, ["x"], {"a": 1}]
    values += TRICKY_VALUES
    for value in values:
        refused_or_rendered(_with(BASE, path, value), Path("/nonexistent-stack"))
