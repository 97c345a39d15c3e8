"""The sandbox's contacts side: seeded people, POST /enrich, bulk, team, leads by email, knobs.

Everything goes over real loopback HTTP with plain httpx, like a client would.
"""

from __future__ import annotations

import csv
import io
import json
import queue
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _sandbox_http import credits, eventually, wait_done
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from prefect_lemlist.sandbox import (
    LeadKind,
    PersonTruth,
    Sandbox,
    SandboxConfig,
    generate_people,
    normalize_inputs,
    person_key,
    person_truth,
    row_inputs,
    run_sandbox,
    write_people_file,
)
from prefect_lemlist.sandbox.people import (
    PEOPLE_COLUMNS,
    REQUIRED_INPUTS,
    inputs_allow,
    missing_input_error,
)
from prefect_lemlist.sandbox.threaded_server import ThreadedASGIServer

SEED = 11
FAST: dict[str, Any] = {
    "leads": 30,
    "seed": SEED,
    "enrichment_seconds": (0.1, 0.3),
    "rate_limit": 10_000,
}
ENR_RE = re.compile(r"^enr_[A-Za-z0-9]{17}$")
ALL_FLAGS = {"findEmail": "true", "linkedinEnrichment": "true", "findPhone": "true"}
ALL_WORKFLOWS = ["find_email", "linkedin_enrichment", "find_phone"]
NO_FLAG = (
    "No enrichment requested (findEmail, findPhone, linkedinEnrichment or verifyEmail required)"
)


# ---------------------------------------------------------------------------- helpers


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    """A fresh sandbox with fast enrichments and the rate limit out of the way."""
    with run_sandbox(SandboxConfig(**FAST)) as sandbox:
        yield sandbox


@pytest.fixture
def client(sb: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sb.base_url, auth=("", sb.api_key), timeout=10) as c:
        yield c


def unique_people(n: int = 400, seed: int = SEED) -> list[dict[str, str]]:
    """Well-formed people rows, one per person (no duplicates, no malformed values)."""
    seen: set[str] = set()
    rows = []
    for row in generate_people(n, seed):
        key = person_key(row)
        malformed = (row["email"] and "@" not in row["email"]) or (
            row["linkedin_url"] and not row["linkedin_url"].startswith("https://www.")
        )
        if key in seen or malformed:
            continue
        seen.add(key)
        rows.append(row)
    return rows


def full_rows(where: Callable[[PersonTruth], bool] = lambda t: True) -> list[dict[str, str]]:
    """Rows with a linkedinUrl, name + company + domain and no email, whose truth matches."""
    return [
        row
        for row in unique_people()
        if row["linkedin_url"]
        and row["company_domain"]
        and not row["email"]
        and where(person_truth(row, SEED))
    ]


def expected_data(truth: PersonTruth) -> dict[str, Any]:
    """Polling `data` of a findEmail + linkedinEnrichment + findPhone enrichment."""
    email = (
        {"email": truth.email, "notFound": False, "status": truth.email_status}
        if truth.email
        else {"email": None, "notFound": True, "status": None}
    )
    phone = (
        {"phone": truth.phone, "notFound": False}
        if truth.phone
        else {"phone": None, "notFound": True}
    )
    linkedin = (
        {**truth.linkedin_profile, "notFound": False}
        if truth.linkedin_profile
        else {"notFound": True}
    )
    return {"email": email, "phone": phone, "linkedin": linkedin}


def expected_cost(truth: PersonTruth, linkedin_credits: int = 1) -> int:
    """Credits of a findEmail + linkedinEnrichment + findPhone enrichment."""
    cost = linkedin_credits
    if truth.email and truth.email_status in ("deliverable", "risky"):
        cost += 5
    if truth.phone:
        cost += 20
    return cost


