"""Exceptions of prefect-lemlist: one class per failure a caller may want to handle.

Every exception carries the HTTP status (when there was a response), lemlist's own error code
(when it sent one), a message that quotes lemlist's error text, and a `hint` for people (what to
do next; the CLI prints it on a `hint:` line). None of them ever contains the API key: messages
are built from the method, the path (never the query string) and the response body.
"""

from __future__ import annotations

from typing import Any


class LemlistError(Exception):
    """Base class for every error of prefect-lemlist.

    Attributes:
        message: the error text.
        status_code: HTTP status of lemlist's answer, or None when there was no answer.
        code: lemlist's machine-readable error code (e.g. `LEAD_NOT_FOUND`), or None.
        retryable: True when repeating the same request later cannot start paid work twice
            and may succeed (transient server trouble, rate limits).
        hint: what a person can do about it, or None.
    """

    retryable: bool = False
    hint: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        retryable: bool | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        if retryable is not None:
            self.retryable = retryable
        if hint is not None:
            self.hint = hint

    def __reduce__(self) -> tuple[Any, ...]:  # keep keyword attributes when pickled
        return (
            _rebuild,
            (type(self), self.message, self.status_code, self.code, self.retryable, self.hint),
        )


def _rebuild(
    cls: type[LemlistError],
    message: str,
    status_code: int | None,
    code: str | None,
    retryable: bool,
    hint: str | None,
) -> LemlistError:
    return cls(message, status_code=status_code, code=code, retryable=retryable, hint=hint)


class LemlistAuthError(LemlistError):
    """The API key was refused (401) or its user is blocked (403). Never retried.

    After the first refusal a client sends nothing more: every later request of that client
    fails at once with the same error.
    """

    hint = (
        "check the API key (lemlist: Settings > Integrations) and save it again with "
        "`prefect-lemlist save-credentials`"
    )


class LemlistNotFoundError(LemlistError):
    """The lead, contact, enrichment or campaign does not exist (404).

    `code` is `LEAD_NOT_FOUND` or `CONTACT_NOT_FOUND` when lemlist says which, else None.
    """


class LemlistRateLimitError(LemlistError):
    """lemlist kept answering 429 after the client's whole rate-limit wait budget was spent."""

    retryable = True
    hint = "another tool may be using the same API key; share its budget with a global limit"


class LemlistServerError(LemlistError):
    """lemlist failed (5xx) or could not be reached (connection error, timeout) after retries.

    `retryable` is False when the request may have reached lemlist before the failure (a read
    timeout or a dropped connection on a POST that starts paid work): sending it again could start
    the same enrichment twice; and for connection failures, which the client has already retried.
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


class LemlistOutOfCreditsError(LemlistError):
    """lemlist refused to start an enrichment because the team has no credits left.

    lemlist documents no answer for this; a 402, or a 400 whose text speaks of credits, is read
    as this error. The flows stop starting enrichments at the first one.
    """

    hint = "top up the team's credits in lemlist, then re-run the same command to continue"


class InsufficientCreditsError(LemlistError):
    """The run could cost more credits than are available (or than `max_credits` allows).

    Raised before anything is spent.
    """

    hint = "raise --max-credits, top up the credits, or enrich fewer at once (--limit N)"


class EnrichmentTimeoutError(LemlistError):
    """An enrichment was still in progress when the wait budget ran out.

    Attributes:
        enrichment_id: the enrichment that is still running; collect it later with
            `get_enrichment`.
    """

    def __init__(self, message: str, *, enrichment_id: str) -> None:
        super().__init__(message, retryable=True)
        self.enrichment_id = enrichment_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_timeout, (self.message, self.enrichment_id))


def _rebuild_timeout(message: str, enrichment_id: str) -> EnrichmentTimeoutError:
    return EnrichmentTimeoutError(message, enrichment_id=enrichment_id)


class EnrichmentInterruptedError(LemlistError):
    """An earlier run sent this enrichment but never recorded lemlist's answer.

    lemlist may have started (and billed) it, and its id is unknown. For contacts (`POST /enrich`
    and bulk, which lemlist never deduplicates) sending it again could bill twice, so it is not
    sent again unless asked with `force=True`.
    """

    hint = "check the person in lemlist; re-run with --force only to start it anew (costs again)"
