"""Secret scan: the lemlist API key never lands in logs, artifacts, exports, files or run records.

The flows run with every logger at DEBUG (Prefect's, prefect-lemlist's, httpx's), with
prefect-lemlist's own loggers forwarded to the Prefect API like Prefect's run loggers, and with
result persistence on, so that as much as possible is written somewhere; then every place is
searched for the key and for its HTTP Basic-auth encoding.

`PREFECT_LOGGING_LEVEL` is only read when Prefect configures logging at import, so a
`temporary_settings` change has no effect on a running session: logger levels are set directly.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import logging
import os
import secrets
import traceback
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID

import pytest
from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.context import get_run_context
from prefect.exceptions import MissingContextError
from prefect.logging.handlers import APILogHandler
from prefect.settings import (
    PREFECT_RESULTS_PERSIST_BY_DEFAULT,
    PREFECT_SERVER_DATABASE_CONNECTION_URL,
    temporary_settings,
)

from prefect_lemlist import LemlistCredentials
from prefect_lemlist.api.exceptions import LemlistAuthError, LemlistNotFoundError
from prefect_lemlist.flows import enrich_campaign, enrich_leads
from prefect_lemlist.pipeline import EnrichmentOptions, render_summary
from prefect_lemlist.sandbox import SandboxConfig, run_sandbox
from prefect_lemlist.tasks import (
    bulk_enrich,
    enrich_contact,
    enrich_lead,
    export_campaign_leads,
    get_credits,
)

LOGGERS = ("", "prefect", "prefect_lemlist", "httpx", "httpcore", "uvicorn", "starlette")


# ---------------------------------------------------------------------------- the scanner


def needles_for(secret: str) -> list[str]:
    """The secret, its random part, and its Basic-auth header value (empty user name)."""
    basic = base64.b64encode(f":{secret}".encode()).decode()
    random_part = secret.rsplit("-", 1)[-1]
    return [secret, random_part, basic, basic.rstrip("=")]


@flow
async def every_task(block: str, campaign_id: str, lead_id: str) -> list:
    """Each public task with the block as a parameter (their task runs are scanned too)."""
    credentials = await LemlistCredentials.aload(block)
    leads = await export_campaign_leads(campaign_id, credentials)
    credits = await get_credits(credentials)
    started = await enrich_lead(lead_id, credentials, linkedin_enrichment=True)
    person = {"linkedinUrl": "https://www.linkedin.com/in/secret-scan", "firstName": "Ada"}
    contact = await enrich_contact(person, credentials, linkedin_enrichment=True)
    bulk = await bulk_enrich(
        [person, {"email": "scan@example.com"}], credentials, verify_email=True
    )
    return [leads, credits, started, contact, bulk]


class Scanner:
    """Collects every place where one of the needles was found."""

    def __init__(self, secret: str, needles: list[str] | None = None) -> None:
        self.needles = needles or needles_for(secret)
        self.hits: list[str] = []
        self.scanned: dict[str, int] = {}

    def text(self, source: str, value: object) -> None:
        content = value if isinstance(value, str) else repr(value)
        self.scanned[source.split(":", 1)[0]] = self.scanned.get(source.split(":", 1)[0], 0) + 1
        for needle in self.needles:
            at = content.find(needle)
            if at >= 0:
                self.hits.append(f"{source}: ...{content[max(0, at - 60) : at + 80]!r}...")

    def data(self, source: str, content: bytes) -> None:
        self.scanned[source.split(":", 1)[0]] = self.scanned.get(source.split(":", 1)[0], 0) + 1
        for needle in self.needles:
            for encoded in {needle.encode(), needle.encode("utf-16-le")}:
                at = content.find(encoded)
                if at >= 0:
                    snippet = content[max(0, at - 40) : at + 60]
                    self.hits.append(f"{source}: ...{snippet!r}...")

    def tree(self, source: str, root: Path) -> int:
        count = 0
        for path in sorted(root.rglob("*")):
            if path.is_file():
                with contextlib.suppress(OSError):
                    self.data(f"{source}:{path}", path.read_bytes())
                    count += 1
        return count

    def exception(self, source: str, exc: BaseException | None) -> None:
        if exc is None:
            return
        self.text(f"{source}:str", str(exc))
        self.text(f"{source}:repr", repr(exc))
        self.text(f"{source}:args", exc.args)
        self.text(f"{source}:vars", vars(exc))
        self.text(f"{source}:traceback", "".join(traceback.format_exception(exc)))


# ---------------------------------------------------------------------------- log capture


class _InRunContext(logging.Filter):
    """Forward only records emitted inside a flow or task run (others have nowhere to go)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            get_run_context()
        except MissingContextError:
            return False
        return True


