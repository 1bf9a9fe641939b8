"""The mail transport contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class OutgoingMail:
    """One plain-text mail, ready to go. ``to_name`` may be any Unicode text."""

    to_addr: str
    to_name: str
    subject: str
    body: str
    # The same for every attempt at one outbox row, so that a mail delivered twice (a worker
    # killed between the server's 250 and our commit) is recognisable as one by mail clients.
    message_key: str = ""


class MailError(Exception):
    """Delivery failed. ``permanent`` is True when retrying cannot help (address refused)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class MailTransport(Protocol):
    def send(self, mail: OutgoingMail) -> None:
        """Hand the mail over, or raise MailError. Never logs the body."""
        ...
