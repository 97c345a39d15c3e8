"""Exceptions raised by the lemlist client and tasks.

Every exception carries the HTTP status (when there was a response), lemlist's own error code
(when it sent one) and a message that quotes lemlist's error text. None of them ever contains
the API key: messages are built from the method, the path (never the query string) and the
response body.
"""

from __future__ import annotations


class LemlistError(Exception):
    """Base class for every error of prefect-lemlist.

    Attributes:
        status_code: HTTP status of lemlist's answer, or None when there was no answer.
        code: lemlist's machine-readable error code (e.g. `LEAD_NOT_FOUND`), or None.
        retryable: True when repeating the same request later cannot start paid work twice
            and may succeed (transient server or network trouble, rate limits).
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        if retryable is not None:
            self.retryable = retryable

    def __reduce__(self):  # keep keyword attributes when pickled (Prefect persists failures)
        return (
            _rebuild,
            (type(self), self.message, self.status_code, self.code, self.retryable),
        )


def _rebuild(
    cls: type[LemlistError],
    message: str,
    status_code: int | None,
    code: str | None,
    retryable: bool,
) -> LemlistError:
    return cls(message, status_code=status_code, code=code, retryable=retryable)


class LemlistAuthError(LemlistError):
    """The API key was refused (401) or its user is blocked (403). Never retried."""


class LemlistNotFoundError(LemlistError):
    """The lead, contact, enrichment or campaign does not exist (404).

    `code` is `LEAD_NOT_FOUND` or `CONTACT_NOT_FOUND` when lemlist says which, else None.
    """


class LemlistRateLimitError(LemlistError):
    """lemlist kept answering 429 after the client's whole rate-limit wait budget was spent."""

    retryable = True


class LemlistServerError(LemlistError):
    """lemlist failed (5xx) or could not be reached (connection error, timeout) after retries.

    `retryable` is False when the request may have reached lemlist before the failure (a read
    timeout or a dropped connection on a POST that starts paid work): sending it again could start
    the same enrichment twice.
    """

    retryable = True


class LemlistResponseError(LemlistError):
    """lemlist answered 2xx, but the body was not the JSON the endpoint documents.

    lemlist answers unknown paths with its web app's HTML and a 200, so a wrong base URL looks
    like success; this error says what came back instead.

    Attributes:
        content_type: the response's content type when it was not JSON, else None.
    """

    content_type: str | None = None


class EnrichmentTimeoutError(LemlistError):
    """An enrichment was still in progress when the wait budget ran out.

    Attributes:
        enrichment_id: the enrichment that is still running; collect it later with
            `get_enrichment`.
    """

    def __init__(self, message: str, *, enrichment_id: str) -> None:
        super().__init__(message, retryable=True)
        self.enrichment_id = enrichment_id

    def __reduce__(self):
        return (_rebuild_timeout, (self.message, self.enrichment_id))


def _rebuild_timeout(message: str, enrichment_id: str) -> EnrichmentTimeoutError:
    return EnrichmentTimeoutError(message, enrichment_id=enrichment_id)
