"""Build proxy test images as an earlier commit defined them, under a tag of their own, so
that a tuning run (`bench.tune PROXY version-old`) can set a past version against today's.

Usage (from the repository root):

    python -m bench.old_images COMMIT TAG [NAME...]     (NAMEs default: nginx haproxy httpd)

Each NAME's folder is read from COMMIT with `git archive` (the working tree, and the images
tests run, are left as they are) and built as `stackgen-test/NAME:TAG`, labelled with the
commit. TAG `local` is refused, and so is the tag this checkout builds
(STACKGEN_TEST_IMAGE_TAG): an old build must never replace an image tests use. The FROM lines
name their bases as COMMIT did; those bases are used as they are now (build them first with
`tests/images/build.py`), which is right while a base's recipe is the one COMMIT had. Before
the versions moved (the parent of 3fb3340) every proxy was built FROM
`stackgen-test/debian-base:local`, Debian 12, whose recipe has not changed since.

COMMIT's Dockerfiles may install unpinned packages: the versions Debian serves today are
built, so each image's version line is printed (and recorded) after the build.
Prints `{"NAME": {"tag": ..., "version": ...}}` as JSON on stdout; exit 1 when a build fails,
2 on bad arguments.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_NAMES = ("nginx", "haproxy", "httpd")
# The command that prints each proxy's version inside its image.
VERSION_COMMAND: dict[str, tuple[str, ...]] = {
    "nginx": ("nginx", "-v"),
    "haproxy": ("haproxy", "-v"),
    "httpd": ("httpd", "-v"),
}
COMMIT_LABEL = "org.stackgen.built-from-commit"


class OldImageError(Exception):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def check_tag(tag: str) -> None:
    """Refuse a tag that is not valid or that tests use."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", tag):
        raise OldImageError(f"{tag!r} is not a valid image tag", exit_code=2)
    in_use = {"local", os.environ.get("STACKGEN_TEST_IMAGE_TAG") or "local"}
    if tag in in_use:
        raise OldImageError(
            f"tag {tag!r} is the one tests use here; an old build takes a tag of its own",
            exit_code=2,
        )


def resolve(commit: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{commit}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise OldImageError(f"{commit!r} is not a commit of this repository", exit_code=2)
    return proc.stdout.strip()


def export_folder(commit: str, name: str, target: Path) -> None:
    """tests/images/NAME as COMMIT had it, into target (nothing else is read from COMMIT)."""
    proc = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, f"tests/images/{name}"],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise OldImageError(
            f"{commit[:12]} has no tests/images/{name}: {proc.stderr.decode().strip()}",
            exit_code=2,
        )
    prefix = f"tests/images/{name}/"
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as archive:
        for member in archive.getmembers():
            if not member.name.startswith(prefix) or member.name == prefix.rstrip("/"):
                continue
            member.name = member.name[len(prefix) :]
            archive.extract(member, target, filter="data")
    if not (target / "Dockerfile").is_file():
        raise OldImageError(f"{commit[:12]}: tests/images/{name} has no Dockerfile", exit_code=2)


def build(commit: str, name: str, tag: str) -> dict[str, str]:
    image = f"stackgen-test/{name}:{tag}"
    with tempfile.TemporaryDirectory(prefix=f"old-{name}-") as tmp:
        context = Path(tmp)
        export_folder(commit, name, context)
        proc = subprocess.run(
            ["docker", "build", "--rm", "--force-rm",
             "--label", f"{COMMIT_LABEL}={commit}", "--tag", image, str(context)],
            capture_output=True, text=True, check=False,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )  # fmt: skip
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip().splitlines()
        raise OldImageError(f"{name}: docker build failed:\n" + "\n".join(output[-30:]))
    version = ""
    if name in VERSION_COMMAND:
        shown = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "", image, *VERSION_COMMAND[name]],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        version = (shown.stdout + shown.stderr).strip().splitlines()[0]
    return {"tag": image, "commit": commit, "version": version}


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    commit, tag, *names = argv
    try:
        check_tag(tag)
        full = resolve(commit)
        built = {}
        for name in names or DEFAULT_NAMES:
            print(f"[old-images] building {name} from {full[:12]}", file=sys.stderr, flush=True)
            built[name] = build(full, name, tag)
            print(f"[old-images] {built[name]['tag']}: {built[name]['version']}", file=sys.stderr)
    except OldImageError as error:
        print(f"bench.old_images: {error}", file=sys.stderr)
        return error.exit_code
    print(json.dumps(built, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
