"""Values that would hand a container the host, trust everyone's X-Forwarded-For, steer
Compose, or smuggle a proxy's own expansion syntax are refused where they enter: one line,
exit 3, nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stackgen.config_file import build_config
from stackgen.errors import ExitCode, InvalidInputError
from stackgen.proxies import available
from stackgen.render import render_stack
from tests.unit.test_cli import BASE, stackgen

MINIMAL: dict[str, Any] = {
    "proxy": "traefik",
    "domain": "jellyfin.example.com",
    "email": "admin@example.com",
}


def _refused(data: dict[str, Any], *fragments: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        build_config({**MINIMAL, **data}, Path("/"), check_paths=False)
    message = str(raised.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def _cli_refused(tmp_path: Path, *args: str, fragment: str = "") -> None:
    stack = tmp_path / "stack"
    result = stackgen(*BASE, *args, "--dir", str(stack))
    assert result.returncode == ExitCode.INVALID_INPUT, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0], lines[0]
    assert not stack.exists()


@pytest.mark.parametrize(
    "media",
    [
        "/var/run/docker.sock:/sock:rw",
        "/run/docker.sock",
        "/",
        "/etc",
        "/etc/ssl",
        "/proc/self",
        "/sys",
        "/dev",
        "/var",
        "/var/lib/docker/volumes",
    ],
)
def test_host_control_paths_are_refused_as_media(media: str, tmp_path: Path) -> None:
    """Before: the Docker socket (rw), `/`, `/etc` or `/proc/self` became a Jellyfin mount."""
    _cli_refused(tmp_path, "--media", media, fragment=media.split(":")[0])


@pytest.mark.parametrize("folder", ["/", "/etc", "/proc/self", "/var/run", "/dev/shm"])
@pytest.mark.parametrize("field", ["cache_dir", "config_dir"])
def test_host_control_paths_are_refused_as_jellyfin_folders(field: str, folder: str) -> None:
    """Jellyfin writes its cache and config folders: never a host system folder."""
    _refused(
        {"jellyfin": {field: folder}}, f"jellyfin.{field}", folder if folder != "/" else "root"
    )


def test_a_link_to_a_host_control_path_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "media"
    link.symlink_to("/etc")
    _cli_refused(tmp_path, "--media", str(link), fragment="/etc")


def test_ordinary_media_folders_are_accepted(tmp_path: Path) -> None:
    media = tmp_path / "films"
    media.mkdir()
    result = stackgen(*BASE, "--media", str(media), "--dir", str(tmp_path / "stack"))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("subnet", ["0.0.0.0/0", "8.8.0.0/16", "127.0.0.0/8", "224.0.0.0/24"])
def test_a_swarm_gateway_subnet_must_be_private(subnet: str) -> None:
    """Before: 0.0.0.0/0 went into KnownProxies, trusting every client's X-Forwarded-For."""
    _refused(
        {
            "deploy": {
                "target": "swarm",
                "media_address": "192.168.1.10",
                "gateway_subnet": subnet,
            }
        },
        "deploy.gateway_subnet",
    )


@pytest.mark.parametrize(
    "subnet", ["8.8.8.0/24", "127.0.0.0/24", "224.0.0.0/24", "169.254.0.0/24", "0.0.0.0/24"]
)
def test_the_proxy_network_must_be_private(subnet: str) -> None:
    _refused({"network": {"subnet": subnet}}, "network.subnet")


