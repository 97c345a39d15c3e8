"""Hardening of the webhook receiver: auth, size limits, bad bodies, idempotency, fuzzing.

Most tests talk to a real `WebhookReceiver` (uvicorn on loopback) over HTTP, wired to a real
`ResultCollector` the way `EnrichmentRun._webhook` wires it (both on the test's event loop, as
in a flow run). The fuzz test drives `create_webhook_app` through Starlette's `TestClient` so
that hypothesis can try many inputs quickly.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from prefect_lemlist import LemlistCredentials
from prefect_lemlist.api.models import Enrichment
from prefect_lemlist.flows import enrich_campaign
from prefect_lemlist.pipeline import EnrichmentOptions
from prefect_lemlist.pipeline.collect import ResultCollector
from prefect_lemlist.pipeline.webhook import WEBHOOK_PATH, create_webhook_app
from prefect_lemlist.pipeline.webhook_server import WebhookReceiver
from prefect_lemlist.sandbox import LeadKind, SandboxConfig, run_sandbox

FAR = 3600.0  # a webhook grace and a deadline far enough that the collector never polls


class NoClient:
    """Stands in for a LemlistClient: any use of it (a poll) fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the collector tried to use its client ({name}): it polled")


def new_collector() -> ResultCollector:
    return ResultCollector(NoClient(), timeout_seconds=FAR, webhook_grace_seconds=FAR)


class Recorder:
    """An `on_result` that records every call and answers True (new result)."""

    def __init__(self) -> None:
        self.calls: list[Enrichment] = []

    def __call__(self, enrichment: Enrichment) -> bool:
        self.calls.append(enrichment)
        return True


def bridge(collector: ResultCollector):
    """The `on_result` of `EnrichmentRun._webhook` (`collector.deliver`), recording its calls."""
    calls: list[Enrichment] = []

    def on_result(enrichment: Enrichment) -> bool:
        calls.append(enrichment)
        return collector.deliver(enrichment)

    on_result.calls = calls  # type: ignore[attr-defined]
    return on_result


def email_of(collector: ResultCollector, key: str) -> str | None:
    collected = collector.results[key]
    assert collected.kind == "finished" and collected.enrichment is not None
    return collected.enrichment.email


def item(enrichment_id: str, email: str | None = "ada@example.com") -> dict:
    data = {"find_email": {"email": email, "status": "deliverable"}} if email else {}
    return {"id": enrichment_id, "data": data}


def payload(*items: dict, event: str = "enrichmentDone") -> dict:
    return {"data": list(items), "type": event}


def with_token(receiver: WebhookReceiver, token: str | None) -> str:
    """The query-string form of the webhook URL (still accepted) with `token`."""
    base = receiver.base_url + WEBHOOK_PATH
    return base if token is None else f"{base}?{httpx.QueryParams({'token': token})}"


def in_path(receiver: WebhookReceiver, token: str) -> str:
    """The path form of the webhook URL (what lemlist is given) with `token`."""
    return f"{receiver.base_url}/lemlist/{token}"


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


