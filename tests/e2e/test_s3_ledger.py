"""The enrichment ledger on S3 (s3fs against moto's S3 server): its exclusive create is S3's own
conditional write (`If-None-Match: *`), so racing claims on several machines start each paid
enrichment once; a store that ignores the condition is found out and falls back, said so. GCS
(gcsfs, `ifGenerationMatch=0`) is checked on a fake file system shaped like gcsfs."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.server import ThreadedMotoServer
from prefect.filesystems import RemoteFileSystem
from werkzeug.serving import make_server

from prefect_lemlist.local_api import PrefectServer
from prefect_lemlist.pipeline.ledger import (
    NOT_ATOMIC_WARNING,
    ClaimedElsewhereError,
    FsspecStorage,
    Ledger,
    LedgerState,
    account_key,
)
from prefect_lemlist.pipeline.ledger.records import Record, encode, new_item
from prefect_lemlist.pipeline.ledger.storage import PROBE_DIR, has_conditional_create
from prefect_lemlist.sandbox import (
    LeadKind,
    SandboxConfig,
    generate_people,
    run_sandbox,
    write_people_file,
)

ROOT = Path(__file__).resolve().parents[2]
KEY, SECRET, REGION = "testing-key", "testing-secret", "us-east-1"
BUCKET = "lemlist-ledger"
IGNORING_BUCKET = "ignores-conditions"  # the test server drops `If-None-Match` for this one
NOT_ATOMIC_TEXT = NOT_ATOMIC_WARNING.split("(%s)")[1].split(":")[0].strip()  # "has no atomic …"


# ------------------------------------------------------------------------------ the S3 server


class SerialPutMotoServer(ThreadedMotoServer):
    """moto's S3 server, with its PUTs handled one at a time.

    moto decides a conditional PUT (`If-None-Match: *`) inside one request, but as a check then a
    write without a lock (`moto.s3.responses.S3Response.put_object`), on a threaded server: two
    racing conditional PUTs of one key could both pass its check. S3 decides atomically; taking
    PUTs one at a time makes moto do the same, so the race tests measure this package. It hides
    no check-then-write in the package: a check is a request of its own (a HEAD), which still
    runs between any two PUTs (`test_racing_creates_have_one_winner_per_name` shows the old
    check-then-write losing that race on this very server).

    For `IGNORING_BUCKET` the server drops `If-None-Match`, like an S3-compatible store that
    does not implement conditional writes (a plain overwrite).
    """

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        puts = threading.Lock()

        def serial_puts(environ: dict, start_response):
            if _bucket_of(environ) == IGNORING_BUCKET:
                environ.pop("HTTP_IF_NONE_MATCH", None)
            if environ.get("REQUEST_METHOD") != "PUT":
                return app(environ, start_response)
            with puts:  # moto handles the whole request (and its state change) in this call
                return app(environ, start_response)

        self._server = make_server(
            self._ip_address, self._port, serial_puts, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


def _bucket_of(environ: dict) -> str:
    """The bucket of a path-style request (s3fs uses path style on an IP endpoint)."""
    return environ.get("PATH_INFO", "").lstrip("/").split("/", 1)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_url():
    """A moto S3 server on loopback with the test buckets (dummy credentials, us-east-1)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", KEY)
        env.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.delenv("AWS_PROFILE", raising=False)
        server = SerialPutMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            url = f"http://{host}:{port}"
            client = s3_client(url)
            for bucket in (BUCKET, IGNORING_BUCKET):
                client.create_bucket(Bucket=bucket)
            yield url
        finally:
            server.stop()


def s3_client(url: str):
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )


def settings(url: str, *, own_instance: bool = False) -> dict:
    """The `RemoteFileSystem` settings (s3fs's options) of the test server."""
    options = {
        "key": KEY,
        "secret": SECRET,
        "client_kwargs": {"endpoint_url": url, "region_name": REGION},
    }
    if own_instance:  # another "machine": its own s3fs instance and connection pool
        options["skip_instance_cache"] = True
    return options


def s3_storage(url: str, prefix: str, *, bucket: str = BUCKET, own_instance: bool = False):
    block = RemoteFileSystem(
        basepath=f"s3://{bucket}/{prefix}", settings=settings(url, own_instance=own_instance)
    )
    return FsspecStorage(block)


def keys_under(url: str, bucket: str, prefix: str) -> list[str]:
    pages = s3_client(url).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


