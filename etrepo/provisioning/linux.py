"""The real provisioner: local Linux accounts made with Debian's shadow tools.

Every command is an argument list (never a shell string) run through :func:`run`, which logs
the argv at INFO and turns a failure into a :class:`ProvisioningError` carrying the command's
stderr. Passwords only ever travel on a command's stdin: they are in no argv, no log line, no
returned action line and no error message.

Everything executed is validated again here even though the caller validated it: this module
is the last line before root runs ``useradd``.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import secrets
import shlex
import shutil
import stat
import string
import subprocess
from collections.abc import Sequence
from pathlib import Path

from etrepo.accounts.usernames import USERNAME_RE
from etrepo.provisioning.interfaces import AccountSpec, ProvisioningError

log = logging.getLogger(__name__)

GECOS_FORBIDDEN = frozenset(":,=")
GECOS_MAX = 255
# Commands are found on this PATH only, with messages in English whatever the locale.
COMMAND_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
COMMAND_TIMEOUT = 120.0
WORKDIR_MODE = 0o700
PARENT_MODE = 0o755
# Exit codes of userdel that still mean "the user is gone": 6 = no such user (a race), and
# 12 = the home directory could not be removed (e.g. it was already missing).
USERDEL_OK = (0, 6, 12)

AMBIGUOUS = frozenset("0O1lI")
PASSWORD_ALPHABET = "".join(
    c for c in string.ascii_letters + string.digits if c not in AMBIGUOUS
)


# --- running commands ---------------------------------------------------------------------


def run(
    argv: Sequence[str],
    *,
    input: str | None = None,
    ok_codes: Sequence[int] = (0,),
    redact: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (a list, no shell) and return the completed process.

    ``input`` goes to stdin and is never logged nor put in an error. An exit code outside
    ``ok_codes`` raises ``ProvisioningError("<cmd> failed (exit N): <stderr>")``; any string
    of ``redact`` (and each line of ``input``) that the command echoed is masked in it.
    """
    args = [str(a) for a in argv]
    if not args or any("\0" in a for a in args):
        raise ProvisioningError(f"refusing to run an empty command or one with NUL: {args!r}")
    name = os.path.basename(args[0])
    log.info("run: %s", shlex.join(args))
    try:
        proc = subprocess.run(  # noqa: S603 - a fixed program and validated arguments, no shell
            args,
            input=input,
            capture_output=True,
            text=True,
            check=False,
            env=COMMAND_ENV,
            timeout=COMMAND_TIMEOUT,
        )
    except FileNotFoundError:
        path = COMMAND_ENV["PATH"]
        raise ProvisioningError(f"{name} failed: command not found on {path}") from None
    except subprocess.TimeoutExpired:
        raise ProvisioningError(f"{name} failed: no answer in {COMMAND_TIMEOUT:.0f}s") from None
    if proc.returncode not in ok_codes:
        err = _scrub(proc.stderr.strip(), input, redact) or "(no message)"
        raise ProvisioningError(f"{name} failed (exit {proc.returncode}): {err}")
    if proc.stderr.strip():
        log.info("%s said: %s", name, _scrub(proc.stderr.strip(), input, redact))
    return proc


def _scrub(text: str, input: str | None, redact: Sequence[str]) -> str:
    secrets_ = [s for s in redact if s]
    if input:
        secrets_ += [line for line in input.splitlines() if line]
    for s in sorted(secrets_, key=len, reverse=True):
        text = text.replace(s, "***")
    return text


# --- validation ---------------------------------------------------------------------------


def check_username(name: str) -> str:
    if not isinstance(name, str) or not USERNAME_RE.fullmatch(name):
        raise ProvisioningError(
            f"invalid user name {name!r}: lower-case letter or '_' first, then up to 31 of "
            "a-z 0-9 _ -"
        )
    return name


