"""Credentials never leave stackgen in clear: one function hides Jellyfin's tokens in any
text stackgen prints (a URL, a container's log line, a traceback), whatever form they take.

Jellyfin reads a token from the query (`api_key`, `ApiKey`, any case), from the headers
`X-Emby-Token` and `X-MediaBrowser-Token`, and from `Token="..."` in `Authorization` or
`X-Emby-Authorization`; a cookie or a bearer credential is hidden too."""

from __future__ import annotations

import re
import sys
import traceback
from typing import Final

REDACTED: Final = "REDACTED"

# name=value in a query string or a form: api_key, apikey, the token headers' names, token.
_PARAM = re.compile(
    r"(?i)\b(api_?key|x-emby-token|x-mediabrowser-token|token)=(\\?\"?)([^&#\s\"\\,;']+)"
)
# A token header as logs write it: `X-Emby-Token: v`, `"X-Emby-Token":["v"]`, `x-emby-token=v`;
# a cookie header to its end (every cookie in it).
_SEPARATOR = r"([\"']?\s*[:=]\s*\[?\s*[\"']?)(?!REDACTED)"
_HEADER = re.compile(
    r"(?i)\b(x-emby-token|x-mediabrowser-token|authorization)"
    + _SEPARATOR
    + r"(Bearer\s+|Basic\s+)?([^\s\"'\[\],;]+)"
)
_COOKIE = re.compile(r"(?i)\b(cookie)" + _SEPARATOR + r"()([^\"'\[\]\r\n]+)")


def redact(text: str) -> str:
    """text with every credential value replaced by REDACTED (names and layout kept)."""
    text = _PARAM.sub(lambda m: f"{m.group(1)}={m.group(2)}{REDACTED}", text)
    for pattern in (_HEADER, _COOKIE):
        text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{REDACTED}", text)
    return text


def print_traceback(error: BaseException) -> None:
    """A bug's traceback is still printed whole (it is how a bug gets fixed), redacted: an
    exception's message or a frame's source line may hold a URL with its token."""
    sys.stderr.write(redact("".join(traceback.format_exception(error))))