# ---------------------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    "case",
    [
        "no_query",
        "empty_token",
        "wrong_same_length",
        "prefix",
        "token_plus_one_char",
        "upper_cased",
        "other_param_name",
        "token_in_header_only",
        "token_in_body_only",
        "path_wrong_same_length",
        "path_prefix",
        "path_upper_cased",
    ],
)
async def test_missing_or_wrong_token_is_401_and_records_nothing(http, case):
    recorder = Recorder()
    async with WebhookReceiver(recorder) as receiver:
        token = receiver.token
        headers: dict[str, str] = {}
        body = payload(item("enr_auth1"))
        if case == "no_query":
            url = with_token(receiver, None)
        elif case == "empty_token":
            url = with_token(receiver, "")
        elif case == "wrong_same_length":
            url = with_token(receiver, ("A" if token[0] != "A" else "B") + token[1:])
        elif case == "prefix":
            url = with_token(receiver, token[:-1])
        elif case == "token_plus_one_char":
            url = with_token(receiver, token + "x")
        elif case == "upper_cased":
            assert token.upper() != token
            url = with_token(receiver, token.upper())
        elif case == "other_param_name":
            url = f"{with_token(receiver, None)}?{httpx.QueryParams({'Token': token})}"
        elif case == "token_in_header_only":
            url = with_token(receiver, None)
            headers = {"Authorization": f"Bearer {token}", "X-Token": token, "Token": token}
        elif case == "path_wrong_same_length":
            url = in_path(receiver, ("A" if token[0] != "A" else "B") + token[1:])
        elif case == "path_prefix":
            url = in_path(receiver, token[:-1])
        elif case == "path_upper_cased":
            url = in_path(receiver, token.upper())
        else:
            url = with_token(receiver, None)
            body = {**body, "token": token}
        answer = await http.post(url, json=body, headers=headers)
        stats = receiver.stats
    assert answer.status_code == 401, answer.text
    assert recorder.calls == []
    assert stats.unauthorized == 1 and stats.results == 0 and stats.accepted == 0


async def test_wrong_token_changes_nothing_in_a_real_collector(http):
    collector = new_collector()
    collector.add("lea_1", "enr_1", started_at=time.monotonic())
    on_result = bridge(collector)
    async with WebhookReceiver(on_result) as receiver:
        answer = await http.post(with_token(receiver, "guess"), json=payload(item("enr_1")))
        unknown = await http.post(with_token(receiver, "guess"), json=payload(item("enr_2")))
    assert answer.status_code == unknown.status_code == 401
    assert on_result.calls == []
    assert collector.results == {} and collector.pending == 1
    assert collector._early == {}  # an unauthenticated caller cannot fill the early buffer


async def test_correct_token_records_the_result(http):
    collector = new_collector()
    collector.add("lea_1", "enr_1", started_at=time.monotonic())
    async with WebhookReceiver(bridge(collector)) as receiver:
        answer = await http.post(receiver.webhook_url, json=payload(item("enr_1")))
        stats = receiver.stats
    assert answer.status_code == 200
    assert answer.json() == {"received": 1, "accepted": 1}
    collected = collector.results["lea_1"]
    assert (collected.kind, email_of(collector, "lea_1"), collected.enrichment_id) == (
        "finished",
        "ada@example.com",
        "enr_1",
    )
    assert collector.pending == 0 and collector.stats.results_from_webhook == 1
    assert stats.accepted == 1 and stats.unauthorized == 0


# ---------------------------------------------------------------------------- idempotency


async def test_duplicate_deliveries_are_idempotent(http):
    collector = new_collector()
    for n in range(3):
        collector.add(f"lea_{n}", f"enr_{n}", started_at=time.monotonic())
    async with WebhookReceiver(bridge(collector)) as receiver:
        first = await http.post(receiver.webhook_url, json=payload(item("enr_0")))
        again = await http.post(receiver.webhook_url, json=payload(item("enr_0", email="x@y.z")))
        # the same result twice in one body, and many concurrent copies of another
        twice = await http.post(receiver.webhook_url, json=payload(item("enr_1"), item("enr_1")))
        burst = await asyncio.gather(
            *(http.post(receiver.webhook_url, json=payload(item("enr_2"))) for _ in range(20))
        )
        stats = receiver.stats
    assert first.json() == {"received": 1, "accepted": 1}
    assert again.status_code == 200 and again.json() == {"received": 1, "accepted": 0}
    assert twice.json() == {"received": 2, "accepted": 1}
    assert all(answer.status_code == 200 for answer in burst)
    assert sum(answer.json()["accepted"] for answer in burst) == 1
    assert sorted(collector.results) == ["lea_0", "lea_1", "lea_2"]
    assert email_of(collector, "lea_0") == "ada@example.com"  # the first one wins
    assert collector.stats.results_from_webhook == 3
    assert collector.stats.webhook_duplicates == 1 + 1 + 19
    assert stats.accepted == 3 and collector.pending == 0


