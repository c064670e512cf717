"""Errors of the verification side: the store, the embedded server, the API.

Every expected failure is an ``ItemsealError`` (``codegen/exc.py``) carrying the
HTTP status and the machine-readable ``code`` the API answers with (``app.py``
maps them with one ``add_error_handler``); the CLI shows the message as one line.
"""

from __future__ import annotations

from codegen.exc import ItemsealError


class VerifyError(ItemsealError):
    """An expected failure of the verification side: store, requests, channels, admin."""

    status = 500
    code = "internal"


class StoreError(VerifyError):
    """Redis could not be reached or failed; the API answers 503, never 500.

    The message names the socket path or URL, for the operator's log and CLI;
    the API says only ``public_message`` (no paths to anonymous callers).
    """

    status = 503
    code = "store_unavailable"
    public = False
    public_message = "the store is unavailable"


class EmbeddedStoreError(StoreError):
    """The embedded redis-server could not be started, found or stopped."""


class RequestError(VerifyError):
    """The request is wrong; the client must change it before trying again."""

    status = 400
    code = "bad_request"


class InvalidJson(RequestError):
    code = "invalid_json"


class InvalidField(RequestError):
    """A field has the wrong type or value; ``field`` names it."""

    status = 422
    code = "invalid_field"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class BodyTooLarge(RequestError):
    status = 413
    code = "body_too_large"


class TooManyCodes(RequestError):
    status = 413
    code = "too_many_codes"


class NotFound(VerifyError):
    status = 404
    code = "not_found"


class RateLimited(VerifyError):
    """Too many checks from one client or phone; ``retry_after`` in seconds."""

    status = 429
    code = "rate_limited"

    def __init__(self, subject: str, retry_after: int) -> None:
        super().__init__(f"too many checks from this {subject}: retry in {retry_after} s")
        self.subject = subject
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class SettingError(RequestError):
    """A channel setting (number, keyword, template, language) is not acceptable."""

    status = 422
    code = "invalid_setting"


class NumberTaken(SettingError):
    code = "number_taken"


class UnknownNumber(NotFound):
    """No tenant has the SMS number or sub-port a gateway posted for."""

    code = "unknown_number"


class BadSignature(VerifyError):
    """A gateway post is unsigned or its signature does not match: 403."""

    status = 403
    code = "bad_signature"


class InProgress(VerifyError):
    """The first delivery of this message is still being answered: retry later."""

    status = 503
    code = "in_progress"


class Unauthorized(VerifyError):
    """No usable token: the client must log in (401)."""

    status = 401
    code = "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="itemseal admin"'}


class Forbidden(VerifyError):
    """A valid token whose role may not do this (403)."""

    status = 403
    code = "forbidden"


class TenantNotFound(VerifyError):
    """Another tenant's data, or no such tenant: always the same answer (404)."""

    status = 404
    code = "not_found"

    def __init__(self) -> None:
        super().__init__("no such tenant")


class UnknownToken(VerifyError):
    status = 404
    code = "unknown_token"


class UnknownAction(VerifyError):
    """A responder names an action the matrix does not have (a bug, caught by tests)."""