# ------------------------------------------------------------------------------ a. one create


async def test_a_second_create_of_a_claim_fails_and_keeps_the_first(s3_url):
    prefix = f"direct-{uuid.uuid4().hex[:8]}"
    storage = s3_storage(s3_url, prefix)
    assert storage.conditional_create
    assert await storage.check_atomic_create() is True
    assert storage.atomic_create is True
    name = "lemlist-ledger/acc/leads/find_email/lea_1.json"
    assert await storage.create(name, b"first") is True
    assert await storage.create(name, b"second") is False
    assert await storage.read_many([name]) == {name: b"first"}
    # a takeover marker is an empty object: created once too
    marker = f"{name}.takeover-0123456789abcdef01234567"
    assert await storage.create(marker, b"") is True
    assert await storage.create(marker, b"") is False
    # another storage object on the same store knows it is atomic without a new probe
    assert s3_storage(s3_url, prefix).atomic_create is True
    # the probe leaves nothing behind
    assert keys_under(s3_url, BUCKET, f"{prefix}/{PROBE_DIR}") == []
    assert sorted(keys_under(s3_url, BUCKET, prefix)) == [f"{prefix}/{name}", f"{prefix}/{marker}"]


async def test_memory_storage_is_a_check_then_write_and_says_so():
    memory = FsspecStorage(RemoteFileSystem(basepath=f"memory://ledger-{uuid.uuid4().hex}"))
    assert memory.conditional_create is False  # fsspec's generic `mode="create"` is not atomic
    assert await memory.check_atomic_create() is False
    assert await memory.create("a/b.json", b"first") is True
    assert await memory.create("a/b.json", b"second") is False
    assert memory.atomic_create is False
    assert await memory.read_many(["a/b.json"]) == {"a/b.json": b"first"}


async def test_a_store_that_ignores_the_condition_is_found_out_and_falls_back(s3_url):
    storage = s3_storage(s3_url, "ignored", bucket=IGNORING_BUCKET)
    assert storage.conditional_create  # s3fs, yet this store overwrites a conditional PUT
    assert await storage.check_atomic_create() is False
    assert storage.atomic_create is False
    assert await storage.create("x/y.json", b"first") is True
    assert await storage.create("x/y.json", b"second") is False  # the check-then-write
    assert await storage.read_many(["x/y.json"]) == {"x/y.json": b"first"}
    assert keys_under(s3_url, IGNORING_BUCKET, f"ignored/{PROBE_DIR}") == []


# ------------------------------------------------------------------------------ b. the race


def race(storages: list[FsspecStorage], names: list[str], create) -> dict[str, list[int]]:
    """Every storage (one thread each) creates every name, all threads released together for
    each name; returns name -> the indexes of the storages whose create won."""
    barrier = threading.Barrier(len(storages))
    wins: dict[str, list[int]] = {name: [] for name in names}
    lock = threading.Lock()

    def worker(index: int) -> None:
        for name in names:
            barrier.wait()
            if create(storages[index], name, f"writer-{index}".encode()):
                with lock:
                    wins[name].append(index)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(storages))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return wins


def create_through_the_api(storage: FsspecStorage, name: str, data: bytes) -> bool:
    return asyncio.run(storage.create(name, data))


def old_check_then_write(storage: FsspecStorage, name: str, data: bytes) -> bool:
    return storage._check_then_write(storage._path(name), data)


async def test_racing_creates_have_one_winner_per_name(s3_url):
    """Eight writers, each with its own s3fs instance (eight machines), race to create the same
    60 records, released together for each: exactly one wins each record, and its content is
    what is stored. The server takes PUTs one at a time (see `SerialPutMotoServer`: real S3 is
    atomic), yet the check-then-write this package did before loses the same race on it."""
    prefix = f"race-{uuid.uuid4().hex[:8]}"
    storages = [s3_storage(s3_url, prefix, own_instance=True) for _ in range(8)]
    assert all([await storage.check_atomic_create() for storage in storages])
    names = [f"lemlist-ledger/acc/contacts/find_email/chunk-{i:03d}.json" for i in range(60)]

    wins = await asyncio.to_thread(race, storages, names, create_through_the_api)

    assert {name: len(winners) for name, winners in wins.items()} == dict.fromkeys(names, 1)
    stored = await storages[0].read_many(names)
    assert stored == {name: f"writer-{wins[name][0]}".encode() for name in names}

    # the control: the old check-then-write lets several writers win on the same server
    control = [f"control/{i:03d}.json" for i in range(30)]
    old = await asyncio.to_thread(race, storages, control, old_check_then_write)
    assert sum(len(winners) > 1 for winners in old.values()) > 0