async def test_out_of_order_deliveries_are_idempotent(http):
    """Results arriving before their batch returned, in-progress notices, then duplicates."""
    collector = new_collector()
    async with WebhookReceiver(bridge(collector)) as receiver:
        early = await http.post(receiver.webhook_url, json=payload(item("enr_a")))
        early_again = await http.post(receiver.webhook_url, json=payload(item("enr_a")))
        assert collector.results == {}  # kept until its lead is known
        collector.add("lea_a", "enr_a", started_at=time.monotonic())
        after = await http.post(receiver.webhook_url, json=payload(item("enr_a")))

        collector.add("lea_b", "enr_b", started_at=time.monotonic())
        # a result whose lead is added while the receiver is busy with another body
        both = await http.post(
            receiver.webhook_url, json=payload(item("enr_c"), item("enr_b"), item("enr_c"))
        )
        collector.add("lea_c", "enr_c", started_at=time.monotonic())
        late = await http.post(receiver.webhook_url, json=payload(item("enr_c"), item("enr_b")))
    assert early.json()["accepted"] == 1
    assert early_again.json()["accepted"] == 0
    assert after.json()["accepted"] == 0
    assert both.json() == {"received": 3, "accepted": 2}
    assert late.json() == {"received": 2, "accepted": 0}
    assert sorted(collector.results) == ["lea_a", "lea_b", "lea_c"]
    assert {c.kind for c in collector.results.values()} == {"finished"}
    assert collector.stats.results_from_webhook == 3
    assert collector.pending == 0 and collector._early == {}


async def test_unknown_enrichment_ids_are_ignored_and_logged(http, caplog):
    caplog.set_level(logging.INFO, logger="prefect_lemlist.webhook")
    collector = new_collector()
    collector.add("lea_k", "enr_known", started_at=time.monotonic())
    collector.close()  # no more enrichments will be added: an unknown id is unknown for good
    async with WebhookReceiver(bridge(collector)) as receiver:
        answer = await http.post(
            receiver.webhook_url, json=payload(item("enr_stranger"), item("enr_known"))
        )
        stats = receiver.stats
    assert answer.status_code == 200
    assert answer.json() == {"received": 2, "accepted": 1}
    assert list(collector.results) == ["lea_k"]
    assert collector.stats.webhook_unknown == 1 and collector._early == {}
    assert stats.ignored == 1
    records = [
        r
        for r in caplog.records
        if r.name == "prefect_lemlist.webhook" and "enr_stranger" in r.getMessage()
    ]
    assert len(records) == 1 and records[0].levelno == logging.INFO
    assert not any("enr_known" in r.getMessage() for r in caplog.records)


async def test_ignored_result_from_a_plain_callback_is_logged(http, caplog):
    caplog.set_level(logging.INFO, logger="prefect_lemlist.webhook")
    async with WebhookReceiver(lambda enrichment: False) as receiver:
        answer = await http.post(receiver.webhook_url, json=payload(item("enr_nobody")))
    assert answer.json() == {"received": 1, "accepted": 0}
    assert any(
        r.name == "prefect_lemlist.webhook"
        and r.levelno == logging.INFO
        and "enr_nobody" in r.getMessage()
        for r in caplog.records
    )


# ---------------------------------------------------------------------------- size limits