@contextlib.contextmanager
def everything_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """DEBUG everywhere, caught by caplog; prefect-lemlist's logs also sent to the Prefect API."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    for name in ("prefect.extra", "prefect._internal"):  # they do not propagate to caplog
        logging.getLogger(name).addHandler(caplog.handler)
    api = APILogHandler()
    api.addFilter(_InRunContext())
    api.setLevel(logging.DEBUG)
    ours = logging.getLogger("prefect_lemlist")
    ours.addHandler(api)
    try:
        with temporary_settings(updates={PREFECT_RESULTS_PERSIST_BY_DEFAULT: True}):
            yield
    finally:
        ours.removeHandler(api)
        for name in ("prefect.extra", "prefect._internal"):
            logging.getLogger(name).removeHandler(caplog.handler)


async def scan_prefect_api(scanner: Scanner, flow_run_ids: list[UUID]) -> dict[str, int]:
    """Scan what the Prefect API stored about these flow runs; return how much was found."""
    await APILogHandler.aflush()
    found = {"logs": 0, "our_logs": 0, "artifacts": 0, "task_runs": 0}
    async with get_client() as client:
        flow_run_filter = FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids))
        offset = 0
        while True:
            logs = await client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=flow_run_ids)),
                limit=200,
                offset=offset,
            )
            for log in logs:
                scanner.text(f"api-log:{log.name}", log.message)
                found["logs"] += 1
                found["our_logs"] += log.name.startswith("prefect_lemlist")
            if len(logs) < 200:
                break
            offset += 200
        for artifact in await client.read_artifacts(flow_run_filter=flow_run_filter):
            scanner.text(f"artifact:{artifact.key}", artifact.model_dump_json())
            found["artifacts"] += 1
        for run in await client.read_flow_runs(flow_run_filter=flow_run_filter):
            scanner.text(f"flow-run:{run.name}", run.model_dump_json())
            scanner.text(f"flow-run-parameters:{run.name}", run.parameters)
            for state in await client.read_flow_run_states(run.id):
                scanner.text(f"flow-run-state:{run.name}", state.model_dump_json())
        for task_run in await client.read_task_runs(flow_run_filter=flow_run_filter):
            scanner.text(f"task-run:{task_run.name}", task_run.model_dump_json())
            for state in await client.read_task_run_states(task_run.id):
                scanner.text(f"task-run-state:{task_run.name}", state.model_dump_json())
            found["task_runs"] += 1
        for document in await client.read_block_documents(include_secrets=False):
            scanner.text(f"block-document:{document.name}", document.model_dump_json())
    return found


def scan_files(scanner: Scanner, *roots: Path) -> int:
    """Scan PREFECT_HOME, the test server's database, and the given directories."""
    count = scanner.tree("prefect-home", Path(os.environ["PREFECT_HOME"]))
    url = str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value() or "")
    if url.startswith("sqlite"):
        database = Path(url.split(":///", 1)[1])
        for path in database.parent.glob(database.name + "*"):  # the db, -wal, -shm, -journal
            scanner.data(f"server-db:{path}", path.read_bytes())
            count += 1
    for root in roots:
        count += scanner.tree("exports", root)
    return count


async def exception_of(state) -> BaseException | None:
    try:
        await state.result()
    except BaseException as exc:
        return exc
    return None


# ---------------------------------------------------------------------------- the scan