# ------------------------------------------------------------------------------ c. the ledger


async def send_lead(ledger: Ledger, lead_id: str, recalled=None) -> str | None:
    """Claim and "start" one lead; returns the enrichment id, or None when claimed elsewhere."""
    try:
        async with ledger.claim_lead(lead_id, recalled=recalled) as claim:
            await claim.sending()
            enrichment_id = f"enr_{uuid.uuid4().hex[:10]}"
            claim.started(enrichment_id)
            return enrichment_id
    except ClaimedElsewhereError:
        return None


async def send_chunk(ledger: Ledger, keys: list[str]) -> dict[str, str] | None:
    try:
        async with ledger.claim_chunk(keys) as claim:
            await claim.sending()
            started = {key: f"enr_{uuid.uuid4().hex[:10]}" for key in keys}
            claim.answered(started, {})
            return started
    except ClaimedElsewhereError:
        return None


async def test_two_ledgers_on_one_bucket_start_each_lead_and_chunk_once(s3_url):
    prefix = f"ledger-{uuid.uuid4().hex[:8]}"
    account = account_key("tea_s3")
    ledgers = [
        Ledger(s3_storage(s3_url, prefix, own_instance=True), account, "find_email")
        for _ in range(2)
    ]
    leads = [f"lea_{i:05d}" for i in range(40)]
    chunks = [[f"person-{c}-{i}" for i in range(25)] for c in range(6)]

    lead_results = await asyncio.gather(
        *(send_lead(ledger, lead) for lead in leads for ledger in ledgers)
    )
    chunk_results = await asyncio.gather(
        *(send_chunk(ledger, keys) for keys in chunks for ledger in ledgers)
    )

    for index, lead in enumerate(leads):
        pair = lead_results[2 * index : 2 * index + 2]
        assert sum(result is not None for result in pair) == 1, (lead, pair)
        winner = next(result for result in pair if result is not None)
        for ledger in ledgers:  # both see the winner's enrichment
            assert (await ledger.recall_leads([lead]))[lead].enrichment_id == winner
    for index, keys in enumerate(chunks):
        pair = chunk_results[2 * index : 2 * index + 2]
        assert sum(result is not None for result in pair) == 1, (keys[0], pair)
        winner = next(result for result in pair if result is not None)
        recalls = await ledgers[1].recall_contacts(keys)
        assert {key: recall.enrichment_id for key, recall in recalls.items()} == winner


async def test_a_dead_claim_is_taken_over_by_one_of_two_ledgers(s3_url):
    """An interrupted start (a `starting` record nobody holds) recalled by two runs: one takes
    it over (its marker, an empty object named after the version read, is created once)."""
    prefix = f"takeover-{uuid.uuid4().hex[:8]}"
    account = account_key("tea_s3")
    ledgers = [
        Ledger(s3_storage(s3_url, prefix, own_instance=True), account, "find_email")
        for _ in range(2)
    ]
    leads = [f"lea_dead{i:03d}" for i in range(10)]
    for lead in leads:
        record = Record(items={lead: new_item(LedgerState.STARTING)})
        await ledgers[0].storage.replace(ledgers[0].lead_record(lead), encode(record))
    recalls = [await ledger.recall_leads(leads) for ledger in ledgers]
    assert all(recall[lead].interrupted for recall in recalls for lead in leads)

    results = await asyncio.gather(
        *(
            send_lead(ledger, lead, recall[lead])
            for lead in leads
            for ledger, recall in zip(ledgers, recalls)
        )
    )

    for index in range(len(leads)):
        assert sum(result is not None for result in results[2 * index : 2 * index + 2]) == 1


# ------------------------------------------------------------------------------ GCS (a fake)


