"""Exceptions of prefect-lemlist: one class per failure a caller may want to handle.

Every exception carries the HTTP status (when there was a response), lemlist's own error code
(when it sent one), a message that quotes lemlist's error text, a `hint` for people (what to
do next; the CLI prints it on a `hint:` line), and the **delivery verdict**: whether the request
can have reached lemlist (`not_sent`, `maybe_sent`, `answered`). The client sets the verdict
where it is known; the ledger, the tasks and the report read only that field. None of them ever
contains the API key: messages are built from the method, the path (never the query string) and
the response body.

The tree (every class is importable from `prefect_lemlist`):

    LemlistError                      anything prefect-lemlist raises on purpose
    ├── LemlistAuthError              401 / 403: the key was refused (latched by the client)
    ├── LemlistNotFoundError          404: lead, contact, enrichment or campaign
    ├── LemlistRateLimitError         still 429 after the client's wait budget
    ├── LemlistServerError            5xx, or the exchange broke after the request was sent
    │   └── LemlistUnreachableError   nothing reached lemlist (refused, DNS, TLS): not_sent
    ├── LemlistResponseError          a 2xx whose body is not the documented JSON
    ├── LemlistOutOfCreditsError      lemlist refused a start for want of credits
    ├── InsufficientCreditsError      the run could cost more than allowed (nothing spent)
    ├── EnrichmentTimeoutError        `wait_for_enrichment` ran out of time (carries the id)
    ├── EnrichmentInterruptedError    an earlier start of this person lost its answer
    ├── EnrichmentsNotCollectedError  a flow started enrichments it could not collect
    ├── ClaimedElsewhereError         another run is sending this start right now
    ├── CredentialsError              no usable credentials (also a ValueError)
    ├── LedgerError                   the ledger's storage cannot be used
    └── DatabaseTargetError           a SQL database or table cannot be used (also a ValueError)
"""

from __future__ import annotations

from typing import Any, Literal

Delivery = Literal["not_sent", "maybe_sent", "answered"]
"""Whether a failed request can have reached lemlist (and so started paid work):

- `not_sent`: nothing was written to lemlist (connection refused, DNS or TLS failure, pool
  timeout, a refused key latched before sending, a start another run holds);
- `maybe_sent`: the request may have been read and acted on, its answer is unknown (write or
  read timeout, connection dropped after sending, a proxy's 502/504, a 2xx we cannot use);
- `answered`: lemlist answered with a status that says what it did (a 4xx, a 500/503).
"""


class LemlistError(Exception):
    """Base class for every error of prefect-lemlist.

    Attributes:
        message: the error text.
        status_code: HTTP status of lemlist's answer, or None when there was no answer.
        code: lemlist's machine-readable error code (e.g. `LEAD_NOT_FOUND`), or None.
        retryable: True when repeating the same request later cannot start paid work twice
            and may succeed (transient server trouble, rate limits).
        hint: what a person can do about it, or None.
        delivery: whether the request can have reached lemlist (see `Delivery`).
        permanent: asking again would get the same answer (a 404, a 400): worth remembering.
        summary: the flow's `PipelineSummary` when a flow ended Failed after exporting every
            row (it stopped starting, or could not collect), else None.
    """

    retryable: bool = False
    hint: str | None = None
    delivery: Delivery = "answered"
    permanent: bool = True
    summary: Any = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        retryable: bool | None = None,
        hint: str | None = None,
        delivery: Delivery | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        if retryable is not None:
            self.retryable = retryable
        if hint is not None:
            self.hint = hint
        if delivery is not None:
            self.delivery = delivery

    def _fields(self) -> dict[str, Any]:
        return {
            "status_code": self.status_code,
            "code": self.code,
            "retryable": self.retryable,
            "hint": self.hint,
            "delivery": self.delivery,
        }

    def __reduce__(self) -> tuple[Any, ...]:  # keep keyword attributes when pickled
        return (_rebuild, (type(self), self.message, self._fields()))

    def copy_with(self, message: str | None = None, **fields: Any) -> LemlistError:
        """A copy of this error (same class and attributes) with some of them replaced.

        Args:
            message: a new message, or None to keep this one.
            **fields: `status_code`, `code`, `retryable`, `hint` or `delivery`.

        Returns:
            The new error (never raised here).
        """
        copy = _rebuild(type(self), message or self.message, {**self._fields(), **fields})
        copy.__dict__.update(
            {k: v for k, v in self.__dict__.items() if k not in copy.__dict__ and k != "args"}
        )
        return copy


def _rebuild(cls: type[LemlistError], message: str, fields: dict[str, Any]) -> LemlistError:
    error = cls.__new__(cls)
    LemlistError.__init__(error, message, **fields)
    return error


class LemlistAuthError(LemlistError):
    """The API key was refused (401) or its user is blocked (403). Never retried.

    After the first refusal a client sends nothing more: every later request of that client
    fails at once with the same error.
    """

    hint = (
        "check the API key (lemlist: Settings > Integrations) and save it again with "
        "`prefect-lemlist save-credentials`"
    )
    permanent = False  # another key may work


class LemlistNotFoundError(LemlistError):
    """The lead, contact, enrichment or campaign does not exist (404).

    `code` is `LEAD_NOT_FOUND` or `CONTACT_NOT_FOUND` when lemlist says which, else None.
    """


class LemlistRateLimitError(LemlistError):
    """lemlist kept answering 429 after the client's whole rate-limit wait budget was spent."""

    retryable = True
    permanent = False
    hint = "another tool may be using the same API key; share its budget with a global limit"


