"""The compose target's operations: `docker compose` on this machine.

"Healthy" is Compose's `up --wait`: every container running and its healthcheck passed.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from stackgen import engine, feeder
from stackgen.engine import DockerClient, DockerException
from stackgen.errors import DockerError, ProblemsFoundError, StackInterrupted, UnhealthyError
from stackgen.redaction import redact
from stackgen.reloading import ProxyAction, plan_reload
from stackgen.stack import Stack
from stackgen.targets.base import LOG_LINES_ON_FAILURE, Progress, ServiceState, Target
from stackgen.targets.ports import Own, require_free_ports


def _one_line(error: DockerException) -> str:
    return " ".join(str(error.stderr or error).split())


def _states(client: DockerClient) -> list[ServiceState]:
    states = [
        ServiceState(c.service, c.name, c.state, c.health, list(c.ports))
        for c in engine.compose_containers(client)
    ]
    return sorted(states, key=lambda s: s.service)


class Compose(Target):
    name = "compose"

    def _own(self, stack: Stack) -> Own:
        try:
            containers = engine.compose_containers(stack.compose)
        except DockerException:
            return Own()
        return Own(
            frozenset(c.name for c in containers), frozenset(c.pid for c in containers if c.pid)
        )

    def preflight(self, stack: Stack, progress: Progress) -> None:
        require_free_ports(stack.config, self._own(stack))

    def ensure_images(self, stack: Stack, progress: Progress) -> None:
        """A missing image is pulled before anything starts, instead of a half-started
        stack that never becomes healthy."""
        images = engine.compose_images(stack.compose) or [stack.proxy.image(stack.config)]
        for image in images:
            if engine.image_present(image):
                continue
            progress(f"image {image} is not present locally: pulling it")
            problem = engine.pull_image(image)
            if problem:
                raise DockerError(
                    f"image {image} is not present locally and cannot be pulled: {problem}"
                )

    def is_running(self, stack: Stack) -> bool:
        try:
            return any(s.state == "running" for s in _states(stack.compose))
        except DockerException:
            return False

    def apply(self, stack: Stack, *, timeout: int, progress: Progress) -> None:
        progress(f"starting {stack.config.project} (waiting up to {timeout} s for healthchecks)")
        try:
            engine.compose_up(stack.compose, timeout=timeout)
        except DockerException as error:
            names = self._explain(stack, progress)
            detail = " ".join(str(error.stderr or "").split())[-200:]
            if not names:
                # Nothing is unhealthy: Compose itself failed (a container it could not create).
                raise DockerError(
                    f"docker compose up failed: {detail or f'exit {error.return_code}'}"
                ) from None
            raise UnhealthyError(
                f"the stack did not become healthy: {names}; re-run `stackgen up` after fixing"
                + (f" ({detail})" if detail else "")
            ) from None

    def _explain(self, stack: Stack, progress: Progress) -> str:
        try:
            states = _states(stack.compose)
        except DockerException:
            states = []
        bad = [s for s in states if not s.well]
        for state in bad or states:
            progress(f"--- {state.service}: {state.state}, health {state.health}; last log lines:")
            progress(self.recent_logs(stack, state.service, LOG_LINES_ON_FAILURE))
        return ", ".join(f"{s.service} ({s.state}, {s.health})" for s in bad)

    def explain(self, stack: Stack, progress: Progress) -> None:
        self._explain(stack, progress)

    def interrupted(self, stack: Stack, *, was_running: bool) -> StackInterrupted:
        project = stack.config.project
        if was_running:
            return StackInterrupted(
                f"interrupted: {project} was already running and is left running; "
                "re-run `stackgen up` to finish the update"
            )
        # A second Ctrl-C or SIGTERM must not cut the clean-up short.
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)
        try:
            engine.compose_down(stack.compose, timeout=5)
        except DockerException as error:
            detail = _one_line(error)[-200:]
            return StackInterrupted(
                f"interrupted: stopping what `up` had started failed ({detail}); "
                f"run `stackgen down --dir {stack.folder}`"
            )
        finally:
            if in_main:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        return StackInterrupted(
            f"interrupted: stopped and removed what `up` had started of {project}"
        )

    def require_deployed(self, stack: Stack) -> None:
        if not any(s.state == "running" for s in _states(stack.compose)):
            raise ProblemsFoundError(f"{stack.config.project} is not running: use `stackgen up`")

    def reload(self, stack: Stack, changed: set[str], progress: Progress) -> None:
        """The least disruptive way to apply `changed` (see reloading.py)."""
        plan = plan_reload(stack.proxy, stack.config, changed)
        client = stack.compose
        service = stack.proxy.service
        try:
            if plan.recreate:
                progress("docker-compose.yml changed: recreating the services it changes")
                engine.compose_up(client, timeout=180)
            if plan.restart_jellyfin:
                progress("network.xml changed: restarting Jellyfin (it reads it at start only)")
                engine.compose_restart(client, ["jellyfin"])
            if plan.restart_gate:
                gate = stack.config.token_gate.service
                progress(f"{gate}: restarting (it reads its script at start only)")
                engine.compose_restart(client, [gate])
            if plan.restart_feeder:
                # Its bans are lifted (they live in memory); its configuration is read at start.
                progress("fail2ban's configuration changed: restarting the ban list's feeder")
                engine.compose_restart(client, [feeder.SERVICE])
            if plan.proxy is None:
                pass  # this side runs no proxy
            elif plan.proxy is ProxyAction.RESTART:
                progress(f"{service}: restarting (this change needs a restart)")
                engine.compose_restart(client, [service])
            elif plan.proxy is ProxyAction.RELOAD and plan.reload_command is not None:
                progress(f"{service}: graceful reload ({' '.join(plan.reload_command)})")
                engine.compose_exec(client, service, list(plan.reload_command))
            else:
                progress(f"{service}: picks up its changed files by itself")
        except DockerException as error:
            raise DockerError(f"reload failed: {_one_line(error)}") from None

    def run_in_service(self, stack: Stack, service: str, argv: list[str]) -> str:
        try:
            return engine.compose_exec_output(stack.compose, service, argv)
        except DockerException as error:
            raise DockerError(
                f"{service}: {' '.join(argv[:2])} failed: {_one_line(error)}"
            ) from None

    def holds(self, project: str, folder: Path) -> bool:
        try:
            return bool(engine.compose_containers(engine.project_client(project, folder)))
        except DockerException:
            return False

    def remove(self, project: str, folder: Path, *, volumes: bool) -> None:
        """`docker compose -p PROJECT down`: by the project's labels, so it needs neither
        the compose file nor stackgen.toml (either may be missing or broken)."""
        try:
            engine.compose_down(engine.project_client(project, folder), volumes=volumes)
        except DockerException as error:
            raise DockerError(f"docker compose down failed: {error.stderr or error}") from None

    def states(self, stack: Stack) -> list[ServiceState]:
        try:
            return _states(stack.compose)
        except DockerException:
            # A missing or broken compose file: the containers are still found by the project.
            return self.project_states(stack.config.project, stack.folder)

    def project_states(self, project: str, folder: Path) -> list[ServiceState]:
        return _states(engine.project_client(project, folder))

    def logs(self, stack: Stack, service: str | None, follow: bool) -> Iterator[str]:
        try:
            yield from engine.compose_logs(
                stack.compose, [service] if service else [], follow=follow
            )
        except DockerException as error:
            raise DockerError(f"docker compose logs failed: {error.stderr or error}") from None

    def recent_logs(self, stack: Stack, service: str | None, lines: int) -> str:
        try:
            chosen = [service] if service else []
            text = engine.compose_recent_logs(stack.compose, chosen, lines=lines)
        except DockerException as error:
            return f"(no logs: {redact(str(error))})"
        return redact(text)  # a proxy's or Jellyfin's log may quote a token

    def proxy_container(self, stack: Stack) -> tuple[str, list[str]] | None:
        try:
            containers = engine.compose_containers(stack.compose, [stack.proxy.service])
        except DockerException:
            return None
        for container in containers:
            if container.state == "running":
                return container.id, [a for a in container.addresses if ":" not in a]
        return None

    def proxy_addresses(self, stack: Stack) -> list[str]:
        """The proxy container's addresses on the stack's networks: over IPv6 (ipv6 = true,
        bridged Jellyfin) the proxy connects from its IPv6 address, which KnownProxies must
        then cover too."""
        try:
            containers = engine.compose_containers(stack.compose, [stack.proxy.service])
        except DockerException:
            return []
        return [a for c in containers if c.state == "running" for a in c.addresses]
