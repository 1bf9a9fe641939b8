"""Waiting for servers the tests start, and running calls at the same moment."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable


def until(process: subprocess.Popen, condition: Callable[[], bool],
          timeout: float = 15.0) -> bool:
    """Poll ``condition`` until it holds (True), or the process exits or the deadline passes
    (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        try:
            process.wait(timeout=0.05)  # the pause between two tries; an exit ends it
            return False
        except subprocess.TimeoutExpired:
            continue
    return False


def accepts(host: str, ports: Iterable[int]) -> Callable[[], bool]:
    """A condition: every one of the TCP ports accepts a connection."""
    ports = list(ports)

    def check() -> bool:
        try:
            for port in ports:
                with socket.create_connection((host, port), timeout=1.0):
                    pass
        except OSError:
            return False
        return True

    return check


def wait_listening(process: subprocess.Popen, host: str, ports: Iterable[int],
                   timeout: float = 15.0) -> bool:
    """Poll until every port accepts a connection (True), or the process exits or the
    deadline passes (False)."""
    return until(process, accepts(host, ports), timeout)


def at_once(calls: Iterable[Callable[[], object]], timeout: float = 30.0) -> None:
    """Run the calls in threads released together by a barrier; re-raise the first error."""
    calls = list(calls)
    start = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        try:
            start.wait(10)
            call()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if errors:
        raise errors[0]
