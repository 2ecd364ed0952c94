"""Where the served certificate comes from, as a component a proxy is given (composition,
not inheritance): the proxy's own ACME client, the certbot service (certbot.py), the internal
CA, or the user's files.

Whatever the source, the proxy reads the certificate at the same container paths (its
`ServedPair`), so its own configuration does not depend on the source. A source adds what it
needs around the proxy: files, folders, read-only mounts into the proxy's container, a
compose service of its own, a wrapper around the proxy's command.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Final

from stackgen import pki
from stackgen.models import StackConfig, TlsMode
from stackgen.parts import Access, Mount, StateFile, TemplateFile

# Where the internal CA's files live in the stack folder.
INTERNAL_CA_DIR: Final = "tls"
CA_CERT: Final = f"{INTERNAL_CA_DIR}/ca.pem"
CA_KEY: Final = f"{INTERNAL_CA_DIR}/ca-key.pem"
# Where a container finds the secrets a target gives it (Docker's default for a secret).
CREDENTIALS_PATH: Final = "/run/secrets"


@dataclass(frozen=True)
class ServedPair:
    """The container paths the proxy reads the served certificate from."""

    fullchain: str
    privkey: str
    # HAProxy's `crt` is one PEM with chain and key (or the chain with its key beside it as
    # `<crt>.key`); None for proxies that take two files.
    combined: str | None = None


class CertificateSource:
    """A source that adds nothing: the base of the others."""

    # Container path of an HTTP-01 webroot the proxy must serve on port 80 (None: none).
    webroot_path: ClassVar[str | None] = None
    # A compose service rendered after the proxy's, or None.
    service_template: ClassVar[str | None] = None
    # The proxy reads the served pair from files (its `ServedPair`), rather than getting its
    # certificate from its own ACME client.
    proxy_reads_files: ClassVar[bool] = False

    def __init__(self, served: ServedPair) -> None:
        self.served = served

    def templates(self, config: StackConfig) -> list[TemplateFile]:
        return []

    def state_files(self, config: StackConfig, stack_dir: Path) -> list[StateFile]:
        return []

    def directories(self, config: StackConfig) -> list[tuple[str, int]]:
        return []

    def proxy_mounts(self, config: StackConfig) -> list[Mount]:
        """Read-only mounts into the proxy's container."""
        return []

    def restart_files(self) -> frozenset[str]:
        """Stack files the proxy reads only when its container starts."""
        return frozenset()

    def credential_paths(self, config: StackConfig) -> dict[str, str]:
        """Where the ACME client reads each DNS-01 credential, by variable, when the target
        hands them over as secrets (Docker's own place for a secret); empty otherwise."""
        return {name: f"{CREDENTIALS_PATH}/{name}" for name in config.dns_credential_files}

    def credential_mounts(self, config: StackConfig) -> list[Mount]:
        """The credentials' files as secrets of the service that runs the ACME client."""
        paths = self.credential_paths(config)
        return [
            Mount(f"./{file}", paths[name], file=True, secret=True)
            for name, file in config.dns_credential_files.items()
        ]

    def watched_files(self) -> list[str]:
        """Container paths (shell patterns) the proxy must reload on when they change: the
        proxy's file watcher (`Proxy.command`) polls them."""
        return []

    def deployed_marker(self) -> str | None:
        """The file (in the stack folder) written each time new certificate files were put
        in place for the proxy's file watcher to apply; None when the proxy swaps its
        certificates itself."""
        return None


class ProxyAcme(CertificateSource):
    """The proxy's own ACME client (Traefik, Caddy): it obtains and renews by itself; its
    account and certificates live in the proxy's own state (acme.json, /data)."""

    def __init__(self, served: ServedPair, storage: Sequence[StateFile] = ()) -> None:
        super().__init__(served)
        self.storage = tuple(storage)

    def state_files(self, config: StackConfig, stack_dir: Path) -> list[StateFile]:
        return list(self.storage)

    def proxy_mounts(self, config: StackConfig) -> list[Mount]:
        # The proxy's own ACME client takes the DNS-01 credentials.
        return self.credential_mounts(config)


class MountedFiles(CertificateSource):
    """A certificate pair on the host, mounted read-only at the served paths."""

    proxy_reads_files: ClassVar[bool] = True

    def proxy_mounts(self, config: StackConfig) -> list[Mount]:
        if not config.tls_files:
            return []
        chain, key = config.tls_files
        if self.served.combined:
            # HAProxy loads `<crt>.key` by itself (ssl-load-extra-files, 2.2+): no combined
            # copy of the user's key is made.
            return [
                Mount(chain, self.served.combined, file=True),
                Mount(key, f"{self.served.combined}.key", secret=True),
            ]
        return [
            Mount(chain, self.served.fullchain, file=True),
            Mount(key, self.served.privkey, secret=True),
        ]


class UserFiles(MountedFiles):
    """The user's own certificate and key (tls.mode `files`)."""


# Where the user's own pair is copied in the stack folder (`init --tls files`, import): the
# stack never mounts a pair from its old place.
OWN_CERT: Final = "tls/imported/fullchain.pem"
OWN_KEY: Final = "tls/imported/privkey.pem"


class InternalCa(MountedFiles):
    """A local CA stackgen creates once, for LAN-only servers (tls.mode `internal`): clients
    trust `tls/ca.pem`."""

    def state_files(self, config: StackConfig, stack_dir: Path) -> list[StateFile]:
        folder = stack_dir / INTERNAL_CA_DIR
        if (folder / "ca.pem").exists():
            # Issued once: a new CA would orphan the root clients already trust.
            return []
        pair = pki.issue_internal(config.domain)
        return [
            StateFile(CA_CERT, pair.ca_cert_pem, 0o644, Access.CONTROL),
            # No container ever reads the CA's key.
            StateFile(CA_KEY, pair.ca_key_pem, 0o600, Access.PRIVATE),
            StateFile(
                f"{INTERNAL_CA_DIR}/fullchain.pem", pair.fullchain_pem, 0o644, Access.CONTROL
            ),
            # The proxy reads it through its group, and cannot change it.
            StateFile(f"{INTERNAL_CA_DIR}/privkey.pem", pair.key_pem, 0o640, Access.SECRET),
        ]


def mounted_files(config: StackConfig, served: ServedPair) -> CertificateSource:
    """The source of modes `internal` and `files`."""
    return InternalCa(served) if config.tls.mode is TlsMode.INTERNAL else UserFiles(served)
