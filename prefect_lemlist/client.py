"""`LemlistClient`: the one place where auth, timeouts, the rate limit, retries and errors live.

Everything else in prefect-lemlist (tasks, flows) calls lemlist through this class.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr, ValidationError

from prefect_lemlist.exceptions import (
    LemlistAuthError,
    LemlistError,
    LemlistNotFoundError,
    LemlistRateLimitError,
    LemlistResponseError,
    LemlistServerError,
)
from prefect_lemlist.headers import retry_after_seconds
from prefect_lemlist.models import (
    CampaignLead,
    Credits,
    EnrichLeadResult,
    Enrichment,
    EnrichmentFlags,
)
from prefect_lemlist.ratelimit import (
    LEMLIST_RATE_LIMIT,
    LEMLIST_RATE_WINDOW_SECONDS,
    RequestBudget,
    budget_for,
)
from prefect_lemlist.validation import validate_http_url, validate_id

DEFAULT_BASE_URL = "https://api.lemlist.com/api"
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_RATE_LIMIT_WAIT_SECONDS = 120.0
USER_AGENT = "prefect-lemlist"

# Transport errors raised before the request could have reached lemlist: safe to resend even a
# request that starts paid work.
_NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# 5xx statuses that say lemlist did not do the work. 502/504 from a proxy may follow work done.
_NOT_DONE_STATUSES = {500, 503}
_MAX_ERROR_TEXT = 300

logger = logging.getLogger("prefect_lemlist.client")


class _RedactQueryFilter(logging.Filter):
    """Drops query strings from httpx's own request log lines.

    httpx logs every URL at INFO; ours may carry a webhook URL with its secret token (the API key
    itself is never in a URL: it travels in the Authorization header).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                arg.copy_with(query=None) if isinstance(arg, httpx.URL) and arg.query else arg
                for arg in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_RedactQueryFilter())


def credentials_fingerprint(api_key: SecretStr | str, base_url: str) -> str:
    """A short, one-way id of an API key at a base URL, safe to log and to use in cache keys.

    Args:
        api_key: the key.
        base_url: the API's base URL (the same key on another server is another budget).

    Returns:
        16 hex characters of a SHA-256 over both.
    """
    secret = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
    digest = hashlib.sha256(f"{base_url.rstrip('/')}\0{secret}".encode()).hexdigest()
    return digest[:16]


