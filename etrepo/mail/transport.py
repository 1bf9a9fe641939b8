"""Mail transports: the real SMTP one and a harmless in-memory one.

:func:`build_message` turns an :class:`OutgoingMail` into a plain-text UTF-8
:class:`email.message.EmailMessage` and refuses header injection.

:class:`SmtpTransport` hands one mail per connection to an SMTP server (plain, STARTTLS or
implicit TLS). Certificates and host names are verified by default; every failure becomes a
:class:`MailError` whose ``permanent`` flag says whether retrying can help. Nothing here ever
logs or puts into an error message the mail body or the SMTP password.

:class:`MemoryTransport` keeps the mails in a list, for tests and dry runs.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import logging
import smtplib
import ssl
import unicodedata
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import TYPE_CHECKING

from etrepo.mail.interfaces import MailError, OutgoingMail

if TYPE_CHECKING:
    from etrepo.config import Settings

logger = logging.getLogger(__name__)

SECURITY_MODES = ("none", "starttls", "tls")


# --- building the message ---------------------------------------------------------------------


def _refuse_controls(what: str, value: str, *, allow_tab: bool = False) -> None:
    """Raise ValueError if ``value`` holds CR, LF or another control character."""
    for char in value:
        if char == "\t" and allow_tab:
            continue
        if char in "\r\n" or unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            raise ValueError(f"{what} must not contain line breaks or control characters")


def _address(what: str, display_name: str, addr_spec: str) -> Address:
    _refuse_controls(f"{what} name", display_name)
    _refuse_controls(f"{what} address", addr_spec)
    addr_spec = addr_spec.strip()
    if addr_spec.count("@") != 1 or any(c.isspace() for c in addr_spec):
        raise ValueError(f"{what} address {addr_spec!r} is not a single email address")
    try:
        address = Address(display_name=display_name.strip(), addr_spec=addr_spec)
    except (ValueError, IndexError, TypeError, HeaderParseError) as exc:
        raise ValueError(f"{what} address {addr_spec!r} is not valid: {exc}") from None
    if not address.username or not address.domain:
        raise ValueError(f"{what} address {addr_spec!r} is not a single email address")
    return address


def parse_sender(sender: str) -> Address:
    """``"ETRepo <no-reply@localhost>"`` (or a bare address) as an Address; ValueError if bad."""
    _refuse_controls("sender", sender)
    name, addr = parseaddr(sender)
    if not addr:
        raise ValueError(f"sender {sender!r} holds no email address")
    return _address("sender", name, addr)


def build_message(
    mail: OutgoingMail, sender: str, *, now: dt.datetime | None = None
) -> EmailMessage:
    """The plain-text UTF-8 message for ``mail``, sent from ``sender``.

    ``now`` (aware, or naive UTC) sets the Date header; default: the current time.
    Raises ValueError if any header part holds a line break (header injection) or an address
    is not a single valid address.
    """
    _refuse_controls("subject", mail.subject, allow_tab=True)
    from_address = parse_sender(sender)
    to_address = _address("recipient", mail.to_name, mail.to_addr)

    when = now or dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)

    msg = EmailMessage()
    msg["From"] = from_address
    msg["To"] = to_address
    msg["Subject"] = mail.subject
    msg["Date"] = format_datetime(when)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies, please
    domain = from_address.domain or "localhost"
    if mail.message_key:
        _refuse_controls("message key", mail.message_key)
        msg["Message-ID"] = f"<{mail.message_key}@{domain}>"
    else:
        msg["Message-ID"] = make_msgid(domain=domain)
    body = mail.body.replace("\r\n", "\n").replace("\r", "\n")
    if body.isascii():
        msg.set_content(body, charset="utf-8")
    else:
        # quoted-printable keeps the mail 7-bit clean for any relay, yet readable in the raw.
        msg.set_content(body, charset="utf-8", cte="quoted-printable")
    return msg


# --- SMTP ---------------------------------------------------------------------------------------


def _server_text(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    return " ".join(raw.split())


def _is_5xx(code: int | None) -> bool:
    return code is not None and 500 <= code < 600


class SmtpTransport:
    """Send each mail over a fresh SMTP connection.

    ``security``: ``"none"`` (plain), ``"starttls"`` (upgrade after EHLO, port 587) or
    ``"tls"`` (implicit TLS, port 465). With ``verify=True`` (the default) the server's
    certificate must chain to ``ca_file`` (or the system CAs when empty) and match ``host``.
    ``verify=False`` disables both checks: use it only on a link you trust anyway (e.g. a relay
    on the same host or a private network), never across the internet.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: str = "none",
        user: str = "",
        password: str = "",
        ca_file: str = "",
        verify: bool = True,
        timeout: float = 20.0,
        sender: str,
    ) -> None:
        if security not in SECURITY_MODES:
            raise ValueError(f"security must be one of {', '.join(SECURITY_MODES)}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._sender_address = parse_sender(sender)
        self.host = host
        self.port = port
        self.security = security
        self.user = user
        self._password = password
        self.ca_file = ca_file
        self.verify = verify
        self.timeout = timeout
        self.sender = sender

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpTransport:
        return cls(
            host=settings.SMTP_HOST,
            port=settings.SMTP_PORT,
            security=settings.SMTP_SECURITY,
            user=settings.SMTP_USER,
            password=settings.SMTP_PASSWORD,
            ca_file=settings.SMTP_CA_FILE,
            verify=settings.SMTP_VERIFY,
            timeout=settings.SMTP_TIMEOUT,
            sender=settings.MAIL_FROM,
        )

    def __repr__(self) -> str:  # never shows the password
        return (
            f"SmtpTransport(host={self.host!r}, port={self.port}, security={self.security!r}, "
            f"user={self.user!r}, verify={self.verify})"
        )

    # -- public -------------------------------------------------------------------------------

    def send(self, mail: OutgoingMail) -> None:
        """Deliver ``mail`` or raise MailError. ValueError if the mail itself is malformed."""
        msg = build_message(mail, self.sender)
        # DEBUG here: the outbox logs each attempt's outcome once, with the attempt and next try.
        logger.debug(
            "sending mail to %s, subject %r, via %s:%d (%s)",
            mail.to_addr, mail.subject, self.host, self.port, self.security,
        )
        try:
            # The parsed address, not the raw string: what the To header says is where it goes.
            self._deliver(msg, msg["To"].addresses[0].addr_spec)
        except (smtplib.SMTPException, OSError) as exc:
            error = MailError(self._describe(exc), permanent=self._is_permanent(exc))
            logger.debug(
                "mail to %s, subject %r not sent (%s): %s",
                mail.to_addr, mail.subject,
                "permanent" if error.permanent else "temporary", error,
            )
            # ``from None``: the message already says what happened; no chained traceback
            # that a later log line could print.
            raise error from None
        logger.debug("mail to %s, subject %r accepted by %s", mail.to_addr, mail.subject,
                     self.host)

    # -- internals ------------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file or None)
        if not self.verify:
            # Explicit operator choice (SMTP_VERIFY=false), documented as for trusted links only.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self.ssl_context()
            )
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)

    def _deliver(self, msg: EmailMessage, to_addr: str) -> None:
        smtp = self._connect()
        try:
            smtp.ehlo()
            if self.security == "starttls":
                smtp.starttls(context=self.ssl_context())
                smtp.ehlo()
            if self.user:
                smtp.login(self.user, self._password)
            smtp.send_message(msg, from_addr=self._sender_address.addr_spec, to_addrs=[to_addr])
            # The server already accepted the mail; a lost goodbye changes nothing.
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
        finally:
            smtp.close()

    @staticmethod
    def _is_permanent(exc: BaseException) -> bool:
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            codes = [code for code, _ in exc.recipients.values()]
            return bool(codes) and all(_is_5xx(code) for code in codes)
        if isinstance(exc, smtplib.SMTPDataError):
            return _is_5xx(exc.smtp_code)
        # Everything else (connection, TLS, login, sender refused, 4xx) is either passing or a
        # configuration problem the operator can fix: the mail itself stays deliverable.
        return False

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            parts = [
                f"{addr}: {code} {_server_text(text)}" for addr, (code, text) in
                exc.recipients.items()
            ]
            detail = "recipient refused (" + "; ".join(parts) + ")"
        elif isinstance(exc, smtplib.SMTPResponseException):
            reply = f"{exc.smtp_code} {_server_text(exc.smtp_error)}"
            if isinstance(exc, smtplib.SMTPAuthenticationError):
                detail = f"login as {self.user!r} refused: {reply}"
            elif isinstance(exc, smtplib.SMTPSenderRefused):
                detail = f"sender {exc.sender!r} refused: {reply}"
            elif isinstance(exc, smtplib.SMTPDataError):
                detail = f"message refused: {reply}"
            elif isinstance(exc, smtplib.SMTPConnectError):
                detail = f"server refused the connection: {reply}"
            else:
                detail = f"server answered {reply}"
        elif isinstance(exc, smtplib.SMTPNotSupportedError):
            detail = f"server does not offer what is needed: {_server_text(str(exc))}"
        elif isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(
            exc.__context__, TimeoutError
        ):  # smtplib turns a read timeout into "Connection unexpectedly closed: timed out"
            detail = f"no answer within {self.timeout:g} s"
        elif isinstance(exc, smtplib.SMTPServerDisconnected):
            detail = f"connection closed by the server: {_server_text(str(exc))}"
        elif isinstance(exc, smtplib.SMTPException):
            detail = f"SMTP error: {_server_text(str(exc))}"
        elif isinstance(exc, ssl.SSLCertVerificationError):
            detail = (
                f"TLS certificate verification failed ({exc.verify_message}); "
                "set SMTP_CA_FILE to the CA that signed the server's certificate"
            )
        elif isinstance(exc, ssl.SSLError):
            detail = f"TLS error: {exc.reason or _server_text(str(exc))}"
        elif isinstance(exc, TimeoutError):
            detail = f"no answer within {self.timeout:g} s"
        elif isinstance(exc, ConnectionRefusedError):
            detail = "connection refused (is the SMTP server running?)"
        else:
            detail = f"network error: {exc.strerror or exc.__class__.__name__}"
        return self._scrub(f"SMTP {self.host}:{self.port}: {detail}")

    def _scrub(self, text: str) -> str:
        """Remove the password (also base64-encoded, as AUTH sends it) from ``text``."""
        if not self._password:
            return text
        secrets = {
            self._password,
            base64.b64encode(self._password.encode()).decode(),
            base64.b64encode(f"\0{self.user}\0{self._password}".encode()).decode(),
        }
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


# --- in memory ---------------------------------------------------------------------------------


class MemoryTransport:
    """Keeps every mail in ``.sent`` instead of sending it.

    Each mail still goes through :func:`build_message`, so a mail that SMTP would refuse
    (header injection, bad address) raises the same ValueError here. Set ``fail_with`` to a
    MailError to simulate an outage: each send raises it (and stores nothing) until it is set
    back to None.
    """

    def __init__(
        self, *, sender: str = "ETRepo <no-reply@localhost>", fail_with: MailError | None = None
    ) -> None:
        parse_sender(sender)
        self.sender = sender
        self.fail_with = fail_with
        self.sent: list[OutgoingMail] = []

    def send(self, mail: OutgoingMail) -> None:
        build_message(mail, self.sender)
        if self.fail_with is not None:
            raise self.fail_with
        logger.debug("mail to %s, subject %r kept in memory", mail.to_addr, mail.subject)
        self.sent.append(mail)
