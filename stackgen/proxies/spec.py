"""What stackgen knows about a proxy before loading it: its name, its default image, where
its class and templates are.

Kept free of any other stackgen import: the configuration model reads the registry of specs
to know the proxy names and image fields, and proxy classes import the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProxySpec:
    name: str  # stackgen.toml's `proxy`, the compose service, the `images` key
    default_image: str  # the official image, tag pinned
    factory: str  # "package.module:Class", imported on first use
    # Folder of the proxy's templates; None: `compose-templates/proxies/<name>/`.
    template_dir: Path | None = None
    # Place in listings (help text, error messages, test matrices); ties go by name.
    rank: int = 100
    # Why the proxy's image cannot limit requests per client address ("": it can). Said at
    # `init` and `check` while `access.rate_limit` is on (stackgen.exposure), never silent.
    no_rate_limit: str = ""
    # Why this proxy does not send its failed logins to the feeder ("": it does). Said at
    # `init` and `check` while `access.ban.proxy_log` is on (stackgen.exposure).
    no_login_log: str = ""
    # How the proxy matches access.geo's networks when it tries them one by one, so that
    # every request costs more as the list grows ("": a tree, whose cost does not grow).
    # Said at `init` and `check` while access.geo is on (stackgen.exposure).
    geo_linear: str = ""
