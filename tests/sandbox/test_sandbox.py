"""The lemlist sandbox, exercised over real loopback HTTP with plain httpx."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from _sandbox_http import credits, eventually, wait_done
from pydantic import ValidationError

from prefect_lemlist.sandbox import (
    DEFAULT_API_KEY,
    LeadKind,
    Sandbox,
    SandboxConfig,
    SandboxLead,
    run_sandbox,
)
from prefect_lemlist.sandbox.data import kind_counts, seed_campaign
from prefect_lemlist.sandbox.state import SandboxStats, max_in_window

ID_RE = {prefix: re.compile(rf"^{prefix}_[A-Za-z0-9]{{17}}$") for prefix in ("lea", "cam", "enr")}
JS_DATE_RE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{2} \d{4} \d{2}:\d{2}:\d{2} GMT\+0000 \(Coordinated Universal Time\)$"
)
ALL_FLAGS = {
    "findEmail": "true",
    "verifyEmail": "true",
    "linkedinEnrichment": "true",
    "findPhone": "true",
}
EXPORT_KEYS = {
    "_id",
    "email",
    "emailStatus",
    "firstName",
    "lastName",
    "phone",
    "linkedinUrl",
    "companyName",
    "companyDomain",
    "jobTitle",
    "lastState",
    "status",
    "timezone",
    "picture",
    "icebreaker",
}
FAST = {"leads": 60, "seed": 7, "enrichment_seconds": (0.2, 0.3), "rate_limit": 10_000}


# ---------------------------------------------------------------------------- helpers


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    """A fresh sandbox with fast enrichments and a rate limit out of the way."""
    with run_sandbox(SandboxConfig(**FAST)) as sandbox:
        yield sandbox


@pytest.fixture
def client(sb: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sb.base_url, auth=("", sb.api_key), timeout=10) as c:
        yield c


def pick(
    sandbox: Sandbox, kind: LeadKind, where: Callable[[SandboxLead], bool] = lambda lead: True
) -> SandboxLead:
    return next(lead for lead in sandbox.leads if lead.kind is kind and where(lead))


def enrich(c: httpx.Client, lead_id: str, **params: str) -> httpx.Response:
    return c.post(f"/leads/{lead_id}/enrich", params=params)


class Receiver:
    """A tiny webhook receiver on loopback (http.server in a thread)."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.calls.put((self.path, json.loads(body)))
                failing = receiver.fail_first > 0
                receiver.fail_first -= 1
                self.send_response(500 if failing else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def next(self, timeout: float = 5.0) -> tuple[str, Any]:
        return self.calls.get(timeout=timeout)


# ---------------------------------------------------------------------------- config & data


def test_config_defaults_and_validation() -> None:
    config = SandboxConfig()
    assert config.api_keys == [DEFAULT_API_KEY] == ["sandbox-api-key"]
    assert (config.rate_limit, config.rate_window_seconds, config.port) == (20, 2.0, 0)
    assert config.fault_routes == {
        "enrich_post",
        "enrich_get",
        "export",
        "credits",
        "enrich_data",
        "bulk",
        "team",
        "lead_by_email",
    }
    for bad in (
        {"fault_5xx_rate": 1.5},
        {"enrichment_seconds": (2.0, 1.0)},
        {"fault_routes": {"nope"}},
        {"api_keys": []},
        {"fault_malformed_kind": "xml"},
        {"unknown_knob": 1},
    ):
        with pytest.raises(ValidationError):
            SandboxConfig(**bad)


def test_seeded_campaign_is_deterministic_and_mixed() -> None:
    one, again, other = seed_campaign(200, 1), seed_campaign(200, 1), seed_campaign(200, 2)
    assert [lead.lead_id for lead in one.leads] == [lead.lead_id for lead in again.leads]
    assert one.campaign_id == again.campaign_id != other.campaign_id
    assert ID_RE["cam"].match(one.campaign_id)
    assert all(ID_RE["lea"].match(lead.lead_id) for lead in one.leads)
    assert len({lead.lead_id for lead in one.leads}) == 200
    assert len(one.foreign_lead_ids) == 3
    assert not set(one.foreign_lead_ids) & {lead.lead_id for lead in one.leads}
    for n in (20, 21, 50, 200):
        counts = kind_counts(n)
        assert sum(counts.values()) == n and min(counts.values()) >= 1
        kinds = {lead.kind for lead in seed_campaign(n, 5).leads}
        assert kinds == set(LeadKind)
    findable = [lead for lead in one.leads if lead.kind is LeadKind.FINDABLE]
    assert all(lead.email is None and lead.true_email for lead in findable)
    assert all(
        lead.linkedin_url or (lead.company_name and lead.company_domain) for lead in findable
    )
    assert any(lead.true_phone for lead in findable)
    assert all(
        lead.email and lead.email_status
        for lead in one.leads
        if lead.kind is LeadKind.EMAIL_VERIFIED
    )


def test_max_in_window_two_pointer() -> None:
    assert max_in_window([], 2.0) == 0
    assert max_in_window([5, 0, 0.5, 1.0, 1.9, 2.0, 2.1], 2.0) == 5
    assert max_in_window([0, 2, 4, 6], 2.0) == 1
    assert max_in_window([1.0] * 7, 0.1) == 7


# ---------------------------------------------------------------------------- server basics


def test_run_sandbox_facts_and_overrides() -> None:
    with run_sandbox(SandboxConfig(leads=30, seed=3), leads=25) as sandbox:
        assert re.match(r"^http://127\.0\.0\.1:\d+$", sandbox.base_url)
        assert sandbox.port > 0
        assert sandbox.api_key == DEFAULT_API_KEY
        assert ID_RE["cam"].match(sandbox.campaign_id)
        assert len(sandbox.leads) == 25
        assert len(sandbox.foreign_lead_ids) == 3
        sandbox.configure(fault_5xx_rate=0.5)
        assert sandbox.config.fault_5xx_rate == 0.5
        with pytest.raises(ValidationError):
            sandbox.configure(fault_5xx_rate=2)
        assert sandbox.config.fault_5xx_rate == 0.5
        url = sandbox.base_url
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/team/credits", timeout=1)


async def test_works_inside_running_loop_without_concurrency_limit() -> None:
    with run_sandbox(leads=20, seed=2, rate_limit=100_000) as sandbox:
        async with httpx.AsyncClient(
            base_url=sandbox.base_url,
            auth=("", sandbox.api_key),
            limits=httpx.Limits(max_connections=100),
        ) as c:
            answers = await asyncio.gather(*(c.get("/team/credits") for _ in range(100)))
        assert {answer.status_code for answer in answers} == {200}
        assert sandbox.stats().requests_by_route["credits"] == 100


def test_auth_errors_never_echo_the_key(client: httpx.Client, sb: Sandbox) -> None:
    url = f"{sb.base_url}/team/credits"
    missing = httpx.get(url)
    assert (missing.status_code, missing.text) == (401, "Unauthorized")
    assert missing.headers["content-type"].startswith("text/plain")
    garbled = httpx.get(url, headers={"Authorization": "Basic %%%not-base64"})
    assert (garbled.status_code, garbled.text) == (401, "Unauthorized")
    bearer = httpx.get(url, headers={"Authorization": f"Bearer {sb.api_key}"})
    assert bearer.status_code == 401
    wrong = httpx.get(url, auth=("", "wrong-key-123"))
    assert (wrong.status_code, wrong.text) == (401, "The authentication you supplied is incorrect")
    swapped = httpx.get(url, auth=(sb.api_key, ""))
    assert swapped.status_code == 401
    for answer in (missing, garbled, bearer, wrong, swapped):
        assert "wrong-key-123" not in answer.text and sb.api_key not in answer.text
        assert sb.api_key not in str(answer.headers)
    assert sb.api_key not in repr(sb.stats())
    assert client.get("/team/credits").status_code == 200


def test_unknown_path_is_html_and_wrong_method_is_405(client: httpx.Client) -> None:
    page = client.get("/campaignz/typo")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<html" in page.text
    assert httpx.get(str(client.base_url) + "/whatever").status_code == 200  # no auth needed
    for answer in (
        client.get("/leads/lea_x/enrich"),
        client.post("/team/credits"),
        client.delete("/enrich/enr_x"),
    ):
        assert (answer.status_code, answer.text) == (405, "Method not allowed")
        assert answer.headers["retry-after"] == "2"


def test_credits_shape_and_headers(client: httpx.Client) -> None:
    answer = client.get("/team/credits")
    assert answer.status_code == 200
    assert answer.json() == {
        "credits": 100_000,
        "details": {
            "remaining": {
                "total": 100_000,
                "freemium": 0,
                "subscription": 100_000,
                "gifted": 0,
                "paid": 0,
            }
        },
    }
    assert answer.headers["retry-after"] == "2"
    assert answer.headers["x-ratelimit-limit"] == "10000"
    assert answer.headers["x-ratelimit-remaining"] == "9999"
    assert JS_DATE_RE.match(answer.headers["x-ratelimit-reset"])
    assert client.get("/api/team/credits/").status_code == 200  # /api prefix, trailing slash


# ---------------------------------------------------------------------------- POST enrich


def test_enrich_error_statuses_in_order(client: httpx.Client, sb: Sandbox) -> None:
    foreign = enrich(client, sb.foreign_lead_ids[0], findEmail="true")
    assert (foreign.status_code, foreign.text) == (400, "Bad team")
    assert foreign.headers["content-type"].startswith("text/plain")
    unknown = enrich(client, "lea_" + "Z" * 17)
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "Lead not found", "code": "LEAD_NOT_FOUND"}
    missing = pick(sb, LeadKind.MISSING_CONTACT)
    no_contact = enrich(client, missing.lead_id)  # contact check comes before the flag check
    assert no_contact.status_code == 404
    assert no_contact.json() == {
        "error": "Contact not found for this lead",
        "code": "CONTACT_NOT_FOUND",
    }
    lead = pick(sb, LeadKind.FINDABLE)
    for params in ({}, {"findEmail": "1"}, {"findEmail": "yes", "findPhone": "false"}):
        no_flag = enrich(client, lead.lead_id, **params)
        assert no_flag.status_code == 400
        assert no_flag.text == (
            "No enrichment requested (findEmail, findPhone, "
            "linkedinEnrichment or verifyEmail required)"
        )
    for url in (
        "ftp://127.0.0.1/hook",
        "http://example.com/hook",
        "not a url",
        "",
        "http://127.0.0.1.evil.com/x",
    ):
        bad = enrich(client, lead.lead_id, findEmail="true", webhookUrl=url)
        assert (bad.status_code, bad.text) == (400, "Invalid webhookUrl")
    assert unknown.headers["x-ratelimit-limit"] == "10000"  # headers on errors too
    stats = sb.stats()
    assert stats.enrichments_started == 0
    assert stats.enrich_posts_by_lead[lead.lead_id] == 8


