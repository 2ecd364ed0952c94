"""Reading what a user points stackgen at (an old proxy's files, a certificate and key, a
`stackgen.toml`) as untrusted input: regular files only, of bounded size, found where they
are allowed to be, parsed with bounded nesting and no YAML aliases, a key loaded and matched
to its certificate. Every refusal is one `InvalidInputError` line naming the file.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from stackgen.errors import InvalidInputError, StackgenError

# Far above any proxy configuration, acme.json or certificate chain seen in the wild, far
# below what would hurt the machine reading it.
MAX_INPUT_BYTES: Final = 4 * 1024 * 1024
# Deeper than any real configuration nests (an Apache <If> in a <Location> in a
# <VirtualHost> is 3): refused early, before a parser's cost grows with the depth.
MAX_NESTING: Final = 64

_KINDS: Final = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_bytes(
    path: Path,
    *,
    limit: int = MAX_INPUT_BYTES,
    unreadable: type[StackgenError] = InvalidInputError,
) -> bytes:
    """The content of a regular file of at most `limit` bytes. Opened without blocking (a
    FIFO would otherwise wait for a writer forever) and judged on the open descriptor, so
    what is checked is what is read. `unreadable` is the error for a file the OS will not
    open or read (permissions): a filesystem problem for the stack's own files."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as error:
        raise unreadable(f"{path}: cannot read: {error.strerror or error}") from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a file")
            raise InvalidInputError(f"{path}: not a regular file ({kind})")
        try:
            data = handle.read(limit + 1)
        except OSError as error:
            raise unreadable(f"{path}: cannot read: {error.strerror or error}") from None
    if len(data) > limit:
        raise InvalidInputError(f"{path}: larger than {limit // (1024 * 1024)} MiB: not read")
    return data


def read_text(path: Path, *, limit: int = MAX_INPUT_BYTES) -> str:
    data = read_bytes(path, limit=limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInputError(
            f"{path}: not a text file (byte {error.start}): expected a proxy configuration"
        ) from None


def peek_text(path: Path) -> str | None:
    """A file's text for guessing its format, or None when it is not a readable regular file
    of bounded size (format detection never raises)."""
    try:
        return read_bytes(path).decode("utf-8", errors="replace")
    except InvalidInputError:
        return None


def confined(root: Path, raw: str) -> Path:
    """An old server's path (absolute, or relative to its `/`) found under `root`, resolved:
    symbolic links are followed, and where they lead must still be under `root`. A link to
    the host's /etc/shadow or a `../../..` path is refused, never read or mounted."""
    base = root.resolve()
    relative = raw.lstrip("/")
    resolved = (base / relative).resolve()
    if resolved != base and base not in resolved.parents:
        raise InvalidInputError(
            f"{raw}: leads to {resolved}, outside --root {base}: not read "
            "(a link or '..' out of the old server's files)"
        )
    return resolved


@contextlib.contextmanager
def bounded_nesting(where: object, expected: str) -> Iterator[None]:
    """Parsers recurse once per level of nesting: input nested deeper than the interpreter's
    stack is hostile, and gets one line, not a RecursionError traceback."""
    try:
        yield
    except RecursionError:
        raise InvalidInputError(f"{where}: nested too deeply: expected {expected}") from None


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases: `*name` can expand a few lines into gigabytes (billion laughs);
    and no deeper than MAX_NESTING (PyYAML's scanner slows with the depth before the
    interpreter's stack runs out)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        mark: Any = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not read: expand them", mark
            )
        if self._depth >= MAX_NESTING:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_NESTING} levels", mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def yaml_tree(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the data of a YAML document, without aliases.
    Raises yaml.YAMLError; RecursionError is the caller's to bound (`bounded_nesting`)."""
    loader = _NoAliasLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return node, data


def tls_pair(chain_pem: bytes, key_pem: bytes, cert_path: object, key_path: object) -> None:
    """The chain is PEM certificates, the key an unencrypted PEM private key, and the key is
    the leaf's: a proxy would otherwise fail at start, or serve what the user never meant.
    Errors never echo the files' content."""
    try:
        leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    except (ValueError, IndexError):
        raise InvalidInputError(f"{cert_path}: expected a PEM certificate chain") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise InvalidInputError(f"{key_path}: expected an unencrypted PEM private key") from None
    except Exception:  # cryptography raises its own types for unsupported keys
        raise InvalidInputError(f"{key_path}: expected a PEM private key") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if key.public_key().public_bytes(encoding, public) != leaf.public_key().public_bytes(
        encoding, public
    ):
        raise InvalidInputError(
            f"{key_path}: does not match the certificate in {cert_path} (another key's pair)"
        )


def read_certificates(path: Path) -> bytes:
    """A PEM bundle of certificates (a CA to trust), read as untrusted input."""
    data = read_bytes(path)
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise InvalidInputError(f"{path}: expected PEM certificates") from None
    return data


def read_tls_pair(cert_path: Path, key_path: Path) -> tuple[bytes, bytes]:
    """A certificate chain and its key, read as untrusted input and matched."""
    chain, key = read_bytes(cert_path), read_bytes(key_path)
    tls_pair(chain, key, cert_path, key_path)
    return chain, key
