"""Paced streams, one process per player, started together.

Players are separate devices. Run as threads of one Python process, twenty readers share one
interpreter lock: a reader the kernel has woken with data waits for that lock, and the wait
is counted as a gap the proxy never caused. One process per player keeps that wait out of
the measurement, so a gap is the proxy's (or the machine's), not the client's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import multiprocessing.synchronize
import queue
import threading
from multiprocessing.queues import Queue

from stackgen.bench import h1
from stackgen.bench.endpoint import Endpoint, http1_context

# A forkserver preloaded with the client: each player starts in milliseconds, and no
# player inherits the parent's threads or locks (the bench runs threads while it forks).
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["stackgen.bench.h1"])

# How long players may take to connect before the clock starts.
START_TIMEOUT_SECONDS = 30.0


@dataclasses.dataclass(frozen=True)
class PlayerPlan:
    endpoint: Endpoint  # without an SSL context: contexts do not cross processes
    rel_path: str
    size: int
    bitrate_bps: float
    duration: float
    check_bytes: bool
    timeout: float


def run_players(
    ep: Endpoint,
    rel_path: str,
    *,
    count: int,
    size: int,
    bitrate_bps: float,
    duration: float,
    check_bytes: bool,
    timeout: float,
) -> list[h1.PacedStream]:
    """`count` paced streams in processes of their own; one result per player."""
    plan = PlayerPlan(
        endpoint=dataclasses.replace(ep, context=None),
        rel_path=rel_path,
        size=size,
        bitrate_bps=bitrate_bps,
        duration=duration,
        check_bytes=check_bytes,
        timeout=timeout,
    )
    start = _CONTEXT.Barrier(count + 1)
    stop = _CONTEXT.Event()
    results: Queue[h1.PacedStream] = _CONTEXT.Queue()
    players = [
        _CONTEXT.Process(
            target=_player, args=(plan, start, stop, results), name=f"player-{n}", daemon=True
        )
        for n in range(count)
    ]
    for player in players:
        player.start()
    collected: list[h1.PacedStream] = []
    try:
        # A broken barrier: a player could not connect; it reports why, the others run on.
        with contextlib.suppress(threading.BrokenBarrierError):
            start.wait(START_TIMEOUT_SECONDS)
        deadline = duration + START_TIMEOUT_SECONDS + 4 * timeout
        for _ in players:
            try:
                collected.append(results.get(timeout=deadline))
            except queue.Empty:
                collected.append(h1.PacedStream(errors=["player gave no result in time"]))
    finally:
        stop.set()
        for player in players:
            player.join(timeout)
            if player.is_alive():
                player.kill()
                player.join()
        results.close()
    return collected


def _player(
    plan: PlayerPlan,
    start: multiprocessing.synchronize.Barrier,
    stop: multiprocessing.synchronize.Event,
    results: Queue[h1.PacedStream],
) -> None:
    ep = plan.endpoint
    if ep.scheme == "https":
        ep = dataclasses.replace(ep, context=http1_context(ep.ca_file))
    waited = False

    def connected() -> None:
        nonlocal waited
        waited = True
        # A broken barrier means another player could not connect: start anyway.
        with contextlib.suppress(threading.BrokenBarrierError):
            start.wait(START_TIMEOUT_SECONDS)

    try:
        result = h1.paced_stream(
            ep,
            plan.rel_path,
            size=plan.size,
            bitrate_bps=plan.bitrate_bps,
            duration=plan.duration,
            check_bytes=plan.check_bytes,
            stop=stop,
            timeout=plan.timeout,
            connected=connected,
        )
    except Exception as exc:  # a player's failure is a result, not a crash
        result = h1.PacedStream(errors=[f"{type(exc).__name__}: {exc}"[:200]])
    if not waited:
        start.abort()  # never connected: let the others start instead of waiting it out
    results.put(result)


@dataclasses.dataclass(frozen=True)
class BufferedPlan:
    endpoint: Endpoint  # without an SSL context: contexts do not cross processes
    rel_path: str
    size: int
    bitrate_bps: float
    duration: float
    habits: h1.PlayerHabits
    check_bytes: bool
    timeout: float


def run_buffered_players(
    ep: Endpoint,
    rel_path: str,
    *,
    count: int,
    size: int,
    bitrate_bps: float,
    duration: float,
    habits: h1.PlayerHabits,
    stagger_s: float,
    check_bytes: bool,
    timeout: float,
) -> list[h1.BufferedPlay]:
    """`count` buffered players in processes of their own, player i starting
    `i * stagger_s` after the first (as viewers do), each with its own seek positions."""
    plain = dataclasses.replace(ep, context=None)
    plans = [
        BufferedPlan(
            plain,
            rel_path,
            size,
            bitrate_bps,
            duration,
            dataclasses.replace(habits, start_delay_s=i * stagger_s, seed=habits.seed + i),
            check_bytes,
            timeout,
        )
        for i in range(count)
    ]
    stop = _CONTEXT.Event()
    results: Queue[h1.BufferedPlay] = _CONTEXT.Queue()
    workers = [
        _CONTEXT.Process(
            target=_buffered, args=(plan, stop, results), name=f"player-{n}", daemon=True
        )
        for n, plan in enumerate(plans)
    ]
    for worker in workers:
        worker.start()
    collected: list[h1.BufferedPlay] = []
    try:
        deadline = duration + stagger_s * count + START_TIMEOUT_SECONDS + 4 * timeout
        for _ in workers:
            try:
                collected.append(results.get(timeout=deadline))
            except queue.Empty:
                collected.append(h1.BufferedPlay(errors=["player gave no result in time"]))
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout)
            if worker.is_alive():
                worker.kill()
                worker.join()
        results.close()
    return collected


def _buffered(
    plan: BufferedPlan,
    stop: multiprocessing.synchronize.Event,
    results: Queue[h1.BufferedPlay],
) -> None:
    ep = plan.endpoint
    if ep.scheme == "https":
        ep = dataclasses.replace(ep, context=http1_context(ep.ca_file))
    try:
        result = h1.buffered_player(
            ep,
            plan.rel_path,
            size=plan.size,
            bitrate_bps=plan.bitrate_bps,
            duration=plan.duration,
            habits=plan.habits,
            check_bytes=plan.check_bytes,
            stop=stop,
            timeout=plan.timeout,
        )
    except Exception as exc:  # a player's failure is a result, not a crash
        result = h1.BufferedPlay(errors=[f"{type(exc).__name__}: {exc}"[:200]])
    results.put(result)