def test_enrich_in_progress_409_even_with_force(client: httpx.Client, sb: Sandbox) -> None:
    lead = pick(sb, LeadKind.IN_PROGRESS)
    for params in ({"findEmail": "true"}, {"linkedinEnrichment": "true", "force": "true"}):
        answer = enrich(client, lead.lead_id, **params)
        assert answer.status_code == 409
        assert answer.json() == {"error": "lead is already being enriched"}


def test_enrich_already_enriched_and_force_rules(client: httpx.Client, sb: Sandbox) -> None:
    skipped = {
        "error": "Enrichment skipped: contact already has the requested data or was "
        "recently enriched",
        "code": "ALREADY_ENRICHED",
    }
    has_email = pick(sb, LeadKind.EMAIL_VERIFIED)
    first = enrich(client, has_email.lead_id, findEmail="true")
    assert first.status_code == 409 and first.json() == skipped
    assert enrich(client, has_email.lead_id, verifyEmail="true").json() == skipped
    forced = enrich(client, has_email.lead_id, findEmail="true", force="TRUE")
    assert forced.status_code == 200 and ID_RE["enr"].match(forced.json()["id"])
    # force never bypasses an earlier not-found with the same inputs
    not_found = pick(sb, LeadKind.RECENTLY_NOT_FOUND)
    for params in (
        {"findEmail": "true"},
        {"findEmail": "true", "force": "true"},
        {"findPhone": "true", "force": "true"},
    ):
        answer = enrich(client, not_found.lead_id, **params)
        assert answer.status_code == 409 and answer.json() == skipped