def check_gecos(gecos: str) -> str:
    if not isinstance(gecos, str) or len(gecos) > GECOS_MAX:
        raise ProvisioningError(f"invalid full name {gecos!r}: at most {GECOS_MAX} characters")
    for c in gecos:
        if not (" " <= c <= "~") or c in GECOS_FORBIDDEN:
            raise ProvisioningError(
                f"invalid full name {gecos!r}: only printable ASCII without ':' ',' '='"
            )
    return gecos


def check_path(path: Path | str, what: str) -> Path:
    text = str(path)
    if not text.startswith("/"):
        raise ProvisioningError(f"{what} {text!r} must be an absolute path")
    if any(not (" " < c <= "~") or c == ":" for c in text):
        raise ProvisioningError(
            f"{what} {text!r} may hold printable ASCII only, without spaces or ':'"
        )
    p = Path(text)
    if ".." in p.parts or text != str(p) or len(p.parts) < 2:
        raise ProvisioningError(f"{what} {text!r} must be a normalised path below /")
    return p


def check_shell(shell: str) -> str:
    check_path(shell, "shell")
    try:
        listed = {
            line.strip()
            for line in Path("/etc/shells").read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        }
    except OSError:
        listed = set()
    if shell in listed:
        return shell
    if os.path.isfile(shell) and os.access(shell, os.X_OK):
        return shell
    raise ProvisioningError(f"shell {shell!r} is not in /etc/shells and not an executable file")


def check_groups(groups: Sequence[str]) -> tuple[str, ...]:
    for g in groups:
        if not isinstance(g, str) or not USERNAME_RE.fullmatch(g):
            raise ProvisioningError(f"invalid group name {g!r}")
        try:
            grp.getgrnam(g)
        except KeyError:
            raise ProvisioningError(f"group {g!r} does not exist") from None
    return tuple(groups)


def check_spec(spec: AccountSpec) -> AccountSpec:
    """Raise ProvisioningError unless every field of ``spec`` is safe to execute."""
    check_username(spec.username)
    check_gecos(spec.gecos)
    home = check_path(spec.home, "home directory")
    workdir = check_path(spec.workdir, "work directory")
    if home == workdir:
        raise ProvisioningError(f"home and work directory are the same: {home}")
    check_shell(spec.shell)
    check_groups(spec.groups)
    return spec


def check_password(password: str) -> str:
    if not isinstance(password, str) or not password:
        raise ProvisioningError("the password is empty")
    if any(not (" " <= c <= "~") for c in password):
        # A newline would start a second chpasswd line; keep to printable ASCII.
        raise ProvisioningError("the password must be printable ASCII (it was not logged)")
    return password


def require_root() -> None:
    if os.geteuid() != 0:
        raise ProvisioningError(
            "the linux provisioner must run as root (euid 0) to create accounts; "
            f"this process runs as uid {os.geteuid()}"
        )


# --- commands, shared with the dry run ----------------------------------------------------


def useradd_argv(spec: AccountSpec) -> list[str]:
    argv = [
        "useradd",
        "--create-home",
        "--home-dir", str(spec.home),
        "--shell", spec.shell,
        "--comment", spec.gecos,
        "--user-group",
    ]
    if spec.groups:
        argv += ["--groups", ",".join(spec.groups)]
    argv.append(spec.username)
    return argv


def chpasswd_argv() -> list[str]:
    return ["chpasswd"]


def expire_argv(username: str) -> list[str]:
    return ["chage", "--lastday", "0", username]


def userdel_argv(username: str) -> list[str]:
    return ["userdel", "--remove", username]


def workdir_line(spec: AccountSpec, verb: str = "mkdir") -> str:
    return f"{verb} {spec.workdir} ({WORKDIR_MODE:04o}, owner {spec.username})"


def generate_password(length: int = 16) -> str:
    """A random password of letters and digits without look-alikes (0 O 1 l I), with at
    least one lower-case letter, one upper-case letter and one digit."""
    if length < 8:
        raise ValueError("a generated password has at least 8 characters")
    while True:  # rejection sampling keeps every accepted password uniformly likely
        pw = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))
        if (
            any(c.islower() for c in pw)
            and any(c.isupper() for c in pw)
            and any(c.isdigit() for c in pw)
        ):
            return pw


