"""Provisioning benchmark: N confirmed requests through the real worker and linux backend,
against a bare loop of the same commands, in the same process.

    sudo .venv/bin/python bench/provisioning.py [-n 200]

Prints the total time of each (the worker started on N confirmed requests, until all are
active), their ratio (goal: at most 1.5), and the median confirm-to-active latency of requests
confirmed one at a time while the worker runs (the applicant's wait). Creates throwaway
users named b<random>... with homes under a temporary folder, and removes them all at the end.
"""

from __future__ import annotations

import argparse
import os
import pwd
import secrets
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import func, select

from etrepo.accounts.service import RequestService
from etrepo.clock import SystemClock
from etrepo.config import load_settings
from etrepo.db import Database
from etrepo.mail.transport import MemoryTransport
from etrepo.models import AccountRequest, OutboxMail
from etrepo.provisioning.interfaces import AccountSpec
from etrepo.provisioning.linux import (
    LinuxProvisioner,
    chpasswd_argv,
    expire_argv,
    generate_password,
    useradd_argv,
)
from etrepo.provisioning.worker import Worker


def letters(n: int) -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(n))


def bare_loop(names: list[str], base: Path) -> float:
    """The same commands the linux backend runs, with nothing around them."""
    start = time.perf_counter()
    for name in names:
        spec = AccountSpec(username=name, gecos="Bench User", home=base / "home" / name,
                           workdir=base / "work" / name, shell="/bin/bash")
        subprocess.run(useradd_argv(spec), check=True, capture_output=True)
        password = generate_password(16)
        subprocess.run(chpasswd_argv(), input=f"{name}:{password}\n", text=True,
                       check=True, capture_output=True)
        subprocess.run(expire_argv(name), check=True, capture_output=True)
        entry = pwd.getpwnam(name)
        spec.workdir.mkdir(parents=True, mode=0o700)
        os.chown(spec.workdir, entry.pw_uid, entry.pw_gid)
        os.chmod(spec.workdir, 0o700)
    return time.perf_counter() - start


def remove_users(names: list[str]) -> None:
    for name in names:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        subprocess.run(["userdel", "--remove", name], capture_output=True)


def confirmed_requests(service: RequestService, db: Database, n: int, tag: str) -> list[str]:
    """Submit n requests (not confirmed yet); returns their ids."""
    ids = []
    for i in range(n):
        view = service.submit({"first_name": "Bench", "last_name": f"{tag}{letters(6)}",
                               "institution": "Benchmark", "email": f"b{i}.{tag}@example.org"},
                              client_addr=f"10.{i // 250}.{i % 250}.1")
        ids.append(view.id)
    return ids


def code_of(db: Database, request_id: str) -> str:
    with db.session() as session:
        body = session.scalars(select(OutboxMail.body).where(
            OutboxMail.request_id == request_id, OutboxMail.kind == "confirmation")).first()
    assert body is not None
    return next(line.strip() for line in body.splitlines() if line.strip().isdigit())


def wait_active(db: Database, ids: list[str], deadline: float) -> None:
    while time.perf_counter() < deadline:
        with db.session() as session:
            done = session.scalar(select(func.count()).where(
                AccountRequest.id.in_(ids), AccountRequest.status.in_(["active", "failed"])))
        if done == len(ids):
            return
        time.sleep(0.005)
    raise SystemExit("timed out waiting for the worker")


def latencies(db: Database, ids: list[str]) -> list[float]:
    with db.session() as session:
        rows = session.execute(select(AccountRequest.confirmed_at, AccountRequest.activated_at,
                                      AccountRequest.status)
                               .where(AccountRequest.id.in_(ids))).all()
    failed = [r for r in rows if r.status != "active"]
    if failed:
        raise SystemExit(f"{len(failed)} requests did not become active")
    return [(r.activated_at - r.confirmed_at).total_seconds() for r in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200, help="requests in the burst")
    parser.add_argument("--tag", default="", help="letters in every user name of this run "
                        "(default: 3 random letters)")
    parser.add_argument("--single", type=int, default=20, help="requests sent one at a time")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root: it creates real users (and removes them)", file=sys.stderr)
        return 2

    base = Path(tempfile.mkdtemp(prefix="etrepo-bench-"))
    (base / "home").mkdir()
    (base / "work").mkdir()
    tag = args.tag or letters(3)
    if not (tag.isascii() and tag.isalpha() and tag.islower() and len(tag) <= 8):
        parser.error("--tag: up to 8 lower-case letters")
    settings = load_settings(environ={}, overrides={
        "INSTANCE_DIR": str(base / "instance"), "PROVISIONER": "linux",
        "HOME_BASE": str(base / "home"), "WORK_BASE": str(base / "work"),
        "RATE_LIMIT_SUBMITS": 10_000, "RATE_LIMIT_CONFIRMS": 10_000,
        "SECRET_KEY": secrets.token_hex(32),
    })
    db = Database(settings.database_url)
    db.upgrade()
    service = RequestService(db, settings, SystemClock())
    baseline_names = [f"x{tag}{letters(8)}" for _ in range(args.n)]
    try:
        # 1. The bare loop.
        (base / "bare" / "home").mkdir(parents=True)
        baseline = bare_loop(baseline_names, base / "bare")
        remove_users(baseline_names)

        # 2. The worker, started on n confirmed requests: time until all are active.
        ids = confirmed_requests(service, db, args.n, tag)
        for request_id in ids:
            service.confirm(request_id, code_of(db, request_id))
        worker = Worker(db, settings, LinuxProvisioner(), MemoryTransport(), SystemClock())
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        start = time.perf_counter()
        thread.start()
        wait_active(db, ids, time.perf_counter() + 60 + args.n)
        total = time.perf_counter() - start
        latencies(db, ids)  # all active, none failed

        # 3. Single requests to an idle worker.
        single_ids = confirmed_requests(service, db, args.single, tag + "s")
        single_codes = {request_id: code_of(db, request_id) for request_id in single_ids}
        for request_id in single_ids:
            # Applicants confirm at any moment, not in step with the worker's polling.
            time.sleep(secrets.randbelow(1000) / 1000 * settings.WORKER_POLL_INTERVAL)
            service.confirm(request_id, single_codes[request_id])
            wait_active(db, [request_id], time.perf_counter() + 30)
        single = latencies(db, single_ids)
        stop.set()
        thread.join(timeout=30)
    finally:
        with db.session() as session:
            created = list(session.scalars(select(AccountRequest.username).where(
                AccountRequest.username.is_not(None))))
        remove_users(created + baseline_names)
        shutil.rmtree(base, ignore_errors=True)

    print(f"requests:                 {args.n}")
    print(f"bare loop (same commands): {baseline:8.2f} s  ({baseline / args.n * 1000:.1f} ms each)")
    print(f"worker, start to all active: {total:8.2f} s  ({total / args.n * 1000:.1f} ms each)")
    print(f"ratio worker / bare loop:  {total / baseline:8.2f}  (goal <= 1.5)")
    print(f"median confirm-to-active, one at a time ({args.single}): "
          f"{statistics.median(single):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