class LemlistClient:
    """Async client for the lemlist endpoints the enrichment pipeline uses.

    Use it as an async context manager (one `httpx.AsyncClient` per `async with`). All clients of
    the same key share one request budget in the process, so any number of them together stay
    under lemlist's 20 requests per 2 s.

    Retry policy: a 429 pauses the key's budget for `Retry-After` (bounded) and repeats the
    request; those waits do not use up `max_attempts`, but at most `max_rate_limit_wait_seconds`
    is spent on them before `LemlistRateLimitError`. 5xx answers and connection errors are
    repeated up to `max_attempts` times in total, with exponential backoff and jitter, then
    `LemlistServerError`. A request that starts paid work (`POST /leads/{id}/enrich`) is repeated
    only when lemlist cannot have started it (connection refused, 500/503): after a read timeout
    or a dropped connection it may have, so it fails at once with `retryable=False`. Other 4xx
    answers are never repeated.

    Args:
        api_key: the lemlist API key (sent as the Basic-auth password, never logged).
        base_url: the API's base URL; point it at the sandbox or a proxy.
        timeout_seconds: timeout of each HTTP request (connect, read, write, pool).
        max_attempts: attempts per request for transient errors (>= 1).
        max_rate_limit_wait_seconds: the most time one request may spend waiting after 429s.
        rate_limit: requests allowed per window for this key (lemlist: 20).
        rate_window_seconds: the window (lemlist: 2 s).
        backoff_base_seconds: first backoff delay; doubles with each attempt.
        backoff_max_seconds: the longest backoff delay.
        global_rate_limit: name of a Prefect global concurrency limit shared by every process
            using this key (see `prefect_lemlist.global_limit`); None: this process only.
        transport: an httpx transport, for tests.

    Attributes:
        requests_sent: HTTP requests this client has sent (429s and failures included).
    """

    def __init__(
        self,
        api_key: SecretStr | str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_rate_limit_wait_seconds: float = DEFAULT_MAX_RATE_LIMIT_WAIT_SECONDS,
        rate_limit: int = LEMLIST_RATE_LIMIT,
        rate_window_seconds: float = LEMLIST_RATE_WINDOW_SECONDS,
        backoff_base_seconds: float = 0.5,
        backoff_max_seconds: float = 20.0,
        global_rate_limit: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        if not self._api_key.get_secret_value():
            raise ValueError("the lemlist API key is empty")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be > 0")
        self.base_url = validate_http_url(base_url, "base_url").rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.max_attempts = max_attempts
        self.max_rate_limit_wait_seconds = max_rate_limit_wait_seconds
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.fingerprint = credentials_fingerprint(self._api_key, self.base_url)
        self.budget: RequestBudget = budget_for(
            self.fingerprint, rate_limit, rate_window_seconds, global_rate_limit
        )
        self.requests_sent = 0
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"LemlistClient(base_url={self.base_url!r}, key=<{self.fingerprint}>)"

    async def __aenter__(self) -> LemlistClient:
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/",
            auth=httpx.BasicAuth("", self._api_key.get_secret_value()),
            timeout=httpx.Timeout(self.timeout_seconds),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            transport=self._transport,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the underlying HTTP connections."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # ----------------------------------------------------------------------------- endpoints

    async def enrich_lead(
        self,
        lead_id: str,
        flags: EnrichmentFlags | None = None,
        *,
        find_email: bool = False,
        verify_email: bool = False,
        linkedin_enrichment: bool = False,
        find_phone: bool = False,
        webhook_url: str | None = None,
        force: bool = False,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> EnrichLeadResult:
        """Start an enrichment of one lead: `POST /leads/{leadId}/enrich`.

        Args:
            lead_id: the lead (`lea_…`).
            flags: the workflows to run; or give them as the keyword flags below.
            find_email: find an email address.
            verify_email: verify the existing email address.
            linkedin_enrichment: enrich the LinkedIn profile.
            find_phone: find a phone number.
            webhook_url: where lemlist should POST the result when it is ready.
            force: re-run even if the contact already has the data (spends credits again).
            before_send: awaited right before each send, once the request holds its rate
                slot (the enrichment ledger records "starting" there, not while it waits).

        Returns:
            The enrichment id, or a skipped result when lemlist answered 409.

        Raises:
            ValueError: bad lead id, bad webhook URL or no workflow requested (nothing sent).
            LemlistError: lemlist refused (see the subclasses).
        """
        validate_id(lead_id, "lead id")
        if flags is None:
            flags = EnrichmentFlags(
                find_email=find_email,
                verify_email=verify_email,
                linkedin_enrichment=linkedin_enrichment,
                find_phone=find_phone,
            )
        params = dict(flags.require_any().query_params())
        if force:
            params["force"] = "true"
        if webhook_url is not None:
            params["webhookUrl"] = validate_http_url(webhook_url, "webhook_url")
        response = await self._request(
            "POST",
            ("leads", lead_id, "enrich"),
            params,
            starts_paid_work=True,
            accept={200, 409},
            before_send=before_send,
        )
        if response.status_code == 409:
            return _skipped_result(lead_id, response)
        body = _json_body(response, "POST /leads/{leadId}/enrich")
        enrichment_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(enrichment_id, str) or not enrichment_id:
            raise LemlistResponseError(
                "POST /leads/{leadId}/enrich answered 200 without an enrichment 'id'",
                status_code=response.status_code,
            )
        return EnrichLeadResult(lead_id=lead_id, enrichment_id=enrichment_id)

    async def get_enrichment(self, enrichment_id: str) -> Enrichment:
        """Read an enrichment's state once: `GET /enrich/{enrichId}` (202 while in progress).

        Args:
            enrichment_id: the `enr_…` id from `enrich_lead`.

        Returns:
            The enrichment; `in_progress` is True while lemlist is still working.

        Raises:
            ValueError: bad id (nothing sent).
            LemlistNotFoundError: lemlist does not know this enrichment.
            LemlistError: any other refusal.
        """
        validate_id(enrichment_id, "enrichment id")
        response = await self._request("GET", ("enrich", enrichment_id), accept={200, 202})
        body = _json_body(response, "GET /enrich/{enrichId}")
        return Enrichment.from_polling(body, http_status=response.status_code)

    async def export_campaign_leads(
        self, campaign_id: str, state: str = "all"
    ) -> list[CampaignLead]:
        """All leads of a campaign with their data: `GET /campaigns/{id}/export/leads` (JSON).

        Args:
            campaign_id: the campaign (`cam_…`).
            state: lemlist lead state filter, one value or a comma list; `all` for every lead
                (lemlist returns nothing when no state is given).

        Returns:
            One `CampaignLead` per row.

        Raises:
            ValueError: bad campaign id or empty state (nothing sent).
            LemlistNotFoundError: unknown campaign.
            LemlistResponseError: the export is not a list of rows with `_id`.
        """
        validate_id(campaign_id, "campaign id")
        if not state or not state.strip():
            raise ValueError("state must not be empty (use 'all' for every lead)")
        response = await self._request(
            "GET",
            ("campaigns", campaign_id, "export", "leads"),
            {"state": state.strip(), "format": "json"},
        )
        rows = _json_body(response, "GET /campaigns/{id}/export/leads")
        if not isinstance(rows, list):
            raise LemlistResponseError(
                f"the campaign export is not a list of leads (got {type(rows).__name__})",
                status_code=response.status_code,
            )
        leads: list[CampaignLead] = []
        for index, row in enumerate(rows):
            try:
                leads.append(CampaignLead.model_validate(row))
            except ValidationError as exc:
                raise LemlistResponseError(
                    f"row {index} of the campaign export is not a lead: "
                    f"{exc.errors()[0].get('msg', 'invalid')}",
                    status_code=response.status_code,
                ) from None
        return leads

    async def get_credits(self) -> Credits:
        """The team's remaining credits: `GET /team/credits`.

        Raises:
            LemlistError: lemlist refused or answered something else than a credit balance.
        """
        response = await self._request("GET", ("team", "credits"))
        body = _json_body(response, "GET /team/credits")
        try:
            return Credits.model_validate(body)
        except ValidationError:
            raise LemlistResponseError(
                "GET /team/credits did not return a 'credits' number",
                status_code=response.status_code,
            ) from None

    # ----------------------------------------------------------------------------- transport

    async def _request(
        self,
        method: str,
        segments: Iterable[str],
        params: Mapping[str, str] | None = None,
        *,
        starts_paid_work: bool = False,
        accept: set[int] | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> httpx.Response:
        """Send one logical request through the budget, with 429 handling and retries.

        Args:
            method: HTTP method.
            segments: path segments; each is percent-encoded, so none can add to the path.
            params: query parameters (never logged: a webhook URL may carry a token).
            starts_paid_work: the request may start a billable enrichment; see the class doc.
            accept: statuses returned to the caller; other non-2xx statuses raise.
            before_send: awaited right before each send, inside the rate slot.

        Returns:
            The response, its body read.

        Raises:
            LemlistError: mapped from the final status or transport failure.
        """
        if self._http is None:
            raise RuntimeError("use the client inside `async with`")
        path = "/".join(quote(segment, safe="") for segment in segments)
        label = f"{method} /{path}"
        accept = accept or {200}
        attempt = 0
        rate_limit_waited = 0.0
        while True:
            attempt += 1
            response: httpx.Response | None = None
            failure: httpx.TransportError | None = None
            started = time.monotonic()
            async with self.budget.slot():
                if before_send is not None:
                    await before_send()
                self.requests_sent += 1
                try:
                    response = await self._http.request(method, path, params=params)
                except httpx.TransportError as exc:
                    failure = exc
            elapsed = time.monotonic() - started

            if failure is not None:
                reason = f"{type(failure).__name__}"
                logger.debug("%s failed after %.2fs: %s", label, elapsed, reason)
                if starts_paid_work and not isinstance(failure, _NOT_SENT_ERRORS):
                    raise LemlistServerError(
                        f"{label} failed with {reason} after the request was sent: lemlist may "
                        "have started the enrichment, so it is not sent again (that could bill "
                        "twice). Its result cannot be looked up without the enrichment id.",
                        retryable=False,
                    ) from None
                if attempt >= self.max_attempts:
                    raise LemlistServerError(
                        f"{label} failed after {attempt} attempts: {reason}"
                    ) from None
                await self._backoff(attempt, label, reason)
                continue

            assert response is not None
            status = response.status_code
            logger.debug("%s -> %s in %.2fs", label, status, elapsed)

            if status == 429:
                wait = retry_after_seconds(
                    response.headers.get("retry-after"),
                    response.headers.get("x-ratelimit-reset"),
                )
                if rate_limit_waited + wait > self.max_rate_limit_wait_seconds:
                    raise LemlistRateLimitError(
                        f"{label}: lemlist kept answering 429 Too Many Requests after waiting "
                        f"{rate_limit_waited:.1f}s in total",
                        status_code=429,
                    )
                logger.warning("%s: rate limited (429), waiting %.1fs", label, wait)
                rate_limit_waited += wait
                self.budget.pause(wait)
                attempt -= 1  # rate-limit waits do not use up the error-retry attempts
                continue

            if status >= 500:
                error = _error_from_response(response, label)
                retry_allowed = not starts_paid_work or status in _NOT_DONE_STATUSES
                if not retry_allowed:
                    error.retryable = False
                    raise error
                if attempt >= self.max_attempts:
                    raise error
                await self._backoff(attempt, label, f"HTTP {status}")
                continue

            if status in accept:
                return response
            raise _error_from_response(response, label)

    async def _backoff(self, attempt: int, label: str, reason: str) -> None:
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** (attempt - 1))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        logger.warning(
            "%s: %s (attempt %d of %d), retrying in %.2fs",
            label,
            reason,
            attempt,
            self.max_attempts,
            delay,
        )
        await asyncio.sleep(delay)


def _skipped_result(lead_id: str, response: httpx.Response) -> EnrichLeadResult:
    """Turn one of lemlist's two 409s into a skipped result (or raise for an unknown one)."""
    body = _safe_json(response)
    code = body.get("code") if isinstance(body, dict) else None
    if code == "ALREADY_ENRICHED":
        return EnrichLeadResult(lead_id=lead_id, skipped=True, skip_reason="ALREADY_ENRICHED")
    if code is None:
        return EnrichLeadResult(lead_id=lead_id, skipped=True, skip_reason="IN_PROGRESS")
    raise LemlistError(
        f"POST /leads/{{leadId}}/enrich answered 409 with an unknown code: {_error_text(response)}",
        status_code=409,
        code=str(code),
    )


def _safe_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _json_body(response: httpx.Response, what: str) -> Any:
    """The decoded JSON body, or `LemlistResponseError` saying what came instead."""
    content_type = response.headers.get("content-type", "")
    if "json" not in content_type.lower():
        hint = (
            " (lemlist answers unknown paths with its web app: check base_url)"
            if "html" in content_type.lower()
            else ""
        )
        error = LemlistResponseError(
            f"{what} answered {response.status_code} with "
            f"{content_type or 'no content type'} instead of JSON{hint}",
            status_code=response.status_code,
        )
        error.content_type = content_type
        raise error
    try:
        return response.json()
    except ValueError:
        size = len(response.content)
        raise LemlistResponseError(
            f"{what} answered {response.status_code} with a body that is not valid JSON "
            f"({size} bytes)",
            status_code=response.status_code,
        ) from None


def _error_text(response: httpx.Response) -> str:
    """lemlist's own error text: the JSON `error` field or the plain-text body, shortened."""
    body = _safe_json(response)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        text = body["error"]
    elif "html" in response.headers.get("content-type", "").lower():
        text = "an HTML page"
    else:
        text = response.text.strip() or response.reason_phrase or "no error text"
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_TEXT else text[:_MAX_ERROR_TEXT] + "…"


def _error_from_response(response: httpx.Response, label: str) -> LemlistError:
    """Map a non-accepted status to the matching exception, quoting lemlist's text."""
    status = response.status_code
    body = _safe_json(response)
    code = (
        body.get("code") if isinstance(body, dict) and isinstance(body.get("code"), str) else None
    )
    message = f"{label} failed with HTTP {status}: {_error_text(response)}"
    if status in (401, 403):
        return LemlistAuthError(message, status_code=status, code=code)
    if status == 404:
        return LemlistNotFoundError(message, status_code=status, code=code)
    if status >= 500:
        return LemlistServerError(message, status_code=status, code=code)
    return LemlistError(message, status_code=status, code=code)
