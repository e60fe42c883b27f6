"""The one error a PMS connector raises, carrying what the caller needs to retry or give up.

`permanent` is True for a 4xx other than 401/408/409/429: sending the same request again
cannot succeed. Everything else (timeouts, lost connections, 5xx, 429) is retryable;
`retry_after` is the server's Retry-After in seconds when it sent one.
"""

from __future__ import annotations

_RETRYABLE_4XX = {401, 408, 409, 429}


class PmsError(Exception):
    """A PMS call failed; `status` is None when no HTTP answer came back."""

    def __init__(self, message: str, status: int | None = None,
                 retry_after: float | None = None, permanent: bool | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        if permanent is None:
            permanent = status is not None and 400 <= status < 500 and status not in _RETRYABLE_4XX
        self.permanent = permanent
