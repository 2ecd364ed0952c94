"""Apache rules for `stackgen check` (the file on disk may have been edited by hand)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_PROXY_PASS = re.compile(r"^ProxyPass\s+\"?(?P<path>[^\s\"]+)\"?\s+\"?(?P<url>[^\s\"]+)\"?", re.I)


def conf_problems(text: str) -> list[str]:
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"line {number}"
        lowered = line.lower()
        if match := _PROXY_PASS.match(line):
            path, url = match.group("path"), match.group("url")
            target = urlsplit(url)
            if target.scheme in ("ws", "wss"):
                problems.append(
                    f"{where}: a separate ws:// ProxyPass was reported to break SyncPlay; "
                    "use `upgrade=websocket` on the main ProxyPass"
                )
            elif url != "!" and path != "/" and target.path.rstrip("/") != path.rstrip("/"):
                problems.append(
                    f"{where}: ProxyPass {path} to {url} changes the path prefix (a subpath "
                    "is then stripped: redirect loops); keep it on both sides"
                )
        elif lowered.startswith("header ") and "strict-transport-security" in lowered:
            if "always" not in lowered.split()[1:2]:
                problems.append(
                    f"{where}: HSTS without `Header always set` is missing on error responses"
                )
        elif lowered.split()[:2] == ["sslusestapling", "on"]:
            problems.append(f"{where}: SSLUseStapling: Let's Encrypt ended OCSP in 2025")
        elif lowered.startswith("sslprotocol") and not re.fullmatch(
            r"sslprotocol\s+-all(\s+\+tlsv1\.[23])+", lowered
        ):
            problems.append(f"{where}: SSLProtocol must be `-all +TLSv1.2 +TLSv1.3`")
    return problems