def test_recently_not_found_keeps_other_workflows(client: httpx.Client, sb: Sandbox) -> None:
    lead = pick(sb, LeadKind.RECENTLY_NOT_FOUND)
    answer = enrich(client, lead.lead_id, findEmail="true", linkedinEnrichment="true")
    assert answer.status_code == 200
    done = wait_done(client, answer.json()["id"]).json()
    assert set(done["data"]) == {"linkedin"}


def test_enrichment_lifecycle_find_email(client: httpx.Client, sb: Sandbox) -> None:
    lead = pick(sb, LeadKind.FINDABLE)
    before = credits(client)
    started = client.post(f"/leads/{lead.lead_id}/enrich/", params={"findEmail": "true"})
    assert started.status_code == 200
    enrichment_id = started.json()["id"]
    assert ID_RE["enr"].match(enrichment_id)
    again = enrich(client, lead.lead_id, findEmail="true", force="true")
    assert again.status_code == 409 and "code" not in again.json()
    pending = client.get(f"/enrich/{enrichment_id}")
    assert pending.status_code == 202
    assert pending.json() == {
        "enrichmentId": enrichment_id,
        "enrichmentStatus": "in-progress",
        "data": {},
        "input": {
            "firstName": lead.first_name,
            "lastName": lead.last_name,
            "linkedinUrl": lead.linkedin_url,
            "companyName": lead.company_name,
            "companyDomain": lead.company_domain,
        },
    }
    done = wait_done(client, enrichment_id)
    assert done.status_code == 200
    body = done.json()
    assert body["enrichmentStatus"] == "done"
    assert set(body["input"]) == {
        "firstName",
        "lastName",
        "linkedinUrl",
        "companyName",
        "companyDomain",
    }
    assert body["data"] == {
        "email": {"email": lead.true_email, "notFound": False, "status": lead.true_email_status}
    }
    assert credits(client) == before - 5
    row = next(
        r
        for r in client.get(
            f"/campaigns/{sb.campaign_id}/export/leads", params={"state": "all", "format": "json"}
        ).json()
        if r["_id"] == lead.lead_id
    )
    assert (row["email"], row["emailStatus"]) == (lead.true_email, lead.true_email_status)
    assert enrich(client, lead.lead_id, findEmail="true").json()["code"] == "ALREADY_ENRICHED"
    stats = sb.stats()
    assert stats.enrich_posts_by_lead[lead.lead_id] == 3
    assert stats.enrich_posts_processed_by_lead[lead.lead_id] == 3
    assert stats.enrichments_started_by_lead == {lead.lead_id: 1}
    assert stats.credits_used == 5 and stats.credits_remaining == before - 5


