"""Settings: defaults in code, a deployment's Python file, then ``ETREPO_*`` variables.

Load order (later wins):

1. the defaults below;
2. the upper-case names of the Python file named by ``ETREPO_CONFIG`` (the deployment's config.py);
3. environment variables ``ETREPO_<NAME>``.

Everything is validated once, by :func:`load_settings`; a wrong value raises
:class:`SettingsError` whose message is one line naming the setting. The result is one frozen
:class:`Settings` object that is passed around; nothing else reads the environment.
"""

from __future__ import annotations

import dataclasses
import math
import os
import runpy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from etrepo.accounts.usernames import USERNAME_RE

ENV_PREFIX = "ETREPO_"
# ETREPO_* variables that are not settings: the test suite's own switches.
NON_SETTING_PREFIXES = ("TEST_",)


class SettingsError(ValueError):
    """A setting has a wrong value; ``str()`` is one line that names it."""


def _s(default: Any, help: str, **extra: Any) -> Any:
    # A secret stays out of repr(settings), so out of any log or page that prints the object.
    return field(default=default, metadata={"help": help, **extra},
                 repr=not extra.get("secret"))


def shown_value(name: str, value: Any) -> str:
    """How a setting's value may be shown (in `etrepo config`, in an error): never a secret."""
    if _FIELDS[name].metadata.get("secret"):
        return "(set)" if value else "(empty)"
    if name == "DATABASE_URL" and value:
        try:
            return repr(make_url(value).render_as_string(hide_password=True))
        except ArgumentError:
            return "(not a URL)"
    return repr(value)


@dataclass(frozen=True)
class Settings:
    # --- site and pages ---------------------------------------------------------------------
    SITE_NAME: str = _s("ETRepo", "Name shown in page titles and mail subjects.")
    HOSTNAME: str = _s("localhost", "Host name users SSH to; shown as `ssh user@HOSTNAME`.")
    BASE_URL: str = _s("http://127.0.0.1:8010", "Public URL of the portal, for the links it gives.")
    JUPYTERHUB_URL: str = _s("/hub/", "Link of 'Go to JupyterHub'.")
    DOCS_URL: str = _s("https://example.org/docs", "Link of 'Documentation'.")
    CONTACTS_URL: str = _s("mailto:helpdesk@localhost", "Link of 'Contacts'.")
    SECRET_KEY: str = _s("", "Flask secret key. Required outside the demo.", secret=True)
    INSTANCE_DIR: str = _s("instance", "Folder for the SQLite database and demo files.")
    TRUSTED_PROXIES: int = _s(0, "Number of reverse proxies (nginx) whose X-Forwarded-* to trust.")
    MAX_REQUEST_BYTES: int = _s(64 * 1024, "Largest request body accepted; larger gets 413.")

    # --- database -----------------------------------------------------------------------
    DATABASE_URL: str = _s("", "SQLAlchemy URL; empty means SQLite in INSTANCE_DIR.")

    # --- mail ------------------------------------------------------------------------------
    SMTP_HOST: str = _s("localhost", "SMTP server.")
    SMTP_PORT: int = _s(25, "SMTP port (25 plain, 587 STARTTLS, 465 TLS).")
    SMTP_SECURITY: str = _s(
        "none", "Transport security: none, starttls or tls.", choices=("none", "starttls", "tls")
    )
    SMTP_USER: str = _s("", "SMTP login; empty means no login.")
    SMTP_PASSWORD: str = _s("", "SMTP password.", secret=True)
    SMTP_CA_FILE: str = _s("", "CA bundle to verify the SMTP server with; empty: system CAs.")
    SMTP_VERIFY: bool = _s(True, "Verify the SMTP server's certificate and host name.")
    SMTP_TIMEOUT: float = _s(20.0, "Seconds before an SMTP connection attempt gives up.")
    MAIL_FROM: str = _s("ETRepo <no-reply@localhost>", "From address of every mail.")
    HELPDESK_EMAIL: str = _s("helpdesk@localhost", "Help desk address given in every mail.")
    MAINTAINERS_EMAIL: str = _s("", "Where failed requests are reported; empty: HELPDESK_EMAIL.")
    MAIL_MAX_BACKOFF: int = _s(1800, "Longest wait in seconds between two delivery attempts.")

    # --- accounts ------------------------------------------------------------------------
    PROVISIONER: str = _s(
        "dry-run", "Account backend: linux or dry-run.", choices=("linux", "dry-run")
    )
    HOME_BASE: str = _s("/home", "Folder under which home directories are created.")
    WORK_BASE: str = _s("/work", "Folder under which each user's work directory is created.")
    USER_GROUPS: str = _s("", "Comma-separated extra groups for new users (must exist).")
    USER_SHELL: str = _s("/bin/bash", "Login shell of new users.")
    PASSWORD_LENGTH: int = _s(16, "Length of generated initial passwords (at least 12).")
    CODE_LENGTH: int = _s(6, "Digits in an email confirmation code.")
    CODE_TTL: int = _s(900, "Seconds an email confirmation code stays valid.")
    CODE_MAX_TRIES: int = _s(5, "Wrong tries after which a code is dead.")
    RESEND_COOLDOWN: int = _s(60, "Seconds an applicant waits before asking for a new code.")
    REQUEST_TTL: int = _s(86400, "Seconds after which an unconfirmed request is expired.")
    RATE_LIMIT_WINDOW: int = _s(3600, "Window in seconds of the per-address and per-email limits.")
    RATE_LIMIT_CONFIRMS: int = _s(30, "Wrong codes allowed per client address (and per email).")
    RATE_LIMIT_SUBMITS: int = _s(60, "Code mails per client address in the window.")
    RATE_LIMIT_MAILS_TO: int = _s(10, "Code mails per email address in the window.")
    PROVISION_MAX_ATTEMPTS: int = _s(3, "Attempts at creating an account before it is failed.")
    WORKER_POLL_INTERVAL: float = _s(0.25, "Seconds between two looks at the queue when idle.")

    # --- demo ------------------------------------------------------------------------------
    DEMO: bool = _s(False, "Demo mode: enables the local mailbox page. Set by `etrepo demo`.")
    DEMO_MAILBOX: str = _s("", "mbox file of the demo's SMTP catcher (demo only).")

    # --- derived ---------------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        if self.DATABASE_URL:
            return self.DATABASE_URL
        return f"sqlite:///{Path(self.INSTANCE_DIR).resolve() / 'etrepo.sqlite3'}"

    @property
    def maintainers_email(self) -> str:
        return self.MAINTAINERS_EMAIL or self.HELPDESK_EMAIL

    @property
    def user_groups(self) -> tuple[str, ...]:
        return tuple(g.strip() for g in self.USER_GROUPS.split(",") if g.strip())

    def replace(self, **changes: Any) -> Settings:
        """A validated copy with some settings changed."""
        merged = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        merged.update(changes)
        return _validated(merged)

    def describe(self) -> list[tuple[str, str, str]]:
        """(name, value shown, help) for every setting; secrets are masked."""
        rows = []
        for f in dataclasses.fields(self):
            rows.append((f.name, shown_value(f.name, getattr(self, f.name)), f.metadata["help"]))
        return rows