class FakeGCSFileSystem:
    """A file system shaped like gcsfs's (`pipe_file(..., mode="create")` is the store's
    `ifGenerationMatch=0`: a 412, raised as `FileExistsError`, when the object exists).

    `zonal=True` behaves like gcsfs on a zonal bucket, where `mode="create"` overwrites.
    """

    def __init__(self, zonal: bool = False) -> None:
        self.zonal = zonal
        self.objects: dict[str, bytes] = {}
        self.calls: list[str] = []
        self._lock = threading.Lock()

    async def _pipe_file(self, path: str, data: bytes, mode: str = "overwrite") -> None:
        self.pipe_file(path, data, mode=mode)

    def pipe_file(self, path: str, data: bytes, mode: str = "overwrite") -> None:
        with self._lock:  # the store decides the condition and the write at once
            self.calls.append(mode)
            if mode == "create" and not self.zonal and path in self.objects:
                raise FileExistsError(path)
            self.objects[path] = data

    def cat_file(self, path: str) -> bytes:
        try:
            return self.objects[path]
        except KeyError:
            raise FileNotFoundError(path) from None

    def exists(self, path: str) -> bool:
        return path in self.objects

    def rm_file(self, path: str) -> None:
        self.objects.pop(path, None)


FakeGCSFileSystem.__module__ = "gcsfs.core"  # where gcsfs's conditional `_pipe_file` lives


def gcs_storage(fs: FakeGCSFileSystem) -> FsspecStorage:
    return FsspecStorage(SimpleNamespace(filesystem=fs, basepath="gs://bucket/ledger"))


async def test_gcs_creates_with_its_generation_condition():
    fs = FakeGCSFileSystem()
    assert has_conditional_create(fs)
    storage = gcs_storage(fs)
    assert await storage.check_atomic_create() is True
    fs.calls.clear()
    results = await asyncio.gather(*(storage.create("a/b.json", bytes([i])) for i in range(16)))
    assert sorted(results) == [False] * 15 + [True]
    assert set(fs.calls) == {"create"}  # never a check, never an unconditional write
    assert list(fs.objects) == ["gs://bucket/ledger/a/b.json"]  # the probe removed its object


async def test_gcs_zonal_buckets_overwrite_on_create_and_fall_back():
    fs = FakeGCSFileSystem(zonal=True)
    storage = gcs_storage(fs)
    assert await storage.check_atomic_create() is False
    assert storage.atomic_create is False
    assert await storage.create("a/b.json", b"first") is True
    assert await storage.create("a/b.json", b"second") is False
    assert fs.objects == {"gs://bucket/ledger/a/b.json": b"first"}


# ------------------------------------------------------------------------------ d. two homes


SAVE_BLOCK = """
import json, sys
from prefect.filesystems import RemoteFileSystem
RemoteFileSystem(basepath=sys.argv[1], settings=json.loads(sys.argv[2])).save(
    sys.argv[3], overwrite=True, _sync=True
)
"""

RUN_BOTH = """
import asyncio, json, sys, time
from pathlib import Path
from prefect_lemlist import ContactOptions, EnrichmentOptions, LemlistCredentials
from prefect_lemlist.flows import enrich_contacts, enrich_leads

people, leads, out, api_key, base_url = sys.argv[1:]
fast = {"output_dir": out, "first_poll_seconds": 0.3, "collect_timeout_seconds": 120}

def together(step):
    # both processes start each flow at the same moment (a file each, then wait for both)
    here = Path(out).parent
    (here / f"{step}-{Path(out).name}").touch()
    deadline = time.monotonic() + 120
    while len(list(here.glob(f"{step}-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)

async def main():
    # a high client rate limit: the sandbox allows it, and the test stays short
    creds = LemlistCredentials(api_key=api_key, base_url=base_url, rate_limit=2000)
    together("people")
    contacts = await enrich_contacts(
        path=people, credentials_block=creds,
        options=ContactOptions(output_name="people", bulk_size=250, **fast),
    )
    together("leads")
    started = await enrich_leads(
        path=leads, credentials_block=creds,
        options=EnrichmentOptions(output_name="leads", batch_size=25, **fast),
    )
    print("EXPORTS " + json.dumps([contacts.csv_path, started.csv_path]))

asyncio.run(main())
"""


