"""Login names from people's names: first initial + last name, ASCII, valid for Linux."""

from __future__ import annotations

import re
from collections.abc import Callable

from unidecode import unidecode

# Valid Linux user and group names. Always used with fullmatch ('$' would let a final '\n' by).
USERNAME_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
MAX_LENGTH = 32

# Names a person must never get, even if no such user exists on this machine yet.
RESERVED = frozenset(
    """
    root admin administrator adm bin daemon sys sync games man lp mail news uucp proxy www-data
    backup list irc gnats nobody nogroup systemd-network systemd-resolve systemd-timesync
    messagebus sshd postgres mysql redis rabbitmq ldap openldap nginx jupyter jupyterhub etrepo
    operator staff sudo wheel users support helpdesk info webmaster postmaster hostmaster abuse
    noreply no-reply security test guest ftp git
    """.split()
)


def ascii_fold(text: str) -> str:
    """Transliterate to ASCII: 'Zoë Ødegård' -> 'Zoe Odegard', 'Łukasz' -> 'Lukasz'."""
    return unidecode(text, errors="ignore")


def base_username(first_name: str, last_name: str) -> str:
    """The preferred name, before collisions: John Doe -> jdoe."""
    first = re.sub(r"[^a-z0-9]", "", ascii_fold(first_name).lower())
    last = re.sub(r"[^a-z0-9]", "", ascii_fold(last_name).lower())
    name = (first[:1] + last) or "user"
    if not re.match(r"[a-z_]", name[0]):
        name = "u" + name
    return name[: MAX_LENGTH - 4]  # room for a numeric suffix


def choose_username(
    first_name: str, last_name: str, is_taken: Callable[[str], bool], limit: int = 10_000
) -> str:
    """The first of jdoe, jdoe2, jdoe3, ... that is valid, not reserved and not taken."""
    base = base_username(first_name, last_name)
    for n in range(1, limit):
        candidate = base if n == 1 else f"{base}{n}"
        if candidate in RESERVED or not USERNAME_RE.fullmatch(candidate):
            continue
        if not is_taken(candidate):
            return candidate
    raise ValueError(f"no free username left for {base!r}")


def gecos(first_name: str, last_name: str) -> str:
    """The ASCII comment field of /etc/passwd, without the characters that break it."""
    text = ascii_fold(f"{first_name} {last_name}")
    text = re.sub(r"[^A-Za-z0-9 .'-]", "", text)
    return re.sub(r"\s+", " ", text).strip()[:100] or "ETRepo user"
