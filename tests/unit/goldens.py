"""The golden files' layout: every case of the rendering matrix, each rendered file kept once.

A case is one stack configuration, named by the inputs that vary across the matrix
(`DIMENSIONS`). Each rendered file (one per template output: `docker-compose.yml`,
`nginx/conf.d/jellyfin.conf`, `certbot/run.sh`, ...) is snapshotted under
`files/<rendered path>/<variant>`, one file per distinct content. The variant is named by
the inputs the content depends on across the matrix and the values they take where it is
rendered: `certbot/watch-certs.sh/any` is the same for all 74 stacks that render it,
`certbot/run.sh/caddy,nginx,haproxy,apache+compose+acme-dns` is one file for four proxies,
and `traefik/traefik.toml/internal,files+none` says the static file does not change between
those two certificate sources. `index.toml` says, for every case and every file it renders,
which variant holds its bytes: a case whose output moves to another variant is a diff of one
line. `stacks/` holds twelve whole stacks, one file each, to read a complete stack at a glance.

Building the tree is pure (`golden_tree`): the test compares it with the files on disk, and
`make golden` writes it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackgen.models import TlsMode, parse_config
from stackgen.proxies import available, get_proxy
from stackgen.render import render_stack

GOLDEN = Path(__file__).parent.parent / "golden"
UPDATE_VARIABLE = "STACKGEN_UPDATE_GOLDEN"

# The inputs a case varies, in the order variant names spell them.
DIMENSIONS = ("proxy", "target", "network", "subpath", "tls", "option")

TLS_CASES: dict[str, dict[str, Any]] = {
    "acme": {"mode": "acme"},
    "acme-tls-alpn": {"mode": "acme-tls-alpn"},
    "acme-dns": {"mode": "acme-dns", "dns_provider": "cloudflare", "dns_env": ["CF_DNS_API_TOKEN"]},
    # The old docs' Traefik example, on any proxy: one certificate for the zone, DNS-01
    # through RFC 2136 (bind9), no port 80.
    "acme-dns-wildcard": {
        "mode": "acme-dns",
        "dns_provider": "rfc2136",
        "wildcard": True,
        "dns_resolvers": ["192.0.2.53:53"],
        "dns_propagation_seconds": 10,
    },
    "internal": {"mode": "internal"},
    "files": {
        "mode": "files",
        "cert_file": "/etc/ssl/jf/fullchain.pem",
        "key_file": "/etc/ssl/jf/privkey.pem",
    },
    "private-ca": {
        "mode": "acme",
        "ca_url": "https://acme.internal.example:14000/dir",
        "ca_bundle": "pebble.minica.pem",
    },
}

# The client-facing options, each on top of the root/acme/host case.
OPTION_CASES: dict[str, dict[str, Any]] = {
    "no-http2": {"http2": False},
    "http3": {"http3": True},
    "lan-url": {
        "jellyfin": {
            "lan_url": "http://192.168.1.10:8096",
            "lan_subnets": ["192.168.1.0/24", "fd12:3456:789a::/64"],
        }
    },
    "ipv6": {"ipv6": True},
    # The token gate (docs/access.md): its service, its script and each proxy's sub-request.
    "gate-token": {"access": {"gate": {"mode": "token"}}},
    # The ban list's feeder also fed by the proxy's failed logins (docs/access.md): the
    # receiver, the second jail, each proxy's datagrams (or the reason it sends none).
    "ban-proxy-log": {"access": {"ban": {"proxy_log": True}}},
}

# Whole stacks kept in one file each (`stacks/<case>.txt`): every proxy, every target (both
# sides of edge-home), both Jellyfin networks, a subpath, each certificate source, and the
# client options.
WHOLE_STACKS = (
    "traefik-root-acme-host",
    "caddy-subpath-acme-bridge",
    "nginx-root-acme-dns-wildcard-bridge",
    "haproxy-subpath-internal-host",
    "apache-root-files-bridge",
    "traefik-ipv6",
    "haproxy-lan-url",
    "apache-gate-token",
    "swarm-traefik-host",
    "swarm-nginx-bridge-subpath",
    "swarm-caddy-bridge-http3",
    "edge-nginx",
    "home-nginx-root",
)


class GoldenUpdateRefused(RuntimeError):
    """An update was asked for where the goldens must only be checked (CI)."""


def update_requested(env: Mapping[str, str]) -> bool:
    """True when `make golden` asks for the files to be rewritten. Under CI an update would
    make the comparison pass by construction: refused."""
    if env.get(UPDATE_VARIABLE) != "1":
        return False
    if env.get("CI", "").strip().lower() in {"true", "1", "yes"}:
        raise GoldenUpdateRefused(
            f"{UPDATE_VARIABLE}=1 is refused under CI=true: CI checks the golden files, "
            "`make golden` on a workstation rewrites them"
        )
    return True


@dataclass(frozen=True)
class Case:
    name: str
    inputs: dict[str, str]  # one value per DIMENSIONS entry
    settings: dict[str, Any] = field(default_factory=dict)  # extra stackgen.toml settings


def _supports(proxy: str, option: str) -> bool:
    return not OPTION_CASES[option].get("http3") or get_proxy(proxy).supports_http3


def cases() -> list[Case]:
    """The matrix: proxies x subpath x TLS mode x Jellyfin network (modes a proxy implements:
    the others are refused, asserted in the proxies' own tests); each client option on the
    root/acme/host stack (where the proxy offers it); and the swarm target (both networks,
    a subpath and HTTP/3 on bridge; DNS-01 for lego and for certbot)."""
    found = []
    for proxy, subpath, tls, network in itertools.product(
        available(), ["root", "subpath"], TLS_CASES, ["host", "bridge"]
    ):
        if TlsMode(TLS_CASES[tls]["mode"]) not in get_proxy(proxy).tls_modes:
            continue
        inputs = _inputs(proxy, "compose", network, subpath, tls, "none")
        found.append(Case(f"{proxy}-{subpath}-{tls}-{network}", inputs))
    for proxy, option in itertools.product(available(), OPTION_CASES):
        if _supports(proxy, option):
            inputs = _inputs(proxy, "compose", "host", "root", "acme", option)
            found.append(Case(f"{proxy}-{option}", inputs, OPTION_CASES[option]))
    for proxy, network, option in itertools.product(
        available(), ["host", "bridge"], ["", "subpath", "http3"]
    ):
        if (option and network != "bridge") or (option == "http3" and not _supports(proxy, option)):
            continue
        deploy: dict[str, Any] = {"target": "swarm"}
        if network == "host":
            deploy["media_address"] = "192.0.2.10"
            deploy["edge_addresses"] = ["192.0.2.20"]
            deploy["allow_plain_media_link"] = True
        settings: dict[str, Any] = {"deploy": deploy}
        if option == "http3":
            settings["http3"] = True
        subpath = "subpath" if option == "subpath" else "root"
        client = "http3" if option == "http3" else "none"
        inputs = _inputs(proxy, "swarm", network, subpath, "acme", client)
        name = "-".join(part for part in ("swarm", proxy, network, option) if part)
        found.append(Case(name, inputs, settings))
    # DNS-01 on a swarm: the credentials as secrets, for lego (Traefik) and for certbot.
    for proxy in ("traefik", "nginx"):
        inputs = _inputs(proxy, "swarm", "bridge", "root", "acme-dns", "none")
        found.append(Case(f"swarm-{proxy}-bridge-dns", inputs, {"deploy": {"target": "swarm"}}))
    for proxy, option in itertools.product(available(), ["", "subpath", "http3"]):
        if option == "http3" and not _supports(proxy, option):
            continue
        edge: dict[str, Any] = {"deploy": {**EDGE_HOME, "side": "edge"}, **EDGE_HOME_GATE}
        if option == "http3":
            edge["http3"] = True
        subpath = "subpath" if option == "subpath" else "root"
        client = "http3" if option == "http3" else "none"
        inputs = _inputs(proxy, "edge", "bridge", subpath, "acme", client)
        name = "-".join(part for part in ("edge", proxy, option) if part)
        found.append(Case(name, inputs, edge))
    # Home runs no proxy: its files are the same whatever the proxy (the matrix shows it).
    for proxy, subpath in itertools.product(available(), ["root", "subpath"]):
        inputs = _inputs(proxy, "home", "bridge", subpath, "acme", "none")
        found.append(
            Case(
                f"home-{proxy}-{subpath}",
                inputs,
                {"deploy": {**EDGE_HOME, "side": "home"}, **EDGE_HOME_GATE},
            )
        )
    return found


# Each side of an edge-home pair, as `init --target edge-home` writes its stackgen.toml.
EDGE_HOME: dict[str, Any] = {"target": "edge-home", "edge_host": "edge.example.com"}
# `init` turns the token gate on for this target (its `init_defaults`).
EDGE_HOME_GATE: dict[str, Any] = {"access": {"gate": {"mode": "token"}}}


def _inputs(*values: str) -> dict[str, str]:
    return dict(zip(DIMENSIONS, values, strict=True))


def render_case(case: Case, tmp: Path) -> dict[str, bytes]:
    """Every file the case renders, by path; state files (keys, acme.json: random or empty,
    their presence is asserted elsewhere) left out."""
    inputs = case.inputs
    jellyfin: dict[str, Any] = {
        "network_mode": inputs["network"],
        "media": [{"source": "/srv/media/movies"}],
    }
    extra = dict(case.settings)
    jellyfin.update(extra.pop("jellyfin", {}))
    config = parse_config(
        {
            "proxy": inputs["proxy"],
            "domain": "jellyfin.example.com",
            "email": "admin@example.com",
            "subpath": "/jellyfin" if inputs["subpath"] == "subpath" else "",
            "run_as": "1000:1000",
            "tls": TLS_CASES[inputs["tls"]],
            "jellyfin": jellyfin,
            **extra,
        },
        tmp,
        check_paths=False,
    )
    files, _ = render_stack(config, tmp)
    return {f.path: f.content for f in files if not f.state}


def render_matrix(tmp: Path) -> dict[str, dict[str, bytes]]:
    rendered = {}
    for case in cases():
        folder = tmp / case.name
        folder.mkdir(parents=True)
        rendered[case.name] = render_case(case, folder)
    return rendered


def reads(
    contents: Mapping[str, bytes], inputs: Mapping[str, Mapping[str, str]]
) -> tuple[str, ...]:
    """The fewest inputs whose values determine a file's content across the cases that
    render it (`contents`: case -> bytes); the first such set in DIMENSIONS order."""
    for size in range(len(DIMENSIONS) + 1):
        for subset in itertools.combinations(DIMENSIONS, size):
            seen: dict[tuple[str, ...], bytes] = {}
            if all(
                seen.setdefault(tuple(inputs[case][d] for d in subset), content) == content
                for case, content in contents.items()
            ):
                return subset
    raise AssertionError("unreachable: all inputs together name one case")


def variant_names(
    contents: Mapping[str, bytes], inputs: Mapping[str, Mapping[str, str]], order: Iterable[str]
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The inputs a file reads and, for each case, the variant holding its bytes. A variant
    is named by the values those inputs take across the cases that render its bytes, one
    `+`-separated field per input, the values of a field joined by `,` (`certbot/run.sh`'s
    `apache,caddy,haproxy,nginx+compose+acme-dns`: the same for every proxy that runs
    certbot). Should two variants get the same name, the second is named by the values of
    its first case (matrix order), which no other variant can hold."""
    dims = reads(contents, inputs)
    classes: dict[bytes, list[str]] = {}
    for case in order:
        if case in contents:
            classes.setdefault(contents[case], []).append(case)
    names: dict[str, str] = {}
    used: set[str] = set()
    for members in classes.values():
        fields = [",".join(dict.fromkeys(inputs[case][d] for case in members)) for d in dims]
        name = "+".join(fields) or "any"
        if name in used:
            name = "+".join(inputs[members[0]][d] for d in dims)
        used.add(name)
        names |= dict.fromkeys(members, name)
    return dims, names


def golden_tree(rendered: Mapping[str, Mapping[str, bytes]]) -> dict[str, bytes]:
    """Every golden file, by path under tests/golden/, for the rendered matrix."""
    all_cases = {case.name: case.inputs for case in cases()}
    order = list(rendered)
    tree: dict[str, bytes] = {}
    index: dict[str, dict[str, str]] = {case: {} for case in order}
    reads_of: dict[str, tuple[str, ...]] = {}
    paths = sorted({path for files in rendered.values() for path in files})
    for path in paths:
        contents = {case: files[path] for case, files in rendered.items() if path in files}
        dims, names = variant_names(contents, all_cases, order)
        reads_of[path] = dims
        for case, name in names.items():
            tree[f"files/{path}/{name}"] = contents[case]
            index[case][path] = name
    tree["index.toml"] = _index_text(reads_of, index).encode()
    for case in WHOLE_STACKS:
        parts = [
            f"# ==> {path} <==\n{rendered[case][path].decode()}" for path in sorted(rendered[case])
        ]
        tree[f"stacks/{case}.txt"] = "\n".join(parts).encode()
    return tree


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _index_text(
    reads_of: Mapping[str, tuple[str, ...]], index: Mapping[str, Mapping[str, str]]
) -> str:
    lines = [
        "# Written by `make golden` (tests/unit/goldens.py): do not edit by hand.",
        "# [reads]: the inputs each rendered file's content depends on across the matrix;",
        "# then, for each case, the variant under files/<path>/ that holds each file it renders.",
        "",
        "[reads]",
        *(
            f"{_quote(path)} = [{', '.join(_quote(d) for d in dims)}]"
            for path, dims in reads_of.items()
        ),
    ]
    for case, files in index.items():
        lines += ["", f"[cases.{_quote(case)}]"]
        lines += [f"{_quote(path)} = {_quote(name)}" for path, name in files.items()]
    return "\n".join(lines) + "\n"


def on_disk(root: Path = GOLDEN) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def write_tree(tree: Mapping[str, bytes], root: Path = GOLDEN) -> None:
    """Replace the golden folder's content with `tree` (stale files removed)."""
    for path in set(on_disk(root)) - set(tree):
        (root / path).unlink()
    for path, content in tree.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(content)
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def environment_update() -> bool:
    return update_requested(os.environ)
