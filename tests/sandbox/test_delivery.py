"""The delivery verdict, end to end: each failure is produced by the real client over real
loopback sockets (a closed port, a name that does not resolve, the sandbox's own faults), and the
ledger's record after the claim is read back. No error here is built by hand.

| failure                         | delivery    | the ledger keeps            |
| ------------------------------- | ----------- | --------------------------- |
| connection refused, DNS         | not_sent    | nothing (a re-run sends it) |
| lemlist's 500 (after retries)   | answered    | nothing                     |
| lemlist's 404                   | answered    | the answer (a day)          |
| read timeout after sending      | maybe_sent  | `starting` (interrupted)    |
| connection dropped after sending| maybe_sent  | `starting` (interrupted)    |
| 200 with invalid JSON           | maybe_sent  | `starting` (interrupted)    |
| 200 with lemlist's HTML app     | answered    | nothing                     |
| a refused key, latched          | not_sent    | nothing                     |
"""

from __future__ import annotations

import socket

import pytest
from _sandboxes import sandbox_fixture

from prefect_lemlist.api.client import LemlistClient
from prefect_lemlist.api.exceptions import (
    LemlistAuthError,
    LemlistError,
    LemlistUnreachableError,
)
from prefect_lemlist.api.models import EnrichmentFlags
from prefect_lemlist.pipeline.ledger import Ledger, LocalDirectoryStorage, account_key
from prefect_lemlist.pipeline.start import StartContext, claim_and_start_lead
from prefect_lemlist.sandbox import LeadKind, SandboxConfig, run_sandbox

FLAGS = EnrichmentFlags(find_email=True)


sandbox = sandbox_fixture("module", leads=40, seed=11, enrichment_seconds=(0.3, 0.6))


@pytest.fixture
def fresh(sandbox):
    sandbox.configure(
        fault_5xx_rate=0.0, fault_drop_rate=0.0, fault_slow_rate=0.0, fault_malformed_rate=0.0
    )
    sandbox.reset_stats()
    return sandbox


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def client_for(base_url: str, api_key: str = "k", **options) -> LemlistClient:
    options = {"max_attempts": 3, "backoff_base_seconds": 0.01, **options}
    return LemlistClient(api_key, base_url=base_url, **options)


async def start_through_a_claim(client: LemlistClient, lead_id: str, tmp_path):
    """POST one lead inside a real ledger claim; returns (error or None, the ledger's recall)."""
    ledger = Ledger(LocalDirectoryStorage(tmp_path), account_key("tea_delivery"), FLAGS.label())
    error = None
    async with client:
        try:
            await claim_and_start_lead(StartContext(client, ledger, FLAGS), lead_id)
        except LemlistError as exc:
            error = exc
    return error, (await ledger.recall_leads([lead_id])).get(lead_id)


def lead_of(sandbox, kind: LeadKind) -> str:
    return next(lead.lead_id for lead in sandbox.leads if lead.kind == kind)


@pytest.mark.parametrize(
    "base_url",
    [f"http://127.0.0.1:{closed_port()}/api", "http://lemlist-sandbox.invalid:8080/api"],
    ids=["connection-refused", "dns-failure"],
)
async def test_lemlist_unreachable_is_not_sent_and_leaves_nothing(base_url, tmp_path):
    error, recall = await start_through_a_claim(client_for(base_url), "lea_1", tmp_path)
    assert isinstance(error, LemlistUnreachableError)
    assert error.delivery == "not_sent" and not error.retryable
    assert "was not sent" in error.message and error.hint and "re-run" in error.hint
    assert recall is None  # a later run sends it, without --force


async def test_lemlist_500_is_answered_and_leaves_nothing(fresh, tmp_path):
    fresh.configure(fault_5xx_rate=1.0, fault_routes={"enrich_post"})
    lead_id = lead_of(fresh, LeadKind.FINDABLE)
    client = client_for(fresh.base_url, fresh.api_key)
    error, recall = await start_through_a_claim(client, lead_id, tmp_path)
    assert error is not None and error.status_code == 500 and error.delivery == "answered"
    assert recall is None
    stats = fresh.stats()
    assert stats.enrich_posts_by_lead[lead_id] == 3 and stats.enrichments_started == 0


async def test_a_404_is_answered_and_remembered(fresh, tmp_path):
    client = client_for(fresh.base_url, fresh.api_key)
    error, recall = await start_through_a_claim(client, "lea_NoSuchLeadHere01", tmp_path)
    assert error is not None and error.status_code == 404 and error.delivery == "answered"
    assert recall is not None and recall.answer is not None
    assert recall.answer.status_code == 404


@pytest.mark.parametrize(
    ("knobs", "options"),
    [
        ({"fault_slow_rate": 1.0, "fault_slow_seconds": 1.0}, {"timeout_seconds": 0.3}),
        ({"fault_drop_rate": 1.0}, {}),
        ({"fault_malformed_rate": 1.0, "fault_malformed_kind": "invalid_json"}, {}),
    ],
    ids=["read-timeout", "dropped-after-sending", "unusable-200"],
)
async def test_a_start_that_may_have_reached_lemlist_is_maybe_sent(fresh, tmp_path, knobs, options):
    fresh.configure(**knobs, fault_routes={"enrich_post"})
    lead_id = lead_of(fresh, LeadKind.FINDABLE)
    client = client_for(fresh.base_url, fresh.api_key, **options)
    error, recall = await start_through_a_claim(client, lead_id, tmp_path)
    assert error is not None and error.delivery == "maybe_sent" and not error.retryable
    assert recall is not None and recall.interrupted  # never re-sent blindly
    assert fresh.stats().enrich_posts_by_lead[lead_id] == 1  # and not repeated by the client


async def test_lemlists_html_app_page_is_answered_and_leaves_nothing(fresh, tmp_path):
    fresh.configure(
        fault_malformed_rate=1.0, fault_malformed_kind="html", fault_routes={"enrich_post"}
    )
    lead_id = lead_of(fresh, LeadKind.FINDABLE)
    error, recall = await start_through_a_claim(
        client_for(fresh.base_url, fresh.api_key), lead_id, tmp_path
    )
    assert error is not None and error.delivery == "answered"
    assert recall is None


async def test_a_refused_key_is_answered_once_then_latched_as_not_sent(tmp_path):
    config = SandboxConfig(leads=5, seed=3, revoke_key_after_requests=0)
    with run_sandbox(config) as box:
        async with client_for(box.base_url, box.api_key) as client:
            with pytest.raises(LemlistAuthError) as first:
                await client.get_credits()
            with pytest.raises(LemlistAuthError) as second:
                await client.get_credits()
        assert box.stats().total_requests == 1
    assert first.value.delivery == "answered" and second.value.delivery == "not_sent"