async def test_api_key_never_leaks(tmp_path, caplog, monkeypatch):
    key = "sk-SECRET-" + secrets.token_hex(16)
    wrong_key = "sk-WRONGKEY-" + secrets.token_hex(16)
    config = SandboxConfig(
        api_keys=[key],
        leads=30,
        seed=7,
        enrichment_seconds=(0.3, 1.0),
        fault_5xx_rate=0.05,  # some retries and warnings on the way
        fault_429_rate=0.03,
        fault_retry_after="0.5",
    )
    out = tmp_path / "out"

    def options(name: str, **fields) -> EnrichmentOptions:
        return EnrichmentOptions(
            output_dir=str(out), output_name=name, first_poll_seconds=0.5, **fields
        )

    states = {}
    with run_sandbox(config) as sandbox, everything_logged(caplog):
        await LemlistCredentials(api_key=key, base_url=sandbox.base_url).save(
            "secret-scan-good", overwrite=True
        )
        await LemlistCredentials(api_key=wrong_key, base_url=sandbox.base_url).save(
            "secret-scan-wrong", overwrite=True
        )
        states["poll"] = await enrich_campaign(
            sandbox.campaign_id, "secret-scan-good", options=options("poll"), return_state=True
        )
        states["webhook"] = await enrich_campaign(
            sandbox.campaign_id,
            "secret-scan-good",
            options=options(
                "webhook",
                find_email=False,
                linkedin_enrichment=True,
                collection="webhook",
                webhook={"grace_seconds": 30.0},
            ),
            return_state=True,
        )
        with monkeypatch.context() as env:  # credentials from the environment, not a block
            env.setenv("LEMLIST_API_KEY", key)
            env.setenv("LEMLIST_BASE_URL", sandbox.base_url)
            states["env"] = await enrich_leads(
                [lead.lead_id for lead in sandbox.leads[:8]],
                options=options("env", find_email=False, find_phone=True),
                return_state=True,
            )
        states["tasks"] = await every_task(
            "secret-scan-good", sandbox.campaign_id, sandbox.leads[0].lead_id, return_state=True
        )
        states["unknown-campaign"] = await enrich_campaign(
            "cam_doesNotExist0000", "secret-scan-good", options=options("x"), return_state=True
        )
        states["unauthorized"] = await enrich_campaign(
            sandbox.campaign_id, "secret-scan-wrong", options=options("y"), return_state=True
        )
        webhook_summary = await states["webhook"].result()
        with open(webhook_summary.csv_path, encoding="utf-8") as handle:
            enrichment_ids = {row["enrichment_id"] for row in csv.DictReader(handle)}
        webhook_urls = {sandbox.enrichment(eid).webhook_url for eid in enrichment_ids if eid} - {
            None
        }

    # the runs did what they should, so there was something to leak
    assert states["poll"].is_completed() and states["webhook"].is_completed()
    assert states["env"].is_completed()
    assert states["tasks"].is_completed(), states["tasks"].message
    poll, webhook, env_run = [await states[k].result() for k in ("poll", "webhook", "env")]
    assert poll.counts["done"] > 0 and webhook.webhook_results > 0 and env_run.selected == 8
    assert len(await states["tasks"].result()) == 5
    failures = {
        name: await exception_of(states[name]) for name in ("unknown-campaign", "unauthorized")
    }
    assert isinstance(failures["unknown-campaign"], LemlistNotFoundError)
    assert isinstance(failures["unauthorized"], LemlistAuthError)
    assert all(states[name].is_failed() for name in failures)

    # the webhook token is a secret too (anyone holding it can post results)
    # the token travels in the URL's path (`/lemlist/<token>`), not in its query string
    [webhook_token] = {urlsplit(url).path.rsplit("/", 1)[-1] for url in webhook_urls}
    assert all(not urlsplit(url).query for url in webhook_urls)
    assert len(webhook_token) >= 43

    flow_run_ids = [state.state_details.flow_run_id for state in states.values()]
    scanners = {secret: Scanner(secret) for secret in (key, wrong_key)}
    scanners[webhook_token] = Scanner(webhook_token, needles=[webhook_token])
    for secret, scanner in scanners.items():
        # (a) logs: stored by the Prefect API, and everything the process logged
        found = await scan_prefect_api(scanner, flow_run_ids)
        third_party = ("httpx", "httpcore")
        if secret == webhook_token:
            # httpx itself logs every request URL at INFO (silent under Prefect's default
            # WARNING root level): the webhook URL given to lemlist is in those lines, and
            # so are the sandbox's own deliveries. Only our code and Prefect's are held to it.
            records = [r for r in caplog.records if not r.name.startswith(third_party)]
        else:
            records = caplog.records
            scanner.text("caplog:text", caplog.text)
        for record in records:
            scanner.text(f"caplog-record:{record.name}", record.getMessage())
            scanner.text(f"caplog-args:{record.name}", record.args)
            if record.exc_info:
                scanner.text(
                    f"caplog-exc:{record.name}",
                    "".join(traceback.format_exception(*record.exc_info)),
                )
        # (c), (d): exports, PREFECT_HOME (ledger, persisted results), the server database
        files = scan_files(scanner, out)
        # (e) failed runs: state messages and the exceptions themselves
        for name, exc in failures.items():
            scanner.text(f"state-message:{name}", states[name].message)
            scanner.text(f"state:{name}", repr(states[name]))
            scanner.exception(f"exception:{name}", exc)
        for name in ("poll", "webhook", "env"):
            summary = await states[name].result()
            scanner.text(f"summary:{name}", summary.model_dump_json())
            scanner.text(f"summary-markdown:{name}", render_summary(summary))
        block = await LemlistCredentials.aload("secret-scan-good")
        scanner.text("block-repr", repr(block))
        scanner.text("block-str", str(block))
        scanner.text("client-repr", repr(block.get_client()))

    # not vacuous: each kind of place was really read
    assert found["logs"] > 20 and found["our_logs"] > 0, found
    assert found["artifacts"] >= 6 and found["task_runs"] >= 5, found
    home = Path(os.environ["PREFECT_HOME"])
    ledger = Path(os.environ["LEMLIST_LEDGER_DIR"])  # tests/conftest.py: inside PREFECT_HOME
    assert ledger.is_relative_to(home)  # so the scan of PREFECT_HOME read the ledger too
    ledger_records = list((ledger / "lemlist-ledger").rglob("*.json"))
    assert len(ledger_records) >= 10, "no ledger record was written"
    assert files > 10 and len(list(out.iterdir())) == 6
    assert "caplog" in scanners[key].scanned and len(caplog.records) > 100
    assert scanners[key].scanned.get("server-db", 0) >= 1, scanners[key].scanned
    assert any(
        r.name.startswith("prefect_lemlist") and r.levelno == logging.DEBUG for r in caplog.records
    )

    leaks = {secret[:14] + "...": scanner.hits for secret, scanner in scanners.items()}
    assert leaks == {k: [] for k in leaks}, "\n".join(h for hits in leaks.values() for h in hits)