class Receiver:
    """A webhook receiver: Starlette on `ThreadedASGIServer`, recording every POST."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[str, str, Any]] = queue.Queue()

        async def hook(request: Request) -> Response:
            self.calls.put((request.url.path, request.url.query, await request.json()))
            return Response(status_code=200)

        app = Starlette(routes=[Route("/{path:path}", hook, methods=["POST"])])
        self.server = ThreadedASGIServer(app)

    def __enter__(self) -> Receiver:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def url(self, path: str = "/hook") -> str:
        return f"{self.server.base_url}{path}"

    def next(self, timeout: float = 6.0) -> tuple[str, str, Any]:
        return self.calls.get(timeout=timeout)

    def by_id(self, count: int) -> dict[str, dict[str, Any]]:
        """Receive `count` webhooks; their single items by enrichment id."""
        items = {}
        for _ in range(count):
            _, _, payload = self.next()
            (item,) = payload["data"]
            items[item["id"]] = {**item, "type": payload["type"]}
        return items


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


# ---------------------------------------------------------------------------- people


def test_people_generator_shares_and_determinism(tmp_path: Path) -> None:
    rows = generate_people(1000, seed=5)
    assert rows == generate_people(1000, seed=5)
    assert rows != generate_people(1000, seed=6)
    assert all(tuple(row) == PEOPLE_COLUMNS for row in rows)
    assert all(isinstance(value, str) for row in rows for value in row.values())
    assert re.match(r"^p\d{6}$", rows[0]["person_id"])
    n = len(rows)
    linkedin = sum(bool(r["linkedin_url"]) for r in rows) / n
    company = sum(bool(r["first_name"] and r["company_name"] and r["company_domain"]) for r in rows)
    email = sum(bool(r["email"]) for r in rows) / n
    assert 0.38 <= linkedin <= 0.52 and 0.52 <= company / n <= 0.68 and 0.19 <= email <= 0.31
    only_name = [
        r
        for r in rows
        if r["first_name"] and not (r["linkedin_url"] or r["company_domain"] or r["email"])
    ]
    assert only_name and not any(inputs_allow("find_email", r) for r in only_name)
    bad = [
        r
        for r in rows
        if (r["email"] and "@" not in r["email"])
        or (r["linkedin_url"] and not r["linkedin_url"].lower().startswith("https://"))
    ]
    assert len(bad) == 20
    assert any(r["linkedin_url"].startswith("linkedin/") for r in bad)
    exact = [i for i, r in enumerate(rows) if r in rows[:i]]
    assert len(exact) == 30
    keys = [person_key(r) for r in rows]
    near = [
        i
        for i, r in enumerate(rows)
        if keys[i] in keys[:i]
        and r not in rows[:i]
        and r["person_id"] not in {x["person_id"] for x in rows[:i]}
    ]
    assert len(near) == 20
    source = next(r for r in rows[: near[0]] if person_key(r) == keys[near[0]])
    assert source != rows[near[0]]  # differs in raw text, same identity
    assert normalize_inputs(source) == {k: v for k, v in normalize_inputs(rows[near[0]]).items()}
    assert len(set(keys)) == n - 30 - 20  # fresh people never collide

    csv_path = write_people_file(tmp_path / "people.csv", rows[:50])
    read = list(csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8"))))
    assert csv_path.read_text().splitlines()[0] == ",".join(PEOPLE_COLUMNS)
    assert read == rows[:50]
    jsonl_path = write_people_file(tmp_path / "people.jsonl", rows[:50], format="jsonl")
    lines = jsonl_path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == rows[:50]
    with pytest.raises(ValueError):
        write_people_file(tmp_path / "x.xml", rows, format="xml")  # type: ignore[arg-type]


def test_normalize_person_key_and_required_inputs() -> None:
    raw = {
        "email": "  Ada.Lovelace@Acme.IO ",
        "linkedinUrl": "HTTPS://www.LinkedIn.com/in/Ada-L/",
        "firstName": " Ada ",
        "lastName": "Lovelace",
        "companyName": "",
        "companyDomain": " ACME.io",
        "jobTitle": " CTO ",
        "owner": "ignored",
        "phone": "+33",
    }
    assert normalize_inputs(raw) == {
        "email": "ada.lovelace@acme.io",
        "linkedinUrl": "https://www.linkedin.com/in/ada-l",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "companyDomain": "acme.io",
        "jobTitle": "CTO",
    }
    assert normalize_inputs({"firstName": None, "email": "   "}) == {}
    same = person_key(raw)
    assert same == person_key({**normalize_inputs(raw), "jobTitle": "CEO"})
    assert same != person_key({**raw, "firstName": "Adah"})
    assert '"jobTitle"' not in same and "ada.lovelace@acme.io" in same
    row = {"first_name": "Ada", "last_name": "Lovelace", "email": "ADA.lovelace@acme.io "}
    assert person_key(row) == person_key(row_inputs(row))
    assert person_key(row) == person_key(
        {"firstName": "Ada", "lastName": "Lovelace", "email": "ada.lovelace@acme.io"}
    )
    assert set(REQUIRED_INPUTS) == {"find_email", "find_phone", "verify", "linkedin_enrichment"}
    name_co = {"firstName": "A", "lastName": "B", "companyName": "C"}
    assert not inputs_allow("find_email", name_co)
    assert inputs_allow("find_email", {**name_co, "companyDomain": "c.io"})
    assert inputs_allow("linkedin_enrichment", name_co)
    assert not inputs_allow("linkedin_enrichment", {"firstName": "A", "lastName": "B"})
    assert inputs_allow("linkedin_enrichment", {"email": "a@b.co"})
    assert missing_input_error(["find_phone", "verify"], {"firstName": "A"}) == "MISSING_EMAIL"
    assert missing_input_error(["find_phone"], {"email": "a@b.co"}) == "MISSING_LINKEDIN_URL"
    assert missing_input_error(["verify"], {"email": "a@b.co"}) is None


def test_person_truth_is_a_function_of_identity_and_seed() -> None:
    rows = unique_people()
    truths = [person_truth(row, SEED) for row in rows]
    assert truths == [person_truth(row_inputs(row), SEED) for row in rows]
    messy = {
        k: f"  {v.upper() if k in ('email', 'company_domain') else v} " for k, v in rows[0].items()
    }
    assert person_truth(messy, SEED) == truths[0]
    assert truths != [person_truth(row, SEED + 1) for row in rows]
    with pytest.raises(AttributeError):
        truths[0].email = "x"  # type: ignore[misc]
    findable = [t for r, t in zip(rows, truths) if inputs_allow("find_email", r)]
    assert 0.55 <= sum(t.email is not None for t in findable) / len(findable) <= 0.85
    assert all(
        t.email is None and t.phone is None
        for r, t in zip(rows, truths)
        if not inputs_allow("find_email", r)
    )
    for row, truth in zip(rows, truths):
        if truth.email and row["first_name"] and row["company_domain"]:
            local = f"{row['first_name']}.{row['last_name']}".lower()
            assert truth.email == f"{local}@{row['company_domain']}"
        if truth.linkedin_profile and row["linkedin_url"]:
            assert truth.linkedin_profile["linkedinUrl"] == row["linkedin_url"]
        assert (truth.verify_status is None) == (not row["email"])
    with_linkedin = [t for r, t in zip(rows, truths) if r["linkedin_url"]]
    assert 0.25 <= sum(t.phone is not None for t in with_linkedin) / len(with_linkedin) <= 0.55
    bad_email = person_truth({"email": "john.doe.gmail.com"}, SEED)
    assert bad_email.verify_status == "undeliverable"
    bad_url = person_truth({"linkedinUrl": "linkedin/john"}, SEED)
    assert bad_url.email is None and bad_url.phone is None and bad_url.linkedin_profile is None


# ---------------------------------------------------------------------------- POST /enrich


def test_enrich_data_answers(client: httpx.Client, sb: Sandbox) -> None:
    full = {
        "firstName": "Ada",
        "lastName": "Lovelace",
        "companyName": "Acme",
        "companyDomain": "acme.io",
    }
    no_flag = client.post("/enrich", params=full)
    assert (no_flag.status_code, no_flag.text) == (400, NO_FLAG)
    assert no_flag.headers["content-type"].startswith("text/plain")
    bad_hook = client.post(
        "/enrich", params={**full, "findEmail": "true", "webhookUrl": "http://example.com/x"}
    )
    assert (bad_hook.status_code, bad_hook.text) == (400, "Invalid webhookUrl")
    for params in (
        {"findEmail": "true", "firstName": "Ada", "lastName": "L", "companyName": "Acme"},
        {"findPhone": "true", **full},
        {"verifyEmail": "true", **full},
        {"linkedinEnrichment": "true", "firstName": "Ada"},
        {"findEmail": "true", "verifyEmail": "true", **full},
        {"findEmail": "true", "email": "   ", "firstName": "Ada"},
    ):
        bad = client.post("/enrich", params=params)
        assert (bad.status_code, bad.text) == (400, "Bad request"), params
    unauth = httpx.post(f"{sb.base_url}/enrich", params={**full, "findEmail": "true"})
    assert (unauth.status_code, unauth.text) == (401, "Unauthorized")
    wrong = httpx.post(
        f"{sb.base_url}/enrich", params={**full, "findEmail": "true"}, auth=("", "nope")
    )
    assert (wrong.status_code, wrong.text) == (401, "The authentication you supplied is incorrect")
    assert client.get("/enrich").status_code == 405
    assert sb.stats().enrichments_started == 0

    messy = {**full, "companyDomain": " ACME.io ", "jobTitle": "CTO", "findEmail": "true"}
    ids = [client.post(path, params=messy).json()["id"] for path in ("/enrich", "/api/enrich/")]
    assert all(ENR_RE.match(i) for i in ids) and ids[0] != ids[1]  # no dedupe
    pending = client.get(f"/enrich/{ids[0]}")
    assert pending.status_code == 202
    assert pending.json() == {
        "enrichmentId": ids[0],
        "enrichmentStatus": "in-progress",
        "input": {**full, "companyDomain": "acme.io", "jobTitle": "CTO"},
        "data": {},
    }
    truth = person_truth(full, SEED)
    bodies = [wait_done(client, i).json() for i in ids]
    email = expected_data(truth)["email"]
    assert [b["data"] for b in bodies] == [{"email": email}] * 2
    assert bodies[0]["enrichmentStatus"] == "done"
    paid = 5 if truth.email_status in ("deliverable", "risky") else 0
    stats = sb.stats()
    assert stats.credits_used == 2 * paid == 100_000 - credits(client)
    assert stats.enrichments_started_by_route == {"enrich_data": 2}
    assert stats.enrichments_started_by_person == {person_key(full): 2}
    assert stats.requests_by_route["enrich_data"] == 13
    assert stats.enrichments_started == 2


def test_enrich_data_verify_and_linkedin_costs(client: httpx.Client, sb: Sandbox) -> None:
    sb.configure(linkedin_credits=2)
    given = {"email": "Grace.Hopper@Navy.mil", "verifyEmail": "true", "linkedinEnrichment": "true"}
    body = wait_done(client, client.post("/enrich", params=given).json()["id"]).json()
    truth = person_truth({"email": "grace.hopper@navy.mil"}, SEED)
    assert body["data"]["email"] == {
        "email": "grace.hopper@navy.mil",
        "notFound": False,
        "status": truth.verify_status,
    }
    assert body["data"]["linkedin"] == expected_data(truth)["linkedin"]
    assert sb.stats().credits_used == 1 + 2


# ---------------------------------------------------------------------------- bulk


def test_bulk_whole_request_errors_start_nothing(client: httpx.Client, sb: Sandbox) -> None:
    ok = {"input": {"email": "a@b.co"}, "enrichmentRequests": ["verify"]}
    cases: list[tuple[Any, str]] = [
        (b"not json", "WRONG_BODY_FORMAT"),
        (b"", "WRONG_BODY_FORMAT"),
        ({"input": {}}, "WRONG_BODY_FORMAT"),
        ([ok, "item"], "WRONG_BODY_FORMAT"),
        ([], "NO_ENRICHMENTS_REQUESTED"),
        ([ok] * 501, "TOO_MANY_ENRICHMENTS_REQUESTED"),
        ([{"input": "a@b.co", "enrichmentRequests": ["verify"]}], "WRONG_INPUT_FORMAT"),
        ([{"enrichmentRequests": ["verify"]}], "WRONG_INPUT_FORMAT"),
        ([{"input": {"email": 3}, "enrichmentRequests": ["verify"]}], "WRONG_INPUT_FORMAT"),
        ([{**ok, "metadata": 3}], "WRONG_METADATA_FORMAT"),
        ([{**ok, "metadata": ["a"]}], "WRONG_METADATA_FORMAT"),
        ([ok, {"input": {"email": "a@b.co"}}], "WRONG_ENRICHMENT_REQUEST_FORMAT"),
        ([{**ok, "enrichmentRequests": "verify"}], "WRONG_ENRICHMENT_REQUEST_FORMAT"),
        ([{**ok, "enrichmentRequests": ["verify", 1]}], "WRONG_ENRICHMENT_REQUEST_FORMAT"),
        ([{**ok, "enrichmentRequests": []}], "NO_WORKFLOW_REQUESTED"),
        (
            [ok, {**ok, "enrichmentRequests": ["verify", "findEmail"]}],
            "UNAUTHORIZED_WORKFLOW_REQUESTED",
        ),
    ]
    for body, code in cases:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        answer = client.post("/v2/enrichments/bulk", content=content)
        assert answer.status_code == 400, code
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.json() == {"error": code}
    bad_hook = client.post(
        "/v2/enrichments/bulk", json=[ok], params={"webhookUrl": "ftp://127.0.0.1/x"}
    )
    assert (bad_hook.status_code, bad_hook.text) == (400, "Invalid webhookUrl")
    unauth = httpx.post(f"{sb.base_url}/v2/enrichments/bulk", json=[ok])
    assert unauth.status_code == 401
    assert client.get("/v2/enrichments/bulk").status_code == 405
    stats = sb.stats()
    assert stats.enrichments_started == 0 and stats.bulk_items == 0
    assert stats.requests_by_route["bulk"] == len(cases) + 3
    assert credits(client) == 100_000


def test_bulk_per_item_errors_order_and_metadata(client: httpx.Client, sb: Sandbox) -> None:
    url = "https://www.linkedin.com/in/ada-l"
    items: list[dict[str, Any]] = [
        {"input": {"firstName": "Ada"}, "enrichmentRequests": ["find_email"], "metadata": "m1"},
        {"input": {"linkedinUrl": url}, "enrichmentRequests": ["verify"]},
        {"input": {"email": "x@y.co"}, "enrichmentRequests": ["find_phone"], "metadata": {"k": 1}},
        {
            "input": {"firstName": "A", "lastName": "B"},
            "enrichmentRequests": ["linkedin_enrichment"],
        },
        {"input": {"firstName": "A"}, "enrichmentRequests": ["find_phone", "verify"]},
        {"input": {"email": "a@b.co"}, "enrichmentRequests": ["find_phone", "find_email"]},
        {
            "input": {"email": " Ada@Acme.IO ", "phone": "+1", "jobTitle": None},
            "enrichmentRequests": ["verify", "verify"],
            "metadata": {"row": 7, "tags": ["a"]},
        },
        {"input": {"linkedinUrl": url}, "enrichmentRequests": ["find_phone"], "metadata": ""},
    ]
    answer = client.post("/api/v2/enrichments/bulk/", json=items)
    assert answer.status_code == 200
    body = answer.json()
    assert body[:6] == [
        {"error": "MISSING_INPUTS", "metadata": "m1"},
        {"error": "MISSING_EMAIL"},
        {"error": "MISSING_LINKEDIN_URL", "metadata": {"k": 1}},
        {"error": "MISSING_INPUTS"},
        {"error": "MISSING_EMAIL"},
        {"error": "MISSING_INPUTS"},
    ]
    assert set(body[6]) == {"id", "metadata"} and body[6]["metadata"] == {"row": 7, "tags": ["a"]}
    assert set(body[7]) == {"id", "metadata"} and body[7]["metadata"] == ""
    assert ENR_RE.match(body[6]["id"]) and body[6]["id"] != body[7]["id"]
    done = wait_done(client, body[6]["id"]).json()
    assert done["input"] == {"email": "ada@acme.io"}
    truth = person_truth({"email": "ada@acme.io"}, SEED)
    assert done["data"] == {
        "email": {"email": "ada@acme.io", "notFound": False, "status": truth.verify_status}
    }
    stats = sb.stats()
    assert stats.bulk_items == 8
    assert stats.enrichments_started_by_route == {"bulk": 2}
    assert stats.enrichments_started_by_person[person_key({"email": "ada@acme.io"})] == 1


def test_bulk_is_one_request_for_the_rate_limiter() -> None:
    with (
        run_sandbox(SandboxConfig(**{**FAST, "rate_limit": 2})) as sandbox,
        httpx.Client(base_url=sandbox.base_url, auth=("", sandbox.api_key), timeout=20) as c,
    ):
        items = [
            {"input": {"email": f"person{i}@acme.io"}, "enrichmentRequests": ["verify"]}
            for i in range(500)
        ]
        answer = c.post("/v2/enrichments/bulk", json=items)
        assert answer.status_code == 200 and len(answer.json()) == 500
        assert answer.headers["x-ratelimit-remaining"] == "1"
        assert [c.get("/team/credits").status_code for _ in range(2)] == [200, 429]
        stats = sandbox.stats()
        assert stats.requests_by_route["bulk"] == 1
        assert stats.max_requests_in_window(2.0) == 3
        assert stats.bulk_items == 500 and stats.enrichments_started_by_route == {"bulk": 500}
        assert len({item["id"] for item in answer.json()}) == 500
        assert eventually(lambda: sandbox.stats().credits_used == 500)


def test_bulk_webhooks_echo_metadata(client: httpx.Client, receiver: Receiver) -> None:
    rows = full_rows()[:3]
    items: list[dict[str, Any]] = [
        {
            "input": row_inputs(rows[0]),
            "enrichmentRequests": ALL_WORKFLOWS,
            "metadata": {"person_id": rows[0]["person_id"]},
        },
        {"input": row_inputs(rows[1]), "enrichmentRequests": ["find_email"], "metadata": "p-2"},
        {"input": row_inputs(rows[2]), "enrichmentRequests": ["linkedin_enrichment"]},
        {"input": {"firstName": "X"}, "enrichmentRequests": ["find_email"], "metadata": "bad"},
    ]
    answer = client.post(
        "/v2/enrichments/bulk", json=items, params={"webhookUrl": receiver.url("/bulk?t=1")}
    ).json()
    assert answer[3] == {"error": "MISSING_INPUTS", "metadata": "bad"}
    hooks = receiver.by_id(3)
    assert set(hooks) == {a["id"] for a in answer[:3]}
    first, second, third = (hooks[a["id"]] for a in answer[:3])
    assert first["metadata"] == {"person_id": rows[0]["person_id"]}
    assert second["metadata"] == "p-2"
    assert "metadata" not in third and set(third) == {"id", "data", "type"}
    assert {h["type"] for h in hooks.values()} == {"enrichmentDone"}
    assert set(first["data"]) == {"find_email", "linkedin_enrichment", "find_phone"}
    truth = person_truth(rows[1], SEED)
    expected = (
        {"email": truth.email, "status": truth.email_status}
        if truth.email
        else {"email": None, "status": None, "notFound": True}
    )
    assert second["data"] == {"find_email": expected}
    with pytest.raises(queue.Empty):
        receiver.next(timeout=0.5)  # the failed item started nothing


# ---------------------------------------------------------------------------- same truth


def test_same_person_same_result_on_every_route(client: httpx.Client, sb: Sandbox) -> None:
    rows: list[dict[str, str]] = []
    for wanted, count in (
        (lambda t: bool(t.phone), 2),
        (lambda t: not t.email, 2),
        (lambda t: bool(t.email and not t.phone), 3),
    ):
        rows += [row for row in full_rows(wanted) if row not in rows][:count]
    assert len({person_key(row) for row in rows}) == 7
    campaign_id, lead_ids = sb.add_campaign_from_people(rows, name="Determinism")
    via_lead = [client.post(f"/leads/{lid}/enrich", params=ALL_FLAGS) for lid in lead_ids]
    via_enrich = [client.post("/enrich", params={**row_inputs(r), **ALL_FLAGS}) for r in rows]
    bulk = client.post(
        "/v2/enrichments/bulk",
        json=[{"input": row_inputs(r), "enrichmentRequests": ALL_WORKFLOWS} for r in rows],
    )
    ids = [
        [a.json()["id"] for a in via_lead],
        [a.json()["id"] for a in via_enrich],
        [item["id"] for item in bulk.json()],
    ]
    results = [[wait_done(client, i).json()["data"] for i in route] for route in ids]
    truths = [person_truth(row, SEED) for row in rows]
    assert results[0] == results[1] == results[2] == [expected_data(t) for t in truths]
    assert any(t.email for t in truths) and any(not t.email for t in truths)
    assert any(t.phone for t in truths)
    stats = sb.stats()
    assert stats.enrichments_started_by_person == {person_key(r): 3 for r in rows}
    contacts = [sb.person_lead(lid).contact_id for lid in lead_ids]
    assert stats.enrichments_started_by_contact == {cid: 1 for cid in contacts}
    assert stats.enrichments_started_by_lead == {lid: 1 for lid in lead_ids}
    assert stats.enrichments_started_by_route == {"enrich_post": 7, "enrich_data": 7, "bulk": 7}
    cost = sum(expected_cost(t) for t in truths)
    assert stats.credits_used == 3 * cost == 100_000 - credits(client)
    # the lead path wrote the results back onto the contacts
    for lid, truth in zip(lead_ids, truths):
        contact = sb.contact(lid)
        assert (contact.email, contact.phone) == (truth.email, truth.phone)
    again = client.post(f"/leads/{lead_ids[0]}/enrich", params=ALL_FLAGS)
    assert again.status_code == 409 and again.json()["code"] == "ALREADY_ENRICHED"
    assert campaign_id in sb.campaign_ids


# ---------------------------------------------------------------------------- campaigns


def test_people_campaign_contacts_export_and_leads_by_email(
    client: httpx.Client, sb: Sandbox
) -> None:
    rows = unique_people()
    with_email = [r for r in rows if r["email"]][:3]
    others = [r for r in rows if not r["email"]][:3]
    near = {k: f" {v.upper()} " if k == "email" else v for k, v in with_email[0].items()}
    first_rows = [*with_email, *others, near]
    cam1, leads1 = sb.add_campaign_from_people(first_rows, name="First")
    cam2, leads2 = sb.add_campaign_from_people(with_email[:2] + others[:1])
    assert sb.campaign_ids == [sb.campaign_id, cam1, cam2]
    assert len(set(leads1 + leads2)) == 10
    contact = {lid: sb.person_lead(lid).contact_id for lid in leads1 + leads2}
    assert contact[leads1[0]] == contact[leads1[6]] == contact[leads2[0]]  # same person
    assert len({contact[lid] for lid in leads1}) == 6
    assert sb.person_lead(leads1[6]).person_key == person_key(with_email[0])

    export = client.get(
        f"/campaigns/{cam1}/export/leads", params={"state": "all", "format": "json"}
    ).json()
    assert [row["_id"] for row in export] == leads1
    assert export[0]["email"] == with_email[0]["email"].lower()
    assert export[3]["linkedinUrl"] == (others[0]["linkedin_url"].lower() or None)
    as_csv = client.get(f"/campaigns/{cam2}/export/leads", params={"state": "all"})
    assert len(list(csv.DictReader(io.StringIO(as_csv.text)))) == 3
    seeded = client.get(
        f"/campaigns/{sb.campaign_id}/export/leads", params={"state": "all", "format": "json"}
    ).json()
    assert [row["_id"] for row in seeded] == [lead.lead_id for lead in sb.leads]
    missing = client.get("/campaigns/cam_nopeNopeNopeNope1/export/leads", params={"state": "all"})
    assert (missing.status_code, missing.text) == (404, "Campaign not found")

    email = with_email[0]["email"]
    found = client.get(f"/leads/{email.upper()}", params={"version": "v2"})
    assert found.status_code == 200
    items = found.json()
    assert [item["_id"] for item in items] == [leads1[0], leads1[6], leads2[0]]
    assert [item["campaign"]["id"] for item in items] == [cam1, cam1, cam2]
    assert items[0]["campaign"] == {"id": cam1, "name": "First", "status": "running"}
    assert {item["contactId"] for item in items} == {contact[leads1[0]]}
    for item in items:
        assert {
            "_id",
            "updatedAt",
            "isPaused",
            "state",
            "status",
            "contactId",
            "variables",
            "campaign",
        } <= set(item)
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", item["updatedAt"])
        assert item["variables"]["email"] == email.lower()
        assert item["variables"]["firstName"] == with_email[0]["first_name"]
        assert item["isPaused"] is False
    v1 = client.get(f"/api/leads/{email}/").json()
    assert v1["_id"] == leads1[0] and v1["campaignId"] == cam1 and v1["email"] == email.lower()
    lone = client.get(f"/leads/{with_email[2]['email']}", params={"version": "v2"}).json()
    assert [item["_id"] for item in lone] == [leads1[2]]
    nobody = client.get("/leads/nobody@nowhere.io", params={"version": "v2"})
    assert (nobody.status_code, nobody.text) == (404, "Lead not found")
    assert nobody.headers["content-type"].startswith("text/plain")
    assert client.get(f"/leads/{leads1[0]}", params={"version": "v2"}).status_code == 404
    verified = next(lead for lead in sb.leads if lead.kind is LeadKind.EMAIL_VERIFIED)
    seeded_items = client.get(f"/leads/{verified.email}", params={"version": "v2"}).json()
    assert seeded_items[0]["_id"] == verified.lead_id
    assert seeded_items[0]["campaign"]["id"] == sb.campaign_id
    assert sb.stats().requests_by_route["lead_by_email"] == 6


def test_found_email_makes_the_lead_findable_by_email(client: httpx.Client, sb: Sandbox) -> None:
    row = full_rows(lambda t: bool(t.email))[0]
    truth = person_truth(row, SEED)
    _, (lead_id,) = sb.add_campaign_from_people([row])
    assert client.get(f"/leads/{truth.email}", params={"version": "v2"}).status_code == 404
    started = client.post(f"/leads/{lead_id}/enrich", params={"findEmail": "true"})
    wait_done(client, started.json()["id"])
    items = client.get(f"/leads/{truth.email}", params={"version": "v2"}).json()
    assert [item["_id"] for item in items] == [lead_id]
    assert items[0]["enrichment"] == {"emailStatus": truth.email_status}


# ---------------------------------------------------------------------------- team


def test_team_is_shared_by_every_key() -> None:
    config = SandboxConfig(**FAST, api_keys=["key-one", "key-two"])
    with run_sandbox(config) as sandbox:
        bodies = [
            httpx.get(f"{sandbox.base_url}/team", auth=("", key)).json()
            for key in ("key-one", "key-two")
        ]
        v2 = httpx.get(
            f"{sandbox.base_url}/api/team/", params={"version": "v2"}, auth=("", "key-two")
        ).json()
        unauth = httpx.get(f"{sandbox.base_url}/team", auth=("", "key-three"))
        stats = sandbox.stats()
    assert bodies[0] == bodies[1]
    team = bodies[0]
    assert re.match(r"^tea_[A-Za-z0-9]{17}$", team["_id"]) and team["_id"] == sandbox.team_id
    assert team["name"] == "Sandbox team"
    assert len(team["userIds"]) == 2 and all(u.startswith("usr_") for u in team["userIds"])
    assert "users" not in team and [u["_id"] for u in v2["users"]] == team["userIds"]
    assert unauth.status_code == 401
    assert stats.requests_by_route["team"] == 4
    with run_sandbox(SandboxConfig(**FAST)) as same_seed:  # every sandbox is its own team
        assert same_seed.team_id != team["_id"]
    with run_sandbox(SandboxConfig(**FAST, team_id="tea_myOwnTeam000001")) as fixed:
        answer = httpx.get(f"{fixed.base_url}/team", auth=("", fixed.api_key)).json()
        assert answer["_id"] == "tea_myOwnTeam000001"


# ---------------------------------------------------------------------------- knobs


def test_config_knobs_defaults_and_validation() -> None:
    config = SandboxConfig()
    assert (config.webhook_body_style, config.webhook_strip_query) == ("documented", False)
    assert (config.out_of_credits_answer, config.revoke_key_after_requests) == ("400", None)
    assert (config.export_route, config.export_v1_missing_status) == ("v1", 200)
    assert (config.state_file, config.team_id, config.linkedin_credits) == (None, None, 1)
    assert {"enrich_data", "bulk", "team", "lead_by_email"} <= config.fault_routes
    for bad in (
        {"webhook_body_style": "fancy"},
        {"out_of_credits_answer": "403"},
        {"revoke_key_after_requests": -1},
        {"export_route": "v3"},
        {"export_v1_missing_status": 302},
        {"linkedin_credits": -1},
        {"team_id": ""},
        {"fault_routes": {"bulk", "nope"}},
    ):
        with pytest.raises(ValidationError):
            SandboxConfig(**bad)


def test_webhook_body_styles(client: httpx.Client, sb: Sandbox, receiver: Receiver) -> None:
    row = full_rows(lambda t: bool(t.email and not t.phone and t.linkedin_profile))[0]
    truth = person_truth(row, SEED)
    params = {**row_inputs(row), **ALL_FLAGS}
    received: dict[str, dict[str, Any]] = {}
    polled: list[dict[str, Any]] = []
    for style in (
        "documented",
        "empty_data",
        "nulls",
        "not_found_flags",
        "unknown_keys",
        "polling_keys",
    ):
        sb.configure(webhook_body_style=style)
        enrichment_id = client.post(
            "/enrich", params={**params, "webhookUrl": receiver.url(f"/{style}")}
        ).json()["id"]
        path, _, payload = receiver.next()
        assert path == f"/{style}" and payload["type"] == "enrichmentDone"
        assert payload["data"][0]["id"] == enrichment_id
        received[style] = payload["data"][0]["data"]
        polled.append(client.get(f"/enrich/{enrichment_id}").json()["data"])
    assert all(p == expected_data(truth) for p in polled)  # polling never changes
    found_email = {"email": truth.email, "status": truth.email_status}
    documented = received["documented"]
    assert documented["find_email"] == found_email
    assert documented["find_phone"] == {"phone": None, "notFound": True}
    assert documented["linkedin_enrichment"] == truth.linkedin_profile
    assert received["empty_data"] == {}
    assert received["nulls"] == {
        "find_email": None,
        "linkedin_enrichment": None,
        "find_phone": None,
    }
    assert received["not_found_flags"] == {
        "find_email": found_email,
        "linkedin_enrichment": truth.linkedin_profile,
        "find_phone": {"notFound": True},
    }
    assert received["unknown_keys"] == {
        "emailFinder": found_email,
        "linkedinEnricher": truth.linkedin_profile,
        "phoneFinder": {"phone": None, "notFound": True},
    }
    assert received["polling_keys"] == expected_data(truth)


def test_webhook_strip_query(client: httpx.Client, sb: Sandbox, receiver: Receiver) -> None:
    params = {"email": "someone@acme.io", "verifyEmail": "true"}
    client.post("/enrich", params={**params, "webhookUrl": receiver.url("/h?token=s3cret")})
    assert receiver.next()[:2] == ("/h", "token=s3cret")
    sb.configure(webhook_strip_query=True)
    client.post("/enrich", params={**params, "webhookUrl": receiver.url("/h?token=s3cret")})
    assert receiver.next()[:2] == ("/h", "")
    sb.configure(webhook_strip_query=False)
    client.post("/enrich", params={**params, "webhookUrl": receiver.url("/h?token=again")})
    assert receiver.next()[:2] == ("/h", "token=again")


@pytest.mark.parametrize(
    ("answer", "status", "text"),
    [("400", 400, "Not enough credits"), ("402", 402, "Payment Required: not enough credits")],
)
def test_out_of_credits_refused(answer: str, status: int, text: str) -> None:
    with (
        run_sandbox(SandboxConfig(**FAST, out_of_credits_answer=answer)) as sandbox,
        httpx.Client(base_url=sandbox.base_url, auth=("", sandbox.api_key)) as c,
    ):
        lead = next(lead for lead in sandbox.leads if lead.kind is LeadKind.FINDABLE)
        sandbox.configure(credits=1)
        assert c.post(f"/leads/{lead.lead_id}/enrich", params={"verifyEmail": "true"}).status_code
        started = c.post("/enrich", params={"email": "a@b.co", "verifyEmail": "true"})
        assert started.status_code == 200  # 1 credit left: accepted
        wait_done(c, started.json()["id"])
        assert credits(c) == 0
        item = {"input": {"email": "a@b.co"}, "enrichmentRequests": ["verify"]}
        bad_item = {"input": {}, "enrichmentRequests": ["verify"]}
        answers = [
            c.post(f"/leads/{lead.lead_id}/enrich", params={"findEmail": "true"}),
            c.post("/enrich", params={"email": "a@b.co", "verifyEmail": "true"}),
            c.post("/v2/enrichments/bulk", json=[item, bad_item]),
        ]
        for refused in answers:
            assert (refused.status_code, refused.text) == (status, text)
            assert refused.headers["content-type"].startswith("text/plain")
        only_errors = c.post("/v2/enrichments/bulk", json=[bad_item])
        assert only_errors.json() == [{"error": "MISSING_EMAIL"}]  # nothing would start
        not_found = c.post("/leads/lea_" + "Z" * 17 + "/enrich", params={"findEmail": "true"})
        assert not_found.status_code == 404  # other checks come first
        stats = sandbox.stats()
        assert stats.enrichments_started_by_route == {"enrich_data": 1}
        assert stats.bulk_items == 1
        sandbox.configure(credits=50)
        assert (
            c.post("/enrich", params={"email": "a@b.co", "verifyEmail": "true"}).status_code == 200
        )


def test_out_of_credits_accept_then_fail(receiver: Receiver) -> None:
    config = SandboxConfig(**FAST, out_of_credits_answer="accept_then_fail", credits=0)
    with (
        run_sandbox(config) as sandbox,
        httpx.Client(base_url=sandbox.base_url, auth=("", sandbox.api_key)) as c,
    ):
        lead = next(lead for lead in sandbox.leads if lead.kind is LeadKind.FINDABLE)
        hook = receiver.url("/fail")
        ids = [
            c.post(
                f"/leads/{lead.lead_id}/enrich", params={"findEmail": "true", "webhookUrl": hook}
            ).json()["id"],
            c.post(
                "/enrich", params={"email": "a@b.co", "verifyEmail": "true", "webhookUrl": hook}
            ).json()["id"],
            *(
                item["id"]
                for item in c.post(
                    "/v2/enrichments/bulk",
                    params={"webhookUrl": hook},
                    json=[
                        {
                            "input": {"email": "a@b.co"},
                            "enrichmentRequests": ["verify"],
                            "metadata": "m",
                        }
                    ],
                ).json()
            ),
        ]
        assert all(ENR_RE.match(i) for i in ids)
        for enrichment_id in ids:
            body = wait_done(c, enrichment_id).json()
            assert (body["enrichmentStatus"], body["data"]) == ("error", {})
        hooks = receiver.by_id(3)
        assert set(hooks) == set(ids)
        assert {h["type"] for h in hooks.values()} == {"enrichmentError"}
        assert all(h["data"] == {} for h in hooks.values())
        assert hooks[ids[2]]["metadata"] == "m"
        stats = sandbox.stats()
        assert stats.credits_used == 0 and credits(c) == 0
        assert sandbox.contact(lead.lead_id).email is None


def test_key_revocation_after_n_requests() -> None:
    config = SandboxConfig(**FAST, api_keys=["first", "second"], revoke_key_after_requests=3)
    with run_sandbox(config) as sandbox:
        url = sandbox.base_url
        first = [httpx.get(f"{url}/team/credits", auth=("", "first")) for _ in range(3)]
        assert [a.status_code for a in first] == [200, 200, 200]
        after = [
            httpx.get(f"{url}/team/credits", auth=("", "first")),
            httpx.get(f"{url}/team", auth=("", "first")),
            httpx.post(
                f"{url}/enrich",
                params={"email": "a@b.co", "verifyEmail": "true"},
                auth=("", "first"),
            ),
            httpx.get(f"{url}/enrich/enr_x", auth=("", "first")),
        ]
        for answer in after:
            assert (answer.status_code, answer.text) == (
                401,
                "The authentication you supplied is incorrect",
            )
        assert all(
            httpx.get(f"{url}/team/credits", auth=("", "second")).status_code == 200
            for _ in range(5)
        )
        assert sandbox.stats().enrichments_started == 0
        sandbox.configure(revoke_key_after_requests=None)
        assert httpx.get(f"{url}/team", auth=("", "first")).status_code == 200
    with run_sandbox(SandboxConfig(**FAST)) as sandbox:  # off by default
        assert {
            httpx.get(f"{sandbox.base_url}/team", auth=("", sandbox.api_key)).status_code
            for _ in range(6)
        } == {200}


def test_export_route_knob(client: httpx.Client, sb: Sandbox) -> None:
    params = {"state": "all", "format": "json"}
    v1 = f"/campaigns/{sb.campaign_id}/export/leads"
    v2 = f"/v2/campaigns/{sb.campaign_id}/export/leads"

    def kind(answer: httpx.Response) -> tuple[int, str]:
        content_type = answer.headers["content-type"]
        return answer.status_code, "json" if "json" in content_type else content_type.split(";")[0]

    assert kind(client.get(v1, params=params)) == (200, "json")
    assert kind(client.get(v2, params=params)) == (200, "text/html")
    sb.configure(export_route="v2")
    rows = client.get(v2, params=params).json()
    assert [row["_id"] for row in rows] == [lead.lead_id for lead in sb.leads]
    assert kind(client.get("/api" + v2 + "/", params=params)) == (200, "json")
    missing = client.get(v1, params=params)
    assert kind(missing) == (200, "text/html") and "<html" in missing.text
    assert kind(httpx.get(sb.base_url + v1)) == (200, "text/html")  # like any unknown path
    sb.configure(export_v1_missing_status=404)
    assert kind(client.get(v1, params=params)) == (404, "text/plain")
    unknown = client.get("/v2/campaigns/cam_nopeNopeNopeNope1/export/leads", params=params)
    assert (unknown.status_code, unknown.text) == (404, "Campaign not found")
    sb.configure(export_route="both")
    assert client.get(v1, params=params).json() == client.get(v2, params=params).json() == rows
    sb.configure(export_route="v1")
    assert kind(client.get(v2, params=params)) == (200, "text/html")
    stats = sb.stats()
    assert stats.requests_by_route["export"] == 6 and stats.requests_by_route["catch_all"] == 5


def test_faults_apply_to_new_routes(client: httpx.Client, sb: Sandbox) -> None:
    sb.configure(fault_5xx_rate=1.0, fault_routes={"bulk", "team"})
    item = {"input": {"email": "a@b.co"}, "enrichmentRequests": ["verify"]}
    assert client.post("/v2/enrichments/bulk", json=[item]).status_code == 500
    assert client.get("/team").status_code == 500
    assert (
        client.post("/enrich", params={"email": "a@b.co", "verifyEmail": "true"}).status_code == 200
    )
    stats = sb.stats()
    assert stats.bulk_items == 0 and stats.enrichments_started_by_route == {"enrich_data": 1}
    assert stats.faults_injected["5xx"] == 2


def test_state_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    config = SandboxConfig(**FAST, state_file=str(path), linkedin_credits=0)
    rows = full_rows(lambda t: bool(t.email))[:2]
    with (
        run_sandbox(config) as first,
        httpx.Client(base_url=first.base_url, auth=("", first.api_key)) as c,
    ):
        campaign_id, lead_ids = first.add_campaign_from_people(rows)
        lead_done = c.post(f"/leads/{lead_ids[0]}/enrich", params={"findEmail": "true"})
        data_done = c.post("/enrich", params={**row_inputs(rows[1]), **ALL_FLAGS})
        done_bodies = {
            a.json()["id"]: wait_done(c, a.json()["id"]).json() for a in (lead_done, data_done)
        }
        first.configure(enrichment_seconds=(3.0, 3.0))  # saves the state file too
        assert json.loads(path.read_text())["format"] == "lemlist-sandbox-state"
        started_at = time.time()
        pending = c.post(
            "/enrich", params={"linkedinUrl": rows[0]["linkedin_url"], "linkedinEnrichment": "true"}
        ).json()["id"]
        stuck = c.post(f"/leads/{lead_ids[1]}/enrich", params={"findEmail": "true"}).json()["id"]
        remaining = credits(c)
        app_started = sum(lead.kind is LeadKind.IN_PROGRESS for lead in first.leads)
        known_ids = set(done_bodies) | {pending, stuck}
        contact = first.contact(lead_ids[0])
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # atomic: no temp file left
    saved = json.loads(path.read_text())
    assert saved["credits"] == remaining and len(saved["enrichments"]) == 4 + app_started

    with (
        run_sandbox(config) as second,
        httpx.Client(base_url=second.base_url, auth=("", second.api_key)) as c,
    ):
        for enrichment_id, body in done_bodies.items():
            assert c.get(f"/enrich/{enrichment_id}").json() == body
        assert c.get(f"/enrich/{pending}").status_code == 202
        assert c.post(f"/leads/{lead_ids[1]}/enrich", params={"findEmail": "true"}).json() == {
            "error": "lead is already being enriched"
        }
        assert credits(c) == remaining
        assert second.contact(lead_ids[0]) == contact
        assert campaign_id in second.campaign_ids
        export = c.get(
            f"/campaigns/{campaign_id}/export/leads", params={"state": "all", "format": "json"}
        )
        assert [row["_id"] for row in export.json()] == lead_ids
        assert export.json()[0]["email"] == person_truth(rows[0], SEED).email
        finished = wait_done(c, pending, timeout=8)
        assert finished.status_code == 200 and finished.json()["enrichmentStatus"] == "done"
        assert time.time() - started_at >= 2.9  # the due time survived the restart
        new_id = c.post("/enrich", params={"email": "a@b.co", "verifyEmail": "true"}).json()["id"]
        assert new_id not in known_ids
        _, more = second.add_campaign_from_people(rows[:1])
        assert second.person_lead(more[0]).contact_id == second.person_lead(lead_ids[0]).contact_id
    assert new_id in {e["enrichment_id"] for e in json.loads(path.read_text())["enrichments"]}

    other = SandboxConfig(**{**FAST, "seed": SEED + 1}, state_file=str(path))
    with pytest.raises(ValueError, match="seed"):
        Sandbox(other)


def test_state_file_keeps_keys_and_revocation(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "state.json"
    config = SandboxConfig(
        **FAST, api_keys=["k1", "k2"], revoke_key_after_requests=2, state_file=str(path)
    )
    with run_sandbox(config) as first:
        assert httpx.get(f"{first.base_url}/team", auth=("", "k1")).status_code == 200
    assert path.exists()
    with run_sandbox(config.with_overrides(api_keys=["k1", "k2", "k3"])) as second:
        assert second.config.api_keys == ["k1", "k2"]  # the file's keys win
        url = f"{second.base_url}/team"
        assert [httpx.get(url, auth=("", "k1")).status_code for _ in range(2)] == [200, 401]
        assert httpx.get(url, auth=("", "k2")).status_code == 200


# ---------------------------------------------------------------------------- CLI


def test_cli_writes_people_without_serving(tmp_path: Path) -> None:
    target = tmp_path / "out" / "people.csv"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "prefect_lemlist.sandbox",
            "--people",
            "40",
            "--seed",
            "3",
            "--people-file",
            str(target),
            "--no-serve",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert str(target) in done.stdout and "Press Ctrl-C" not in done.stdout
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert rows == generate_people(40, seed=3)
    jsonl = tmp_path / "people.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "prefect_lemlist.sandbox",
            "--people",
            "5",
            "--people-file",
            str(jsonl),
            "--people-format",
            "jsonl",
            "--no-serve",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == generate_people(5)
    bad = subprocess.run(
        [sys.executable, "-m", "prefect_lemlist.sandbox", "--no-serve"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--people" in bad.stderr


def test_cli_state_file_and_team_id_flags(tmp_path: Path) -> None:
    from prefect_lemlist.sandbox.__main__ import build_parser, config_from_args

    state = str(tmp_path / "s.json")
    args = build_parser().parse_args(
        ["--state-file", state, "--team-id", "tea_cliTeam00000000001", "--seed", "4"]
    )
    config = config_from_args(args)
    assert (config.state_file, config.team_id, config.seed) == (
        state,
        "tea_cliTeam00000000001",
        4,
    )
    defaults = config_from_args(build_parser().parse_args([]))
    assert (defaults.state_file, defaults.team_id) == (None, None)