async def test_body_over_the_limit_with_content_length_is_413(http):
    recorder = Recorder()
    limit = 1000
    body = json.dumps(payload(item("enr_big"))).encode()
    exact = body + b" " * (limit - len(body))  # exactly at the limit: accepted
    async with WebhookReceiver(recorder, max_body_bytes=limit) as receiver:
        at_limit = await http.post(receiver.webhook_url, content=exact)
        over = await http.post(receiver.webhook_url, content=exact + b" ")
        huge = await http.post(receiver.webhook_url, content=b"[" + b"0," * 500_000 + b"0]")
        stats = receiver.stats
    assert at_limit.status_code == 200
    assert over.status_code == 413 and huge.status_code == 413
    assert [e.enrichment_id for e in recorder.calls] == ["enr_big"]
    assert stats.too_large == 2


async def test_body_over_the_limit_streamed_without_content_length_is_413(http):
    recorder = Recorder()
    limit = 1000
    sent: list[int] = []

    async def chunks(total: int):
        text = json.dumps(payload(item("enr_stream"))).encode()
        yield text
        size = len(text)
        while size < total:
            piece = b" " * min(100, total - size)
            size += len(piece)
            sent.append(size)
            yield piece

    async with WebhookReceiver(recorder, max_body_bytes=limit) as receiver:
        request = http.build_request("POST", receiver.webhook_url, content=chunks(limit + 1))
        assert "content-length" not in request.headers
        assert request.headers.get("transfer-encoding") == "chunked"
        over = await http.send(request)
        small = http.build_request("POST", receiver.webhook_url, content=chunks(limit))
        assert "content-length" not in small.headers
        at_limit = await http.send(small)
        stats = receiver.stats
    assert over.status_code == 413
    assert at_limit.status_code == 200
    assert [e.enrichment_id for e in recorder.calls] == ["enr_stream"]
    assert stats.too_large == 1


@pytest.mark.parametrize("declared", ["-1", "1e3", "abc", "99999999999999999999"])
def test_unusable_content_length_is_refused(declared):
    recorder = Recorder()
    app = create_webhook_app("tok", recorder, max_body_bytes=100)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post(
            f"{WEBHOOK_PATH}?token=tok",
            content=json.dumps(payload(item("enr_cl"))),
            headers={"content-length": declared},
        )
    assert answer.status_code in {400, 413}
    assert recorder.calls == []


# ---------------------------------------------------------------------------- bad bodies


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"{", b"\xff\xfe\x00garbage", b"<html>ok</html>", b"{'data': []}"],
    ids=["empty", "text", "truncated", "binary", "html", "python-repr"],
)
async def test_non_json_body_is_400(http, body):
    recorder = Recorder()
    async with WebhookReceiver(recorder) as receiver:
        answer = await http.post(
            receiver.webhook_url, content=body, headers={"content-type": "application/json"}
        )
        stats = receiver.stats
    assert answer.status_code == 400
    assert recorder.calls == [] and stats.bad_body == 1


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"data": None},
        {"data": "enr_1"},
        {"data": 3},
        {"type": "enrichmentDone"},
        [],
        [1],
        1,
        "x",
    ],
    ids=["empty", "null", "string", "number", "no-data", "list", "list1", "int", "str"],
)
async def test_json_without_a_data_list_is_400(http, value):
    recorder = Recorder()
    async with WebhookReceiver(recorder) as receiver:
        answer = await http.post(receiver.webhook_url, json=value)
    assert answer.status_code == 400
    assert recorder.calls == []


async def test_deeply_nested_json_is_refused_not_a_server_error(http):
    """A small body that Python's json module cannot decode without a RecursionError."""
    recorder = Recorder()
    body = b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    async with WebhookReceiver(recorder) as receiver:
        try:
            answer = await http.post(receiver.webhook_url, content=body)
            status, text = answer.status_code, answer.text[:200]
        except httpx.TransportError as exc:  # the server dropped the connection
            status, text = None, repr(exc)
        async with httpx.AsyncClient(timeout=10.0) as fresh:  # the old connection may be gone
            alive = await fresh.post(receiver.webhook_url, json=payload(item("enr_after")))
    assert alive.status_code == 200
    assert status == 400, f"expected 400, got {status}: {text}"
    assert [e.enrichment_id for e in recorder.calls] == ["enr_after"]