def password_actions(username: str) -> list[str]:
    """What setting the initial password does, for the request's history (no password)."""
    return [
        f"chpasswd (new password of {username} given on stdin)",
        shlex.join(expire_argv(username)) + " (must change the password at first login)",
    ]


def check_removal(spec: AccountSpec) -> None:
    check_username(spec.username)
    check_path(spec.home, "home directory")
    check_path(spec.workdir, "work directory")


def lookup_user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def name_exists(name: str) -> bool:
    """True if ``name`` is a user or a group here (harmless lookups, no root needed)."""
    if not isinstance(name, str) or not name or "\0" in name:
        return False
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        pass
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def ensure_not_foreign(spec: AccountSpec, user: pwd.struct_passwd | None) -> None:
    """Raise unless ``user`` is absent or is the account ``spec`` describes."""
    if user is not None and os.path.normpath(user.pw_dir) != str(spec.home):
        raise ProvisioningError(
            f"user {spec.username} already exists and is not this request's "
            f"(its home is {user.pw_dir}, not {spec.home})"
        )


# --- the provisioner ----------------------------------------------------------------------


class LinuxProvisioner:
    """Creates real local accounts; every action must run as root."""

    name = "linux"

    def preflight(self, groups: tuple[str, ...], shell: str) -> None:
        require_root()
        check_groups(groups)
        check_shell(shell)

    def name_taken(self, name: str) -> bool:
        return name_exists(name)

    def create_account(self, spec: AccountSpec) -> list[str]:
        check_spec(spec)
        require_root()
        actions: list[str] = []
        user = lookup_user(spec.username)
        ensure_not_foreign(spec, user)
        if user is None:
            if os.path.lexists(spec.home):
                # useradd would keep it with its old owner and content: a leftover to look at.
                raise ProvisioningError(
                    f"home directory {spec.home} already exists but user {spec.username} "
                    "does not: remove the leftover or choose another name"
                )
            actions += _make_parents(spec.home)
            argv = useradd_argv(spec)
            run(argv)
            actions.append(shlex.join(argv))
            user = lookup_user(spec.username)
            if user is None:
                raise ProvisioningError(f"useradd succeeded but user {spec.username} is missing")
        else:
            actions.append(f"user {spec.username} already exists with home {spec.home}: kept")
            actions += _complete_existing(spec, user)
        actions += _ensure_workdir(spec, user)
        return actions

    def set_initial_password(self, username: str, password: str) -> list[str]:
        check_username(username)
        check_password(password)
        require_root()
        if lookup_user(username) is None:
            raise ProvisioningError(f"user {username} does not exist: no password set")
        run(chpasswd_argv(), input=f"{username}:{password}\n", redact=(password,))
        run(expire_argv(username))
        return password_actions(username)

    def remove_account(self, spec: AccountSpec) -> list[str]:
        check_removal(spec)
        require_root()
        actions: list[str] = []
        user = lookup_user(spec.username)
        # Never remove somebody else's account that merely has the same name.
        ensure_not_foreign(spec, user)
        actions += _remove_workdir(spec, user)
        if user is not None:
            argv = userdel_argv(spec.username)
            proc = run(argv, ok_codes=USERDEL_OK)
            actions.append(shlex.join(argv))
            if proc.returncode == 12:
                actions.append(f"warning: {spec.home} was not removed: {proc.stderr.strip()}")
            if lookup_user(spec.username) is not None:
                raise ProvisioningError(f"userdel ran but user {spec.username} still exists")
        if not actions:
            actions.append(f"user {spec.username} and {spec.workdir} already gone: nothing to do")
        return actions