def test_all_workflows_data_shape_and_costs(client: httpx.Client, sb: Sandbox) -> None:
    lead = pick(sb, LeadKind.FINDABLE, lambda x: bool(x.true_phone and x.linkedin_url))
    before = credits(client)
    enrichment_id = enrich(client, lead.lead_id, **ALL_FLAGS).json()["id"]
    data = wait_done(client, enrichment_id).json()["data"]
    assert set(data) == {"email", "phone", "linkedin"}
    assert data["email"] == {
        "email": lead.true_email,
        "notFound": False,
        "status": lead.true_email_status,
    }
    assert data["phone"] == {"phone": lead.true_phone, "notFound": False}
    assert data["linkedin"]["notFound"] is False
    for key in (
        "linkedinUrl",
        "firstName",
        "lastName",
        "companyName",
        "companyDomain",
        "occupation",
        "industry",
        "locationName",
        "positionGroups",
    ):
        assert key in data["linkedin"]
    assert data["linkedin"]["linkedinUrl"] == lead.linkedin_url
    assert credits(client) == before - (5 + 1 + 1 + 20)
    assert sb.contact(lead.lead_id).phone == lead.true_phone
    # everything is now known: a new request is skipped, force re-runs (except nothing blocks)
    assert enrich(client, lead.lead_id, **ALL_FLAGS).status_code == 409


def test_verify_existing_email(client: httpx.Client, sb: Sandbox) -> None:
    lead = pick(sb, LeadKind.EMAIL_UNVERIFIED)
    before = credits(client)
    enrichment_id = enrich(client, lead.lead_id, verifyEmail="true").json()["id"]
    data = wait_done(client, enrichment_id).json()["data"]
    assert data == {
        "email": {"email": lead.email, "notFound": False, "status": lead.true_email_status}
    }
    assert credits(client) == before - 1
    assert sb.contact(lead.lead_id).email_status == lead.true_email_status


