"""`stackgen bench`: how fast a live stack is, proxied against Jellyfin direct.

The pure parts (open-loop schedule, statistics, JSON schema, goals) are separate from the
parts that send traffic, so they are unit-tested without a stack.
"""

from stackgen.bench.schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION"]