def process_env(server: PrefectServer, home: Path, block: str) -> dict[str, str]:
    """A process with its own Prefect home on the shared server, its result storage (and so
    its ledger) the S3 block."""
    env = {
        **os.environ,
        "PREFECT_API_URL": server.url,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": f"remote-file-system/{block}",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    # the directory would win over the result storage: these processes must use the bucket
    for name in ("PREFECT_TEST_MODE", "LEMLIST_LEDGER_DIR"):
        env.pop(name, None)
    return env


def read_rows(path: str) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
async def test_two_prefect_homes_race_on_one_bucket_and_start_nothing_twice(s3_url, tmp_path):
    """Two flow processes, each with its own Prefect home, one Prefect server, the ledger on S3
    as both processes' default result storage: they race on the same 2,000 people and then the
    same 200 leads against one sandbox. lemlist starts every person and every lead once."""
    bucket = f"e2e-{uuid.uuid4().hex[:8]}"
    s3_client(s3_url).create_bucket(Bucket=bucket)
    basepath = f"s3://{bucket}/ledger"
    server = PrefectServer(tmp_path / "server-home")
    await server.start()
    processes: dict[str, subprocess.Popen] = {}
    try:
        subprocess.run(
            [sys.executable, "-c", SAVE_BLOCK, basepath, json.dumps(settings(s3_url)), "s3-ledger"],
            env=process_env(server, tmp_path / "h0", "s3-ledger"),
            check=True,
            timeout=120,
        )
        config = SandboxConfig(
            leads=400, seed=41, enrichment_seconds=(0.2, 0.6), rate_limit=100_000
        )
        with run_sandbox(config) as sandbox:
            people_rows = generate_people(2000, seed=41)
            people = write_people_file(tmp_path / "people.csv", people_rows)
            leads = [lead.lead_id for lead in sandbox.leads if not lead.email][:200]
            assert len(leads) == 200
            contact_gone = {
                lead.lead_id for lead in sandbox.leads if lead.kind is LeadKind.MISSING_CONTACT
            }
            lead_file = tmp_path / "leads.csv"
            lead_file.write_text("lead_id\n" + "\n".join(leads) + "\n")
            processes = {}
            for name in ("a", "b"):
                command = [sys.executable, "-c", RUN_BOTH, str(people), str(lead_file)]
                command += [str(tmp_path / f"out-{name}"), sandbox.api_key, sandbox.base_url]
                processes[name] = subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=process_env(server, tmp_path / f"home-{name}", "s3-ledger"),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            outputs = {}
            for name, process in processes.items():
                outputs[name], _ = process.communicate(timeout=240)
                assert process.returncode == 0, outputs[name][-5000:]
            stats = sandbox.stats()
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
        await server.stop()

    # lemlist started every person once and got every lead's POST once
    by_person = stats.enrichments_started_by_person
    assert by_person and max(by_person.values()) == 1
    assert stats.bulk_items == len(by_person)  # no person was sent in two bulk requests
    assert Counter(stats.enrich_posts_by_lead.values()) == {1: 200}
    assert set(stats.enrich_posts_by_lead) == set(leads)
    assert max(stats.enrichments_started_by_lead.values()) == 1

    exports = {}
    for name, output in outputs.items():
        assert NOT_ATOMIC_TEXT not in output  # S3's create is atomic: no warning
        assert f"ledger: {basepath} (shared)" in output
        line = next(line for line in output.splitlines() if line.startswith("EXPORTS "))
        people_csv, leads_csv = json.loads(line.removeprefix("EXPORTS "))
        exports[name] = (read_rows(people_csv), read_rows(leads_csv))
    unfinished = ("not_started", "timed_out", "not_collected")
    for people_export, leads_export in exports.values():
        # every input row once, in order, with a final answer
        assert [row["person_id"] for row in people_export] == [r["person_id"] for r in people_rows]
        assert [row["lead_id"] for row in leads_export] == leads
        for row in people_export:
            assert row["status"] not in ("failed", *unfinished), row
        for row in leads_export:  # only a lead whose contact is gone fails (404)
            assert row["status"] not in unfinished, row
            assert (row["status"] == "failed") == (row["lead_id"] in contact_gone), row
    # both report the same answer for each row: one process started it, the other followed
    for column in (0, 1):
        answers = [
            [(row["status"], row["enrichment_id"]) for row in exports[name][column]]
            for name in exports
        ]
        assert answers[0] == answers[1]
    ledger_keys = keys_under(s3_url, bucket, "ledger/")
    assert any("/leads/" in key for key in ledger_keys)
    assert any("/contacts/" in key for key in ledger_keys)
    assert not [key for key in ledger_keys if PROBE_DIR in key]
