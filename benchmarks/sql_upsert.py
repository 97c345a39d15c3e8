"""`prefect_lemlist.sql.upsert_rows`: 100,000 result rows of 25 columns into SQLite and PostgreSQL.

    .venv/bin/python benchmarks/sql_upsert.py                      # both, 100k rows, batch 1000
    .venv/bin/python benchmarks/sql_upsert.py --targets postgres --rows 20000 --batch-size 500
    .venv/bin/python benchmarks/sql_upsert.py --targets duckdb --rows 10000

Each target gets a fresh database: a SQLite file in a temporary directory, a throw-away
PostgreSQL cluster (tests/_postgres.py, with PostgreSQL's default durability: fsync and
synchronous commit on), or a DuckDB file. Two passes over the same keys: `insert` (an empty
table: the table, its unique index and every row are new) and `update` (every key exists; a
third of the rows come back `not_found` over a stored `done`, so the protection rule keeps their
email and status). Prints the seconds and rows/s of each pass, checks the row count and the
counts `upsert_rows` reports, and prints one JSON line per pass for the record.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from sqlalchemy import text  # noqa: E402

from prefect_lemlist.sql import ColumnSpec, resolve_engine, upsert_rows  # noqa: E402

COLUMNS = [
    ColumnSpec("lead_id"),
    ColumnSpec("campaign_id"),
    ColumnSpec("email"),
    ColumnSpec("first_name"),
    ColumnSpec("last_name"),
    ColumnSpec("company_name"),
    ColumnSpec("company_domain"),
    ColumnSpec("linkedin_url"),
    ColumnSpec("job_title"),
    ColumnSpec("phone"),
    ColumnSpec("status"),
    ColumnSpec("enrichment_id"),
    ColumnSpec("found_email"),
    ColumnSpec("email_status"),
    ColumnSpec("found_phone"),
    ColumnSpec("phone_status"),
    ColumnSpec("found_linkedin"),
    ColumnSpec("credits_used", "integer"),
    ColumnSpec("attempts", "integer"),
    ColumnSpec("score", "number"),
    ColumnSpec("started_at", "timestamp"),
    ColumnSpec("finished_at", "timestamp"),
    ColumnSpec("run_at", "timestamp"),
    ColumnSpec("error"),
    ColumnSpec("raw", "json"),
]
PROTECTED = [
    "status",
    "enrichment_id",
    "found_email",
    "email_status",
    "found_phone",
    "phone_status",
    "found_linkedin",
    "credits_used",
    "finished_at",
    "raw",
]


def result_rows(count: int, second_pass: bool) -> Iterator[dict[str, object]]:
    """Realistic result rows: input columns, the enrichment's outcome, a JSON answer."""
    base = datetime(2025, 1, 1, tzinfo=timezone.utc)
    run_at = base + timedelta(days=1 if second_pass else 0)
    for i in range(count):
        found = i % 3 != 0 if not second_pass else i % 3 == 1
        status = "done" if found else "not_found"
        yield {
            "lead_id": f"lea_{i:08d}",
            "campaign_id": f"cam_{i % 20:04d}",
            "email": None,
            "first_name": f"First{i}",
            "last_name": f"Last{i}",
            "company_name": f"Company {i % 5000}",
            "company_domain": f"company{i % 5000}.example.com",
            "linkedin_url": f"https://www.linkedin.com/in/person-{i}",
            "job_title": "Head of Growth",
            "phone": None,
            "status": status,
            "enrichment_id": f"enr_{i:010d}",
            "found_email": f"first{i}.last@company{i % 5000}.example.com" if found else None,
            "email_status": "deliverable" if found else None,
            "found_phone": None,
            "phone_status": None,
            "found_linkedin": None,
            "credits_used": 5 if found else 0,
            "attempts": 2 if second_pass else 1,
            "score": (i % 100) / 100,
            "started_at": base + timedelta(seconds=i),
            "finished_at": base + timedelta(seconds=i + 12),
            "run_at": run_at,
            "error": None,
            "raw": {"email": {"email": f"first{i}@example.com", "status": "deliverable"}}
            if found
            else {"email": {"notFound": True}},
        }


def run_target(name: str, url: str, rows: int, batch_size: int) -> list[dict[str, object]]:
    """Both passes on one database; returns their records."""
    engine = resolve_engine(url)
    records = []
    try:
        for label, second in (("insert", False), ("update", True)):
            started = time.perf_counter()
            result = upsert_rows(
                engine,
                "enriched_leads",
                result_rows(rows, second),
                columns=COLUMNS,
                key=["lead_id"],
                protected=PROTECTED,
                batch_size=batch_size,
            )
            seconds = time.perf_counter() - started
            expected = (rows, 0) if not second else (0, rows)
            assert (result.inserted, result.updated) == expected, result
            records.append(
                {
                    "target": name,
                    "pass": label,
                    "rows": rows,
                    "columns": len(COLUMNS),
                    "batch_size": batch_size,
                    "batches": result.batches,
                    "seconds": round(seconds, 2),
                    "rows_per_s": round(rows / seconds),
                }
            )
            rate = rows / seconds
            print(f"{name:9} {label:7} {rows:>8,} rows  {seconds:7.2f} s  {rate:>9,.0f} rows/s")
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM enriched_leads")).scalar_one()
            kept = conn.execute(
                text("SELECT count(*) FROM enriched_leads WHERE status = 'done'")
            ).scalar_one()
        assert stored == rows, stored
        # found in pass 1 (i % 3 != 0) or in pass 2 (i % 3 == 1): done is never lost
        assert kept == sum(1 for i in range(rows) if i % 3 != 0), kept
    finally:
        engine.dispose()
    return records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    targets = ["sqlite", "postgres", "duckdb"]
    parser.add_argument("--targets", nargs="+", default=targets[:2], choices=targets)
    args = parser.parse_args()
    records: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="lemlist-sql-bench-") as tmp:
        for target in args.targets:
            if target == "sqlite":
                url = f"sqlite:///{tmp}/results.db"
                records += run_target(target, url, args.rows, args.batch_size)
            elif target == "duckdb":
                url = f"duckdb:///{tmp}/results.duckdb"
                records += run_target(target, url, args.rows, args.batch_size)
            else:
                from _postgres import postgres_cluster

                with postgres_cluster("lemlist_bench", durable=True) as url:
                    records += run_target(target, url, args.rows, args.batch_size)
    for record in records:
        print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
