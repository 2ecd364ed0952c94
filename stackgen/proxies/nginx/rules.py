"""nginx rules for `stackgen check` (the file on disk may have been edited by hand)."""

from __future__ import annotations

import re
from dataclasses import dataclass


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
        elif d.name == "listen" and "http2" in d.args[1:]:
            problems.append(
                f"{where}: `listen ... http2` is deprecated since nginx 1.25.1 (a warning at "
                "every start); use `http2 on;` in the server"
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
