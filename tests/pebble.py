"""Kept for old callers: Pebble lives in the shipped package, `stackgen.testing.pebble`."""

from __future__ import annotations

import sys

from stackgen.testing.pebble import CONTAINER_HOST, PebbleCA, PebbleError, main

__all__ = ["CONTAINER_HOST", "PebbleCA", "PebbleError", "main"]

if __name__ == "__main__":
    sys.exit(main())