SETTING_NAMES = frozenset(f.name for f in dataclasses.fields(Settings))
_TYPES = {f.name: f.type for f in dataclasses.fields(Settings)}
_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(name: str, raw: Any) -> Any:
    kind = _TYPES[name]
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError
        if kind == "int":
            if isinstance(raw, bool):
                raise ValueError
            return int(str(raw).strip()) if not isinstance(raw, int) else raw
        if kind == "float":
            number = float(raw)
            if not math.isfinite(number):
                raise ValueError
            return number
        if not isinstance(raw, str):
            raise ValueError
        return raw
    except (TypeError, ValueError):
        raise SettingsError(f"{name}: expected {kind}, got {shown_value(name, raw)}") from None


def _check(values: dict[str, Any]) -> None:
    def fail(name: str, why: str) -> None:
        raise SettingsError(f"{name}: {why} (got {shown_value(name, values[name])})")

    for name, f in _FIELDS.items():
        choices = f.metadata.get("choices")
        if choices and values[name] not in choices:
            fail(name, f"must be one of {', '.join(choices)}")
    for name in ("SMTP_PORT",):
        if not 0 < values[name] < 65536:
            fail(name, "must be a TCP port, 1 to 65535")
    for name in ("CODE_TTL", "RESEND_COOLDOWN", "REQUEST_TTL", "RATE_LIMIT_WINDOW",
                 "MAIL_MAX_BACKOFF"):
        if values[name] < 1:
            fail(name, "must be a positive number of seconds")
    if values["MAX_REQUEST_BYTES"] < 1024:
        fail("MAX_REQUEST_BYTES", "must be at least 1024 bytes")
    for name in ("CODE_MAX_TRIES", "RATE_LIMIT_CONFIRMS", "RATE_LIMIT_SUBMITS",
                 "RATE_LIMIT_MAILS_TO", "PROVISION_MAX_ATTEMPTS"):
        if values[name] < 1:
            fail(name, "must be at least 1")
    if values["TRUSTED_PROXIES"] < 0:
        fail("TRUSTED_PROXIES", "must be 0 or more")
    if not 4 <= values["CODE_LENGTH"] <= 12:
        fail("CODE_LENGTH", "must be between 4 and 12 digits")
    if not 12 <= values["PASSWORD_LENGTH"] <= 128:
        fail("PASSWORD_LENGTH", "must be between 12 and 128")
    if not 0 < values["WORKER_POLL_INTERVAL"] <= 60:
        fail("WORKER_POLL_INTERVAL", "must be between 0 and 60 seconds")
    if not 0 < values["SMTP_TIMEOUT"] <= 600:
        fail("SMTP_TIMEOUT", "must be between 0 and 600 seconds")
    if values["SECRET_KEY"] and len(values["SECRET_KEY"]) < 16:
        fail("SECRET_KEY", "too short: use at least 32 random characters, e.g. the output of "
             "`python3 -c 'import secrets; print(secrets.token_hex(32))'`")
    if values["DATABASE_URL"]:
        try:
            backend = make_url(values["DATABASE_URL"]).get_backend_name()
        except ArgumentError:
            backend = ""
        if backend not in ("sqlite", "postgresql"):
            fail("DATABASE_URL", "must be a sqlite:/// or postgresql+psycopg:// URL")
    url = urlsplit(values["BASE_URL"])
    if url.scheme not in ("http", "https") or not url.netloc:
        fail("BASE_URL", "must be an http:// or https:// URL")
    for name in ("HOME_BASE", "WORK_BASE", "USER_SHELL"):
        if not values[name].startswith("/"):
            fail(name, "must be an absolute path")
    for group in values["USER_GROUPS"].split(","):
        if group.strip() and not USERNAME_RE.fullmatch(group.strip()):
            fail("USER_GROUPS", f"{group.strip()!r} is not a valid group name")
    if "@" not in values["MAIL_FROM"]:
        fail("MAIL_FROM", "must contain an email address")
    if values["MAINTAINERS_EMAIL"] and "@" not in values["MAINTAINERS_EMAIL"]:
        fail("MAINTAINERS_EMAIL", "must be an email address")
    if "@" not in values["HELPDESK_EMAIL"]:
        fail("HELPDESK_EMAIL", "must be an email address")
    if not values["HOSTNAME"] or any(c.isspace() for c in values["HOSTNAME"]):
        fail("HOSTNAME", "must be a host name without spaces")
    if values["SMTP_USER"] and values["SMTP_SECURITY"] == "none" and values["SMTP_VERIFY"]:
        # Sending a password in clear text is refused unless the admin says so explicitly
        # (SMTP_VERIFY=false is the explicit 'I know this link is trusted').
        fail("SMTP_SECURITY", "a login over an unencrypted connection needs starttls or tls")


