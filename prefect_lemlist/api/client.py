"""`LemlistClient`: the one place where auth, timeouts, the rate limit, retries and errors live.

Everything else in prefect-lemlist (tasks, pipeline stages, flows) calls lemlist through it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from pydantic import SecretStr, ValidationError

from prefect_lemlist.api.answers import (
    add_campaign_hint,
    bulk_results,
    campaign_rows,
    enrichment_id_of,
    json_body,
    route_missing,
    skipped_result,
)
from prefect_lemlist.api.exceptions import (
    LemlistAuthError,
    LemlistNotFoundError,
    LemlistResponseError,
)
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
from prefect_lemlist.api.transport import Call, RequestSender, SendHook
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


logger = logging.getLogger("prefect_lemlist.client")


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
        self._sender = RequestSender(self.budget, self)
        self._transport = transport

    def __repr__(self) -> str:
        return f"LemlistClient(base_url={self.base_url!r}, key=<{self.fingerprint}>)"

    async def __aenter__(self) -> LemlistClient:
        _redact_httpx_logs()
        self._sender.http = httpx.AsyncClient(
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
        if self._sender.http is not None:
            await self._sender.http.aclose()
            self._sender.http = None

    @property
    def refused(self) -> LemlistAuthError | None:
        """The 401/403 that stopped this client, or None while the key works."""
        return self._sender.refusal

    @property
    def requests_sent(self) -> int:
        """HTTP requests this client has sent (429s and failures included)."""
        return self._sender.requests_sent

    @property
    def requests_by_route(self) -> Counter[str]:
        """The same, per `METHOD /first-path-segment`."""
        return self._sender.requests_by_route

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
        response = await self._sender.send(
            Call(
                "POST",
                _path("leads", lead, "enrich"),
                params,
                starts_paid_work=True,
                accept=frozenset({200, 409}),
                before_send=before_send,
            )
        )
        if response.status_code == 409:
            return skipped_result(lead, response)
        enrichment_id = enrichment_id_of(response, "POST /leads/{leadId}/enrich")
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
        response = await self._sender.send(
            Call("POST", "enrich", params, starts_paid_work=True, before_send=before_send)
        )
        return EnrichmentStart(enrichment_id=enrichment_id_of(response, "POST /enrich"))

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
        response = await self._sender.send(
            Call(
                "POST",
                _path("v2", "enrichments", "bulk"),
                params,
                json=body,
                starts_paid_work=True,
                before_send=before_send,
            )
        )
        return bulk_results(
            json_body(response, "POST /v2/enrichments/bulk"), metadata, len(contacts)
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
        response = await self._sender.send(Call("GET", path, accept=frozenset({200, 202})))
        body = json_body(response, "GET /enrich/{enrichId}")
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
            if not route_missing(exc):
                add_campaign_hint(exc)
                raise
            logger.warning(
                "GET /campaigns/{id}/export/leads answered %s; trying lemlist's newer route "
                "/v2/campaigns/{id}/export/leads",
                "an HTML page" if exc.status_code == 200 else f"HTTP {exc.status_code}",
            )
            try:
                rows = await self._export(("v2", "campaigns", campaign, "export", "leads"), params)
            except (LemlistNotFoundError, LemlistResponseError) as second:
                if route_missing(second):
                    raise exc from None
                add_campaign_hint(second)
                raise
        return campaign_rows(rows)

    async def _export(self, segments: tuple[str, ...], params: dict[str, str]) -> Any:
        response = await self._sender.send(Call("GET", _path(*segments), params))
        return json_body(response, "GET /campaigns/{id}/export/leads")

    async def get_credits(self) -> Credits:
        """The team's remaining credits: `GET /team/credits`.

        Raises:
            LemlistError: lemlist refused or answered something else than a credit balance.
        """
        response = await self._sender.send(Call("GET", _path("team", "credits")))
        body = json_body(response, "GET /team/credits")
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
        response = await self._sender.send(Call("GET", "team"))
        body = json_body(response, "GET /team")
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
            response = await self._sender.send(
                Call("GET", _path("leads", checked), {"version": "v2"})
            )
        except LemlistNotFoundError:
            return []
        body = json_body(response, "GET /leads/{email}")
        items = body if isinstance(body, list) else [body]
        return [LeadByEmail.from_body(item) for item in items]


# --------------------------------------------------------------------------------- helpers


def _path(*segments: str) -> str:
    """A URL path from segments, each percent-encoded so that none can add to the path."""
    return "/".join(quote(segment, safe="") for segment in segments)


def _start_params(flags: EnrichmentFlags, webhook_url: str | None) -> dict[str, str]:
    params = dict(flags.require_any().query_params())
    if webhook_url is not None:
        params["webhookUrl"] = validate_http_url(webhook_url, "webhook_url")
    return params
