"""Narrow, respx-mocked unit tests of `LemlistClient`: auth, flags, validation, retries, errors.

Every test builds its own client with a unique API key, so no two tests share a request budget.
The mock is wired in through the client's `transport=` argument (no global patching).
"""

from __future__ import annotations

import base64
import logging
import math
import time
import uuid

import httpx
import pytest
import respx

from prefect_lemlist.api.client import LemlistClient
from prefect_lemlist.api.exceptions import (
    LemlistAuthError,
    LemlistError,
    LemlistNotFoundError,
    LemlistRateLimitError,
    LemlistResponseError,
    LemlistServerError,
)
from prefect_lemlist.api.headers import MIN_RETRY_AFTER_SECONDS
from prefect_lemlist.api.models import EnrichmentFlags

BASE = "https://api.test/api"
ENRICH_PATH = "/leads/lea_1/enrich"
POLL_PATH = "/enrich/enr_1"
DONE_BODY = {
    "enrichmentId": "enr_1",
    "enrichmentStatus": "done",
    "data": {"email": {"email": "john@example.com", "notFound": False, "status": "deliverable"}},
}


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(base_url=BASE, assert_all_called=False)


def make_client(router: respx.Router, **kwargs) -> tuple[LemlistClient, str]:
    """A client on the mock, with a key no other test uses (so a budget of its own)."""
    key = f"sk-secret-{uuid.uuid4().hex}"
    kwargs.setdefault("backoff_base_seconds", 0.01)
    kwargs.setdefault("backoff_max_seconds", 0.05)
    client = LemlistClient(
        key, base_url=BASE, transport=httpx.MockTransport(router.async_handler), **kwargs
    )
    return client, key


def assert_key_hidden(exc: BaseException, key: str) -> None:
    encoded = base64.b64encode(f":{key}".encode()).decode()
    for text in (str(exc), repr(exc), repr(exc.args)):
        assert key not in text
        assert encoded not in text


# ------------------------------------------------------------------------- auth and query


async def test_basic_auth_header_is_empty_user_and_key_as_password(router):
    route = router.get(POLL_PATH).respond(200, json=DONE_BODY)
    client, key = make_client(router)
    async with client:
        await client.get_enrichment("enr_1")
    assert route.call_count == 1
    expected = "Basic " + base64.b64encode(f":{key}".encode()).decode()
    assert route.calls.last.request.headers["Authorization"] == expected


async def test_only_set_flags_are_sent_as_lowercase_true(router):
    route = router.post(ENRICH_PATH).respond(200, json={"id": "enr_1"})
    client, _ = make_client(router)
    async with client:
        result = await client.enrich_lead("lea_1", find_email=True, find_phone=True)
    assert result.enrichment_id == "enr_1"
    assert result.skipped is False
    params = dict(route.calls.last.request.url.params)
    assert params == {"findEmail": "true", "findPhone": "true"}


async def test_flags_object_maps_every_workflow(router):
    route = router.post(ENRICH_PATH).respond(200, json={"id": "enr_1"})
    client, _ = make_client(router)
    flags = EnrichmentFlags(
        find_email=True, verify_email=True, linkedin_enrichment=True, find_phone=True
    )
    async with client:
        await client.enrich_lead("lea_1", flags)
    params = dict(route.calls.last.request.url.params)
    assert params == {
        "findEmail": "true",
        "verifyEmail": "true",
        "linkedinEnrichment": "true",
        "findPhone": "true",
    }


async def test_force_and_webhook_url_are_sent(router):
    route = router.post(ENRICH_PATH).respond(200, json={"id": "enr_1"})
    client, _ = make_client(router)
    async with client:
        await client.enrich_lead(
            "lea_1", verify_email=True, force=True, webhook_url="https://hook.test/x?token=t"
        )
    params = dict(route.calls.last.request.url.params)
    assert params == {
        "verifyEmail": "true",
        "force": "true",
        "webhookUrl": "https://hook.test/x?token=t",
    }


async def test_force_not_sent_by_default(router):
    route = router.post(ENRICH_PATH).respond(200, json={"id": "enr_1"})
    client, _ = make_client(router)
    async with client:
        await client.enrich_lead("lea_1", find_email=True)
    assert "force" not in route.calls.last.request.url.params


