"""Validation of what an applicant types. Everything is checked before anything is stored."""

from __future__ import annotations

import re
import unicodedata
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


def validate_application(data: dict[str, object]) -> Application:
    """Return the cleaned application, or raise ValidationError with every field's problem."""
    errors: dict[str, str] = {}
    values: dict[str, str] = {}
    for key in ("first_name", "last_name", "institution", "email", "github"):
        try:
            values[key] = _clean(data.get(key))
        except TypeError:
            errors[key] = "Must be text."
            values[key] = ""

    for key, label in (("first_name", "first name"), ("last_name", "last name")):
        if key not in errors and (problem := _check_name(label, values[key])):
            errors[key] = problem
    # Collapse inner runs of spaces so the name reads as one line everywhere.
    for key in ("first_name", "last_name"):
        values[key] = re.sub(r"\s+", " ", values[key])

    institution = values["institution"]
    if "institution" not in errors:
        if not institution:
            errors["institution"] = "Please enter your institution."
        elif len(institution) > INSTITUTION_MAX:
            errors["institution"] = f"Too long: at most {INSTITUTION_MAX} characters."
        elif _has_control(institution):
            errors["institution"] = "Please use a single line of plain text."

    email = values["email"]
    if "email" not in errors:
        if not email:
            errors["email"] = "Please enter your email address."
        elif len(email) > EMAIL_MAX:
            errors["email"] = f"Too long: at most {EMAIL_MAX} characters."
        elif (_has_control(email) or not _EMAIL_RE.match(email) or not email.isprintable()
              or not _mailable(email)):
            errors["email"] = "This is not a valid email address (name@institute.org)."
        elif not email.isascii():
            # Internationalised local parts need SMTPUTF8, which few relays offer.
            local, _, domain = email.partition("@")
            if not local.isascii():
                errors["email"] = "Please use an address whose part before @ is plain ASCII."
            else:
                try:
                    domain.encode("idna")
                except UnicodeError:
                    errors["email"] = "This is not a valid email domain."

    github = values["github"]
    if "github" not in errors and github:
        github = github.removeprefix("@").removeprefix("https://github.com/").strip("/")
        if len(github) > GITHUB_MAX or not _GITHUB_RE.match(github):
            errors["github"] = (
                "A GitHub account name has at most 39 letters, digits or single hyphens."
            )

    if errors:
        raise ValidationError(errors)
    return Application(
        first_name=values["first_name"],
        last_name=values["last_name"],
        institution=institution,
        email=email,
        github=github or None,
    )
