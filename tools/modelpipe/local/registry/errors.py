"""HTTP errors of the registry API: one exception type per status, rendered as ``{"code", "message"}``."""

from __future__ import annotations

from http import HTTPStatus


class ApiError(Exception):
    """An error answered to the client; ``status`` is the HTTP status, ``message`` names the problem."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, str]:
        """The error body the real server sends: status text as ``code`` plus the message."""
        return {"code": status_text(self.status), "message": self.message}


class BadRequestError(ApiError):
    """Malformed JSON, unknown field, wrong type, malformed id or page token (400)."""

    status = 400


class UnauthorizedError(ApiError):
    """Missing or wrong bearer token (401)."""

    status = 401


class NotFoundError(ApiError):
    """Unknown id, or a find that matched zero or several entities (404)."""

    status = 404


class ConflictError(ApiError):
    """A name or externalId that must be unique is taken (409)."""

    status = 409


class UnprocessableError(ApiError):
    """A required field is missing or empty (422; the body code says Bad Request, like the Go server)."""

    status = 422


def status_text(status: int) -> str:
    """Status text used as the error ``code``; 422 reports ``Bad Request`` as the real server does."""
    if status == 422:
        return HTTPStatus.BAD_REQUEST.phrase
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
