""".env holds the DNS-01 credentials: written in the quoting Compose reads literally, read by
`check` as Compose reads it, and replaced when `init --force` is given new ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackgen.env_file import parse_env
from stackgen.errors import ExitCode
from stackgen.stack import Stack
from stackgen.stack_checks import check_stack
from tests.unit.test_cli import stackgen

DNS = [
    "init",
    "nginx",
    "--domain",
    "jellyfin.example.com",
    "--email",
    "a@example.com",
    "--tls",
    "acme-dns",
    "--dns-provider",
    "cloudflare",
]
TRICKY = "ab$cd${HOME} #ef\\g"


def _dns_findings(stack: Path) -> list[tuple[str, str]]:
    return [
        (f.status.value, f.message)
        for f in check_stack(Stack.load(stack), use_docker=False)
        if f.check == "dns"
    ]


def test_a_credential_is_written_so_compose_reads_it_literally(tmp_path: Path) -> None:
    """Before: written unquoted, Compose expanded `$` and cut ` #...` out of the token while
    check passed."""
    stack = tmp_path / "s"
    result = stackgen(*DNS, "--dns-credential", f"CF_DNS_API_TOKEN={TRICKY}", "--dir", str(stack))
    assert result.returncode == 0, result.stderr
    text = (stack / ".env").read_text()
    assert f"CF_DNS_API_TOKEN='{TRICKY}'" in text
    assert parse_env(text)["CF_DNS_API_TOKEN"].value == TRICKY
    assert _dns_findings(stack) == [("pass", ".env gives CF_DNS_API_TOKEN (cloudflare)")]


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("CF_DNS_API_TOKEN=ab$cd", "Compose replaces $cd"),
        ('CF_DNS_API_TOKEN="ab${X}cd"', "Compose replaces ${X}"),
        ("CF_DNS_API_TOKEN=abc #def", "Compose cuts it at ' #'"),
    ],
)
def test_check_reads_env_as_compose_does(tmp_path: Path, line: str, says: str) -> None:
    stack = tmp_path / "s"
    assert stackgen(*DNS, "--dir", str(stack)).returncode == 0
    (stack / ".env").write_text(line + "\n")
    findings = _dns_findings(stack)
    assert any(status == "fail" and says in message for status, message in findings), findings


def test_compose_parsing_rules() -> None:
    env = parse_env(
        "# comment\n"
        "export A=plain value  \n"
        "B='single $x #y'\n"
        'C="double \\"q\\" \\n"\n'
        "D=cut #here\n"
        "E=no#cut\n"
        "F=\n"
    )
    assert {name: v.value for name, v in env.items()} == {
        "A": "plain value",
        "B": "single $x #y",
        "C": 'double "q" \n',
        "D": "cut",
        "E": "no#cut",
        "F": "",
    }
    assert env["D"].cut and not env["E"].cut
    assert env["C"].expands == [] and env["B"].expands == []


def test_a_value_compose_cannot_hold_literally_is_refused(tmp_path: Path) -> None:
    result = stackgen(*DNS, "--dns-credential", "CF_DNS_API_TOKEN=it's", "--dir", str(tmp_path))
    assert result.returncode == ExitCode.INVALID_INPUT
    assert "single quote" in result.stderr
    assert not (tmp_path / ".env").exists()


def test_init_force_with_a_new_credential_replaces_the_old(tmp_path: Path) -> None:
    """Before: `init --force --dns-credential NEW` kept the old token and said nothing."""
    stack = tmp_path / "s"
    old = stackgen(*DNS, "--dns-credential", "CF_DNS_API_TOKEN=old", "--dir", str(stack))
    assert old.returncode == 0, old.stderr
    new = stackgen(*DNS, "--force", "--dns-credential", "CF_DNS_API_TOKEN=new", "--dir", str(stack))
    assert new.returncode == 0, new.stderr
    assert parse_env((stack / ".env").read_text())["CF_DNS_API_TOKEN"].value == "new"
    assert "overwrite  .env" in new.stderr
    # Without new values, --force keeps the credentials.
    again = stackgen(*DNS, "--force", "--dir", str(stack))
    assert again.returncode == 0
    assert parse_env((stack / ".env").read_text())["CF_DNS_API_TOKEN"].value == "new"
