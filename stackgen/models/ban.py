"""The ban list (`access.ban`): client addresses the proxy itself refuses with 403.

Its own table under `[access]` (`[access.ban]`). The list lives in one deny file per stack,
in the proxy's own syntax (`stackgen.banlist` writes and reads it); what it stops and what
it costs: docs/access.md.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StrictBool

from stackgen.models.fields import Strict
from stackgen.options import Setting


class BanSettings(Strict):
    enabled: Annotated[
        StrictBool,
        Setting(
            "a deny file the proxy reads natively: addresses in it get 403 on every route",
            flag="",
            readme="edited with `stackgen ban add`, `remove` and `list`, applied by the proxy's "
            "graceful reload (Traefik: its own watch, no reload); rendered empty. Every proxy "
            "([docs/access.md](docs/access.md#the-ban-list-accessban))",
        ),
    ] = True
