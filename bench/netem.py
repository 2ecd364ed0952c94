"""Network profiles for `make bench` (`BENCH_NETWORK`): latency, loss and rate applied with
netem to the client's own link, the veth pair of the client namespace, so only the run's
own clients see them: half the delay each way (the profile's delay is the round trip),
the rate both ways, the loss on the way to the client (where a stream's data flows). The
client end is shaped inside the namespace; the other end of the same pair is the run's
own interface on the host, through which no other traffic passes.

`lan`: 1 GbE, 0.5 ms; `wan`: 40 ms, 0.1 % loss, 100 Mbit/s; or a profile spelled
`delay=MS,loss=PERCENT,rate=MBIT` (each part optional). netem is a kernel module
(`sch_netem`, CONFIG_NET_SCH_NETEM): a kernel without it cannot run a profile, and the run
stops before it starts anything, with tc's own error (`check`).
"""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass


class ProfileError(ValueError):
    """A profile that is not one of the named ones and does not parse."""


@dataclass(frozen=True)
class Profile:
    name: str
    delay_ms: float = 0.0
    loss_percent: float = 0.0
    rate_mbit: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.delay_ms <= 2000:
            raise ProfileError(f"{self.name}: delay must be 0..2000 ms")
        if not 0 <= self.loss_percent <= 50:
            raise ProfileError(f"{self.name}: loss must be 0..50 %")
        if self.rate_mbit is not None and not 0.1 <= self.rate_mbit <= 100_000:
            raise ProfileError(f"{self.name}: rate must be 0.1..100000 Mbit/s")

    def netem_args(self, *, toward_client: bool = True) -> list[str]:
        """`tc qdisc replace dev DEV root` + these, for one direction."""
        args = ["netem", "delay", f"{self.delay_ms / 2:g}ms"]
        if self.loss_percent and toward_client:
            args += ["loss", f"{self.loss_percent:g}%"]
        if self.rate_mbit is not None:
            args += ["rate", f"{self.rate_mbit:g}mbit"]
        # netem's own queue (1000 packets) would drop at 40 ms x 1 Gbit/s: room for the
        # bandwidth-delay product of the fastest profile, so only `loss` drops packets.
        return [*args, "limit", "100000"]

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "delay_ms": self.delay_ms,
            "loss_percent": self.loss_percent,
            "rate_mbit": self.rate_mbit,
        }


PROFILES = {
    "lan": Profile("lan", delay_ms=0.5, rate_mbit=1000),
    "wan": Profile("wan", delay_ms=40, loss_percent=0.1, rate_mbit=100),
}


def parse(text: str) -> Profile | None:
    """None for `none` or empty (the bare veth); a named profile; or delay=,loss=,rate=."""
    text = text.strip().lower()
    if text in ("", "none"):
        return None
    if text in PROFILES:
        return PROFILES[text]
    fields: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        number = value.removesuffix("ms").removesuffix("%").removesuffix("mbit")
        if not sep or key not in ("delay", "loss", "rate") or key in fields:
            raise ProfileError(
                f"network profile {text!r}: expected lan, wan, none or "
                "delay=MS,loss=PERCENT,rate=MBIT"
            )
        try:
            fields[key] = float(number)
        except ValueError:
            raise ProfileError(f"network profile {text!r}: {value!r} is not a number") from None
    return Profile(
        text,
        delay_ms=fields.get("delay", 0.0),
        loss_percent=fields.get("loss", 0.0),
        rate_mbit=fields.get("rate"),
    )


def check(profile: Profile) -> str | None:
    """None when this kernel applies `profile`; else what failed, in tc's own words.
    Tried on the loopback of a throwaway namespace: nothing else sees it."""
    name = f"sgbench-netem-{uuid.uuid4().hex[:8]}"
    steps = [
        ["ip", "netns", "add", name],
        ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
        ["ip", "netns", "exec", name, "tc", "qdisc", "replace", "dev", "lo", "root",
         *profile.netem_args()],
    ]  # fmt: skip
    try:
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False, timeout=30)
            if done.returncode != 0:
                error = (done.stderr or done.stdout).strip() or f"exit {done.returncode}"
                return f"`{' '.join(step[4:] if 'tc' in step else step)}` failed: {error}"
        return None
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False, timeout=30)


def apply(netns: str, client_if: str, host_if: str, profile: Profile) -> list[list[str]]:
    """The commands that put `profile` on the client's veth pair: its client end (inside
    `netns`, toward the servers) and its host end (toward the client)."""
    return [
        ["ip", "netns", "exec", netns, "tc", "qdisc", "replace", "dev", client_if, "root",
         *profile.netem_args(toward_client=False)],
        ["tc", "qdisc", "replace", "dev", host_if, "root", *profile.netem_args()],
    ]  # fmt: skip
