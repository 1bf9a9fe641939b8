"""Time as a dependency: the system clock, and a clock tests can move."""

from __future__ import annotations

import datetime as dt
from typing import Protocol


def utcnow() -> dt.datetime:
    """Naive UTC: what every timestamp column stores."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, naive UTC."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return utcnow()


class FrozenClock:
    """A clock that only moves when told to."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start or utcnow()

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += dt.timedelta(seconds=seconds)
