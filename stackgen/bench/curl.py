"""Streaming and seeking through curl: one C client for HTTP/1.1 and h2 alike.

A Python client would spend its one core on TLS record handling and parsing, and Python
has no h2 client in the standard library; curl (libcurl + OpenSSL + nghttp2) reads with
large buffers, speaks both protocols, and so compares proxies with the same client.
Every transfer is bounded by `--max-time`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stackgen.bench.endpoint import Endpoint

_WRITE_OUT = (
    "%{http_code} %{size_download} %{time_pretransfer} %{time_starttransfer} %{time_total}\\n"
)


class CurlError(Exception):
    pass


@dataclass(frozen=True)
class Transfer:
    status: int
    size: int
    ttfb_s: float  # first byte after the request could be sent (connection excluded)
    total_s: float


def curl_path() -> str:
    path = shutil.which("curl")
    if path is None:
        raise CurlError("curl is not installed (the bench streams with curl)")
    return path


def curl_version() -> str:
    try:
        out = subprocess.run(
            [curl_path(), "--version"], capture_output=True, text=True, check=False, timeout=10
        )
    except (CurlError, OSError, subprocess.TimeoutExpired):
        return "unavailable"
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def _transfer_args(ep: Endpoint, url: str, byte_range: tuple[int, int] | None) -> list[str]:
    args = ["-sS", "--noproxy", "*", "-o", "/dev/null", "-w", _WRITE_OUT, *ep.curl_args()]
    if byte_range is not None:
        args += ["-r", f"{byte_range[0]}-{byte_range[1]}"]
    return [*args, url]


def download(ep: Endpoint, rel_path: str, dest: Path, *, size: int, max_time: float) -> None:
    """Save `rel_path`'s body to `dest`, refusing anything but exactly `size` bytes."""
    args = [
        curl_path(), "-sS", "--noproxy", "*", "--fail", "--max-time", f"{max_time:.1f}",
        "--max-filesize", str(size), "-o", str(dest), *ep.curl_args(), ep.url(rel_path),
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            args, capture_output=True, text=True, check=False, timeout=max_time + 10
        )
    except subprocess.TimeoutExpired as exc:
        raise CurlError(f"curl did not finish within {max_time:.0f}s") from exc
    got = dest.stat().st_size if dest.exists() else 0
    if proc.returncode != 0 or got != size:
        reason = proc.stderr.strip().splitlines()[-1:] or [f"{got} of {size} bytes"]
        raise CurlError(f"curl {ep.url(rel_path)}: {reason[0]}")


def run_transfers(
    ep: Endpoint,
    rel_path: str,
    ranges: Sequence[tuple[int, int] | None],
    *,
    max_time: float,
) -> tuple[list[Transfer], float]:
    """Fetch `rel_path` once per entry (a byte range or the whole body) on one reused
    connection; returns the transfers and the wall time of the whole sequence."""
    if not ranges:
        return [], 0.0
    url = ep.url(rel_path)
    args = [curl_path(), "--max-time", f"{max_time:.1f}"]
    for i, byte_range in enumerate(ranges):
        if i:
            args.append("--next")
        args += _transfer_args(ep, url, byte_range)
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            args, capture_output=True, text=True, check=False, timeout=max_time * len(ranges) + 10
        )
    except subprocess.TimeoutExpired as exc:
        raise CurlError(f"curl did not finish within {max_time:.0f}s per transfer") from exc
    wall = time.perf_counter() - started
    transfers = []
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) != 5:
            continue
        code, size, pre, start, total = fields
        transfers.append(
            Transfer(int(code), int(size), max(0.0, float(start) - float(pre)), float(total))
        )
    if proc.returncode != 0 or len(transfers) != len(ranges):
        reason = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        raise CurlError(f"curl {url}: {reason[0]}")
    return transfers, wall


_CIPHER_LINE = re.compile(r"SSL connection using (\S+) / (\S+)")
_ALPN_LINE = re.compile(r"ALPN[:,] server accepted (?:to use )?(\S+)")


def parse_tls(verbose: str) -> dict[str, str | None]:
    """Protocol, cipher and ALPN from curl's verbose output (None when not shown)."""
    cipher = _CIPHER_LINE.search(verbose)
    alpn = _ALPN_LINE.search(verbose)
    return {
        "tls": cipher.group(1) if cipher else None,
        "cipher": cipher.group(2) if cipher else None,
        "alpn": alpn.group(1) if alpn else None,
    }


def negotiated(ep: Endpoint, rel_path: str, *, max_time: float) -> dict[str, str | None]:
    """What the streaming client negotiates with `ep`: one 1-byte request, verbose."""
    if ep.scheme != "https":
        return {"tls": None, "cipher": None, "alpn": None}
    args = [curl_path(), "-sSv", "--noproxy", "*", "-o", "/dev/null", "-r", "0-0"]
    args += ["--max-time", f"{max_time:.1f}", *ep.curl_args(), ep.url(rel_path)]
    try:
        proc = subprocess.run(
            args, capture_output=True, text=True, check=False, timeout=max_time + 5
        )
    except subprocess.TimeoutExpired as exc:
        raise CurlError(f"curl did not finish within {max_time:.0f}s") from exc
    if proc.returncode != 0:
        reason = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        raise CurlError(f"TLS handshake with {ep.origin}: {reason[0]}")
    return parse_tls(proc.stderr)
