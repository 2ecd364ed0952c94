"""DNS-01 providers: the ones both of stackgen's ACME clients can drive.

Traefik asks lego (its built-in ACME library) and reads the provider's credentials from
environment variables; the certbot service runs one of certbot's DNS plugins, which reads an
INI credentials file (or, for Route 53, the AWS variables). A stack keeps the variables named
as lego names them, in one secrets file, `.env` (0600), or, on a target that hands them over
as secrets (the swarm), one file each (`secrets/NAME`, read through lego's `NAME_FILE`); the
certbot service writes the plugin's INI from them at start, in its tmpfs, so a value is
never written twice on disk.

A provider is offered only when both clients have it (Debian's certbot carries the plugins
listed here); the names are the clients' documented ones, held against their documentation by
tests/unit/test_dns_providers.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class DnsProvider:
    name: str  # what stackgen.toml says: lego's provider code
    certbot_plugin: str  # certbot's authenticator: `--authenticator dns-<this>`
    # The variables the secrets file must give (lego's names).
    variables: tuple[str, ...]
    # The certbot plugin's INI: (key, variable it is written from). Empty: the plugin reads
    # the variables from its environment itself.
    certbot_ini: tuple[tuple[str, str], ...] = ()

    @property
    def certbot_prefix(self) -> str:
        """certbot's option prefix for this plugin: `--dns-cloudflare-credentials`, ..."""
        return f"dns-{self.certbot_plugin}"


# The one credential stackgen can check without asking the provider: bind's TSIG secret.
TSIG_SECRET: Final = "RFC2136_TSIG_SECRET"

RFC2136: Final = DnsProvider(
    "rfc2136",
    "rfc2136",
    ("RFC2136_NAMESERVER", "RFC2136_TSIG_KEY", "RFC2136_TSIG_SECRET", "RFC2136_TSIG_ALGORITHM"),
    # server and port are split from RFC2136_NAMESERVER, the algorithm re-spelt (lego
    # `hmac-sha256.`, certbot `HMAC-SHA256`): see certbot/run.sh.
    (
        ("dns_rfc2136_server", "RFC2136_NAMESERVER"),
        ("dns_rfc2136_port", "RFC2136_NAMESERVER"),
        ("dns_rfc2136_name", "RFC2136_TSIG_KEY"),
        ("dns_rfc2136_secret", "RFC2136_TSIG_SECRET"),
        ("dns_rfc2136_algorithm", "RFC2136_TSIG_ALGORITHM"),
    ),
)

PROVIDERS: Final[dict[str, DnsProvider]] = {
    provider.name: provider
    for provider in (
        RFC2136,
        DnsProvider(
            "cloudflare",
            "cloudflare",
            ("CF_DNS_API_TOKEN",),
            (("dns_cloudflare_api_token", "CF_DNS_API_TOKEN"),),
        ),
        # boto3 (certbot) and lego both read the standard AWS variables.
        DnsProvider("route53", "route53", ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")),
        DnsProvider(
            "ovh",
            "ovh",
            ("OVH_ENDPOINT", "OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY"),
            (
                ("dns_ovh_endpoint", "OVH_ENDPOINT"),
                ("dns_ovh_application_key", "OVH_APPLICATION_KEY"),
                ("dns_ovh_application_secret", "OVH_APPLICATION_SECRET"),
                ("dns_ovh_consumer_key", "OVH_CONSUMER_KEY"),
            ),
        ),
        DnsProvider(
            "digitalocean",
            "digitalocean",
            ("DO_AUTH_TOKEN",),
            (("dns_digitalocean_token", "DO_AUTH_TOKEN"),),
        ),
        DnsProvider("linode", "linode", ("LINODE_TOKEN",), (("dns_linode_key", "LINODE_TOKEN"),)),
        DnsProvider(
            "dnsimple",
            "dnsimple",
            ("DNSIMPLE_OAUTH_TOKEN",),
            (("dns_dnsimple_token", "DNSIMPLE_OAUTH_TOKEN"),),
        ),
    )
}
# Asked for, but one of the two clients lacks them (Debian's certbot has no DuckDNS or
# Porkbun plugin; its Gandi plugin is a third party's with other names): named in the error.
NOT_OFFERED: Final = ("duckdns", "gandiv5", "porkbun")


def provider(name: str) -> DnsProvider:
    """The provider called `name`; ValueError listing the known ones otherwise."""
    try:
        return PROVIDERS[name]
    except KeyError:
        known = ", ".join(PROVIDERS)
        extra = f" ({name} has no plugin in certbot)" if name in NOT_OFFERED else ""
        raise ValueError(f"unknown DNS provider {name!r}{extra}; known: {known}") from None