def _make_parents(path: Path) -> list[str]:
    """Create the missing parents of ``path`` (root-owned, 0755)."""
    missing = [p for p in reversed(path.parents) if not p.exists()]
    for p in missing:
        try:
            p.mkdir(mode=PARENT_MODE)
        except FileExistsError:
            pass
        except OSError as exc:
            raise ProvisioningError(f"cannot create {p}: {exc.strerror}") from None
    return [f"mkdir {p} ({PARENT_MODE:04o}, owner root)" for p in missing]


def _complete_existing(spec: AccountSpec, user: pwd.struct_passwd) -> list[str]:
    """After a crash: the user exists; add what useradd would have made but is missing."""
    actions: list[str] = []
    if not os.path.lexists(spec.home):
        argv = ["mkhomedir_helper", spec.username]
        run(argv)
        actions.append(shlex.join(argv))
    missing = []
    for g in spec.groups:
        entry = grp.getgrnam(g)
        if spec.username not in entry.gr_mem and entry.gr_gid != user.pw_gid:
            missing.append(g)
    if missing:
        argv = ["usermod", "--append", "--groups", ",".join(missing), spec.username]
        run(argv)
        actions.append(shlex.join(argv))
    return actions


def _owner_is_free_for(uid: int, user_uid: int | None) -> bool:
    """May a directory owned by ``uid`` be handed to / removed for the user ``user_uid``?
    Yes if it is that user's, root's (made by an admin or a crashed run) or an orphan's."""
    if uid in (user_uid, 0):
        return True
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return True
    return False


def _ensure_workdir(spec: AccountSpec, user: pwd.struct_passwd) -> list[str]:
    workdir = spec.workdir
    actions: list[str] = []
    try:
        st = os.lstat(workdir)
    except FileNotFoundError:
        st = None
    if st is None:
        actions += _make_parents(workdir)
        try:
            workdir.mkdir(mode=WORKDIR_MODE)
        except OSError as exc:
            raise ProvisioningError(f"cannot create {workdir}: {exc.strerror}") from None
        verb = "mkdir"
    else:
        if not stat.S_ISDIR(st.st_mode):
            raise ProvisioningError(f"{workdir} exists and is not a directory (or is a link)")
        if not _owner_is_free_for(st.st_uid, user.pw_uid):
            raise ProvisioningError(f"{workdir} exists and belongs to another user")
        if (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (
            user.pw_uid, user.pw_gid, WORKDIR_MODE
        ):
            return [f"{workdir} already exists ({WORKDIR_MODE:04o}, owner {spec.username})"]
        verb = "fix owner and mode of"
    try:
        os.chown(workdir, user.pw_uid, user.pw_gid, follow_symlinks=False)
        os.chmod(workdir, WORKDIR_MODE, follow_symlinks=False)
    except OSError as exc:
        raise ProvisioningError(f"cannot set owner/mode of {workdir}: {exc.strerror}") from None
    log.info("%s", workdir_line(spec, verb))
    actions.append(workdir_line(spec, verb))
    return actions


def _remove_workdir(spec: AccountSpec, user: pwd.struct_passwd | None) -> list[str]:
    workdir = spec.workdir
    try:
        st = os.lstat(workdir)
    except FileNotFoundError:
        return []
    if not stat.S_ISDIR(st.st_mode):
        raise ProvisioningError(f"{workdir} is not a directory (or is a link): not removed")
    if os.path.realpath(workdir) != str(workdir):
        raise ProvisioningError(f"{workdir} resolves elsewhere through a link: not removed")
    if st.st_uid == 0 or not _owner_is_free_for(st.st_uid, user.pw_uid if user else None):
        raise ProvisioningError(f"{workdir} is not owned by {spec.username}: not removed")
    log.info("rm -r %s", workdir)
    try:
        shutil.rmtree(workdir)
    except OSError as exc:
        raise ProvisioningError(f"cannot remove {workdir}: {exc.strerror}") from None
    return [f"rm -r {workdir}"]
