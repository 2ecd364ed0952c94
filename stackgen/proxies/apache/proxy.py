"""Apache httpd 2.4: one complete httpd.conf, certificates through the certbot service."""

from __future__ import annotations

from typing import ClassVar, Final

from stackgen.certificates import CertificateSource, certbot_or_files
from stackgen.certificates.certbot import SERVED, TLS_MODES
from stackgen.models import StackConfig, TlsMode, bind_source
from stackgen.parts import InImageCommand, Mount, TemplateFile, Tmpfs, owned_tmpfs
from stackgen.proxies.apache import SPEC
from stackgen.proxies.apache.rules import conf_problems
from stackgen.proxies.base import DenySyntax, Proxy
from stackgen.proxies.spec import ProxySpec

# Mounted as a folder inside the image's conf/ (so conf/mime.types stays visible) and given
# with -f: the image's own conf/httpd.conf is not used.
CONF_DIR: Final = "apache"
CONF_PATH: Final = "/usr/local/apache2/conf/stackgen"
CONF_FILE: Final = f"{CONF_PATH}/httpd.conf"


class Apache(Proxy):
    spec: ClassVar[ProxySpec] = SPEC
    tls_modes: ClassVar[frozenset[TlsMode]] = TLS_MODES
    http3_refusal: ClassVar[str] = "Apache httpd has no HTTP/3 (QUIC) support"
    conf_dir: ClassVar[str] = CONF_DIR
    conf_path: ClassVar[str] = CONF_PATH
    geo_file: ClassVar[str | None] = "geo-allow.conf"
    # httpd's parse of a long `<RequireAny>` grows faster than the list (measured `httpd -t`
    # in the test image, loaded machine: 10,000 lines 7 s, 20,000 11 s, 40,000 37 s), and it
    # parses at start twice and at every graceful reload once: 50,000 networks never became
    # healthy within `up`'s 180 s. 20,000 and a few start (tests/integration/test_geo.py).
    geo_max_networks: ClassVar[int | None] = 25_000
    geo_max_reason: ClassVar[str] = (
        "httpd's start-up and every graceful reload parse the list in a time that grows "
        "faster than its length (40,000 networks: 37 s a pass)"
    )
    ban_file: ClassVar[str | None] = "deny.conf"

    def deny_syntax(self, head: str, name: str) -> DenySyntax:
        # Included in the HTTPS virtual host. <If> is merged after every <Location>, and
        # its `Require` replaces theirs (AuthMerging Off), so no other rule lets a banned
        # client through; others never match it (a second file's <If> neither).
        return DenySyntax(
            head,
            first='<If "',
            each="-R '{}'",
            between=" || ",
            tail='">\n    Require all denied\n</If>\n',
        )

    def geo_syntax(self, head: str) -> DenySyntax:
        # Included in the HTTPS virtual host after the deny files. An <If> is merged after
        # every <Location>; `AuthMerging And` keeps their rules (access.allow, the token
        # gate) and adds this one: a client must be in one of the networks as well.
        return DenySyntax(
            head,
            first='<If "true">\n    AuthMerging And\n    <RequireAny>\n',
            each="        Require ip {}\n",
            tail="    </RequireAny>\n</If>\n",
        )

    def certificates(self, config: StackConfig) -> CertificateSource:
        return certbot_or_files(config, SERVED)

    def own_templates(self, config: StackConfig) -> list[TemplateFile]:
        return [
            TemplateFile("proxies/apache/httpd.conf.j2", f"{CONF_DIR}/httpd.conf"),
            TemplateFile("proxies/apache/healthcheck.pl.j2", f"{CONF_DIR}/healthcheck.pl"),
        ]

    def own_mounts(self, config: StackConfig) -> list[Mount]:
        why = "The folder, not the file: an atomic replace of httpd.conf would be missed."
        return [Mount(bind_source(self.conf_dir), self.conf_path, comment=(why,))]

    def own_tmpfs(self, config: StackConfig) -> list[Tmpfs]:
        why = "Pid file, mutexes and the TLS session cache, owned by the user Apache runs as."
        return [owned_tmpfs("/usr/local/apache2/logs", config.uid, config.gid, why)]

    def foreground(self, config: StackConfig) -> tuple[str, ...]:
        # The image's httpd-foreground removes a stale pid file, then execs httpd -DFOREGROUND.
        return ("httpd-foreground", "-f", CONF_FILE)

    def validate_command(self, config: StackConfig) -> InImageCommand | None:
        return InImageCommand(
            argv=("httpd", "-t", "-f", CONF_FILE),
            mounts=self.conf_mounts(config),
        )

    def reload_command(self, config: StackConfig) -> list[str]:
        return ["httpd", "-k", "graceful", "-f", CONF_FILE]

    def static_problems(self, config: StackConfig, files: dict[str, bytes]) -> list[str]:
        name = f"{CONF_DIR}/httpd.conf"
        raw = files.get(name)
        if raw is None:
            return [f"{name}: missing"]
        return [f"{name}: {problem}" for problem in conf_problems(raw.decode("utf-8", "replace"))]
