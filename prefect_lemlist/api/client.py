"""`LemlistClient`: the one place where auth, timeouts, the rate limit, retries and errors live.

Everything else in prefect-lemlist (tasks, pipeline stages, flows) calls lemlist through it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from pydantic import SecretStr, ValidationError

from prefect_lemlist.api.exceptions import (
    LemlistAuthError,
    LemlistError,
    LemlistNotFoundError,
    LemlistRateLimitError,
    LemlistResponseError,
    LemlistServerError,
    LemlistUnreachableError,
    error_for_status,
)
from prefect_lemlist.api.headers import retry_after_seconds
from prefect_lemlist.api.models import (
    BulkItemResult,
    CampaignLead,
    Contact,
    Credits,
    EnrichLeadResult,
    Enrichment,
    EnrichmentFlags,
    EnrichmentStart,
    LeadByEmail,
    Team,
)
from prefect_lemlist.api.validation import CampaignId, EnrichmentId, LeadId, validate_http_url
from prefect_lemlist.ratelimit import (
    LEMLIST_RATE_LIMIT,
    LEMLIST_RATE_WINDOW_SECONDS,
    RequestBudget,
    budget_for,
)

DEFAULT_BASE_URL = "https://api.lemlist.com/api"
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_RATE_LIMIT_WAIT_SECONDS = 120.0
BULK_MAX_ITEMS = 500
USER_AGENT = "prefect-lemlist"

# Transport errors raised before any byte of the request was written (no connection, DNS, TLS
# handshake, no free connection in the pool): the request cannot have reached lemlist.
_NOT_SENT_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)
_MAX_ERROR_TEXT = 300

logger = logging.getLogger("prefect_lemlist.client")

SendHook = Callable[[], Awaitable[None]]


class _RedactQueryFilter(logging.Filter):
    """Drops query strings from httpx's own request log lines (a `webhookUrl` in a query string
    carries the webhook receiver's token; the API key itself is never in a URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                arg.copy_with(query=None) if isinstance(arg, httpx.URL) and arg.query else arg
                for arg in record.args
            )
        return True


_REDACT_FILTER = _RedactQueryFilter()


def _redact_httpx_logs() -> None:
    """Install the filter once, when the first client opens (never at import time)."""
    httpx_logger = logging.getLogger("httpx")
    if _REDACT_FILTER not in httpx_logger.filters:
        httpx_logger.addFilter(_REDACT_FILTER)


def credentials_fingerprint(api_key: SecretStr | str, base_url: str) -> str:
    """A short, one-way id of an API key at a base URL, safe to log and to key a budget on.

    Args:
        api_key: the key.
        base_url: the API's base URL (the same key on another server is another budget).

    Returns:
        16 hex characters of a SHA-256 over both.
    """
    secret = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
    digest = hashlib.sha256(f"{base_url.rstrip('/')}\0{secret}".encode()).hexdigest()
    return digest[:16]


@dataclass
class _Call:
    """One logical request: what to send and how to treat failures."""

    method: str
    path: str
    params: Mapping[str, str] | None = None
    json: Any = None
    starts_paid_work: bool = False
    accept: frozenset[int] = frozenset({200})
    before_send: SendHook | None = None

    @property
    def label(self) -> str:
        return f"{self.method} /{self.path}"


