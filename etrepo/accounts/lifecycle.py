"""The request lifecycle as a state machine.

awaiting_confirmation -> confirmed -> [awaiting_approval ->] provisioning -> active
with the side exits failed, rejected and expired.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    CONFIRMED = "confirmed"
    AWAITING_APPROVAL = "awaiting_approval"
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.AWAITING_CONFIRMATION: frozenset({Status.CONFIRMED, Status.EXPIRED}),
    # confirmed -> failed: the worker's own checks refused the request before provisioning
    Status.CONFIRMED: frozenset({Status.AWAITING_APPROVAL, Status.PROVISIONING, Status.FAILED}),
    Status.AWAITING_APPROVAL: frozenset({Status.CONFIRMED, Status.REJECTED}),
    # provisioning -> confirmed is the retry after a failed attempt
    Status.PROVISIONING: frozenset({Status.ACTIVE, Status.FAILED, Status.CONFIRMED}),
    Status.ACTIVE: frozenset(),
    Status.FAILED: frozenset({Status.CONFIRMED}),  # a maintainer may retry
    Status.REJECTED: frozenset(),
    Status.EXPIRED: frozenset(),
}

# States a request does not leave on its own.
FINAL = frozenset({Status.ACTIVE, Status.FAILED, Status.REJECTED, Status.EXPIRED})

# States in which a request holds its email address (one per address at a time).
HOLDS_ADDRESS = frozenset(
    {
        Status.AWAITING_CONFIRMATION,
        Status.CONFIRMED,
        Status.AWAITING_APPROVAL,
        Status.PROVISIONING,
        Status.ACTIVE,
        # A failed request keeps its address: the maintainers retry it, rather than a second
        # request racing a half-made first one.
        Status.FAILED,
    }
)

# What an applicant reads about each state.
DESCRIPTIONS: dict[Status, str] = {
    Status.AWAITING_CONFIRMATION: "Waiting for you to confirm your email address with the code "
    "we are mailing you.",
    Status.CONFIRMED: "Email confirmed. Your account is queued for creation.",
    Status.AWAITING_APPROVAL: "Email confirmed. A maintainer will review your request.",
    Status.PROVISIONING: "Your account is being created.",
    Status.ACTIVE: "Your account is ready: check your mail for your login credentials.",
    Status.FAILED: "We could not create your account. The maintainers have been told.",
    Status.REJECTED: "Your request was not approved.",
    Status.EXPIRED: "This request is closed: it was replaced by a newer request, or its "
    "email address was not confirmed in time. Submit the form again if you still need an account.",
}


class TransitionError(Exception):
    pass


def check_transition(current: str, new: Status) -> None:
    if new not in TRANSITIONS[Status(current)]:
        raise TransitionError(f"a request cannot go from {current} to {new}")