async def test_no_flag_raises_value_error_and_sends_nothing(router):
    router.route().respond(200, json={"id": "enr_1"})
    client, _ = make_client(router)
    async with client:
        with pytest.raises(ValueError):
            await client.enrich_lead("lea_1")
        with pytest.raises(ValueError):
            await client.enrich_lead("lea_1", EnrichmentFlags())
    assert router.calls.call_count == 0
    assert client.requests_sent == 0


async def test_bad_webhook_url_raises_value_error_and_sends_nothing(router):
    router.route().respond(200, json={"id": "enr_1"})
    client, _ = make_client(router)
    async with client:
        with pytest.raises(ValueError):
            await client.enrich_lead("lea_1", find_email=True, webhook_url="ftp://x/y")
    assert router.calls.call_count == 0


@pytest.mark.parametrize("lead_id", ["", "a/b", "a?b", "a#b", "a b", "a\tb", "..", "lea_..x"])
async def test_bad_lead_ids_raise_value_error_and_send_nothing(router, lead_id):
    router.route().respond(200, json={"id": "enr_1"})
    client, _ = make_client(router)
    async with client:
        with pytest.raises(ValueError):
            await client.enrich_lead(lead_id, find_email=True)
    assert router.calls.call_count == 0


@pytest.mark.parametrize("bad_id", ["a\\b", "a\nb", "a/b", "..", "."])
async def test_bad_ids_on_every_endpoint_send_nothing(router, bad_id):
    router.route().respond(200, json={"id": "enr_1"})
    client, _ = make_client(router)
    async with client:
        with pytest.raises(ValueError):
            await client.enrich_lead(bad_id, find_email=True)
        with pytest.raises(ValueError):
            await client.get_enrichment(bad_id)
        with pytest.raises(ValueError):
            await client.export_campaign_leads(bad_id)
    assert router.calls.call_count == 0


async def test_lead_id_is_percent_encoded_as_one_segment(router):
    route = router.route().respond(200, json={"id": "enr_1"})
    client, _ = make_client(router)
    async with client:
        await client.enrich_lead("lea_%2e%2e", find_email=True)
    assert route.call_count == 1
    assert route.calls.last.request.url.raw_path.startswith(b"/api/leads/lea_%252e%252e/enrich")


# ------------------------------------------------------------------------- 409 skips


async def test_409_already_enriched_is_a_skip_after_one_request(router):
    route = router.post(ENRICH_PATH).respond(
        409, json={"error": "Enrichment skipped", "code": "ALREADY_ENRICHED"}
    )
    client, _ = make_client(router)
    async with client:
        result = await client.enrich_lead("lea_1", find_email=True)
    assert result.skipped is True
    assert result.skip_reason == "ALREADY_ENRICHED"
    assert result.enrichment_id is None
    assert route.call_count == 1


async def test_409_without_code_is_in_progress_after_one_request(router):
    route = router.post(ENRICH_PATH).respond(409, json={"error": "lead is already being enriched"})
    client, _ = make_client(router)
    async with client:
        result = await client.enrich_lead("lea_1", find_email=True)
    assert result.skipped is True
    assert result.skip_reason == "IN_PROGRESS"
    assert route.call_count == 1


async def test_409_with_unknown_code_raises(router):
    route = router.post(ENRICH_PATH).respond(409, json={"error": "nope", "code": "SOMETHING"})
    client, key = make_client(router)
    async with client:
        with pytest.raises(LemlistError) as info:
            await client.enrich_lead("lea_1", find_email=True)
    assert info.value.status_code == 409
    assert info.value.code == "SOMETHING"
    assert route.call_count == 1
    assert_key_hidden(info.value, key)


# ------------------------------------------------------------------------- 429


async def test_429_then_200_succeeds_and_pauses_the_budget(router):
    sent_at: list[float] = []
    responses = iter(
        [
            httpx.Response(429, headers={"Retry-After": "0.01"}),
            httpx.Response(200, json={"id": "enr_1"}),
        ]
    )

    def handler(request):
        sent_at.append(time.monotonic())
        return next(responses)

    route = router.post(ENRICH_PATH).mock(side_effect=handler)
    client, _ = make_client(router)
    async with client:
        result = await client.enrich_lead("lea_1", find_email=True)
    assert result.enrichment_id == "enr_1"
    assert route.call_count == 2
    # The repeat waited at least the (clamped) Retry-After.
    assert sent_at[1] - sent_at[0] >= MIN_RETRY_AFTER_SECONDS * 0.99


