"""The import rules of docs/ARCHITECTURE.md ("What never imports what"), checked on the
source so that the document cannot silently go stale."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "stackgen"

# Pure layers: no Docker, no network, no operations above them.
PURE = (
    "stackgen.errors",
    "stackgen.parts",
    "stackgen.inputs",
    "stackgen.validation",
    "stackgen.output",
    "stackgen.redaction",
    "stackgen.env_file",
    "stackgen.exposure",
    "stackgen.pki",
    "stackgen.dns_providers",
    "stackgen.models",
    "stackgen.config_file",
    "stackgen.proxies",
    "stackgen.certificates",
    "stackgen.templating",
    "stackgen.render",
    "stackgen.targets.registry",
    "stackgen.targets.spec",
    "stackgen.targets.stack_file",
    "stackgen.targets.compose.config",
    "stackgen.targets.compose.stack_file",
    "stackgen.targets.swarm.config",
    "stackgen.targets.swarm.stack_file",
    "stackgen.writer",
    "stackgen.reloading",
    "stackgen.integrity",
    "stackgen.lock",
    *(
        f"stackgen.importers.{name}"
        for name in (
            "apache",
            "base",
            "caddy_v1",
            "certs",
            "common",
            "haproxy",
            "nginx",
            "reasons",
            "sources",
            "traefik_v1",
        )
    ),
    "stackgen.tunnel",
)
ABOVE_PURE = (
    "stackgen.engine",
    "stackgen.process",
    "stackgen.stack",
    "stackgen.stack_checks",
    "stackgen.lifecycle",
    "stackgen.verify",
    "stackgen.targets.base",
    "stackgen.targets.ports",
    "stackgen.targets.compose.target",
    "stackgen.targets.swarm.target",
    "stackgen.cli",
    "stackgen.probe",
    "stackgen.importers.build",
    "stackgen.importers.before_after",
    "stackgen.bench.command",
    "stackgen.bench.ceiling",
    "stackgen.bench.every_proxy",
    "stackgen.testing",
    "python_on_whales",
)


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


MODULES = {_module(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def test_the_modules_are_found() -> None:
    assert {"stackgen.models", "stackgen.engine", "stackgen.probe.client"} <= set(MODULES)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, PURE)))
def test_pure_layers_reach_no_engine_and_no_operation(module: str) -> None:
    assert {name for name in MODULES[module] if _within(name, ABOVE_PURE)} == set()


def test_the_model_and_the_registry_import_no_proxy_class() -> None:
    models = [m for m in MODULES if _within(m, ("stackgen.models",))]
    assert len(models) > 1  # the package and its modules, one per concern
    for module in (*models, "stackgen.proxies.registry", "stackgen.proxies"):
        proxies = {n for n in MODULES[module] if _within(n, ("stackgen.proxies",))}
        assert proxies <= {
            "stackgen.proxies",
            "stackgen.proxies.registry",
            "stackgen.proxies.spec",
            "stackgen.proxies.registry.available",
            "stackgen.proxies.registry.get_proxy",
            "stackgen.proxies.spec.ProxySpec",
            # For type checking only (under TYPE_CHECKING).
            "stackgen.proxies.base",
            "stackgen.proxies.base.Proxy",
        }, module


def _users(prefix: str) -> set[str]:
    return {m for m, names in MODULES.items() if any(_within(n, (prefix,)) for n in names)}


def test_only_the_engine_imports_python_on_whales() -> None:
    assert _users("python_on_whales") == {"stackgen.engine"}


def test_the_engine_stands_on_foundations_only() -> None:
    own = {n for n in MODULES["stackgen.engine"] if n.startswith("stackgen")}
    assert all(_within(n, ("stackgen.errors", "stackgen.parts")) for n in own), own


def test_the_probe_library_stands_alone() -> None:
    for module, names in MODULES.items():
        if _within(module, ("stackgen.probe",)):
            outside = {
                n
                for n in names
                if _within(n, ("stackgen",)) and not _within(n, ("stackgen.probe",))
            }
            assert outside == set(), module


def test_only_the_public_probe_api_is_used_outside_it() -> None:
    internals = tuple(m for m in MODULES if m.startswith("stackgen.probe."))
    users = {m for prefix in internals for m in _users(prefix)}
    assert {m for m in users if not _within(m, ("stackgen.probe",))} == set()


def test_nothing_imports_the_cli() -> None:
    assert _users("stackgen.cli") == set()


# --- the layers table of docs/ARCHITECTURE.md, bottom up ----------------------------------------
# Each stackgen module is in exactly one layer (the most specific prefix wins) and imports only
# from its own layer or the layers below it. The two libraries (the probe and the bench's
# measurements) stand beside the layers: they import nothing of stackgen but themselves (the
# bench library: and the probe's public names).
IMPORTER_PARSERS = tuple(m for m in PURE if m.startswith("stackgen.importers."))
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("libraries", ("stackgen.probe", "stackgen.bench")),
    (
        "foundations",
        (
            "stackgen",  # the package itself: its version
            "stackgen.errors",
            "stackgen.parts",
            "stackgen.pki",
            "stackgen.tunnel",
            "stackgen.dns_providers",
            "stackgen.proxies.spec",
            "stackgen.targets.spec",
            "stackgen.certificates.profile",
            "stackgen.inputs",
            "stackgen.validation",
            "stackgen.output",
            "stackgen.redaction",
            "stackgen.env_file",
            "stackgen.geoip",
        ),
    ),
    (
        "registry",
        (
            "stackgen.proxies",
            "stackgen.proxies.registry",
            "stackgen.targets",
            "stackgen.targets.registry",
        ),
    ),
    (
        "model",
        ("stackgen.models", "stackgen.options", "stackgen.config_file", "stackgen.exposure"),
    ),
    (
        "components",
        ("stackgen.proxies.base", "stackgen.certificates", "stackgen.feeder", *IMPORTER_PARSERS),
    ),
    (
        "rendering",
        (
            "stackgen.templating",
            "stackgen.render",
            "stackgen.targets.stack_file",
            "stackgen.writer",
            "stackgen.integrity",
        ),
    ),
    ("engine boundary", ("stackgen.engine", "stackgen.process", "stackgen.allocate")),
    ("stack", ("stackgen.stack", "stackgen.lock")),
    (
        "operations",
        (
            "stackgen.stack_checks",
            "stackgen.banlist",
            "stackgen.reloading",
            "stackgen.verify",
            "stackgen.lifecycle",
            "stackgen.targets.base",
            "stackgen.targets.ports",
            "stackgen.importers",
            "stackgen.importers.build",
            "stackgen.importers.before_after",
            "stackgen.bench.command",
            "stackgen.bench.ceiling",
            "stackgen.bench.every_proxy",
        ),
    ),
    ("interface", ("stackgen.cli",)),
    ("test harness", ("stackgen.testing",)),
)


def _proxy_package_layer(module: str) -> str | None:
    """A proxy's own package: its `__init__` (the SPEC) is the registry's, the rest a
    component."""
    parts = module.split(".")
    if (
        len(parts) >= 3
        and parts[:2] == ["stackgen", "proxies"]
        and parts[2]
        not in {
            "base",
            "registry",
            "spec",
        }
    ):
        return "registry" if len(parts) == 3 else "components"
    return None


# A deploy target's package: its `__init__` (the SPEC) is the registry's, and each of its
# three parts is in the layer of what it does.
_TARGET_PARTS = {"config": "model", "stack_file": "rendering", "target": "operations"}
_TARGET_SHARED = {"base", "ports", "registry", "spec", "stack_file"}


def _target_package_layer(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) >= 3 and parts[:2] == ["stackgen", "targets"] and parts[2] not in _TARGET_SHARED:
        return "registry" if len(parts) == 3 else _TARGET_PARTS.get(parts[3])
    return None


def layer_of(module: str) -> str | None:
    found = _proxy_package_layer(module) or _target_package_layer(module)
    if found:
        return found
    best: tuple[int, str] | None = None
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            exact = prefix in {
                "stackgen",
                "stackgen.proxies",
                "stackgen.targets",
                "stackgen.importers",
            }
            hit = module == prefix if exact else _within(module, (prefix,))
            if hit and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer)
    return best[1] if best else None


ORDER = [layer for layer, _ in LAYERS]


def _runtime_imports(path: Path) -> set[str]:
    """The stackgen modules a file imports when it runs: `from pkg import sub` counts `sub`,
    not `pkg`'s own code twice; imports for type checking only are left out."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {_imported_module(name) or name for name in found if name.startswith("stackgen")}


