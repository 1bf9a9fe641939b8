"""The objects an entry point needs, built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from etrepo.accounts.service import RequestService
from etrepo.clock import Clock, SystemClock
from etrepo.config import Settings
from etrepo.db import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    clock: Clock
    requests: RequestService

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None,
              db: Database | None = None) -> Services:
        clock = clock or SystemClock()
        db = db or Database(settings.database_url)
        return cls(settings=settings, db=db, clock=clock,
                   requests=RequestService(db, settings, clock))