class LemlistClient:
    """Async client for the lemlist endpoints the enrichment pipelines use.

    Use it as an async context manager (one `httpx.AsyncClient` per `async with`). All clients of
    the same key share one request budget in the process, so any number of them together stay
    under lemlist's 20 requests per 2 s.

    Retry policy: a 429 pauses the key's budget for `Retry-After` (bounded) and repeats the
    request; those waits do not use up `max_attempts`, but at most `max_rate_limit_wait_seconds`
    is spent on them before `LemlistRateLimitError`. 5xx answers and connection errors are
    repeated up to `max_attempts` times in total, with exponential backoff and jitter, then
    `LemlistServerError` (`LemlistUnreachableError` when lemlist could not be reached at all).
    A request that starts paid work (the three enrichment POSTs) is repeated only when lemlist
    cannot have started it (connection refused, 500/503): after a read timeout, a dropped
    connection or a proxy's 502/504 it may have, so it fails at once with `retryable=False`.
    Other 4xx answers are never repeated. After a 401/403 the client sends nothing more: every
    later call raises the same `LemlistAuthError` at once (`delivery="not_sent"`).

    Every `LemlistError` it raises carries `delivery`: `not_sent` (nothing reached lemlist),
    `maybe_sent` (the request may have been acted on, its answer is lost) or `answered`.

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
            using this key (see `prefect_lemlist.ratelimit.prefect_leases`); None: this process.
        transport: an httpx transport, for tests.

    Attributes:
        requests_sent: HTTP requests this client has sent (429s and failures included).
        requests_by_route: the same, per `METHOD /first-path-segment`.

    Examples:
        Start one lead's email search and poll its result (outside a flow; in a flow, the
        tasks `enrich_lead` and `wait_for_enrichment` do the same through the ledger):

        ```python
        import asyncio
        import os

        from prefect_lemlist import LemlistClient


        async def main() -> None:
            async with LemlistClient(os.environ["LEMLIST_API_KEY"]) as client:
                print((await client.get_credits()).credits)
                started = await client.enrich_lead("lea_XXXXXXXXXXXXXXXXX", find_email=True)
                if started.enrichment_id is not None:  # None: skipped (409)
                    result = await client.get_enrichment(started.enrichment_id)
                    print(result.status, result.email, result.email_status)


        asyncio.run(main())
        ```

        From a saved block: `async with (await LemlistCredentials.aload("lemlist")).get_client()
        as client: ...`.
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
        self.host = urlsplit(self.base_url).netloc
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
        self.requests_by_route: Counter[str] = Counter()
        self._refusal: LemlistAuthError | None = None
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"LemlistClient(base_url={self.base_url!r}, key=<{self.fingerprint}>)"

    async def __aenter__(self) -> LemlistClient:
        _redact_httpx_logs()
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

    @property
    def refused(self) -> LemlistAuthError | None:
        """The 401/403 that stopped this client, or None while the key works."""
        return self._refusal

    # ----------------------------------------------------------------------------- enrichment

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
        before_send: SendHook | None = None,
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
        lead = LeadId.ensure(lead_id)
        if flags is None:
            flags = EnrichmentFlags(
                find_email=find_email,
                verify_email=verify_email,
                linkedin_enrichment=linkedin_enrichment,
                find_phone=find_phone,
            )
        params = _start_params(flags, webhook_url)
        if force:
            params["force"] = "true"
        response = await self._request(
            _Call(
                "POST",
                _path("leads", lead, "enrich"),
                params,
                starts_paid_work=True,
                accept=frozenset({200, 409}),
                before_send=before_send,
            )
        )
        if response.status_code == 409:
            return _skipped_result(lead, response)
        enrichment_id = _enrichment_id(response, "POST /leads/{leadId}/enrich")
        return EnrichLeadResult(lead_id=lead, enrichment_id=enrichment_id)

    async def enrich_contact(
        self,
        contact: Contact,
        flags: EnrichmentFlags,
        *,
        webhook_url: str | None = None,
        before_send: SendHook | None = None,
    ) -> EnrichmentStart:
        """Start an enrichment of a person who need not be a lead: `POST /enrich`.

        lemlist never deduplicates this endpoint: every call is a new, billable enrichment.

        Args:
            contact: the person's inputs.
            flags: the workflows to run.
            webhook_url: where lemlist should POST the result when it is ready.
            before_send: awaited right before each send, inside the rate slot.

        Returns:
            The enrichment id.

        Raises:
            ValueError: no workflow, a workflow without its inputs, or a bad webhook URL
                (nothing sent).
            LemlistError: lemlist refused.
        """
        params = _start_params(flags, webhook_url)
        missing = contact.missing_inputs(flags.workflows)
        if missing is not None:
            raise ValueError(
                f"{missing.option} needs {missing.describe_inputs()} ({missing.missing_code})"
            )
        params.update(contact.lemlist_input())
        response = await self._request(
            _Call("POST", "enrich", params, starts_paid_work=True, before_send=before_send)
        )
        return EnrichmentStart(enrichment_id=_enrichment_id(response, "POST /enrich"))

    async def bulk_enrich(
        self,
        contacts: Sequence[Contact],
        flags: EnrichmentFlags,
        *,
        metadata: Sequence[Any] | None = None,
        webhook_url: str | None = None,
        before_send: SendHook | None = None,
    ) -> list[BulkItemResult]:
        """Start up to 500 enrichments in one request: `POST /v2/enrichments/bulk`.

        Every contact is sent (check inputs beforehand to avoid lemlist's per-item errors); the
        answers are matched to the contacts by position, and checked against the echoed
        `metadata` when it was given.

        Args:
            contacts: the people, at most 500.
            flags: the workflows, the same for every contact.
            metadata: one value per contact (string or JSON object) that lemlist echoes in its
                answer and in webhook bodies.
            webhook_url: where lemlist should POST each result.
            before_send: awaited right before each send, inside the rate slot.

        Returns:
            One result per contact, in input order.

        Raises:
            ValueError: no contact, more than 500, no workflow, or a bad webhook URL.
            LemlistError: the whole request was refused (`.code` is lemlist's code, e.g.
                `TOO_MANY_ENRICHMENTS_REQUESTED`), or the answer does not match the request.
        """
        if not contacts:
            raise ValueError("bulk_enrich needs at least one contact")
        if len(contacts) > BULK_MAX_ITEMS:
            raise ValueError(f"lemlist takes at most {BULK_MAX_ITEMS} contacts per bulk request")
        if metadata is not None and len(metadata) != len(contacts):
            raise ValueError("metadata needs one value per contact")
        params = _start_params(flags, webhook_url)
        params = {k: v for k, v in params.items() if k == "webhookUrl"}
        names = [spec.bulk_name for spec in flags.specs]
        body = [
            {
                "input": contact.lemlist_input(),
                "enrichmentRequests": names,
                **({"metadata": metadata[index]} if metadata is not None else {}),
            }
            for index, contact in enumerate(contacts)
        ]
        response = await self._request(
            _Call(
                "POST",
                _path("v2", "enrichments", "bulk"),
                params,
                json=body,
                starts_paid_work=True,
                before_send=before_send,
            )
        )
        return _bulk_results(
            _json_body(response, "POST /v2/enrichments/bulk"), metadata, len(contacts)
        )

    async def get_enrichment(self, enrichment_id: str) -> Enrichment:
        """Read an enrichment's state once: `GET /enrich/{enrichId}` (202 while in progress).

        Args:
            enrichment_id: the `enr_…` id from an enrichment start.

        Returns:
            The enrichment; `in_progress` is True while lemlist is still working.

        Raises:
            ValueError: bad id (nothing sent).
            LemlistNotFoundError: lemlist does not know this enrichment.
            LemlistError: any other refusal.
        """
        path = _path("enrich", EnrichmentId.ensure(enrichment_id))
        response = await self._request(_Call("GET", path, accept=frozenset({200, 202})))
        body = _json_body(response, "GET /enrich/{enrichId}")
        return Enrichment.from_polling(body, http_status=response.status_code)

    # ----------------------------------------------------------------------------- reads

    async def export_campaign_leads(
        self, campaign_id: str, state: str = "all"
    ) -> list[CampaignLead]:
        """All leads of a campaign with their data: `GET /campaigns/{id}/export/leads` (JSON).

        When that route answers 404 or lemlist's web page (an unknown path), the newer
        `/v2/campaigns/{id}/export/leads` is tried once, with a warning.

        Args:
            campaign_id: the campaign (`cam_…`).
            state: lemlist lead state filter, one value or a comma list; `all` for every lead
                (lemlist returns nothing when no state is given).

        Returns:
            One `CampaignLead` per row.

        Raises:
            ValueError: bad campaign id or empty state (nothing sent).
            LemlistNotFoundError: unknown campaign (on both routes).
            LemlistResponseError: the export is not a list of rows with `_id`.
        """
        campaign = CampaignId.ensure(campaign_id)
        if not state or not state.strip():
            raise ValueError("state must not be empty (use 'all' for every lead)")
        params = {"state": state.strip(), "format": "json"}
        try:
            rows = await self._export(("campaigns", campaign, "export", "leads"), params)
        except (LemlistNotFoundError, LemlistResponseError) as exc:
            if not _route_missing(exc):
                _add_campaign_hint(exc)
                raise
            logger.warning(
                "GET /campaigns/{id}/export/leads answered %s; trying lemlist's newer route "
                "/v2/campaigns/{id}/export/leads",
                "an HTML page" if exc.status_code == 200 else f"HTTP {exc.status_code}",
            )
            try:
                rows = await self._export(("v2", "campaigns", campaign, "export", "leads"), params)
            except (LemlistNotFoundError, LemlistResponseError) as second:
                if _route_missing(second):
                    raise exc from None
                _add_campaign_hint(second)
                raise
        return _campaign_rows(rows)

    async def _export(self, segments: tuple[str, ...], params: dict[str, str]) -> Any:
        response = await self._request(_Call("GET", _path(*segments), params))
        return _json_body(response, "GET /campaigns/{id}/export/leads")

    async def get_credits(self) -> Credits:
        """The team's remaining credits: `GET /team/credits`.

        Raises:
            LemlistError: lemlist refused or answered something else than a credit balance.
        """
        response = await self._request(_Call("GET", _path("team", "credits")))
        body = _json_body(response, "GET /team/credits")
        try:
            return Credits.model_validate(body)
        except ValidationError:
            raise LemlistResponseError(
                "GET /team/credits did not return a 'credits' number",
                status_code=response.status_code,
            ) from None

    async def get_team(self) -> Team:
        """The team this key belongs to: `GET /team` (its id is the same for every key).

        Raises:
            LemlistError: lemlist refused or answered something else than a team.
        """
        response = await self._request(_Call("GET", "team"))
        body = _json_body(response, "GET /team")
        try:
            return Team.model_validate(body)
        except ValidationError:
            raise LemlistResponseError(
                "GET /team did not return a team with an '_id'", status_code=response.status_code
            ) from None

    async def get_leads_by_email(self, email: str) -> list[LeadByEmail]:
        """The leads of a person, one per campaign: `GET /leads/{email}?version=v2`.

        Args:
            email: the person's email.

        Returns:
            Their leads (empty when lemlist has none: its 404 `Lead not found`).

        Raises:
            ValueError: not an email (nothing sent).
            LemlistError: lemlist refused.
        """
        checked = Contact(email=email).email
        assert checked is not None
        try:
            response = await self._request(_Call("GET", _path("leads", checked), {"version": "v2"}))
        except LemlistNotFoundError:
            return []
        body = _json_body(response, "GET /leads/{email}")
        items = body if isinstance(body, list) else [body]
        return [LeadByEmail.from_body(item) for item in items]

    # ----------------------------------------------------------------------------- transport

    async def _request(self, call: _Call) -> httpx.Response:
        """Send one logical request through the budget, with 429 handling and retries.

        Returns:
            The response, its body read, with a status in `call.accept`.

        Raises:
            LemlistError: mapped from the final status or transport failure.
        """
        attempt = 0
        rate_limit_waited = 0.0
        while True:
            attempt += 1
            response = await self._send_once(call)
            if isinstance(response, httpx.TransportError):
                await self._after_transport_failure(call, response, attempt)
                continue
            status = response.status_code
            if status == 429:
                rate_limit_waited += await self._wait_after_429(call, response, rate_limit_waited)
                attempt -= 1  # rate-limit waits do not use up the error-retry attempts
                continue
            if status >= 500:
                await self._after_server_error(call, response, attempt)
                continue
            if status in call.accept:
                return response
            error = _error_from_response(response, call.label)
            if isinstance(error, LemlistAuthError):
                self._refusal = error
            raise error

    async def _send_once(self, call: _Call) -> httpx.Response | httpx.TransportError:
        """One HTTP exchange inside a rate slot; a transport failure is returned, not raised."""
        if self._http is None:
            raise RuntimeError("use the client inside `async with`")
        async with self.budget.slot():
            if self._refusal is not None:  # refused while this request waited for its slot
                raise self._refusal.copy_with(delivery="not_sent")
            if call.before_send is not None:
                await call.before_send()
            self.requests_sent += 1
            self.requests_by_route[f"{call.method} /{call.path.split('/')[0]}"] += 1
            started = time.monotonic()
            try:
                response = await self._http.request(
                    call.method, call.path, params=call.params, json=call.json
                )
            except httpx.TransportError as exc:
                logger.debug(
                    "%s failed after %.2fs: %r", call.label, time.monotonic() - started, exc
                )
                return exc
        logger.debug("%s -> %s", call.label, response.status_code)
        return response

    async def _after_transport_failure(
        self, call: _Call, failure: httpx.TransportError, attempt: int
    ) -> None:
        """Back off before the next attempt, or raise when none is allowed."""
        reason = f"{type(failure).__name__}: {_transport_text(failure)}"
        if call.starts_paid_work and not isinstance(failure, _NOT_SENT_ERRORS):
            raise LemlistServerError(
                f"{call.label} to {self.host} failed with {reason} after the request was sent: "
                "lemlist may have started the enrichment, so it is not sent again (that could "
                "bill twice)",
                retryable=False,
                delivery="maybe_sent",
            ) from None
        if attempt >= self.max_attempts:
            raise _unreachable(call, failure, reason, attempt, self.host)
        await self._backoff(attempt, call.label, reason)

    async def _wait_after_429(self, call: _Call, response: httpx.Response, waited: float) -> float:
        """Pause the key's budget for `Retry-After`; returns the wait, or raises when the
        request has waited too long in total."""
        wait = retry_after_seconds(
            response.headers.get("retry-after"), response.headers.get("x-ratelimit-reset")
        )
        if waited + wait > self.max_rate_limit_wait_seconds:
            raise LemlistRateLimitError(
                f"{call.label}: lemlist kept answering 429 Too Many Requests after waiting "
                f"{waited:.1f}s in total",
                status_code=429,
            )
        logger.warning("%s: rate limited (429), waiting %.1fs", call.label, wait)
        self.budget.pause(wait)
        return wait

    async def _after_server_error(
        self, call: _Call, response: httpx.Response, attempt: int
    ) -> None:
        """Back off before the next attempt, or raise (at once when work may have been done)."""
        error = _error_from_response(response, call.label)
        if call.starts_paid_work and error.delivery == "maybe_sent":
            raise error.copy_with(
                f"{error.message}: lemlist may have started the enrichment before this answer, "
                "so it is not sent again (that could bill twice)",
                retryable=False,
            )
        if attempt >= self.max_attempts:
            raise error
        await self._backoff(attempt, call.label, f"HTTP {response.status_code}")

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


# --------------------------------------------------------------------------------- helpers


def _path(*segments: str) -> str:
    """A URL path from segments, each percent-encoded so that none can add to the path."""
    return "/".join(quote(segment, safe="") for segment in segments)


def _start_params(flags: EnrichmentFlags, webhook_url: str | None) -> dict[str, str]:
    params = dict(flags.require_any().query_params())
    if webhook_url is not None:
        params["webhookUrl"] = validate_http_url(webhook_url, "webhook_url")
    return params


def _unreachable(
    call: _Call, failure: httpx.TransportError, reason: str, attempts: int, host: str
) -> LemlistServerError:
    """The error after the last attempt. Nothing listening (or no route, no name, no TLS) is
    not retried by Prefect's task retries either: they would only multiply the client's own
    attempts; a GET that kept timing out after it was sent may be asked again later."""
    tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
    if isinstance(failure, _NOT_SENT_ERRORS):
        return LemlistUnreachableError(
            f"could not connect to lemlist at {host}: {reason} ({tries}); {call.label} was not sent"
        )
    return LemlistServerError(
        f"{call.label} to {host} failed after {tries}: {reason}", delivery="maybe_sent"
    )


def _transport_text(failure: httpx.TransportError) -> str:
    text = " ".join(str(failure).split())
    return text[:200] or "no details"


def _enrichment_id(response: httpx.Response, what: str) -> str:
    body = _json_body(response, what)
    enrichment_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(enrichment_id, str) or not enrichment_id:
        raise LemlistResponseError(
            f"{what} answered 200 without an enrichment 'id'",
            status_code=response.status_code,
            delivery="maybe_sent",
        )
    return enrichment_id


def _skipped_result(lead_id: LeadId, response: httpx.Response) -> EnrichLeadResult:
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


def _bulk_results(body: Any, metadata: Sequence[Any] | None, count: int) -> list[BulkItemResult]:
    """Match a bulk answer to the request by position (and echoed metadata, when sent)."""
    what = "POST /v2/enrichments/bulk"
    if not isinstance(body, list) or len(body) != count:
        size = len(body) if isinstance(body, list) else type(body).__name__
        raise LemlistResponseError(
            f"{what} answered {size} items for {count} sent", delivery="maybe_sent"
        )
    results = []
    for index, item in enumerate(body):
        item = item if isinstance(item, dict) else {}
        if metadata is not None and "metadata" in item and item["metadata"] != metadata[index]:
            raise LemlistResponseError(
                f"{what}: answer {index} echoes another item's metadata; answers cannot be "
                "matched to contacts",
                delivery="maybe_sent",
            )
        enrichment_id = item.get("id") if isinstance(item.get("id"), str) else None
        error = item.get("error") if isinstance(item.get("error"), str) else None
        if enrichment_id is None and error is None:
            error = "UNREADABLE_ANSWER"
        results.append(
            BulkItemResult(
                index=index, enrichment_id=enrichment_id, error=error, metadata=item.get("metadata")
            )
        )
    return results


def _campaign_rows(rows: Any) -> list[CampaignLead]:
    if not isinstance(rows, list):
        raise LemlistResponseError(
            f"the campaign export is not a list of leads (got {type(rows).__name__})"
        )
    leads: list[CampaignLead] = []
    for index, row in enumerate(rows):
        try:
            leads.append(CampaignLead.model_validate(row))
        except ValidationError as exc:
            raise LemlistResponseError(
                f"row {index} of the campaign export is not a lead: "
                f"{exc.errors()[0].get('msg', 'invalid')}"
            ) from None
    return leads


CAMPAIGN_NOT_FOUND_HINT = (
    "check the campaign id (cam_…, the end of the campaign's URL in lemlist) and that this "
    "API key belongs to the campaign's team"
)


def _add_campaign_hint(exc: LemlistError) -> None:
    """lemlist's "Campaign not found": say what to check (unless the error has its own hint)."""
    if isinstance(exc, LemlistNotFoundError) and exc.hint is None:
        exc.hint = CAMPAIGN_NOT_FOUND_HINT


def _route_missing(exc: LemlistError) -> bool:
    """Whether an error says the route itself is missing (lemlist's web page, or a 404 that is
    not lemlist's "Campaign not found"), rather than the campaign."""
    if isinstance(exc, LemlistResponseError):
        return "html" in (exc.content_type or "")
    return "campaign" not in exc.message.lower().rsplit(":", 1)[-1]


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
        # lemlist's web app answering a path the API does not have did nothing; any other
        # unusable 2xx may follow work done
        is_html = "html" in content_type.lower()
        error = LemlistResponseError(
            f"{what} answered {response.status_code} with "
            f"{content_type or 'no content type'} instead of JSON{hint}",
            status_code=response.status_code,
            delivery="answered" if is_html else "maybe_sent",
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
            delivery="maybe_sent",
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


def _error_code(response: httpx.Response) -> str | None:
    body = _safe_json(response)
    if not isinstance(body, dict):
        return None
    code = body.get("code")
    if isinstance(code, str):
        return code
    error = body.get("error")  # bulk whole-request errors: {"error": "WRONG_BODY_FORMAT"}
    return error if isinstance(error, str) and error.isupper() and " " not in error else None


def _error_from_response(response: httpx.Response, label: str) -> LemlistError:
    """Map a non-accepted status to the matching exception, quoting lemlist's text."""
    status = response.status_code
    message = f"{label} failed with HTTP {status}: {_error_text(response)}"
    return error_for_status(status, message, code=_error_code(response))