def _validated(values: dict[str, Any]) -> Settings:
    coerced = {name: _coerce(name, value) for name, value in values.items()}
    _check(coerced)
    return Settings(**coerced)


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Build the settings from defaults, ``ETREPO_CONFIG``, ``ETREPO_*`` and ``overrides``."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Settings)}

    config_file = environ.get(ENV_PREFIX + "CONFIG", "")
    if config_file:
        path = Path(config_file)
        if not path.exists():
            raise SettingsError(f"CONFIG: no such file {config_file!r}")
        if not path.is_file():
            raise SettingsError(f"CONFIG: {config_file!r} is not a file")
        try:
            namespace = runpy.run_path(str(path))
        except (Exception, SystemExit) as exc:  # the admin's file is broken: say so in one line
            raise SettingsError(f"CONFIG: cannot load {config_file}: "
                                f"{type(exc).__name__}: {exc}") from None
        for name, value in namespace.items():
            if name.isupper() and not name.startswith("_"):
                if name not in SETTING_NAMES:
                    raise SettingsError(f"{name}: unknown setting in {config_file}")
                values[name] = value

    for key, value in environ.items():
        if key.startswith(ENV_PREFIX) and key != ENV_PREFIX + "CONFIG":
            name = key[len(ENV_PREFIX):]
            if name in SETTING_NAMES:
                values[name] = value
            elif not name.startswith(NON_SETTING_PREFIXES):
                # A misspelt variable would otherwise be ignored without a word.
                raise SettingsError(f"{name}: unknown setting (environment variable {key})")

    if overrides:
        for name, value in overrides.items():
            if name not in SETTING_NAMES:
                raise SettingsError(f"{name}: unknown setting")
            values[name] = value
    return _validated(values)