def test_not_found_is_free_and_blocks_force(client: httpx.Client, sb: Sandbox) -> None:
    lead = pick(sb, LeadKind.NOT_FINDABLE)
    before = credits(client)
    enrichment_id = enrich(client, lead.lead_id, findEmail="true", findPhone="true").json()["id"]
    data = wait_done(client, enrichment_id).json()["data"]
    assert data == {
        "email": {"email": None, "notFound": True, "status": None},
        "phone": {"phone": None, "notFound": True},
    }
    assert credits(client) == before
    blocked = enrich(client, lead.lead_id, findEmail="true", force="true")
    assert blocked.status_code == 409 and blocked.json()["code"] == "ALREADY_ENRICHED"


def test_out_of_credits_ends_in_error(client: httpx.Client, sb: Sandbox) -> None:
    sb.configure(credits=3)
    assert credits(client) == 3
    lead = pick(sb, LeadKind.FINDABLE)
    done = wait_done(client, enrich(client, lead.lead_id, findEmail="true").json()["id"]).json()
    assert (done["enrichmentStatus"], done["data"]) == ("error", {})
    assert credits(client) == 3 and sb.contact(lead.lead_id).email is None
    unverified = pick(sb, LeadKind.EMAIL_UNVERIFIED)
    done = wait_done(client, enrich(client, unverified.lead_id, verifyEmail="true").json()["id"])
    assert done.json()["enrichmentStatus"] == "done" and credits(client) == 2


def test_app_enrichment_finishes_and_fills_the_contact() -> None:
    with (
        run_sandbox(leads=40, app_enrichment_seconds=0.3) as sandbox,
        httpx.Client(base_url=sandbox.base_url, auth=("", sandbox.api_key)) as c,
    ):
        lead = pick(sandbox, LeadKind.IN_PROGRESS)
        assert enrich(c, lead.lead_id, findEmail="true").status_code == 409
        time.sleep(0.4)
        answer = enrich(c, lead.lead_id, findEmail="true")
        assert answer.status_code == 409 and answer.json()["code"] == "ALREADY_ENRICHED"
        assert sandbox.contact(lead.lead_id).email == lead.true_email
        assert credits(c) == 100_000


def test_get_unknown_enrichment(client: httpx.Client) -> None:
    answer = client.get("/enrich/enr_doesNotExist12345")
    assert (answer.status_code, answer.text) == (404, "Enrichment not found")
    assert answer.headers["content-type"].startswith("text/plain")


# ---------------------------------------------------------------------------- enrichment fates


def test_enrichment_unknown_status(client: httpx.Client, sb: Sandbox) -> None:
    sb.configure(enrichment_unknown_status_rate=1.0)
    lead = pick(sb, LeadKind.FINDABLE)
    before = credits(client)
    done = wait_done(client, enrich(client, lead.lead_id, findEmail="true").json()["id"])
    assert done.status_code == 200 and done.json()["enrichmentStatus"] == "error"
    assert credits(client) == before


def test_enrichment_vanish_and_never_finish(client: httpx.Client, sb: Sandbox) -> None:
    findable = [lead for lead in sb.leads if lead.kind is LeadKind.FINDABLE]
    sb.configure(enrichment_vanish_rate=1.0)
    vanishing = enrich(client, findable[0].lead_id, findEmail="true").json()["id"]
    sb.configure(enrichment_vanish_rate=0.0, enrichment_never_finish_rate=1.0)
    stuck = enrich(client, findable[1].lead_id, findEmail="true").json()["id"]
    assert client.get(f"/enrich/{vanishing}").status_code == 202
    time.sleep(0.45)
    assert (
        client.get(f"/enrich/{vanishing}").status_code,
        client.get(f"/enrich/{vanishing}").text,
    ) == (404, "Enrichment not found")
    assert client.get(f"/enrich/{stuck}").status_code == 202
    assert enrich(client, findable[1].lead_id, findEmail="true").status_code == 409


# ---------------------------------------------------------------------------- export


