"""The terminal boundary: everything stackgen prints passes through `PrintableStream`, which
strips control characters (escape sequences, bells, carriage returns, C1 codes). Text from
an old config, a server's `Server:` header or a container's log then cannot set the window
title, clear the screen or rewrite a line. Only stackgen's own colours survive, and only
when colour is on.
"""

from __future__ import annotations

import re
from typing import IO, Final

# What `typer.style` emits for the colours stackgen uses: foreground colours, bold, reset.
_OWN_STYLE: Final = re.compile(r"\x1b\[(?:0|1|3[0-7]|9[0-7]|39)m")
_KEPT: Final = "\n\t"


def is_control(char: str) -> bool:
    """C0 (but newline and tab), DEL and C1."""
    code = ord(char)
    return (code < 0x20 and char not in _KEPT) or 0x7F <= code <= 0x9F


def _strip(text: str) -> str:
    return "".join(c for c in text if not is_control(c))


def printable(text: str, *, colour: bool = False) -> str:
    """`text` without control characters; with `colour`, stackgen's own colour codes kept."""
    if not colour:
        return _strip(text)
    pieces, last = [], 0
    for match in _OWN_STYLE.finditer(text):
        pieces += [_strip(text[last : match.start()]), match.group()]
        last = match.end()
    pieces.append(_strip(text[last:]))
    return "".join(pieces)


class PrintableStream:
    """A text stream that writes `printable` text to the stream it wraps; everything else
    (encoding, isatty, fileno, buffer, flush) is the wrapped stream's."""

    def __init__(self, inner: IO[str], *, colour: bool) -> None:
        self._inner = inner
        self._colour = colour

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            # A text stream refuses bytes: click probes with write(b"") to tell the two apart.
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._inner.write(printable(text, colour=self._colour))
        return len(text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)
