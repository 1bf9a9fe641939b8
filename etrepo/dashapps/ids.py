"""Component ids of the request form, in one place (the browser tests use them too)."""

FORM = "request-form"
FORM_ALERT = "form-alert"
SUBMIT = "submit-request"
PROGRESS = "progress"
STATUS_ALERT = "status-alert"
STATUS_TEXT = "status-text"
USERNAME = "status-username"
DRY_RUN = "status-dry-run"
REQUEST_ID = "request-id"
POLL = "status-poll"
MODAL = "verify-modal"
MODAL_TEXT = "verify-text"
CODE = "verify-code"
CODE_MESSAGE = "verify-message"
CONFIRM = "verify-confirm"
RESEND = "verify-resend"
CHANGE_DETAILS = "verify-change-details"


def field(name: str) -> str:
    return f"field-{name.replace('_', '-')}"


def feedback(name: str) -> str:
    return f"feedback-{name.replace('_', '-')}"