def test_export_json_csv_and_filters(client: httpx.Client, sb: Sandbox) -> None:
    path = f"/campaigns/{sb.campaign_id}/export/leads"
    rows = client.get(path, params={"state": "all", "format": "json"}).json()
    assert [row["_id"] for row in rows] == [lead.lead_id for lead in sb.leads]
    assert all(set(row) == EXPORT_KEYS for row in rows)
    first = sb.leads[0]
    assert rows[0]["email"] == first.email and rows[0]["lastState"] == first.last_state
    as_csv = client.get(path, params={"state": "all"})  # CSV is the default
    assert as_csv.headers["content-type"].startswith("text/csv")
    reader = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert set(reader[0]) == EXPORT_KEYS and len(reader) == len(sb.leads)
    assert reader[0]["_id"] == first.lead_id
    assert reader[0]["email"] == (first.email or "")
    assert client.get(path, params={"format": "json"}).json() == []  # no state: empty
    assert client.get(path).text.strip().count("\n") == 0  # CSV header only
    wanted = {"scanned", "contacted"}
    filtered = client.get(path, params={"state": "scanned,contacted", "format": "json"}).json()
    assert len(filtered) == sum(lead.last_state in wanted for lead in sb.leads) > 0
    assert {row["lastState"] for row in filtered} <= wanted
    unknown = client.get("/campaigns/cam_nopeNopeNopeNope1/export/leads", params={"state": "all"})
    assert (unknown.status_code, unknown.text) == (404, "Campaign not found")


# ---------------------------------------------------------------------------- rate limit


def test_rate_limit_burst_of_25() -> None:
    with (
        run_sandbox(leads=20, seed=1) as sandbox,
        httpx.Client(base_url=sandbox.base_url, auth=("", sandbox.api_key)) as c,
    ):
        answers = [c.get("/team/credits") for _ in range(25)]
        statuses = [answer.status_code for answer in answers]
        assert statuses == [200] * 20 + [429] * 5
        assert [a.headers["x-ratelimit-remaining"] for a in answers[:3]] == ["19", "18", "17"]
        for answer in answers[20:]:
            assert answer.text == "Too Many Requests"
            assert 1 <= int(answer.headers["retry-after"]) <= 2
            assert answer.headers["x-ratelimit-limit"] == "20"
            assert answer.headers["x-ratelimit-remaining"] == "0"
            assert JS_DATE_RE.match(answer.headers["x-ratelimit-reset"])
        stats = sandbox.stats()
        assert stats.count_429 == 5 and stats.count_429_injected == 0
        assert stats.max_requests_in_window(2.0) == 25 == stats.total_requests
        assert stats.max_requests_in_window(2.0, key=sandbox.api_key) == 25
        assert stats.max_requests_in_window(2.0, key="other") == 0


def test_rate_limit_window_slides() -> None:
    with (
        run_sandbox(leads=20, rate_limit=3, rate_window_seconds=0.4) as sandbox,
        httpx.Client(base_url=sandbox.base_url, auth=("", sandbox.api_key)) as c,
    ):
        assert [c.get("/team/credits").status_code for _ in range(4)] == [200, 200, 200, 429]
        time.sleep(0.45)
        assert [c.get("/nope/x").status_code for _ in range(2)] == [200, 200]  # not limited
        assert [c.get("/team/credits").status_code for _ in range(4)] == [200, 200, 200, 429]
        stats = sandbox.stats()
        assert stats.max_requests_in_window(0.4) == 4
        assert stats.max_requests_in_window(10.0) == 8


def test_latency_is_added() -> None:
    with run_sandbox(leads=20, latency_seconds=(0.3, 0.3)) as sandbox:
        started = time.monotonic()
        assert (
            httpx.get(sandbox.base_url + "/team/credits", auth=("", sandbox.api_key)).status_code
            == 200
        )
        assert time.monotonic() - started >= 0.3


# ---------------------------------------------------------------------------- faults


def test_fault_5xx(client: httpx.Client, sb: Sandbox) -> None:
    lead = pick(sb, LeadKind.FINDABLE)
    sb.configure(fault_5xx_rate=1.0)
    post = enrich(client, lead.lead_id, findEmail="true")
    assert post.status_code == 500 and post.json() == {"error": "Failed to enrich lead"}
    other = client.get("/team/credits")
    assert (other.status_code, other.text) == (500, "Internal Server Error")
    assert other.headers["retry-after"] == "2"
    assert sb.stats().enrichments_started == 0
    sb.configure(fault_5xx_rate=0.0)
    assert enrich(client, lead.lead_id, findEmail="true").status_code == 200