async def test_429_waits_do_not_use_up_max_attempts(router):
    route = router.get(POLL_PATH)
    route.side_effect = [
        httpx.Response(429, headers={"Retry-After": "0.01"}),
        httpx.Response(429, headers={"Retry-After": "0.01"}),
        httpx.Response(200, json=DONE_BODY),
    ]
    client, _ = make_client(router, max_attempts=1)
    async with client:
        enrichment = await client.get_enrichment("enr_1")
    assert enrichment.done is True
    assert route.call_count == 3


async def test_429_forever_raises_rate_limit_error_once_wait_budget_spent(router):
    route = router.get(POLL_PATH).respond(429, headers={"Retry-After": "0.01"})
    max_wait = 1.0
    client, key = make_client(router, max_rate_limit_wait_seconds=max_wait)
    async with client:
        with pytest.raises(LemlistRateLimitError) as info:
            await client.get_enrichment("enr_1")
    assert info.value.status_code == 429
    assert info.value.retryable is True
    # Each 429 costs the clamped minimum wait; the request after the last affordable wait fails.
    assert route.call_count == math.floor(max_wait / MIN_RETRY_AFTER_SECONDS) + 1
    assert_key_hidden(info.value, key)


# ------------------------------------------------------------------------- 5xx


async def test_500_twice_then_200_on_get_succeeds_with_three_requests(router):
    route = router.get(POLL_PATH)
    route.side_effect = [
        httpx.Response(500, json={"error": "boom"}),
        httpx.Response(500, json={"error": "boom"}),
        httpx.Response(200, json=DONE_BODY),
    ]
    client, _ = make_client(router, max_attempts=3)
    async with client:
        enrichment = await client.get_enrichment("enr_1")
    assert enrichment.email == "john@example.com"
    assert route.call_count == 3
    assert client.requests_sent == 3


@pytest.mark.parametrize("max_attempts", [1, 4])
async def test_500_forever_raises_server_error_after_max_attempts(router, max_attempts):
    route = router.get(POLL_PATH).respond(500, json={"error": "Failed"})
    client, key = make_client(router, max_attempts=max_attempts)
    async with client:
        with pytest.raises(LemlistServerError) as info:
            await client.get_enrichment("enr_1")
    assert route.call_count == max_attempts
    assert info.value.status_code == 500
    assert info.value.retryable is True
    assert "Failed" in str(info.value)
    assert_key_hidden(info.value, key)


async def test_500_on_post_enrich_is_retried(router):
    route = router.post(ENRICH_PATH)
    route.side_effect = [
        httpx.Response(500, json={"error": "Failed to enrich lead"}),
        httpx.Response(200, json={"id": "enr_1"}),
    ]
    client, _ = make_client(router)
    async with client:
        result = await client.enrich_lead("lea_1", find_email=True)
    assert result.enrichment_id == "enr_1"
    assert route.call_count == 2


@pytest.mark.parametrize("status", [502, 504])
async def test_gateway_error_on_post_enrich_is_not_resent(router, status):
    route = router.post(ENRICH_PATH).respond(status, text="Bad Gateway")
    client, key = make_client(router, max_attempts=3)
    async with client:
        with pytest.raises(LemlistServerError) as info:
            await client.enrich_lead("lea_1", find_email=True)
    assert route.call_count == 1
    assert info.value.retryable is False
    assert info.value.status_code == status
    assert_key_hidden(info.value, key)


# ------------------------------------------------------------------------- other 4xx


async def test_400_bad_team_raises_lemlist_error_after_one_request(router):
    route = router.post(ENRICH_PATH).respond(
        400, text="Bad team", headers={"Content-Type": "text/plain"}
    )
    client, key = make_client(router)
    async with client:
        with pytest.raises(LemlistError) as info:
            await client.enrich_lead("lea_1", find_email=True)
    assert type(info.value) is LemlistError
    assert "Bad team" in str(info.value)
    assert info.value.status_code == 400
    assert info.value.retryable is False
    assert route.call_count == 1
    assert_key_hidden(info.value, key)


