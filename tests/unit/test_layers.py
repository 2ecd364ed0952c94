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
