"""The portal's mails, in plain text. Each returns (subject, body)."""

from __future__ import annotations

from etrepo.config import Settings


def _footer(settings: Settings) -> str:
    return (
        "\n-- \n"  # the signature separator mail clients recognise (with its space)
        "This mail was sent automatically; replies to it are not read.\n"
        f"For help, write to {settings.HELPDESK_EMAIL}.\n"
    )


def confirmation_mail(settings: Settings, name: str, code: str) -> tuple[str, str]:
    minutes = max(1, settings.CODE_TTL // 60)
    subject = f"[{settings.SITE_NAME}] Email confirmation request"
    body = (
        f"Dear {name},\n"
        "\n"
        f"someone, hopefully you, asked for an account on the {settings.SITE_NAME} server with\n"
        "this email address. To confirm the address, enter this code in the form:\n"
        "\n"
        f"    {code}\n"
        "\n"
        f"The code is valid for {minutes} minutes.\n"
        "\n"
        "If you did not ask for an account, please report this mail to the help desk\n"
        "below; nothing will be created unless the code is entered.\n"
    )
    return subject, body + _footer(settings)


def credentials_mail(
    settings: Settings, name: str, username: str, password: str
) -> tuple[str, str]:
    subject = f"[{settings.SITE_NAME}] Your login credentials"
    body = (
        f"Dear {name},\n"
        "\n"
        f"your account on the {settings.SITE_NAME} server is ready.\n"
        "\n"
        f"Username: {username}\n"
        f"Password: {password}\n"
        "\n"
        "Log in with:\n"
        "\n"
        f"    ssh {username}@{settings.HOSTNAME}\n"
        "\n"
        "You must change this password at your first login: the server asks for the\n"
        "password above once more, then for a new one, twice. Then log in again.\n"
        "Please delete this mail afterwards.\n"
    )
    if settings.PROVISIONER == "dry-run":
        body += ("\n(This portal runs with the dry-run provisioner: no account was created, "
                 "so these\ncredentials do not work.)\n")
    return subject, body + _footer(settings)


def failure_report(settings: Settings, request_id: str, name: str, email: str,
                   attempts: int, reason: str) -> tuple[str, str]:
    """To the maintainers, once, when a request has failed for good."""
    subject = f"[{settings.SITE_NAME}] Account request failed: {name}"
    body = (
        f"The account for {name} <{email}> could not be created after {attempts} attempts.\n"
        "\n"
        f"Reason: {reason}\n"
        "\n"
        "To see its history and retry it once the cause is fixed:\n"
        "\n"
        f"    etrepo requests show {request_id}\n"
        f"    etrepo requests retry {request_id}\n"
        "\n"
        f"The applicant sees: {settings.BASE_URL.rstrip('/')}/requests/{request_id}\n"
    )
    return subject, body + _footer(settings)


def credentials_lost_report(settings: Settings, request_id: str, name: str, email: str,
                            username: str, error: str) -> tuple[str, str]:
    """To the maintainers: the account exists but its credentials mail was refused for good."""
    subject = f"[{settings.SITE_NAME}] Credentials mail refused: {name}"
    body = (
        f"The account {username} of {name} <{email}> was created, but the mail with its\n"
        f"credentials was refused for good: {error}\n"
        "\n"
        "The password in it is gone (it is never kept). Give the person a new one by hand:\n"
        "\n"
        f"    passwd {username} && chage --lastday 0 {username}\n"
        "\n"
        f"History: etrepo requests show {request_id}\n"
    )
    return subject, body + _footer(settings)