@pytest.mark.parametrize(
    ("status", "text"),
    [(401, "The authentication you supplied is incorrect"), (403, "User is blocked")],
)
async def test_401_and_403_raise_auth_error_after_one_request(router, status, text):
    route = router.get("/team/credits").respond(status, text=text)
    client, key = make_client(router)
    async with client:
        with pytest.raises(LemlistAuthError) as info:
            await client.get_credits()
    assert info.value.status_code == status
    assert text in str(info.value)
    assert route.call_count == 1
    assert_key_hidden(info.value, key)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("LEAD_NOT_FOUND", "Lead not found"),
        ("CONTACT_NOT_FOUND", "Contact not found for this lead"),
    ],
)
async def test_404_json_on_enrich_raises_not_found_with_code(router, code, error):
    route = router.post(ENRICH_PATH).respond(404, json={"error": error, "code": code})
    client, key = make_client(router)
    async with client:
        with pytest.raises(LemlistNotFoundError) as info:
            await client.enrich_lead("lea_1", find_email=True)
    assert info.value.code == code
    assert info.value.status_code == 404
    assert error in str(info.value)
    assert route.call_count == 1
    assert_key_hidden(info.value, key)


async def test_404_text_on_get_enrichment_raises_not_found_without_code(router):
    route = router.get(POLL_PATH).respond(404, text="Enrichment not found")
    client, _ = make_client(router)
    async with client:
        with pytest.raises(LemlistNotFoundError) as info:
            await client.get_enrichment("enr_1")
    assert info.value.code is None
    assert "Enrichment not found" in str(info.value)
    assert route.call_count == 1


# ------------------------------------------------------------------------- bad 2xx bodies


def _html(status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, text="<!doctype html><html>app</html>", headers={"Content-Type": "text/html"}
    )


BAD_BODIES = {
    "html": lambda: _html(),
    "invalid-json": lambda: httpx.Response(
        200, content=b"{not json", headers={"Content-Type": "application/json"}
    ),
    "wrong-shape": lambda: httpx.Response(200, json={"unexpected": True}),
    "empty-json": lambda: httpx.Response(
        200, content=b"", headers={"Content-Type": "application/json"}
    ),
    "empty-untyped": lambda: httpx.Response(200, content=b""),
    "json-list": lambda: httpx.Response(200, json=[1, 2]),
}


@pytest.mark.parametrize("kind", sorted(BAD_BODIES))
async def test_bad_2xx_body_on_get_enrichment_raises_response_error(router, kind):
    route = router.get(POLL_PATH).mock(side_effect=lambda request: BAD_BODIES[kind]())
    client, _ = make_client(router)
    async with client:
        with pytest.raises(LemlistResponseError) as info:
            await client.get_enrichment("enr_1")
    assert info.value.status_code == 200
    assert route.call_count == 1


@pytest.mark.parametrize("kind", sorted(BAD_BODIES))
async def test_bad_2xx_body_on_enrich_raises_response_error(router, kind):
    route = router.post(ENRICH_PATH).mock(side_effect=lambda request: BAD_BODIES[kind]())
    client, _ = make_client(router)
    async with client:
        with pytest.raises(LemlistResponseError):
            await client.enrich_lead("lea_1", find_email=True)
    assert route.call_count == 1


@pytest.mark.parametrize("kind", sorted(BAD_BODIES))
async def test_bad_2xx_body_on_credits_raises_response_error(router, kind):
    route = router.get("/team/credits").mock(side_effect=lambda request: BAD_BODIES[kind]())
    client, _ = make_client(router)
    async with client:
        with pytest.raises(LemlistResponseError):
            await client.get_credits()
    assert route.call_count == 1


async def test_html_answer_hints_at_base_url(router):
    router.get(POLL_PATH).mock(return_value=_html())
    client, _ = make_client(router)
    async with client:
        with pytest.raises(LemlistResponseError) as info:
            await client.get_enrichment("enr_1")
    assert "base_url" in str(info.value)


