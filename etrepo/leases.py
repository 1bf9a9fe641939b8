"""Row leases: how several workers share a queue table without taking the same row twice.

A worker claims a row with one conditional UPDATE (portable: SQLite and PostgreSQL); the row is
its own until ``lease_until``. A worker that dies leaves a lease that expires, or that a worker
restarted on the same host releases at once because the owning process is gone.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session


def backoff_seconds(attempts: int, first: int, cap: int) -> int:
    """Wait before the next try of a queued row: ``first``, doubling, at most ``cap``."""
    return min(cap, first * 2 ** max(0, attempts - 1))


def new_owner() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def claim(session: Session, model: Any, row_id: Any, owner: str, now: dt.datetime,
          seconds: float, *conditions: Any, **values: Any) -> bool:
    """Take the lease of one row if it is free (and ``conditions`` hold), setting ``values``
    in the same statement. Commits."""
    result = session.execute(
        update(model)
        .where(model.id == row_id, or_(model.lease_until.is_(None), model.lease_until < now),
               *conditions)
        .values(lease_owner=owner, lease_until=now + dt.timedelta(seconds=seconds), **values)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount == 1


def release_dead_local_leases(session: Session, model: Any) -> int:
    """Free the leases held by processes of this host that no longer exist. Commits."""
    prefix = socket.gethostname()[:40] + ":"
    rows = session.execute(
        select(model.id, model.lease_owner).where(model.lease_owner.like(prefix + "%"))
    ).all()
    freed = 0
    for row_id, owner in rows:
        try:
            pid = int(owner.split(":")[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _alive(pid):
            session.execute(
                update(model)
                .where(model.id == row_id, model.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )
            freed += 1
    session.commit()
    return freed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed process not yet reaped by its parent (a zombie) answers signal 0 but is dead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