async def test_unparseable_items_are_skipped_and_the_rest_recorded(http):
    recorder = Recorder()
    body = {"data": [None, 1, "enr_x", {"no": "id"}, {"id": 5}, item("enr_ok"), []]}
    async with WebhookReceiver(recorder) as receiver:
        answer = await http.post(receiver.webhook_url, json=body)
        stats = receiver.stats
    assert answer.status_code == 200
    assert answer.json() == {"received": 7, "accepted": 1}
    assert [e.enrichment_id for e in recorder.calls] == ["enr_ok"]
    assert stats.ignored == 6


@pytest.mark.parametrize("count", [0, 1, 50])
async def test_arrays_of_any_length(http, count):
    collector = new_collector()
    for n in range(count):
        collector.add(f"lea_{n}", f"enr_{n}", started_at=time.monotonic())
    async with WebhookReceiver(bridge(collector)) as receiver:
        answer = await http.post(
            receiver.webhook_url, json=payload(*(item(f"enr_{n}") for n in range(count)))
        )
    assert answer.status_code == 200
    assert answer.json() == {"received": count, "accepted": count}
    assert sorted(collector.results) == sorted(f"lea_{n}" for n in range(count))
    assert all(email_of(collector, key) == "ada@example.com" for key in collector.results)
    assert collector.pending == 0


async def test_a_single_object_as_data_is_one_result(http):
    recorder = Recorder()
    async with WebhookReceiver(recorder) as receiver:
        answer = await http.post(receiver.webhook_url, json={"data": item("enr_single")})
    assert answer.json() == {"received": 1, "accepted": 1}
    assert [e.enrichment_id for e in recorder.calls] == ["enr_single"]


async def test_enrichment_error_gives_a_failed_enrichment(http):
    recorder = Recorder()
    collector = new_collector()
    collector.add("lea_e", "enr_e", started_at=time.monotonic())
    forward = bridge(collector)

    def on_result(enrichment):
        recorder(enrichment)
        return forward(enrichment)

    async with WebhookReceiver(on_result) as receiver:
        answer = await http.post(
            receiver.webhook_url, json=payload(item("enr_e"), event="enrichmentError")
        )
    assert answer.json() == {"received": 1, "accepted": 1}
    [enrichment] = recorder.calls
    assert not enrichment.done and not enrichment.in_progress and enrichment.status != "done"
    collected = collector.results["lea_e"]
    assert collected.kind == "finished" and collected.enrichment is not None
    assert not collected.enrichment.done  # reported `failed` by the pipeline


# ---------------------------------------------------------------------------- binding, URL, methods


async def test_binds_loopback_with_a_long_random_token_per_receiver(http):
    receivers = [WebhookReceiver(Recorder()) for _ in range(3)]
    tokens = [r.token for r in receivers]
    assert len(set(tokens)) == 3
    for receiver in receivers:
        assert len(receiver.token) >= 43  # 256 bits, url-safe base64
        async with receiver:
            parts = urlsplit(receiver.webhook_url)
            assert parts.hostname == "127.0.0.1"
            # the token travels in the path (nothing confirms lemlist keeps a query string)
            assert parts.port and parts.path == f"/lemlist/{receiver.token}"
            assert parts.query == ""
            assert receiver.token not in repr(receiver)
            ok = await http.post(receiver.webhook_url, json=payload())
            assert ok.status_code == 200
            for other in tokens:
                if other != receiver.token:  # another receiver's token is refused here
                    refused = await http.post(with_token(receiver, other), json=payload())
                    assert refused.status_code == 401
                    refused = await http.post(in_path(receiver, other), json=payload())
                    assert refused.status_code == 401
            ok = await http.post(with_token(receiver, receiver.token), json=payload())
            assert ok.status_code == 200  # the query form is still accepted