def test_fault_drop_closes_connection_without_response(client: httpx.Client, sb: Sandbox) -> None:
    lead = pick(sb, LeadKind.FINDABLE)
    sb.configure(fault_drop_rate=1.0)
    for _ in range(3):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            enrich(client, lead.lead_id, findEmail="true")
    with pytest.raises(httpx.TransportError):
        client.get("/team/credits")
    stats = sb.stats()
    assert stats.enrichments_started == 0 and stats.faults_injected["drop"] == 4
    assert stats.enrich_posts_by_lead == {lead.lead_id: 3}
    assert stats.enrich_posts_processed_by_lead == {}
    assert 500 not in stats.responses_by_status
    sb.configure(fault_drop_rate=0.0)
    assert enrich(client, lead.lead_id, findEmail="true").status_code == 200


def test_fault_slow_does_the_work(client: httpx.Client, sb: Sandbox) -> None:
    lead = pick(sb, LeadKind.FINDABLE)
    sb.configure(fault_slow_rate=1.0, fault_slow_seconds=0.6)
    with pytest.raises(httpx.ReadTimeout):
        client.post(f"/leads/{lead.lead_id}/enrich", params={"findEmail": "true"}, timeout=0.2)
    assert sb.stats().enrichments_started == 0  # still sleeping
    assert eventually(lambda: sb.stats().enrichments_started_by_lead == {lead.lead_id: 1})
    started = time.monotonic()
    assert client.get("/team/credits").status_code == 200
    assert time.monotonic() - started >= 0.6