async def test_enrich_200_with_empty_id_raises_response_error(router):
    router.post(ENRICH_PATH).respond(200, json={"id": ""})
    client, _ = make_client(router)
    async with client:
        with pytest.raises(LemlistResponseError):
            await client.enrich_lead("lea_1", find_email=True)


# ------------------------------------------------------------------------- transport failures


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteTimeout]
)
async def test_failure_after_send_on_post_enrich_is_never_resent(router, error):
    route = router.post(ENRICH_PATH).mock(side_effect=error)
    client, key = make_client(router, max_attempts=5)
    async with client:
        with pytest.raises(LemlistServerError) as info:
            await client.enrich_lead("lea_1", find_email=True)
    assert info.value.retryable is False
    assert info.value.status_code is None
    assert route.call_count == 1
    assert_key_hidden(info.value, key)


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
async def test_not_sent_failure_on_post_enrich_is_retried(router, error):
    route = router.post(ENRICH_PATH)
    route.side_effect = [error, httpx.Response(200, json={"id": "enr_1"})]
    client, _ = make_client(router, max_attempts=3)
    async with client:
        result = await client.enrich_lead("lea_1", find_email=True)
    assert result.enrichment_id == "enr_1"
    assert route.call_count == 2


async def test_connect_error_forever_on_post_enrich_stops_at_max_attempts(router):
    """Nothing listening: the client tries max_attempts times, then a non-retryable error
    (Prefect task retries would only multiply the attempts) naming the host."""
    route = router.post(ENRICH_PATH).mock(side_effect=httpx.ConnectError)
    client, key = make_client(router, max_attempts=3)
    async with client:
        with pytest.raises(LemlistServerError) as info:
            await client.enrich_lead("lea_1", find_email=True)
    assert route.call_count == 3
    assert info.value.retryable is False
    assert "api.test" in info.value.message and "3 attempts" in info.value.message
    assert info.value.hint and "base_url" in info.value.hint
    assert_key_hidden(info.value, key)


async def test_read_timeout_on_get_is_retried_then_succeeds(router):
    route = router.get(POLL_PATH)
    route.side_effect = [httpx.ReadTimeout, httpx.Response(200, json=DONE_BODY)]
    client, _ = make_client(router, max_attempts=3)
    async with client:
        enrichment = await client.get_enrichment("enr_1")
    assert enrichment.done is True
    assert route.call_count == 2


async def test_read_timeout_forever_on_get_stops_at_max_attempts(router):
    route = router.get(POLL_PATH).mock(side_effect=httpx.ReadTimeout)
    client, key = make_client(router, max_attempts=4)
    async with client:
        with pytest.raises(LemlistServerError) as info:
            await client.get_enrichment("enr_1")
    assert route.call_count == 4
    assert info.value.retryable is True
    assert_key_hidden(info.value, key)


# ------------------------------------------------------------------------- the key stays secret


async def test_key_not_in_repr_of_client(router):
    client, key = make_client(router)
    assert key not in repr(client)
    assert key not in str(client)
    assert client.fingerprint in repr(client)


async def test_key_never_logged_at_debug(router, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="prefect_lemlist")
    router.get("/enrich/enr_429").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "0.01"}),
            httpx.Response(200, json=DONE_BODY),
        ]
    )
    router.get("/enrich/enr_500").respond(500, text="boom")
    router.get("/enrich/enr_timeout").mock(side_effect=httpx.ReadTimeout)
    router.post(ENRICH_PATH).mock(side_effect=httpx.ReadTimeout)
    router.get("/team/credits").respond(401, text="Unauthorized")
    client, key = make_client(router, max_attempts=2)
    errors: list[BaseException] = []
    async with client:
        await client.get_enrichment("enr_429")
        for call in (
            lambda: client.get_enrichment("enr_500"),
            lambda: client.get_enrichment("enr_timeout"),
            lambda: client.enrich_lead("lea_1", find_email=True, webhook_url="https://h.test/x"),
            client.get_credits,
        ):
            with pytest.raises(LemlistError) as info:
                await call()
            errors.append(info.value)
    assert len(errors) == 4
    for exc in errors:
        assert_key_hidden(exc, key)
    ours = [r for r in caplog.records if r.name.startswith("prefect_lemlist")]
    assert ours, "expected the client to log its requests at DEBUG/WARNING"
    assert any(r.levelno == logging.DEBUG for r in ours)
    encoded = base64.b64encode(f":{key}".encode()).decode()
    for record in caplog.records:
        text = f"{record.getMessage()} {record.args!r}"
        assert key not in text
        assert encoded not in text


