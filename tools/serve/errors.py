"""The one exception the serve handlers raise: an HTTP status with a one-line message for the client."""

from __future__ import annotations


class ApiError(Exception):
    """A refused request: ``status`` (400, 413, 415, 422, 503...) and a message saying what to do."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message
