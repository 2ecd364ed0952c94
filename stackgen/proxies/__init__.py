"""The proxies: one package per proxy (`<name>/__init__.py` declares its `SPEC`, `proxy.py`
its class, `rules.py` its checks of a config edited by hand), found by the registry.

Nothing here imports a proxy module or the configuration model: see registry.py.
"""

from __future__ import annotations

from stackgen.proxies.registry import available, get_proxy
from stackgen.proxies.spec import ProxySpec

__all__ = ["ProxySpec", "available", "get_proxy"]
