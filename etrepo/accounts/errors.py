"""What the request service can refuse, each with the HTTP status an entry point answers."""

from __future__ import annotations


class ServiceError(Exception):
    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    http_status = 404


class Conflict(ServiceError):
    http_status = 409


class WrongCode(ServiceError):
    http_status = 400

    def __init__(self, message: str, tries_left: int) -> None:
        super().__init__(message)
        self.tries_left = tries_left


class CodeDead(ServiceError):
    """The code (or the whole request) can no longer be confirmed: ask for a new one."""

    http_status = 410


class RateLimited(ServiceError):
    http_status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)