# ---------------------------------------------------------------------------- positive controls


def test_scanner_finds_the_key_and_its_basic_auth_encoding(tmp_path):
    key = "sk-SECRET-" + secrets.token_hex(16)
    basic = base64.b64encode(f":{key}".encode()).decode()
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "record.bin").write_bytes(b"\x00\x01prefix" + key.encode() + b"\xff")
    (tmp_path / "headers.txt").write_text(f"Authorization: Basic {basic}\n")
    (tmp_path / "clean.txt").write_text("nothing to see: sk-SECRET-0000\n")
    (tmp_path / "utf16.txt").write_bytes(f"k={key}".encode("utf-16-le"))

    scanner = Scanner(key)
    assert scanner.tree("files", tmp_path) == 4
    found = {hit.split(":", 2)[1] for hit in scanner.hits}
    assert found == {
        str(tmp_path / "a" / "b" / "record.bin"),
        str(tmp_path / "headers.txt"),
        str(tmp_path / "utf16.txt"),
    }
    for text in (f"x{key}y", f"Basic {basic}", f"{{'password': '{key[10:]}'}}"):
        checker = Scanner(key)
        checker.text("text", text)
        assert checker.hits, text
    clean = Scanner(key)
    clean.text("text", "sk-SECRET-" + secrets.token_hex(16))
    clean.exception("exc", ValueError("another key: sk-SECRET-" + secrets.token_hex(16)))
    assert clean.hits == []
    leaky = Scanner(key)
    leaky.exception("exc", ValueError(f"bad key {key}"))
    assert leaky.hits


@flow(name="secret-scan-canary")
async def canary_flow(canary: str, path: str) -> str:
    basic = base64.b64encode(f":{canary}".encode()).decode()
    get_run_logger().info("the canary is %s", canary)
    logging.getLogger("prefect_lemlist.client").debug("Authorization: Basic %s", basic)
    await acreate_markdown_artifact(f"canary {canary}", key="secret-scan-canary")
    Path(path).write_text(canary)
    return "ok"


async def test_canary_secret_is_found_in_every_place_the_scan_reads(tmp_path, caplog):
    """The same collection code as the real scan finds a secret deliberately put everywhere."""
    canary = "sk-CANARY-" + secrets.token_hex(16)
    planted = Path(os.environ["PREFECT_HOME"]) / f"canary-{secrets.token_hex(4)}.txt"
    try:
        with everything_logged(caplog):
            state = await canary_flow(canary, str(planted), return_state=True)
        assert state.is_completed()
        scanner = Scanner(canary)
        await scan_prefect_api(scanner, [state.state_details.flow_run_id])
        scanner.text("caplog:text", caplog.text)
        scan_files(scanner, tmp_path)
        sources = {hit.split(":", 1)[0] for hit in scanner.hits}
        assert {"api-log", "artifact", "caplog", "prefect-home", "flow-run"} <= sources, sources
        api_loggers = {hit.split(":", 2)[1] for hit in scanner.hits if hit.startswith("api-log")}
        assert "prefect_lemlist.client" in api_loggers  # our debug logs do reach the API
    finally:
        planted.unlink(missing_ok=True)