@pytest.mark.parametrize("retry_after", ["1", "0", "-5", "abc", "99999", None])
def test_fault_injected_429(retry_after: str | None) -> None:
    with (
        run_sandbox(
            leads=20, rate_limit=2, fault_429_rate=1.0, fault_retry_after=retry_after
        ) as sandbox,
        httpx.Client(base_url=sandbox.base_url, auth=("", sandbox.api_key)) as c,
    ):
        answers = [c.get("/team/credits") for _ in range(4)]
        assert {answer.status_code for answer in answers} == {429}
        assert answers[0].headers.get("retry-after") == retry_after
        assert answers[0].headers["x-ratelimit-limit"] == "2"
        stats = sandbox.stats()
        assert stats.count_429 == stats.count_429_injected == 4
        sandbox.configure(fault_429_rate=0.0)  # injected 429s did not use the real budget
        assert [c.get("/team/credits").status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize("kind", ["html", "invalid_json", "wrong_shape", "empty", "huge"])
def test_fault_malformed(kind: str) -> None:
    with (
        run_sandbox(
            leads=30,
            fault_malformed_rate=1.0,
            fault_malformed_kind=kind,
            fault_routes={"enrich_post"},
        ) as sandbox,
        httpx.Client(base_url=sandbox.base_url, auth=("", sandbox.api_key)) as c,
    ):
        lead = pick(sandbox, LeadKind.FINDABLE)
        answer = enrich(c, lead.lead_id, findEmail="true")
        assert answer.status_code == 200
        content_type = answer.headers["content-type"]
        if kind == "html":
            assert content_type.startswith("text/html") and "<html" in answer.text
        else:
            assert content_type.startswith("application/json")
        if kind == "invalid_json":
            assert answer.text == '{"id": '
            with pytest.raises(json.JSONDecodeError):
                answer.json()
        elif kind == "wrong_shape":
            assert answer.json() == {"unexpected": True}
        elif kind == "empty":
            assert answer.content == b""
        elif kind == "huge":
            assert len(answer.content) > 4_000_000 and isinstance(answer.json(), dict)
        assert sandbox.stats().enrichments_started == 0
        assert c.get("/team/credits").status_code == 200  # route not in fault_routes


def test_fault_routes_limit_where_faults_apply(client: httpx.Client, sb: Sandbox) -> None:
    sb.configure(fault_5xx_rate=1.0, fault_routes={"enrich_get"})
    assert client.get("/team/credits").status_code == 200
    assert client.get("/enrich/enr_x").status_code == 500


# ---------------------------------------------------------------------------- webhooks


def test_webhook_delivered_with_documented_payload(client: httpx.Client, sb: Sandbox) -> None:
    lead = pick(sb, LeadKind.FINDABLE, lambda x: bool(x.linkedin_url and not x.true_phone))
    with Receiver() as receiver:
        started = enrich(
            client,
            lead.lead_id,
            findEmail="true",
            findPhone="true",
            linkedinEnrichment="true",
            webhookUrl=receiver.url() + "?token=s3cret",
        )
        enrichment_id = started.json()["id"]
        path, payload = receiver.next()
    assert path == "/hook?token=s3cret"
    assert payload["type"] == "enrichmentDone"
    assert [item["id"] for item in payload["data"]] == [enrichment_id]
    data = payload["data"][0]["data"]
    assert set(data) == {"find_email", "find_phone", "linkedin_enrichment"}
    assert data["find_email"] == {"email": lead.true_email, "status": lead.true_email_status}
    assert data["find_phone"] == {"phone": None, "notFound": True}
    assert data["linkedin_enrichment"]["linkedinUrl"] == lead.linkedin_url
    assert eventually(lambda: len(sb.stats().webhook_deliveries) == 1)
    deliveries = sb.stats().webhook_deliveries
    assert deliveries[0].url == receiver.url() and "s3cret" not in deliveries[0].url
    assert (deliveries[0].status_code, deliveries[0].ok, deliveries[0].attempts) == (200, True, 1)


def test_webhook_verify_not_found_error_and_duplicates(client: httpx.Client, sb: Sandbox) -> None:
    with Receiver() as receiver:
        missing = pick(sb, LeadKind.NOT_FINDABLE)
        enrich(client, missing.lead_id, findEmail="true", webhookUrl=receiver.url())
        assert receiver.next()[1]["data"][0]["data"] == {
            "find_email": {"email": None, "status": None, "notFound": True}
        }
        unverified = pick(sb, LeadKind.EMAIL_UNVERIFIED)
        enrich(
            client,
            unverified.lead_id,
            verifyEmail="true",
            webhookUrl=f"http://localhost:{receiver.port}/v",
        )
        assert receiver.next()[1]["data"][0]["data"] == {
            "verify": {"status": unverified.true_email_status}
        }
        sb.configure(enrichment_unknown_status_rate=1.0, webhook_duplicate_rate=1.0)
        failing = pick(sb, LeadKind.FINDABLE)
        enrich(client, failing.lead_id, findEmail="true", webhookUrl=receiver.url())
        first, second = receiver.next()[1], receiver.next()[1]
        assert first == second and first["type"] == "enrichmentError"
    assert eventually(lambda: len(sb.stats().webhook_deliveries) == 4)


def test_webhook_retried_after_failure(client: httpx.Client, sb: Sandbox) -> None:
    with Receiver(fail_first=1) as receiver:
        enrich(
            client, pick(sb, LeadKind.FINDABLE).lead_id, findEmail="true", webhookUrl=receiver.url()
        )
        receiver.next()
        started = time.monotonic()
        receiver.next(timeout=3)
        assert time.monotonic() - started >= 0.8
        assert eventually(lambda: bool(sb.stats().webhook_deliveries))
    (delivery,) = sb.stats().webhook_deliveries
    assert (delivery.attempts, delivery.ok, delivery.status_code) == (2, True, 200)


# ---------------------------------------------------------------------------- stats & CLI


def test_reset_stats_keeps_world(client: httpx.Client, sb: Sandbox) -> None:
    client.get("/team/credits")
    assert sb.stats().total_requests == 1
    sb.reset_stats()
    stats = sb.stats()
    assert isinstance(stats, SandboxStats)
    assert (stats.total_requests, stats.arrival_times, stats.credits_remaining) == (0, {}, 100_000)


def test_cli_starts_prints_and_stops_on_sigint() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect_lemlist.sandbox",
            "--port",
            "0",
            "--leads",
            "20",
            "--seed",
            "4",
            "--api-key",
            "cli-key",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: list[str] = []
        assert process.stdout is not None
        while not any(line.startswith("Press Ctrl-C") for line in lines):
            line = process.stdout.readline()
            assert line, f"CLI exited early: {process.stderr.read() if process.stderr else ''}"
            lines.append(line)
        output = "".join(lines)
        base_url = re.search(r"(http://127\.0\.0\.1:\d+)", output).group(1)
        assert "cli-key" in output
        campaign = re.search(r"(cam_[A-Za-z0-9]{17})", output).group(1)
        answer = httpx.get(
            f"{base_url}/campaigns/{campaign}/export/leads",
            params={"state": "all", "format": "json"},
            auth=("", "cli-key"),
        )
        assert answer.status_code == 200 and len(answer.json()) == 20
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        assert "Traceback" not in (process.stderr.read() if process.stderr else "")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