@pytest.mark.parametrize(
    "name",
    ["PATH", "COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "DOCKER_HOST", "LD_PRELOAD", "HOME"],
)
def test_variables_that_steer_compose_or_the_host_are_not_credentials(
    name: str, tmp_path: Path
) -> None:
    """Before: `--dns-env COMPOSE_FILE` put COMPOSE_FILE=... into .env, which Compose reads
    as its own setting."""
    _cli_refused(
        tmp_path,
        "--tls",
        "acme-dns",
        "--dns-provider",
        "cloudflare",
        "--dns-env",
        name,
        fragment=name,
    )


# Each proxy's expansion syntax in a header value: nginx variables, Apache's format
# specifiers and defines, Caddy's placeholders, HAProxy's sample fetches, Traefik's Go
# templates.
EXPANSIONS = [
    "$http_cookie",
    "%{HTTP_COOKIE}e",
    "{env.SECRET}",
    "%[req.hdr(cookie)]",
    '{{ env "SECRET" }}',
    "${SECRET}",
]


@pytest.mark.parametrize("proxy", available())
@pytest.mark.parametrize("value", EXPANSIONS)
@pytest.mark.parametrize(
    "field", ["content_security_policy", "referrer_policy", "permissions_policy"]
)
def test_header_values_carry_no_expansion_syntax(proxy: str, value: str, field: str) -> None:
    _refused({"proxy": proxy, "headers": {field: f"default-src 'self' {value}"}}, field)


# Every character a real CSP, Referrer-Policy or Permissions-Policy uses.
LITERAL = "default-src 'self' https://cdn.example.net:8443/a_b-c.d~e; img-src * data: blob:"
POLICY = 'camera=(), geolocation=(self "https://maps.example.net")'.replace('"', "")


@pytest.mark.parametrize("proxy", available())
def test_allowed_header_values_reach_every_proxy_verbatim(proxy: str) -> None:
    """The golden of the escaping: what is accepted is rendered exactly, once per header."""
    config = build_config(
        {
            **MINIMAL,
            "proxy": proxy,
            "headers": {"content_security_policy": LITERAL, "permissions_policy": POLICY},
        },
        Path("/stack"),
        check_paths=False,
    )
    files, _ = render_stack(config, Path("/stack"))
    text = "".join(f.content.decode() for f in files if f.path != "docker-compose.yml")
    assert text.count(LITERAL) == 1, proxy
    assert text.count(POLICY) == 1, proxy


@pytest.mark.parametrize(
    "image",
    [
        "a::b",
        "a//b",
        "-jellyfin",
        "jellyfin/jellyfin@sha256:xyz",
        "jellyfin:1:2",
        "jellyfin/",
        "jellyfin..x/y",
        "jellyfin:" + "t" * 129,
        "jellyfin@",
        "jelly_/fin",
    ],
)
def test_invalid_image_references_are_refused(image: str) -> None:
    _refused({"jellyfin": {"image": image}}, "jellyfin.image")


@pytest.mark.parametrize(
    "image",
    [
        "jellyfin/jellyfin:10.11.11",
        "localhost:5000/team/jellyfin:v1",
        "ghcr.io/a/b@sha256:" + "a" * 64,
        "stackgen-test/traefik:local",
        "traefik:v3.3@sha256:" + "0" * 64,
        "registry.example.net/a__b/c.d-e:1.0_rc-2",
    ],
)
def test_valid_image_references_are_accepted(image: str) -> None:
    build_config({**MINIMAL, "jellyfin": {"image": image}}, Path("/"), check_paths=False)


@pytest.mark.parametrize("run_as", ["9999999999:0", "0:4294967295", "4294967296:4294967296"])
def test_run_as_beyond_a_uid_is_one_line(run_as: str, tmp_path: Path) -> None:
    """Before: `--run-as 9999999999:0` ended in an OverflowError traceback."""
    _cli_refused(tmp_path, "--run-as", run_as, fragment="run_as")


@pytest.mark.parametrize("command", ["init", "import"])
def test_a_foreign_compose_file_is_not_silently_kept(command: str, tmp_path: Path) -> None:
    """Before: init and import reported "stack written" beside someone else's
    docker-compose.yml, which `up` would then have started."""
    from tests.unit.import_support import EMAIL, copy_fixture

    stack = tmp_path / "stack"
    stack.mkdir()
    foreign = b"services:\n  miner:\n    image: someone/else\n"
    (stack / "docker-compose.yml").write_bytes(foreign)
    if command == "init":
        result = stackgen(*BASE, "--dir", str(stack))
    else:
        old = copy_fixture("nginx/jellyfin.conf", tmp_path)
        result = stackgen(
            "import",
            str(old),
            "--dir",
            str(stack),
            "--email",
            EMAIL,
            "--root",
            str(tmp_path / "empty"),
        )
    assert result.returncode == ExitCode.CONFLICT, result.stderr
    assert "docker-compose.yml" in result.stderr.strip().splitlines()[-1]
    hint = "--force" if command == "init" else "import into an empty folder"
    assert hint in result.stderr.strip().splitlines()[-1]
    assert sorted(p.name for p in stack.iterdir()) == ["docker-compose.yml"]
    assert (stack / "docker-compose.yml").read_bytes() == foreign
    if command == "init":
        forced = stackgen(*BASE, "--dir", str(stack), "--force")
        assert forced.returncode == 0, forced.stderr
        assert b"miner" not in (stack / "docker-compose.yml").read_bytes()


@pytest.mark.parametrize("resolver", ["192.0.2.53:٥٣", "192.0.2.53:\uff15\uff13"])
def test_a_dns_resolver_port_is_ascii_digits(resolver: str) -> None:
    """Before: int() read other scripts' digits, so '٥٣' silently became port 53."""
    _refused(
        {"tls": {"mode": "acme-dns", "dns_provider": "cloudflare", "dns_resolvers": [resolver]}},
        "tls.dns_resolvers",
    )
