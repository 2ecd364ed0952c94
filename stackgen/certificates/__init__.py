"""Certificates as a component: sources (source.py, certbot.py) and the TLS profile."""

from stackgen.certificates.certbot import Certbot, certbot_or_files, uses_certbot
from stackgen.certificates.profile import INTERMEDIATE, TlsProfile
from stackgen.certificates.source import (
    CertificateSource,
    InternalCa,
    MountedFiles,
    ProxyAcme,
    ServedPair,
    UserFiles,
    mounted_files,
)

__all__ = [
    "INTERMEDIATE",
    "Certbot",
    "CertificateSource",
    "InternalCa",
    "MountedFiles",
    "ProxyAcme",
    "ServedPair",
    "TlsProfile",
    "UserFiles",
    "certbot_or_files",
    "mounted_files",
    "uses_certbot",
]
