"""Logging of every process of the portal: one format, on stdout (the journal under systemd).

Used by the ``etrepo`` command and by the WSGI entry point (under gunicorn), so that a line of
the app reads the same whichever process wrote it.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Other libraries' chatter, kept down to what a maintainer wants to see.
QUIETED = {
    "mail.log": logging.WARNING,  # aiosmtpd's per-command chatter
    "waitress.queue": logging.ERROR,
    "alembic.runtime.plugins": logging.WARNING,
    "alembic.runtime.migration": logging.WARNING,
}


def setup_logging(verbose: bool = False, stream: TextIO | None = None) -> None:
    """INFO (DEBUG if ``verbose``) and above to ``stream`` (default: stdout), replacing the
    root logger's handlers."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=stream or sys.stdout,
        format=FORMAT,
        force=True,
    )
    for name, level in QUIETED.items():
        logging.getLogger(name).setLevel(level)