async def test_public_url_replaces_the_host_but_keeps_the_token():
    receiver = WebhookReceiver(Recorder(), public_url="https://hooks.example.com/")
    parts = urlsplit(receiver.webhook_url)
    assert (parts.scheme, parts.hostname, parts.path) == (
        "https",
        "hooks.example.com",
        f"/lemlist/{receiver.token}",
    )
    assert parts.query == ""


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405(http, method):
    recorder = Recorder()
    async with WebhookReceiver(recorder) as receiver:
        answer = await http.request(
            method, receiver.webhook_url, content=json.dumps(payload(item("enr_m")))
        )
    assert answer.status_code == 405
    assert recorder.calls == []


# ---------------------------------------------------------------------------- fuzzing

FUZZ_TOKEN = "fuzz-token-0123456789abcdefghijklmnopqrstuvwxyzABC"
FUZZ_LIMIT = 400
ALLOWED = {200, 400, 401, 405, 413}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
webhook_items = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"id": st.one_of(st.text(max_size=12), json_values)},
        optional={"data": json_values},
    ),
    st.builds(item, st.from_regex(r"enr_[A-Za-z0-9]{1,8}", fullmatch=True)),
)
webhook_payloads = st.fixed_dictionaries(
    {"data": st.one_of(st.lists(webhook_items, max_size=6), webhook_items)},
    optional={
        "type": st.one_of(st.sampled_from(["enrichmentDone", "enrichmentError"]), json_values)
    },
)
bodies = st.one_of(
    st.binary(max_size=600),
    json_values.map(lambda v: json.dumps(v).encode()),
    webhook_payloads.map(lambda v: json.dumps(v).encode()),
    webhook_payloads.map(lambda v: json.dumps(v).encode() + b" " * FUZZ_LIMIT),  # over the limit
)
header_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True).filter(
    lambda name: name.lower() not in {"host", "transfer-encoding", "content-length"}
)
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
tokens = st.one_of(
    st.just(FUZZ_TOKEN),
    st.none(),
    st.text(max_size=60),
    st.just(FUZZ_TOKEN[:-1]),
    st.just(FUZZ_TOKEN + " "),
)
content_lengths = st.one_of(
    st.none(),
    st.integers(0, 2 * FUZZ_LIMIT).map(str),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=6),
)


def expected_items(body: bytes) -> tuple[int, list[str]]:
    """The status and the ids recorded, per the receiver's contract, for an authorized POST."""
    try:
        value = json.loads(body)
    except ValueError:
        return 400, []
    items = value.get("data") if isinstance(value, dict) else None
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        return 400, []
    return 200, [i["id"] for i in items if isinstance(i, dict) and isinstance(i.get("id"), str)]


_fuzz: dict = {}


def fuzz_client() -> tuple[TestClient, Recorder]:
    if not _fuzz:
        recorder = Recorder()
        app = create_webhook_app(FUZZ_TOKEN, recorder, max_body_bytes=FUZZ_LIMIT)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        _fuzz.update(client=client, recorder=recorder)
    return _fuzz["client"], _fuzz["recorder"]


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    method=st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE", "PATCH"]),
    token=tokens,
    extra_query=st.lists(st.tuples(st.text(max_size=8), st.text(max_size=12)), max_size=3),
    headers=st.dictionaries(header_names, header_values, max_size=4),
    content_length=content_lengths,
    body=bodies,
)
def test_fuzz_never_crashes_and_records_only_authorized_parsed_items(
    method, token, extra_query, headers, content_length, body
):
    client, recorder = fuzz_client()
    recorder.calls.clear()
    query = [(k, v) for k, v in extra_query if k != "token"]
    if token is not None:
        query.append(("token", token))
    send_headers = dict(headers)
    if content_length is not None:
        send_headers["content-length"] = content_length
    answer = client.request(method, WEBHOOK_PATH, params=query, content=body, headers=send_headers)
    assert answer.status_code in ALLOWED, (answer.status_code, answer.text[:200])

    if method != "POST":
        expected_status, expected_ids = 405, []
    elif token != FUZZ_TOKEN:
        expected_status, expected_ids = 401, []
    else:
        declared = content_length if content_length is not None else str(len(body))
        if not declared.isdigit() or int(declared) > FUZZ_LIMIT or len(body) > FUZZ_LIMIT:
            expected_status, expected_ids = 413, []
        else:
            expected_status, expected_ids = expected_items(body)
    assert answer.status_code == expected_status, (answer.status_code, answer.text[:200])
    assert [e.enrichment_id for e in recorder.calls] == expected_ids
    if expected_status == 200:
        assert answer.json() == {
            "received": answer.json()["received"],
            "accepted": len(expected_ids),
        }