class LemlistServerError(LemlistError):
    """lemlist failed (5xx), or the exchange broke after the request was sent (a read timeout,
    a dropped connection, a proxy's 502/504), after the client's retries.

    `retryable` is False when the request may have reached lemlist before the failure
    (`delivery == "maybe_sent"` on a POST that starts paid work): sending it again could start
    the same enrichment twice.
    """

    retryable = True
    permanent = False


class LemlistUnreachableError(LemlistServerError):
    """lemlist could not be reached at all (connection refused, DNS or TLS failure, connect or
    pool timeout) after the client's own attempts: nothing was sent (`delivery == "not_sent"`).

    A flow that meets it while starting enrichments stops starting (like a refused key), keeps
    collecting what started, and ends Failed; re-running the same command sends exactly what
    was not sent. Prefect task retries do not repeat it (they would multiply the client's
    attempts); the run's re-run does.
    """

    retryable = False
    delivery: Delivery = "not_sent"
    hint = (
        "re-run the same command when lemlist is reachable: nothing unsent was recorded "
        "(check base_url on the credentials block and the network)"
    )


class LemlistResponseError(LemlistError):
    """lemlist answered 2xx, but the body was not the JSON the endpoint documents.

    lemlist answers unknown paths with its web app's HTML and a 200, so a wrong base URL looks
    like success; this error says what came back instead.

    Attributes:
        content_type: the response's content type when it was not JSON, else None.
    """

    content_type: str | None = None
    permanent = False  # says nothing about the lead or person (a wrong base URL, a glitch)


class LemlistOutOfCreditsError(LemlistError):
    """lemlist refused to start an enrichment because the team has no credits left.

    lemlist documents no answer for this; a 402, or a 400 whose text speaks of credits, is read
    as this error. The flows stop starting enrichments at the first one.
    """

    hint = "top up the team's credits in lemlist, then re-run the same command to continue"
    permanent = False


class InsufficientCreditsError(LemlistError):
    """The run could cost more credits than are available (or than `max_credits` allows).

    Raised before anything is spent.
    """

    hint = "raise --max-credits, top up the credits, or enrich fewer at once (--limit N)"
    delivery: Delivery = "not_sent"
    permanent = False


class EnrichmentTimeoutError(LemlistError):
    """An enrichment was still in progress when the wait budget ran out.

    Attributes:
        enrichment_id: the enrichment that is still running; collect it later with
            `get_enrichment`.
    """

    permanent = False

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


class EnrichmentsNotCollectedError(LemlistError):
    """A run started enrichments whose results it could not collect (still running at the
    collect timeout, or lemlist unreachable): their ids are recorded, nothing is lost.

    Re-running the same command collects them by id (no new charge).
    """

    retryable = False
    delivery: Delivery = "not_sent"
    permanent = False
    hint = "re-run the same command to collect them by their ids (no new charge)"


class ClaimedElsewhereError(LemlistError):
    """Another run holds this start (it is sending it right now): nothing was sent.

    Retryable: once the other run records lemlist's answer, asking again returns it.
    """

    retryable = True
    delivery: Delivery = "not_sent"
    permanent = False


class CredentialsError(LemlistError, ValueError):
    """No usable credentials (unknown block, no key in the environment, bad base URL)."""

    delivery: Delivery = "not_sent"
    permanent = False
    hint = "save a block with `prefect-lemlist save-credentials NAME`, or set LEMLIST_API_KEY"


class LedgerError(LemlistError):
    """The enrichment ledger cannot be used with the configured storage."""

    delivery: Delivery = "not_sent"
    permanent = False
    hint = (
        "point the ledger at a directory (LEMLIST_LEDGER_DIR) or Prefect's result storage at "
        "a RemoteFileSystem block (PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK)"
    )


class DatabaseTargetError(LemlistError, ValueError):
    """A SQL database, table or query of `prefect_lemlist.sql` cannot be used.

    Raised for a URL with an unknown scheme or a missing driver, a `SqlAlchemyConnector` block
    that does not exist (or prefect-sqlalchemy not installed), a database that refuses the
    connection, an invalid table name, a dialect without `INSERT ... ON CONFLICT`, a merge key
    that the table's existing rows already duplicate, or a query the database rejects. The
    message is one sentence, quotes the database's own one-line error where there is one, and
    never contains a password (URLs are rendered with the password hidden). `hint` says what to
    do when there is something to do (install an extra, save a block).
    """

    delivery: Delivery = "not_sent"
    permanent = False


_STATUS_ERRORS: dict[int, type[LemlistError]] = {
    401: LemlistAuthError,
    403: LemlistAuthError,
    404: LemlistNotFoundError,
}
_NOT_DONE_STATUSES = frozenset({500, 503})
"""5xx statuses lemlist itself sends when it did not do the work; any other 5xx (a proxy's 502,
504, Cloudflare's 52x) may follow work done."""


def error_for_status(status: int | None, message: str, *, code: str | None = None) -> LemlistError:
    """THE status table: the exception for one of lemlist's answers, with its verdict.

    Used for live answers (the client) and for answers an earlier run recorded (the tasks).

    Args:
        status: the HTTP status (None: a per-item refusal of a bulk request).
        message: the error text (quoting lemlist's own; a 400/402 that speaks of credits is
            `LemlistOutOfCreditsError`).
        code: lemlist's error code, when it sent one.

    Returns:
        The error (not raised), `delivery="answered"` except for a 5xx that may follow work
        done (`maybe_sent`).
    """
    if status in (400, 402) and "credit" in message.lower():
        return LemlistOutOfCreditsError(message, status_code=status, code=code)
    if status is not None and status >= 500:
        delivery: Delivery = "answered" if status in _NOT_DONE_STATUSES else "maybe_sent"
        return LemlistServerError(message, status_code=status, code=code, delivery=delivery)
    cls = _STATUS_ERRORS.get(status or 0, LemlistError)
    return cls(message, status_code=status, code=code)
