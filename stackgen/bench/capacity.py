"""Capacity in streams: a player's buffer, and the search for the largest stall-free count.

A real player does not read in lockstep with playback: it fills a buffer of a few seconds
before it starts, reads ahead while it plays, and stalls only when the buffer runs dry.
`PlayerBuffer` is that bookkeeping, pure (the clock is passed in), so the network loop in
`h1.buffered_player` only feeds it bytes and asks how much it may read. `largest_passing`
ramps the number of players until one stalls, then narrows down the largest count that
played without a stall, in a bounded number of trials.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class PlayerBuffer:
    """One player's buffer, in bytes of media, at a constant bitrate."""

    rate: float  # bytes of media played per second
    start_bytes: float  # buffered before playback (re)starts
    capacity: float  # read-ahead: the most the player holds unplayed
    received: float = 0.0  # bytes received since the last (re)start point
    played_base: float = 0.0  # bytes played when playback last (re)started
    playing_since: float | None = None  # None: buffering (start-up, after a seek, a stall)
    stalls: int = 0
    stalled_s: float = 0.0
    stall_began: float | None = None
    # A start-up (or a refill after a seek) longer than this counts as a stall too: a
    # player that never starts has failed its viewer as surely as one that stops.
    start_timeout: float = 5.0
    buffering_since: float | None = None
    events: list[tuple[str, float]] = field(default_factory=list)  # (kind, time), bounded

    def played(self, now: float) -> float:
        if self.playing_since is None:
            return self.played_base
        return min(self.received, self.played_base + self.rate * (now - self.playing_since))

    def level(self, now: float) -> float:
        """Unplayed bytes in the buffer at `now`."""
        self.update(now)
        return self.received - self.played(now)

    def want(self, now: float) -> int:
        """How many bytes the player would read now (0 when the buffer is full)."""
        return max(0, int(self.capacity - self.level(now)))

    def begin(self, now: float) -> None:
        """The player asked for its first bytes at `now` (its start-up clock starts)."""
        self.buffering_since = now

    def update(self, now: float) -> None:
        """Notice a buffer that ran dry since the last call: a stall at the moment it did;
        or a start-up that has taken longer than `start_timeout` (counted once)."""
        if self.playing_since is None:
            since = self.buffering_since
            if since is not None and now - since > self.start_timeout:
                self.stalls += 1
                self._note("slow start", since + self.start_timeout)
                self.buffering_since = None
            return
        empty_at = self.playing_since + (self.received - self.played_base) / self.rate
        if now > empty_at:
            self.stalls += 1
            self._note("stall", empty_at)
            self.played_base = self.received
            self.playing_since = None
            self.stall_began = empty_at

    def feed(self, n: int, now: float, *, ended: bool = False) -> None:
        """`n` bytes arrived at `now`; `ended`: nothing more will come (end of the media)."""
        self.update(now)
        self.received += n
        if self.playing_since is None and (
            self.received - self.played_base >= self.start_bytes or ended
        ):
            if self.stall_began is not None:
                self.stalled_s += now - self.stall_began
                self.stall_began = None
            self.playing_since = now
            self.buffering_since = None

    def seek(self, now: float) -> None:
        """A jump: the buffer is dropped and refilled; waiting for it is not a stall."""
        self.update(now)
        if self.stall_began is not None:
            self.stalled_s += now - self.stall_began
            self.stall_began = None
        self.received = self.played_base = 0.0
        self.playing_since = None
        self.buffering_since = now
        self._note("seek", now)

    def _note(self, kind: str, when: float) -> None:
        if len(self.events) < 100:
            self.events.append((kind, when))


@dataclass(frozen=True)
class Trial:
    count: int
    passed: bool


def largest_passing(
    passes: Callable[[int], bool], *, start: int = 1, limit: int = 200
) -> tuple[int, list[Trial]]:
    """The largest count in 1..limit for which `passes(count)` holds, assuming it holds up
    to some count and fails beyond (0 when `start` fails and nothing smaller passes).

    Doubles from `start` until a count fails (or `limit`), then bisects between the last
    pass and the first failure: at most about 2 log2(limit) trials. Each count is tried
    once; a noisy machine moves the answer, which is why the count is reported with the
    trials that found it."""
    if not 1 <= start <= limit:
        raise ValueError("need 1 <= start <= limit")
    trials: list[Trial] = []

    def attempt(count: int) -> bool:
        ok = passes(count)
        trials.append(Trial(count, ok))
        return ok

    good, bad = 0, None
    count = start
    while True:
        if attempt(count):
            good = count
            if count >= limit:
                return good, trials
            count = min(limit, count * 2)
        else:
            bad = count
            break
    low = good  # 0 when even `start` failed: the bisection then looks below it
    while bad - low > 1:
        mid = (low + bad) // 2
        if attempt(mid):
            low = mid
        else:
            bad = mid
    return low, trials
