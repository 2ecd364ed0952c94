"""Open-loop load: requests leave on a fixed schedule, whatever happened to earlier ones.

A closed loop (send, wait, send) slows down exactly when the server does and so hides
the slow periods ("coordinated omission"). Here request i is due at `start + i / rate`;
its latency is counted from that due time, so time a request spent waiting for a free
connection, or for the event loop, is part of what the user would have seen.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


def due_times(rate: float, duration: float) -> list[float]:
    """Offsets (seconds from the start) at which requests are due; bounded by design."""
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    count = math.floor(rate * duration + 1e-9)
    return [i / rate for i in range(count)]


@dataclass
class OpenLoopResult:
    latencies_ms: list[float] = field(default_factory=list)  # from due time to response
    errors: int = 0
    sent: int = 0
    # Requests that left > 2 ms late: beyond the event loop's 1 ms timer rounding (epoll),
    # so the client itself could not keep the schedule.
    late_sends: int = 0
    max_send_lag_ms: float = 0.0
    error_samples: list[str] = field(default_factory=list)


async def run_open_loop(
    rate: float,
    duration: float,
    send: Callable[[], Awaitable[None]],
    *,
    timeout: float = 10.0,
    clock: Callable[[], float] = time.perf_counter,
) -> OpenLoopResult:
    """Call `send()` at each due time, concurrently; each call is bounded by `timeout`.

    `send` raises on failure. Returns latencies counted from the due time.
    """
    result = OpenLoopResult()
    start = clock()

    async def one(due: float) -> None:
        try:
            await asyncio.wait_for(send(), timeout)
        except Exception as exc:  # every failure counts; the loop must go on
            result.errors += 1
            if len(result.error_samples) < 5:
                result.error_samples.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        result.latencies_ms.append((clock() - due) * 1000)

    tasks: list[asyncio.Task[None]] = []
    for offset in due_times(rate, duration):
        due = start + offset
        wait = due - clock()
        if wait > 0:
            await asyncio.sleep(wait)
        lag = (clock() - due) * 1000
        result.max_send_lag_ms = max(result.max_send_lag_ms, lag)
        if lag > 2:
            result.late_sends += 1
        result.sent += 1
        tasks.append(asyncio.create_task(one(due)))
    if tasks:
        await asyncio.gather(*tasks)
    return result