def _imported_module(name: str) -> str | None:
    """The stackgen module an imported name lives in (a name may end in an attribute)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


RUNTIME = {_module(path): _runtime_imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_is_in_a_layer() -> None:
    unplaced = sorted(m for m in MODULES if layer_of(m) is None)
    assert unplaced == [], (
        f"{unplaced}: in no layer: add each to LAYERS here and to docs/ARCHITECTURE.md"
    )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_layer_and_below(module: str) -> None:
    mine = layer_of(module)
    assert mine is not None
    above = set()
    for target in RUNTIME[module]:
        if target == module:
            continue
        theirs = layer_of(target)
        assert theirs is not None, target
        if mine == "libraries":
            library = "stackgen.probe" if _within(module, ("stackgen.probe",)) else "stackgen.bench"
            # The bench library also redacts what it prints (stackgen.redaction, a foundation
            # that imports nothing of stackgen).
            allowed = (
                (library, "stackgen.probe", "stackgen.redaction")
                if library == "stackgen.bench"
                else (library,)
            )
            if not _within(target, allowed) or target in (
                "stackgen.bench.command",
                "stackgen.bench.ceiling",
                "stackgen.bench.every_proxy",
            ):
                above.add(target)
        elif theirs != "libraries" and ORDER.index(theirs) > ORDER.index(mine):
            above.add(f"{target} ({theirs})")
    assert above == set(), f"{module} ({mine}) imports from above: {sorted(above)}"


def test_only_the_cli_reaches_the_importers_operations_and_the_bench_command() -> None:
    for operation in ("stackgen.importers.build", "stackgen.importers.before_after"):
        assert _users(operation) <= {"stackgen.importers", "stackgen.cli"}, operation
    assert _users("stackgen.importers") - {
        m for m in MODULES if _within(m, ("stackgen.importers",))
    } <= {"stackgen.cli"}
    assert _users("stackgen.bench.command") == {"stackgen.cli"}
    assert _users("stackgen.bench.ceiling") == {"stackgen.bench.command"}
    assert _users("stackgen.bench.every_proxy") == {"stackgen.bench.command"}


def test_nothing_in_the_product_imports_the_test_harness() -> None:
    users = _users("stackgen.testing")
    assert {m for m in users if not _within(m, ("stackgen.testing",))} == set()


def test_the_shipped_package_needs_nothing_outside_it() -> None:
    """The wheel ships `stackgen/` (and the templates): nothing in it imports the tests, the
    bench harness or the test images."""
    for module, names in MODULES.items():
        outside = {
            n for n in names if n.split(".")[0] in {"tests", "bench", "images", "integration"}
        }
        assert outside == set(), module


def test_every_module_is_named_in_the_map() -> None:
    """docs/ARCHITECTURE.md names each module of the package (by its path or its name)."""
    text = (PACKAGE.parent / "docs" / "ARCHITECTURE.md").read_text()
    missing = []
    for module in MODULES:
        parts = module.split(".")[1:]
        if not parts or parts[-1] == "__init__":
            continue
        path = "/".join(parts)
        spellings = {f"`{parts[-1]}`", f"`{path}.py`", f"`{path}`", f"`{parts[-1]}.py`"}
        spellings |= {f"`{path}/`", f"`{path}/__init__.py`", f"`stackgen/{path}/`"}
        if (
            len(parts) >= 2
            and parts[0] == "proxies"
            and parts[1] not in {"base", "registry", "spec"}
        ):
            spellings |= {"`proxies/<name>/proxy.py`", "`proxies/<name>/rules.py`",
                          "`proxies/<name>/__init__.py`"}  # fmt: skip
        if len(parts) >= 2 and parts[0] == "targets" and parts[1] not in _TARGET_SHARED:
            spellings |= {f"`targets/<name>/{p}.py`" for p in (*_TARGET_PARTS, "__init__")}
        if not any(s in text for s in spellings):
            missing.append(module)
    assert missing == [], missing


# --- the bench harness (bench/, beside the package) ----------------------------------------------
HARNESS = PACKAGE.parent / "bench"


@pytest.mark.parametrize("path", sorted(HARNESS.glob("*.py")), ids=lambda p: p.name)
def test_the_bench_harness_uses_stackgens_public_modules(path: Path) -> None:
    """The harness imports stackgen as any user would: never the probe's internals, the
    engine's client, the CLI or the test suite."""
    names = _imports(path)
    banned = ("stackgen.cli", "python_on_whales", "tests", "images", *PROBE_INTERNALS)
    assert {n for n in names if _within(n, banned)} == set(), path.name


PROBE_INTERNALS = tuple(m for m in MODULES if m.startswith("stackgen.probe."))


# --- one WebSocket client -------------------------------------------------------------------
THREADED_WEBSOCKETS = ("websockets.sync",)


def test_no_websocket_client_with_a_reader_thread() -> None:
    """websockets' threaded client (`websockets.sync`) reads the TLS connection from a thread
    of its own while the caller writes the upgrade request: two threads in one OpenSSL
    session, which lost about one upgrade request in a hundred under load (docs/flakes.md).
    Every WebSocket goes through the probe's one-thread client (`open_websocket`)."""
    sources = [
        path
        for root in ("stackgen", "tests", "bench")
        for path in (PACKAGE.parent / root).rglob("*.py")
        # Golden snapshots are folders named after the file they hold (golden/files/gate/gate.py/).
        if path.is_file()
    ]
    assert len(sources) > 100
    users = {
        str(path.relative_to(PACKAGE.parent))
        for path in sources
        if any(_within(name, THREADED_WEBSOCKETS) for name in _imports(path))
    }
    assert users == set()