# ------------------------------------------------------------------------- export and credits


async def test_export_campaign_leads_sends_state_and_format_and_parses_rows(router):
    route = router.get("/campaigns/cam_1/export/leads").respond(
        200,
        json=[
            {
                "_id": "lea_1",
                "email": "a@example.com",
                "emailStatus": "deliverable",
                "firstName": "Ada",
                "customVar": "x",
            },
            {"_id": "lea_2", "linkedinUrl": "https://linkedin.com/in/b"},
        ],
    )
    client, _ = make_client(router)
    async with client:
        leads = await client.export_campaign_leads("cam_1")
    assert route.call_count == 1
    assert dict(route.calls.last.request.url.params) == {"state": "all", "format": "json"}
    assert [lead.lead_id for lead in leads] == ["lea_1", "lea_2"]
    assert leads[0].email == "a@example.com"
    assert leads[0].email_status == "deliverable"
    assert leads[0].first_name == "Ada"
    assert leads[1].email_status is None
    assert leads[1].linkedin_url == "https://linkedin.com/in/b"


async def test_export_campaign_leads_passes_custom_state(router):
    route = router.get("/campaigns/cam_1/export/leads").respond(200, json=[])
    client, _ = make_client(router)
    async with client:
        assert await client.export_campaign_leads("cam_1", state=" contacted ") == []
    assert route.calls.last.request.url.params["state"] == "contacted"


async def test_export_row_without_id_raises_response_error(router):
    router.get("/campaigns/cam_1/export/leads").respond(
        200, json=[{"_id": "lea_1"}, {"email": "no-id@example.com"}]
    )
    client, _ = make_client(router)
    async with client:
        with pytest.raises(LemlistResponseError) as info:
            await client.export_campaign_leads("cam_1")
    assert "row 1" in str(info.value)


async def test_export_not_a_list_raises_response_error(router):
    router.get("/campaigns/cam_1/export/leads").respond(200, json={"leads": []})
    client, _ = make_client(router)
    async with client:
        with pytest.raises(LemlistResponseError):
            await client.export_campaign_leads("cam_1")


@pytest.mark.parametrize("state", ["", "   "])
async def test_export_empty_state_raises_value_error_and_sends_nothing(router, state):
    router.route().respond(200, json=[])
    client, _ = make_client(router)
    async with client:
        with pytest.raises(ValueError):
            await client.export_campaign_leads("cam_1", state=state)
    assert router.calls.call_count == 0


async def test_get_credits_parses_balance(router):
    details = {"remaining": {"total": 100, "subscription": 80, "gifted": 10, "paid": 10}}
    route = router.get("/team/credits").respond(200, json={"credits": 100, "details": details})
    client, _ = make_client(router)
    async with client:
        credits = await client.get_credits()
    assert route.call_count == 1
    assert credits.credits == 100
    assert credits.details == details


async def test_get_enrichment_202_is_in_progress(router):
    router.get(POLL_PATH).respond(
        202, json={"enrichmentId": "enr_1", "enrichmentStatus": "in-progress", "data": {}}
    )
    client, _ = make_client(router)
    async with client:
        enrichment = await client.get_enrichment("enr_1")
    assert enrichment.in_progress is True
    assert enrichment.done is False


async def test_request_outside_context_manager_raises(router):
    router.route().respond(200, json=DONE_BODY)
    client, _ = make_client(router)
    with pytest.raises(RuntimeError):
        await client.get_enrichment("enr_1")
    assert router.calls.call_count == 0


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"timeout_seconds": 0}, {"base_url": "api.test/api"}]
)
def test_bad_constructor_arguments(kwargs):
    with pytest.raises(ValueError):
        LemlistClient(f"sk-{uuid.uuid4().hex}", **kwargs)


def test_empty_key_is_refused():
    with pytest.raises(ValueError):
        LemlistClient("")
