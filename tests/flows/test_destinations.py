"""Results into real databases (SQLite always, PostgreSQL from the session's throw-away cluster)
and people read from SQL, through the flows against the sandbox: the same run twice lands every
input row once, merged, in the documented schema; a later run never overwrites a found value;
a database that refuses the rows ends the run Failed with the files written."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from _files import read_csv
from _sandboxes import FAST_WINDOW, credentials_for

from prefect_lemlist import (
    ContactOptions,
    DatabaseTargetError,
    EnrichmentOptions,
    EnrichmentsNotCollectedError,
    LemlistAuthError,
)
from prefect_lemlist.flows import enrich_contacts, enrich_leads
from prefect_lemlist.pipeline.schema import RESULT_COLUMNS
from prefect_lemlist.sandbox import SandboxConfig, generate_people, run_sandbox

QUICK = {"enrichment_seconds": (0.1, 0.3), **FAST_WINDOW}


def people_file(path: Path, n: int, seed: int) -> tuple[Path, list[dict[str, str]]]:
    rows = []
    for number, person in enumerate(generate_people(n, seed=seed)):
        rows.append({"crm_id": f"crm-{number}", **person, "email": ""})
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path, rows


def table_rows(url: str, table: str = "lemlist_enrichments") -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(f"select * from {table}"))]
    finally:
        engine.dispose()


def options(out: Path, name: str, url: str, **fields: Any) -> ContactOptions:
    base = {
        "output_dir": str(out),
        "output_name": name,
        "first_poll_seconds": 0.2,
        "destination": {"target": url, "key": "crm_id"},
    }
    return ContactOptions.model_validate({**base, **fields})


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crm.db'}"
    url: str = request.getfixturevalue("postgres_url")
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the session's cluster is shared: a clean table per test
        conn.execute(sa.text("drop table if exists lemlist_enrichments"))
    engine.dispose()
    return url


async def test_the_same_run_twice_lands_every_row_once_merged(
    tmp_path: Path, database: str
) -> None:
    path, people = people_file(tmp_path / "people-input.csv", 60, seed=61)
    with run_sandbox(SandboxConfig(leads=0, seed=61, **QUICK)) as sandbox:
        creds = credentials_for(sandbox)
        first = await enrich_contacts(
            path=str(path), credentials_block=creds, options=options(tmp_path, "one", database)
        )
        second = await enrich_contacts(
            path=str(path), credentials_block=creds, options=options(tmp_path, "two", database)
        )
    rows = table_rows(database)
    assert sorted(r["crm_id"] for r in rows) == sorted(p["crm_id"] for p in people)
    assert first.table_inserted == len(people) and first.table_updated == 0
    assert second.table_inserted == 0 and second.table_updated == len(people)
    assert set(RESULT_COLUMNS) <= set(rows[0])  # the documented schema, plus the inputs
    assert {r["record_key"] for r in rows} == {p["crm_id"] for p in people}
    exported = {r["crm_id"]: r for r in read_csv(second.csv_path)}
    for row in rows:
        assert row["status"] == exported[row["crm_id"]]["status"]
        assert (row["email"] or "") == exported[row["crm_id"]]["email"]
        assert row["input_line"] == int(exported[row["crm_id"]]["input_line"])
    done = [r for r in rows if r["status"] == "done"]
    assert done and all(r["enriched_at"] is not None for r in done)
    assert all(isinstance(r["raw_result"], dict | str) for r in done)
    assert second.table and "lemlist_enrichments" in second.table


async def test_a_later_failure_never_overwrites_a_found_value(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    path, _ = people_file(tmp_path / "people-input.csv", 40, seed=62)
    with run_sandbox(SandboxConfig(leads=0, seed=62, **QUICK)) as sandbox:
        creds = credentials_for(sandbox)
        await enrich_contacts(
            path=str(path), credentials_block=creds, options=options(tmp_path, "one", url)
        )
        found = {r["crm_id"]: r["email"] for r in table_rows(url) if r["status"] == "done"}
        assert found
        # the second run reads its team and credits, then its key is refused: nothing found
        sandbox.configure(revoke_key_after_requests=sandbox.stats().total_requests + 2)
        # the run ends Failed: rows not started, or started and never collected (401 polls)
        with pytest.raises((LemlistAuthError, EnrichmentsNotCollectedError)):
            await enrich_contacts(
                path=str(path),
                credentials_block=creds,
                options=options(tmp_path, "two", url, force=True),
            )
    later = {r["crm_id"]: r for r in read_csv(tmp_path / "two.csv")}
    failed_later = [crm_id for crm_id in found if later[crm_id]["status"] != "done"]
    assert failed_later, "the later run found nothing for these people"
    after = {r["crm_id"]: r for r in table_rows(url)}
    for crm_id in failed_later:
        assert after[crm_id]["email"] == found[crm_id] and after[crm_id]["status"] == "done"
        assert after[crm_id]["error"] == (later[crm_id]["error"] or None)  # the latest word


async def test_a_database_that_refuses_the_rows_keeps_the_files(tmp_path: Path) -> None:
    path, people = people_file(tmp_path / "people-input.csv", 10, seed=63)
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a table whose rows already repeat the merge key
        conn.execute(sa.text("create table lemlist_enrichments (record_key text, workflows text)"))
        conn.execute(sa.text("insert into lemlist_enrichments values ('k', 'w'), ('k', 'w')"))
    engine.dispose()
    with run_sandbox(SandboxConfig(leads=0, seed=63, **QUICK)) as sandbox:
        with pytest.raises(DatabaseTargetError) as info:
            await enrich_contacts(
                path=str(path),
                credentials_block=credentials_for(sandbox),
                options=options(tmp_path, "refused", url),
            )
        stats = sandbox.stats()
    summary = info.value.summary
    assert summary is not None and summary.csv_path in str(info.value)
    assert len(read_csv(summary.csv_path)) == len(people)  # every row, in the files
    assert summary.started > 0 and stats.total_requests > 2


async def test_an_unreachable_database_stops_the_run_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    path, _ = people_file(tmp_path / "people-input.csv", 10, seed=63)
    bad = "postgresql+psycopg://nobody:s3cr3t@127.0.0.1:1/none"
    with run_sandbox(SandboxConfig(leads=0, seed=63, **QUICK)) as sandbox:
        with pytest.raises(DatabaseTargetError) as info:
            await enrich_contacts(
                path=str(path),
                credentials_block=credentials_for(sandbox),
                options=options(tmp_path, "unreachable", bad),
            )
        stats = sandbox.stats()
    assert "s3cr3t" not in str(info.value) and "***" in str(info.value)
    assert info.value.hint
    assert stats.requests_by_route.get("bulk", 0) == 0  # nothing sent, nothing spent
    assert not list(tmp_path.glob("unreachable*"))


async def test_leads_and_people_read_from_sql(tmp_path: Path, postgres_url: str) -> None:
    people = [p for p in generate_people(200, seed=64) if p["email"] and "@" in p["email"]][:10]
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("drop table if exists crm_people"))
        conn.execute(sa.text("create table crm_people (crm_id int, email text, linkedin_url text)"))
        conn.execute(
            sa.text("insert into crm_people values (:crm_id, :email, :linkedin_url)"),
            [
                {"crm_id": n, "email": p["email"], "linkedin_url": p["linkedin_url"] or None}
                for n, p in enumerate(people)
            ],
        )
    engine.dispose()
    with run_sandbox(SandboxConfig(leads=0, seed=64, **QUICK)) as sandbox:
        _, lead_ids = sandbox.add_campaign_from_people(people, name="sql")
        leads = await enrich_leads(
            sql_query="select crm_id, email from crm_people order by crm_id",
            sql_source=postgres_url,
            credentials_block=credentials_for(sandbox),
            options=EnrichmentOptions(
                output_dir=str(tmp_path), output_name="leads", find_email=False, find_phone=True
            ),
        )
        contacts = await enrich_contacts(
            sql_query="select crm_id, linkedin_url from crm_people where linkedin_url is not null",
            sql_source=postgres_url,
            credentials_block=credentials_for(sandbox),
            options=ContactOptions(output_dir=str(tmp_path), output_name="people"),
        )
    rows = read_csv(leads.csv_path)
    assert [r["lead_id"] for r in rows] == lead_ids
    assert [r["crm_id"] for r in rows] == [str(n) for n in range(len(people))]
    assert leads.source.startswith("query on postgresql+psycopg://")
    with_linkedin = sum(1 for p in people if p["linkedin_url"])
    assert contacts.input_rows == with_linkedin
    assert all(r["person_key"] for r in read_csv(contacts.csv_path) if r["status"] != "rejected")
