"""nginx: one server file in conf.d, certificates through the shared certbot service."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Final

from stackgen.models import ProxyKind, StackConfig
from stackgen.proxies.base import InImageCommand, TemplateFile
from stackgen.proxies.certbot import CertbotProxy

# Mounted as /etc/nginx/conf.d, which the image's nginx.conf includes (and whose default.conf
# this hides).
CONF_DIR: Final = "nginx/conf.d"
CONF_FILE: Final = f"{CONF_DIR}/jellyfin.conf"
FOREGROUND: Final = ("nginx", "-g", "daemon off;")


class Nginx(CertbotProxy):
    kind: ClassVar[ProxyKind] = ProxyKind.NGINX
    conf_dir: ClassVar[str] = CONF_DIR
    # A server on loopback inside the container, for the healthcheck only (never published).
    health_port: ClassVar[int] = 8082
    # With proxy_buffering off, nginx relays upstream data in chunks of this size; the
    # default (4k/8k, one page) costs several times the CPU per streamed byte.
    buffer_size: ClassVar[str] = "64k"
    # A paused stream and an idle WebSocket must outlive nginx's 60 s defaults.
    stream_timeout: ClassVar[str] = "3600s"

    def templates(self, config: StackConfig) -> list[TemplateFile]:
        return [
            TemplateFile("proxies/nginx/jellyfin.conf.j2", CONF_FILE),
            *self.certbot_templates(config),
        ]

    def command(self, config: StackConfig) -> list[str]:
        if self.uses_certbot(config):
            return self.watch_command(self.reload_command(config), FOREGROUND)
        return list(FOREGROUND)

    def validate_command(self, config: StackConfig) -> InImageCommand | None:
        # nginx resolves proxy_pass host names when it loads its configuration, and this test
        # runs without a network: the upstream's name is given to it as loopback.
        script = f"echo '127.0.0.1 {config.jellyfin_host}' >>/etc/hosts && exec nginx -t"
        return InImageCommand(
            argv=("-c", script),
            mounts=((CONF_DIR, "/etc/nginx/conf.d"), *self.tls_mounts(config)),
            entrypoint="sh",
        )

    def reload_command(self, config: StackConfig) -> list[str]:
        return ["nginx", "-s", "reload"]

    def static_problems(self, config: StackConfig, files: dict[str, bytes]) -> list[str]:
        raw = files.get(CONF_FILE)
        if raw is None:
            return [f"{CONF_FILE}: missing"]
        return [
            f"{CONF_FILE}: {problem}" for problem in conf_problems(raw.decode("utf-8", "replace"))
        ]


# --- rules for `stackgen check` (the file on disk may have been edited by hand) ----------


@dataclass(frozen=True)
class Directive:
    name: str
    args: tuple[str, ...]
    blocks: tuple[str, ...]  # enclosing block headers, outermost first ("location /x/")
    line: int


_TOKEN = re.compile(r"""#[^\n]*|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[{};]|[^\s{};#"']+""")


def directives(text: str) -> list[Directive]:
    """Every simple directive with its enclosing blocks: enough for the rules below, not a
    full parser (no includes, no variables)."""
    found: list[Directive] = []
    blocks: list[str] = []
    words: list[str] = []
    line = 1
    position = 0
    for match in _TOKEN.finditer(text):
        line += text.count("\n", position, match.start())
        position = match.start()
        token = match.group()
        if token.startswith("#"):
            continue
        if token == "{":
            blocks.append(" ".join(words))
            words = []
        elif token == "}":
            if blocks:
                blocks.pop()
            words = []
        elif token == ";":
            if words:
                found.append(Directive(words[0], tuple(words[1:]), tuple(blocks), line))
            words = []
        else:
            quoted = len(token) > 1 and token[0] in "\"'" and token[-1] == token[0]
            words.append(token[1:-1] if quoted else token)
    return found


def conf_problems(text: str) -> list[str]:
    problems: list[str] = []
    parsed = directives(text)
    server_headers = any(d.name == "add_header" and d.blocks[-1:] == ("server",) for d in parsed)
    for d in parsed:
        where = f"line {d.line}"
        location = next((b.split()[-1] for b in d.blocks if b.startswith("location")), None)
        if d.name == "add_header" and location is not None and server_headers:
            problems.append(
                f"{where}: add_header inside a location drops every add_header of the server "
                "(HSTS and the security headers vanish there)"
            )
        elif d.name == "http2" and d.args[:1] == ("on",):
            problems.append(
                f"{where}: `http2 on;` is unknown before nginx 1.25.1; use `listen 443 ssl http2;`"
            )
        elif d.name == "ssl_stapling" and d.args[:1] == ("on",):
            problems.append(f"{where}: ssl_stapling: Let's Encrypt ended OCSP in 2025")
        elif (
            d.name == "proxy_pass"
            and location not in (None, "/")
            and re.match(r"^https?://[^/]+/", d.args[0] if d.args else "")
        ):
            problems.append(
                f"{where}: proxy_pass with a URI after the host replaces the location's prefix "
                "(a subpath is then stripped: redirect loops); give none"
            )
        elif d.name == "ssl_protocols" and set(d.args) - {"TLSv1.2", "TLSv1.3"}:
            problems.append(f"{where}: ssl_protocols allows more than TLSv1.2 and TLSv1.3")
    return problems
