"""The network fault matrix: both front doors (campaign leads, people in bulk) under every network
fault a run meets on the way to lemlist, each injected by a real loopback proxy between the
client and the sandbox (`prefect_lemlist.sandbox.network.FaultProxy`).

Every row runs the flow twice with the same options, as a user re-runs the same command: first
under the fault, then after the network recovered. For each row:

1. every input row is in each export exactly once (a run that could not start at all exports
   nothing and says so);
2. the sandbox started no enrichment twice (its own counts), and a lead was POSTed twice only
   when its first POST may have reached lemlist (the rule: re-sent once without force);
3. unreachable lemlist (refused, DNS, TLS): the first run stops starting at once, ends Failed
   with `LemlistUnreachableError`, well before its collect timeout, and reports the unsent rows
   `not_started`; the re-run starts exactly those, each once, without force;
4. a request that may have reached lemlist (read timeout, reset after the request was read, a
   proxy's 502/504 HTML page, a body that stalls): leads are `failed` and re-sent once without
   force by the re-run (lemlist's 409 or a new start answers); people stay `failed` "may have
   started" and are not re-sent (only `--force` sends them again).

`-s` prints one markdown row per scenario (the README's network table).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import certifi
import pytest
from _files import read_csv

from prefect_lemlist import (
    ContactOptions,
    EnrichmentOptions,
    EnrichmentsNotCollectedError,
    LemlistCredentials,
    LemlistUnreachableError,
)
from prefect_lemlist.flows import enrich_campaign, enrich_contacts
from prefect_lemlist.sandbox import (
    SandboxConfig,
    generate_people,
    run_sandbox,
    write_people_file,
)
from prefect_lemlist.sandbox.network import FaultProxy, NetworkFault

LEADS = 60  # about 36 need an email: more than one rate window of POSTs
PEOPLE = 60
BULK = 10
POST_LEAD = r"^POST /leads/[^/]+/enrich"
POST_BULK = r"^POST /v2/enrichments/bulk"
POLL = r"^GET /enrich/"
UNREACHABLE_SECONDS = 3.0
COLLECT_SECONDS = 180.0
FIRST_RUN_BOUND = 120.0  # an outage ends the run, it does not wait for the collect timeout
CLIENT_TIMEOUT = 2.0  # a stalled answer is a read timeout after this long


@dataclass(frozen=True)
class Row:
    """One row of the matrix."""

    name: str
    door: str  # "leads" or "people"
    fault: str  # what happens, for the README
    verdict: str  # "unreachable", "unreachable-at-start", "collection" or "maybe_sent"
    inject: Callable[[FaultProxy], None] | None = None
    tls: bool = False
    dns: bool = False


def _faults(door: str) -> list[Row]:
    post = POST_LEAD if door == "leads" else POST_BULK
    third = 20 if door == "leads" else 2  # leads: after 20 POSTs; people: after the 3rd request
    maybe = {"times": 2 if door == "leads" else 1, "after": 3 if door == "leads" else 1}
    rows = [
        Row("refused-at-start", door, "connection refused from the start", "unreachable-at-start",
            lambda p: p.refuse()),
        Row("refused-mid-start", door, "connection refused mid-start", "unreachable",
            lambda p: p.refuse(match=post, after=third)),
        Row("refused-in-collection", door, "connection refused while collecting", "collection",
            lambda p: p.refuse(match=POLL, after=1)),
        Row("dns-failure", door, "DNS failure (the name does not resolve)",
            "unreachable-at-start", dns=True),
        Row("tls-failure-mid-start", door, "TLS handshake failure mid-start", "unreachable",
            lambda p: p.set_fault(NetworkFault.TLS_HANDSHAKE_FAIL, after=third + 2), tls=True),
        Row("read-timeout", door, "read timeout after the request was sent", "maybe_sent",
            lambda p: p.set_fault(NetworkFault.READ_TIMEOUT, match=post, **maybe)),
        Row("reset-after-read", door, "connection reset after the request was read",
            "maybe_sent",
            lambda p: p.set_fault(NetworkFault.RESET_AFTER_REQUEST, match=post, **maybe)),
        Row("proxy-502", door, "a proxy's 502 with an HTML body (not forwarded)", "maybe_sent",
            lambda p: p.set_fault(NetworkFault.PROXY_502, match=post, **maybe)),
        Row("proxy-504", door, "a proxy's 504 with an HTML body (forwarded)", "maybe_sent",
            lambda p: p.set_fault(NetworkFault.PROXY_504, match=post, **maybe)),
        Row("stall-mid-body", door, "a response that stalls mid-body", "maybe_sent",
            lambda p: p.set_fault(NetworkFault.STALL_MID_BODY, match=post, **maybe)),
    ]  # fmt: skip
    return rows


ROWS = {f"{row.door}-{row.name}": row for door in ("leads", "people") for row in _faults(door)}


@dataclass
class Run:
    """One run of the flow: its state, error, export rows and duration."""

    failed: bool
    error: BaseException | None
    rows: list[dict[str, str]] | None
    seconds: float


@dataclass
class Result:
    """A row's two runs and the sandbox's counts after them."""

    row: Row
    inputs: int
    first: Run
    second: Run
    first_stats: Any
    stats: Any
    notes: list[str] = field(default_factory=list)


async def _run(call: Callable[[], Awaitable[Any]]) -> Run:
    began = time.monotonic()
    state = await call()
    seconds = time.monotonic() - began
    if not state.is_failed():
        summary = await state.result()
        return Run(False, None, read_csv(summary.csv_path), seconds)
    try:
        await state.result()
    except BaseException as exc:  # the run's own error
        summary = getattr(exc, "summary", None)
        rows = read_csv(summary.csv_path) if summary is not None else None
        return Run(True, exc, rows, seconds)
    raise AssertionError("a failed state without an error")


def _options(row: Row, out: Path, name: str) -> Any:
    common = {
        # refused while collecting: every start is sent before the first poll
        "first_poll_seconds": 4.0 if row.verdict == "collection" else 0.5,
        "collect_timeout_seconds": COLLECT_SECONDS,
        "unreachable_timeout_seconds": UNREACHABLE_SECONDS,
        "output_dir": str(out),
        "output_name": name,
    }
    if row.door == "leads":
        return EnrichmentOptions(**common)
    return ContactOptions(bulk_size=BULK, **common)


async def run_row(row: Row, out: Path, ca_bundle: Path) -> Result:
    config = SandboxConfig(
        leads=LEADS, seed=31, enrichment_seconds=(0.3, 0.8), app_enrichment_seconds=3600
    )
    people_file = write_people_file(out / "people.csv", generate_people(PEOPLE, seed=5))
    with run_sandbox(config) as sandbox, FaultProxy(sandbox.base_url, tls=row.tls) as proxy:
        if row.tls:
            ca_bundle.write_text(ca_bundle.read_text() + Path(proxy.ca_file).read_text())
        good = LemlistCredentials(
            api_key=sandbox.api_key, base_url=proxy.base_url, timeout_seconds=CLIENT_TIMEOUT
        )
        broken = good
        if row.dns:
            port = proxy.base_url.rsplit(":", 1)[-1]
            broken = good.model_copy(update={"base_url": f"http://lemlist-sandbox.invalid:{port}"})

        def flow(credentials: LemlistCredentials, name: str) -> Awaitable[Any]:
            options = _options(row, out, name)
            if row.door == "leads":
                return enrich_campaign(
                    sandbox.campaign_id, credentials, options=options, return_state=True
                )
            return enrich_contacts(
                path=str(people_file), credentials_block=credentials, options=options,
                return_state=True,
            )  # fmt: skip

        if row.inject is not None:
            row.inject(proxy)
        first = await _run(lambda: flow(broken, "first"))
        first_stats = sandbox.stats()
        proxy.accept()  # the network is back (listening, no fault)
        second = await _run(lambda: flow(good, "second"))
        # the campaign's export lists the leads that need the work (no email yet)
        needing = sum(1 for lead in sandbox.leads if not lead.email)
        inputs = needing if row.door == "leads" else PEOPLE
        return Result(row, inputs, first, second, first_stats, sandbox.stats())


@pytest.fixture(scope="module")
async def scenarios(request, tmp_path_factory, monkeypatch_module):
    """Every selected row started at once on the session loop (each with its own sandbox and
    proxy, so its own key budget and team ledger); each test awaits its own."""
    wanted = [
        item.callspec.params["name"]
        for item in request.session.items
        if item.module is request.module and "name" in getattr(item, "callspec", None).params
    ]
    root = tmp_path_factory.mktemp("network-matrix")
    bundle = root / "ca-bundle.pem"  # the usual CAs + the TLS rows' proxies' certificates
    bundle.write_text(Path(certifi.where()).read_text())
    monkeypatch_module.setenv("SSL_CERT_FILE", str(bundle))
    tasks = {name: asyncio.create_task(run_row(ROWS[name], root / name, bundle)) for name in wanted}
    yield tasks
    for task in tasks.values():
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _started_twice(result: Result) -> int:
    stats = result.stats
    counts = (
        stats.enrichments_started_by_lead
        if result.row.door == "leads"
        else stats.enrichments_started_by_person
    )
    return sum(1 for count in counts.values() if count > 1)


def _statuses(rows: list[dict[str, str]] | None) -> Counter[str]:
    return Counter(row["status"] for row in rows or [])


def _row_keys(result: Result, rows: list[dict[str, str]]) -> list[str]:
    column = "lead_id" if result.row.door == "leads" else "person_id"
    return [row[column] for row in rows]


def report_row(result: Result) -> str:
    first, second = _statuses(result.first.rows), _statuses(result.second.rows)
    error = type(result.first.error).__name__ if result.first.error else "-"
    return (
        f"| {result.row.door} | {result.row.fault} | {result.first.seconds:.1f} s, "
        f"{'Failed' if result.first.failed else 'Completed'} ({error}); "
        f"not_started {first.get('not_started', 0)}, failed {first.get('failed', 0)}, "
        f"not_collected {first.get('not_collected', 0)} | "
        f"{'Failed' if result.second.failed else 'Completed'}; not_started "
        f"{second.get('not_started', 0)}, failed {second.get('failed', 0)} | "
        f"{_started_twice(result)} |"
    )


async def outcome(scenarios, name: str) -> Result:
    return await asyncio.wait_for(asyncio.shield(scenarios[name]), timeout=600)


def check_every_row_once(result: Result, run: Run) -> None:
    assert run.rows is not None
    keys = _row_keys(result, run.rows)
    assert len(run.rows) == result.inputs
    if result.row.door == "leads":
        assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("name", list(ROWS))
async def test_network_fault(scenarios, name):
    result = await outcome(scenarios, name)
    print("\n" + report_row(result))
    row, first, second = result.row, result.first, result.second
    assert _started_twice(result) == 0
    # the network is back: the same command completes what was not started, each once
    assert not second.failed, repr(second.error)
    check_every_row_once(result, second)
    assert _statuses(second.rows)["not_started"] == 0
    assert not {"not_collected", "timed_out"} & set(_statuses(second.rows))
    if row.verdict == "unreachable-at-start":
        assert first.failed and isinstance(first.error, LemlistUnreachableError)
        assert "not sent" in str(first.error) and "re-run" in (first.error.hint or "")
        assert result.first_stats.total_requests == 0  # nothing reached lemlist
        assert first.rows is None  # nothing was planned: no export claims anything
    elif row.verdict == "unreachable":
        check_unreachable_mid_start(result)
    elif row.verdict == "collection":
        check_unreachable_in_collection(result)
    else:
        check_maybe_sent(result)


def check_unreachable_mid_start(result: Result) -> None:
    first = result.first
    assert first.failed and isinstance(first.error, LemlistUnreachableError), repr(first.error)
    assert first.seconds < FIRST_RUN_BOUND
    check_every_row_once(result, first)
    statuses = _statuses(first.rows)
    assert statuses["not_started"] > 0
    unsent = [r for r in first.rows if r["status"] == "not_started"]
    assert all("could not be reached" in r["error"] or "not sent" in r["error"] for r in unsent)
    posts = result.stats.enrich_posts_by_lead
    if result.row.door == "leads":
        assert max(posts.values()) == 1  # nothing unsent was recorded: sent once, in run 2
        second_posts = sum(posts.values()) - sum(result.first_stats.enrich_posts_by_lead.values())
        assert second_posts == statuses["not_started"]


def check_unreachable_in_collection(result: Result) -> None:
    first = result.first
    assert first.failed and isinstance(first.error, EnrichmentsNotCollectedError)
    assert first.seconds < FIRST_RUN_BOUND
    check_every_row_once(result, first)
    assert _statuses(first.rows)["not_collected"] > 0
    assert all(r["enrichment_id"] for r in first.rows if r["status"] == "not_collected")
    started = result.first_stats.enrichments_started_by_route
    assert result.stats.enrichments_started_by_route == started  # collected by id, not paid


def check_maybe_sent(result: Result) -> None:
    first, second = result.first, result.second
    assert not first.failed, repr(first.error)
    check_every_row_once(result, first)
    hit = [r for r in first.rows if r["status"] == "failed" and "may have" in r["error"]]
    assert hit, "the fault hit no start: the row tests nothing"
    if result.row.door == "leads":
        posts, before = result.stats.enrich_posts_by_lead, result.first_stats.enrich_posts_by_lead
        again = {r["lead_id"] for r in hit}
        reached = 0 if result.row.name == "proxy-502" else 1  # the 502 proxy forwarded nothing
        assert all(before.get(lead, 0) == reached for lead in again)
        assert all(posts[lead] - before.get(lead, 0) == 1 for lead in again)  # re-sent once
        assert all(count == 1 for lead, count in posts.items() if lead not in again)
        by_lead = {r["lead_id"]: r for r in second.rows}
        assert all("interrupted" in by_lead[lead]["note"] for lead in again)
    else:
        by_person = {r["person_id"]: r for r in second.rows}
        for row in hit:
            later = by_person[row["person_id"]]
            assert later["status"] == "failed" and "may have started" in later["error"]
