"""Validation of what an applicant types. Everything is checked before anything is stored."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address

from etrepo.accounts.errors import ServiceError

NAME_MAX = 64
INSTITUTION_MAX = 200
EMAIL_MAX = 254
GITHUB_MAX = 39

_NAME_PUNCTUATION = set(" '-.\u2019")  # space, apostrophes, hyphen, period
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
# Host names only (no IP literals): labels of letters, digits and inner hyphens; a top-level
# domain of letters (or an IDNA 'xn--' label).
_DOMAIN_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})$"
)
_GITHUB_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")


class ValidationError(ServiceError):
    """Field name -> message a person can act on."""

    http_status = 422

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("Please correct the fields marked: " + ", ".join(fields) + ".")
        self.fields = fields


@dataclass(frozen=True)
class Application:
    first_name: str
    last_name: str
    institution: str
    email: str
    github: str | None


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c).startswith("C") for c in text)


def _clean(text: object) -> str:
    if text is None:
        return ""
    if not isinstance(text, str):
        raise TypeError
    # NFC so that 'é' typed as e + combining accent and as one character are the same name.
    return unicodedata.normalize("NFC", text).strip()


def _check_name(label: str, value: str) -> str | None:
    if not value:
        return f"Please enter your {label}."
    if len(value) > NAME_MAX:
        return f"Your {label} is too long: at most {NAME_MAX} characters."
    for char in value:
        if char in _NAME_PUNCTUATION:
            continue
        if unicodedata.category(char)[0] not in "LM":
            return (
                f"Your {label} may contain letters, spaces, hyphens, apostrophes and periods "
                "only."
            )
    if not any(unicodedata.category(c).startswith("L") for c in value):
        return f"Your {label} must contain at least one letter."
    return None


def _mailable(email: str) -> bool:
    """True if a mail can be addressed to exactly this address (as the mail builder parses it)."""
    try:
        address = Address(addr_spec=email)
    except (ValueError, IndexError, TypeError, HeaderParseError):
        return False
    return bool(address.username and address.domain) and address.addr_spec == email


def normalize_email(email: str) -> str:
    """The form used for uniqueness and matching; mail still goes to the address as typed.

    NFKC first: full-width letters (an IME left on) name the same domain as ASCII ones.
    """
    return unicodedata.normalize("NFKC", email.strip()).lower()


def _name_field(label: str) -> Callable[[str], tuple[str, str | None]]:
    def check(value: str) -> tuple[str, str | None]:
        problem = _check_name(label, value)
        # Collapse inner runs of spaces so the name reads as one line everywhere.
        return re.sub(r"\s+", " ", value), problem

    return check


def _institution_field(value: str) -> tuple[str, str | None]:
    if not value:
        return value, "Please enter your institution."
    if len(value) > INSTITUTION_MAX:
        return value, f"Too long: at most {INSTITUTION_MAX} characters."
    if _has_control(value):
        return value, "Please use a single line of plain text."
    return value, None


def _email_field(email: str) -> tuple[str, str | None]:
    if not email:
        return email, "Please enter your email address."
    if len(email) > EMAIL_MAX:
        return email, f"Too long: at most {EMAIL_MAX} characters."
    if (_has_control(email) or not _EMAIL_RE.match(email) or not email.isprintable()
            or not _mailable(email)):
        return email, "This is not a valid email address (name@institute.org)."
    local, _, domain = email.rpartition("@")
    if not local.isascii():
        # Internationalised local parts need SMTPUTF8, which few relays offer.
        return email, "Please use an address whose part before @ is plain ASCII."
    if len(local) > 64:
        return email, "The part before @ is too long: at most 64 characters."
    try:
        # One spelling of the domain: 'exämple.org' is stored and mailed as its ASCII
        # form 'xn--exmple-cua.org', so both spellings are the same address.
        ascii_domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        return email, "This is not a valid email domain."
    if not _DOMAIN_RE.match(ascii_domain):
        return email, "This is not a valid email domain (like institute.org)."
    return f"{local}@{ascii_domain}", None


def _github_field(value: str) -> tuple[str, str | None]:
    if not value:
        return value, None
    github = value.removeprefix("@").removeprefix("https://github.com/").strip("/")
    if len(github) > GITHUB_MAX or not _GITHUB_RE.match(github):
        return github, "A GitHub account name has at most 39 letters, digits or single hyphens."
    return github, None


FIELD_CHECKS: dict[str, Callable[[str], tuple[str, str | None]]] = {
    "first_name": _name_field("first name"),
    "last_name": _name_field("last name"),
    "institution": _institution_field,
    "email": _email_field,
    "github": _github_field,
}


def check_field(name: str, raw: object) -> tuple[str, str | None]:
    """One field: its cleaned value and its problem (None if fine). For live form feedback."""
    try:
        value = _clean(raw)
    except TypeError:
        return "", "Must be text."
    return FIELD_CHECKS[name](value)


def validate_application(data: dict[str, object]) -> Application:
    """Return the cleaned application, or raise ValidationError with every field's problem."""
    errors: dict[str, str] = {}
    values: dict[str, str] = {}
    for name in FIELD_CHECKS:
        values[name], problem = check_field(name, data.get(name))
        if problem:
            errors[name] = problem

    if errors:
        raise ValidationError(errors)
    return Application(
        first_name=values["first_name"],
        last_name=values["last_name"],
        institution=values["institution"],
        email=values["email"],
        github=values["github"] or None,
    )
