"""Apache httpd 2.4: one complete httpd.conf, certificates through the shared certbot service."""

from __future__ import annotations

import re
from typing import ClassVar, Final
from urllib.parse import urlsplit

from stackgen.models import ProxyKind, StackConfig
from stackgen.proxies.base import InImageCommand, TemplateFile
from stackgen.proxies.certbot import CertbotProxy

# Mounted as a folder inside the image's conf/ (so conf/mime.types stays visible) and given
# with -f: the image's own conf/httpd.conf is not used.
CONF_DIR: Final = "apache"
CONF_PATH: Final = "/usr/local/apache2/conf/stackgen"
CONF_FILE: Final = f"{CONF_PATH}/httpd.conf"


class Apache(CertbotProxy):
    kind: ClassVar[ProxyKind] = ProxyKind.APACHE
    conf_dir: ClassVar[str] = CONF_DIR
    conf_path: ClassVar[str] = CONF_PATH
    # A virtual host on loopback inside the container, for the healthcheck only.
    health_port: ClassVar[int] = 8082
    # A paused stream and an idle WebSocket must outlive Apache's 60 s defaults (seconds).
    stream_timeout: ClassVar[int] = 3600
    # Jellyfin's documented minimum for uploads (Apache's own default is 1 GiB since 2.4.54).
    max_body_bytes: ClassVar[int] = 20 * 1024 * 1024

    def templates(self, config: StackConfig) -> list[TemplateFile]:
        return [
            TemplateFile("proxies/apache/httpd.conf.j2", f"{CONF_DIR}/httpd.conf"),
            TemplateFile("proxies/apache/healthcheck.pl.j2", f"{CONF_DIR}/healthcheck.pl"),
            *self.certbot_templates(config),
        ]

    def command(self, config: StackConfig) -> list[str]:
        # The image's httpd-foreground removes a stale pid file, then execs httpd -DFOREGROUND.
        foreground = ["httpd-foreground", "-f", CONF_FILE]
        if self.uses_certbot(config):
            return self.watch_command(self.reload_command(config), foreground)
        return foreground

    def validate_command(self, config: StackConfig) -> InImageCommand | None:
        return InImageCommand(
            argv=("httpd", "-t", "-f", CONF_FILE),
            mounts=((CONF_DIR, CONF_PATH), *self.tls_mounts(config)),
        )

    def reload_command(self, config: StackConfig) -> list[str]:
        return ["httpd", "-k", "graceful", "-f", CONF_FILE]

    def static_problems(self, config: StackConfig, files: dict[str, bytes]) -> list[str]:
        name = f"{CONF_DIR}/httpd.conf"
        raw = files.get(name)
        if raw is None:
            return [f"{name}: missing"]
        return [f"{name}: {problem}" for problem in conf_problems(raw.decode("utf-8", "replace"))]


# --- rules for `stackgen check` (the file on disk may have been edited by hand) ----------

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
