"""The demo's SMTP catcher: a real SMTP server on 127.0.0.1 that delivers nowhere.

Every mail it receives is appended to an mbox file and summarised on a stream (the demo's
console), so a person trying the portal can read the confirmation code and the welcome mail
without any real mail set-up. :func:`read_mailbox` reads the mbox back for the demo's mailbox
web page.

Writers and readers take an ``flock`` on the mbox file (exclusive to append, shared to read),
so the web page never sees half a mail even when it runs in another process.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import fcntl
import logging
import mailbox
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TextIO

from aiosmtpd.controller import Controller

logger = logging.getLogger(__name__)

CATCHER_HOST = "127.0.0.1"


class LocalController(Controller):
    """An aiosmtpd Controller that can listen on port 0 and then knows the port it got.

    (aiosmtpd's own Controller connects to ``self.port`` to check the server is up, which
    fails for port 0.) After :meth:`start`, ``.port`` is the real port, so a later controller
    made with it listens on the same one. A Controller cannot be started again after
    :meth:`stop` (its event loop is closed): make a new one.
    """

    def _create_server(self) -> Any:
        return self._bind()

    async def _bind(self) -> Any:
        server = await self.loop.create_server(
            self._factory_invoker, host=self.hostname, port=self.port, ssl=self.ssl_context
        )
        self.port = server.sockets[0].getsockname()[1]
        return server


# --- the mbox file ------------------------------------------------------------------------------


@contextlib.contextmanager
def _flocked(path: Path, *, exclusive: bool) -> Iterator[None]:
    # Created 0600: the caught mails may hold (demo) passwords.
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT if exclusive else os.O_RDONLY
    fd = os.open(path, flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


_ENVELOPE_ADDR = re.compile(r"^[!-~]+$")  # printable ASCII, no spaces: safe in a From_ line


def append_to_mailbox(path: str | Path, raw: bytes, envelope_from: str = "") -> None:
    """Append one raw RFC 5322 message to the mbox at ``path`` (created if missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    author = envelope_from if _ENVELOPE_ADDR.match(envelope_from or "") else "MAILER-DAEMON"
    from_line = f"From {author} {time.asctime(time.gmtime())}\n".encode("ascii")
    data = from_line + raw.replace(b"\r\n", b"\n")
    with _flocked(path, exclusive=True):
        box = mailbox.mbox(str(path), create=True)
        try:
            box.add(data)
            box.flush()
        finally:
            box.close()


def parse_mail(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_body(message: EmailMessage) -> str:
    """The decoded plain-text body ('' if there is none)."""
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # unknown charset, broken encoding
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    # SMTP carries CRLF line ends; the console and the mailbox page want plain newlines.
    return content.replace("\r\n", "\n") if isinstance(content, str) else ""


def summarize(message: EmailMessage) -> dict[str, str]:
    return {
        "from": str(message.get("From", "")),
        "to": str(message.get("To", "")),
        "subject": str(message.get("Subject", "")),
        "date": str(message.get("Date", "")),
        "body": text_body(message),
    }


def read_mailbox(path: str | Path) -> list[dict[str, str]]:
    """Every mail in the mbox at ``path``, newest first, as dicts with the keys
    ``from``, ``to``, ``subject``, ``date`` (headers decoded to str) and ``body`` (decoded text).
    A missing file (or an empty path) is an empty mailbox."""
    path = Path(path)
    if not path.is_file():  # not caught anything yet (or DEMO_MAILBOX unset)
        return []
    mails = []
    with _flocked(path, exclusive=False):
        box = mailbox.mbox(str(path), create=False)
        try:
            for key in box.iterkeys():
                mails.append(summarize(parse_mail(box.get_bytes(key))))
        finally:
            box.close()
    mails.reverse()
    return mails


def format_summary(mail: dict[str, str]) -> str:
    """A short human-readable block for the console."""
    body = mail["body"].rstrip("\n")
    indented = "\n".join("    " + line if line else "" for line in body.split("\n"))
    return (
        "=== mail caught ===\n"
        f"From:    {mail['from']}\n"
        f"To:      {mail['to']}\n"
        f"Subject: {mail['subject']}\n"
        f"{indented}\n"
        "===================\n"
    )


# --- the server -------------------------------------------------------------------------------


class _CatcherHandler:
    def __init__(self, catcher: MailCatcher) -> None:
        self._catcher = catcher

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or b""
        try:
            self._catcher.store(raw, envelope.mail_from or "")
        except OSError as exc:
            logger.error("mail catcher cannot write %s: %s", self._catcher.mailbox_path, exc)
            return "451 4.3.0 Cannot store the mail"
        return "250 2.0.0 Caught"


class MailCatcher:
    """A real SMTP server on 127.0.0.1 that appends every mail to an mbox and prints it.

    ``port=0`` picks a free port; ``.port`` has the real one after :meth:`start`. ``stream``
    (default ``sys.stdout``) gets a short summary of each mail: from, to, subject and body.
    Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self, mailbox_path: str | Path, port: int = 0, *, stream: TextIO | None = None
    ) -> None:
        self.mailbox_path = Path(mailbox_path)
        self.host = CATCHER_HOST
        self.port = port
        self.stream = stream
        self._controller: LocalController | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> MailCatcher:
        if self._controller is not None:
            raise RuntimeError("mail catcher already running")
        self.mailbox_path.parent.mkdir(parents=True, exist_ok=True)
        controller = LocalController(
            _CatcherHandler(self),
            hostname=self.host,
            port=self.port,
            server_hostname="localhost",
        )
        controller.start()
        self._controller = controller
        self.port = controller.port
        logger.info("mail catcher listening on %s:%d, mailbox %s",
                    self.host, self.port, self.mailbox_path)
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> MailCatcher:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def store(self, raw: bytes, envelope_from: str = "") -> None:
        """Append one received mail to the mbox and print its summary."""
        with self._lock:
            append_to_mailbox(self.mailbox_path, raw, envelope_from)
            summary = format_summary(summarize(parse_mail(raw)))
            stream = self.stream if self.stream is not None else sys.stdout
            try:
                stream.write(summary)
                stream.flush()
            except (OSError, ValueError):  # console gone or closed: the mbox has the mail
                pass
