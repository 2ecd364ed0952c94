"""Paced players straight at Jellyfin's own http:// address (no proxy, no TLS): the origin's
share of a paced-stream gap. Run inside the bench's client namespace by `bench.run`; prints
the same `streams` object as `stackgen bench` (whose --url is a stack's public https URL).

Usage: python -m bench.origin_players --url http://HOST:PORT --streams N --bitrate MBPS --seconds S
"""

from __future__ import annotations

import argparse
import json
import sys

from stackgen.bench.endpoint import url_endpoint
from stackgen.bench.measure import BenchSettings, media_size, paced_streams


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--bitrate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    endpoint = url_endpoint("direct", args.url, resolve={}, ca_file=None, http2=False)
    settings = BenchSettings(
        streams=args.streams,
        bitrate_mbps=args.bitrate,
        duration=args.seconds,
        check_bytes=True,
        only=frozenset({"streams"}),
    )
    print(json.dumps(paced_streams(endpoint, media_size(endpoint, settings), settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