# ---------------------------------------------------------------------------- end to end

EXPECTED_FIND_EMAIL = {
    LeadKind.FINDABLE: "done",
    LeadKind.NOT_FINDABLE: "not_found",
    LeadKind.MISSING_CONTACT: "failed",
    LeadKind.RECENTLY_NOT_FOUND: "skipped_already_enriched",
    LeadKind.IN_PROGRESS: "skipped_in_progress",
}


async def test_enrich_campaign_by_webhook_with_every_webhook_delivered_twice(tmp_path):
    config = SandboxConfig(
        leads=60,
        seed=11,
        enrichment_seconds=(0.3, 1.0),
        webhook_duplicate_rate=1.0,
        enrichment_unknown_status_rate=0.2,
    )
    with run_sandbox(config) as sandbox:
        await LemlistCredentials(api_key=sandbox.api_key, base_url=sandbox.base_url).save(
            "webhook-dup-test", overwrite=True
        )
        options = EnrichmentOptions(
            collection="webhook",
            output_dir=str(tmp_path),
            output_name="dup",
            webhook={"grace_seconds": 60.0},
        )
        summary = await enrich_campaign(sandbox.campaign_id, "webhook-dup-test", options=options)
        stats = sandbox.stats()
        started = sum(stats.enrichments_started_by_lead.values())
        # let the second copies finish (those racing the receiver's shutdown end in errors)
        deadline = time.monotonic() + 20
        while len(sandbox.stats().webhook_deliveries) < 2 * started and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        deliveries = sandbox.stats().webhook_deliveries
        truth = {lead.lead_id: lead.kind for lead in sandbox.leads}
        fates = {
            row_id: sandbox.enrichment(row_id).status
            for row_id in {d.enrichment_id for d in deliveries}
        }
        selected = [lead.lead_id for lead in sandbox.leads if not lead.email]

    with open(summary.csv_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["lead_id"] for row in rows] == selected  # each selected lead once, in order
    assert sum(summary.counts.values()) == len(selected)
    assert started > 10
    assert summary.webhook_results == started
    assert summary.polls == 0
    assert max(stats.enrich_posts_by_lead.values()) == 1

    # every webhook was sent twice; no copy was refused by the receiver
    per_enrichment: dict[str, int] = {}
    for delivery in deliveries:
        per_enrichment[delivery.enrichment_id] = per_enrichment.get(delivery.enrichment_id, 0) + 1
    assert len(per_enrichment) == started and set(per_enrichment.values()) == {2}
    assert all(d.status_code in (200, None) for d in deliveries), deliveries
    assert sum(d.ok for d in deliveries) > started  # duplicates did reach the receiver

    failed_by_lemlist = 0
    for row in rows:
        if row["enrichment_id"] and fates.get(row["enrichment_id"]) == "error":
            failed_by_lemlist += 1
            assert row["status"] == "failed", row
        else:
            assert row["status"] == EXPECTED_FIND_EMAIL[truth[row["lead_id"]]], row
    assert failed_by_lemlist > 0  # enrichmentError webhooks went through the real path
    assert Path(summary.jsonl_path).exists()
