"""The output schema: the documented columns, the input-column rule, the quality columns and the
rules that decide what is not sent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from prefect_lemlist.api.models import EnrichmentFlags
from prefect_lemlist.pipeline.export import ExportContext, export_columns, export_rows
from prefect_lemlist.pipeline.input_rules import (
    apply_skip_rules,
    looks_like_lead_ids,
    missing_column_hint,
    skip_status,
)
from prefect_lemlist.pipeline.inputs import table_from_records
from prefect_lemlist.pipeline.outcomes import Outcome, credits_by_price
from prefect_lemlist.pipeline.schema import (
    RESULT_COLUMNS,
    ResultRow,
    column_kind,
    email_domain_matches,
    input_column_names,
    input_digest,
)
from prefect_lemlist.pipeline.selection import lead_file_worklist
from prefect_lemlist.pipeline.worklist import Row, Source, Worklist

DOC = Path(__file__).resolve().parents[2] / "docs" / "schema.md"
FIND_EMAIL = EnrichmentFlags(find_email=True)
PHONE = EnrichmentFlags(find_email=False, find_phone=True)


def test_the_documented_columns_are_the_models_in_order() -> None:
    documented = re.findall(r"^\| `([a-z_]+)` \|", DOC.read_text(), flags=re.MULTILINE)
    assert documented[: len(RESULT_COLUMNS)] == list(RESULT_COLUMNS)


def test_every_status_is_documented() -> None:
    from prefect_lemlist.pipeline.outcomes import STATUSES

    text = DOC.read_text()
    missing = [s for s in STATUSES if f"`{s}`" not in text]
    assert missing == []


def test_column_kinds_follow_the_model() -> None:
    assert column_kind("enriched_at") == column_kind("run_at") == "timestamp"
    assert column_kind("input_line") == "integer"
    assert column_kind("credits_charged") == "number"
    assert column_kind("raw_result") == "json"
    assert column_kind("crm_id") == column_kind("email") == "text"
    typed = {name for name in RESULT_COLUMNS if column_kind(name) != "text"}
    annotated = {
        name
        for name, field in ResultRow.model_fields.items()
        if any(t in str(field.annotation) for t in ("datetime", "float", "int", "dict"))
    }
    assert typed == annotated


def test_input_columns_never_collide_with_results() -> None:
    names = input_column_names(["email", "linkedinUrl", "crm_id", "status", "first_name"])
    assert names == {
        "email": "input_email",
        "linkedinUrl": "input_linkedin_url",
        "crm_id": "crm_id",
        "status": "input_status",
        "first_name": "first_name",
    }
    assert not set(names.values()) & set(RESULT_COLUMNS)


def test_camel_and_snake_forms_of_one_column_both_survive() -> None:
    names = input_column_names(["linkedinUrl", "linkedin_url"])
    assert names == {"linkedinUrl": "linkedinUrl", "linkedin_url": "input_linkedin_url"}
    assert len(set(names.values())) == 2


@pytest.mark.parametrize(
    ("email", "domain", "expected"),
    [
        ("ada@acme.io", "acme.io", True),
        ("ada@mail.acme.io", "https://www.acme.io/about", True),
        ("ada@gmail.com", "acme.io", False),
        ("ada@notacme.io", "acme.io", False),
        (None, "acme.io", None),
        ("ada@acme.io", "", None),
    ],
)
def test_email_domain_matches(email: str | None, domain: str, expected: bool | None) -> None:
    assert email_domain_matches(email, domain) is expected


def test_input_digest_is_stable_and_distinguishes_rows() -> None:
    assert input_digest({"a": "1", "b": 2}) == input_digest({"b": 2, "a": "1"})
    assert input_digest({"a": "1"}) != input_digest({"a": "2"})


def test_credits_by_price() -> None:
    found = Outcome(
        status="done",
        enrichment_id="enr_1",
        email="a@b.co",
        email_status="deliverable",
        workflows={"find_email_status": "found", "find_phone_status": "not_found"},
    )
    both = EnrichmentFlags(find_email=True, find_phone=True)
    assert credits_by_price(found, both) == 5.0
    undeliverable = found.model_copy(update={"email_status": "undeliverable"})
    assert credits_by_price(undeliverable, both) == 0.0
    assert credits_by_price(Outcome(status="failed", enrichment_id="enr_1"), both) is None
    verified = Outcome(
        status="not_found", enrichment_id="enr_2", workflows={"verify_status": "not_found"}
    )
    assert credits_by_price(verified, EnrichmentFlags(find_email=False, verify_email=True)) == 1


def _worklist(records: list[dict[str, object]]) -> Worklist:
    table = table_from_records(records)
    worklist = Worklist(Source("test", "test"), table.columns)
    for raw in table.rows:
        worklist.add(Row(raw.line, raw.values, key=f"lea_{raw.line:017d}"))
    return worklist


def test_the_same_columns_whatever_the_workflows() -> None:
    worklist = _worklist([{"crm_id": "7", "email": "a@b.co"}])
    outcome = {"lea_00000000000000001": Outcome(status="not_found")}
    seen = []
    for flags in (FIND_EMAIL, PHONE, EnrichmentFlags(linkedin_enrichment=True)):
        row = next(export_rows(worklist, outcome, ExportContext(flags)))
        seen.append(list(row))
        assert list(row) == export_columns(worklist)
    assert seen[0] == seen[1] == seen[2]


def test_rows_carry_lead_key_workflows_and_the_key_column() -> None:
    worklist = _worklist([{"crm_id": "7", "company_domain": "b.co"}])
    key = "lea_00000000000000001"
    outcome = Outcome(status="done", email="x@b.co", workflows={"find_email_status": "found"})
    context = ExportContext(FIND_EMAIL, key_column="crm_id")
    row = next(export_rows(worklist, {key: outcome}, context))
    assert row["lead_id"] == key and row["person_key"] is None
    assert row["record_key"] == "7"
    assert row["workflows"] == "find_email"
    assert row["email_domain_matches"] is True
    assert row["find_email_status"] == "found" and row["find_phone_status"] is None
    people = next(export_rows(worklist, {key: outcome}, ExportContext(FIND_EMAIL, people=True)))
    assert people["person_key"] == key and people["lead_id"] is None
    assert people["record_key"] == key


@pytest.mark.parametrize(
    ("known", "flags", "only_missing", "expected"),
    [
        ({"email": "a@b.co"}, FIND_EMAIL, False, "skipped_has_email"),
        ({}, FIND_EMAIL, False, None),
        ({"email": "a@b.co"}, EnrichmentFlags(find_email=True, find_phone=True), False, None),
        ({"email": "a@b.co", "phone": "+33"}, EnrichmentFlags(find_phone=True), False, None),
        ({"phone": "+33"}, PHONE, True, "skipped_has_data"),
        ({"email": "a@b.co"}, EnrichmentFlags(find_email=False, verify_email=True), True, None),
        ({"email": "a@b.co"}, EnrichmentFlags(linkedin_enrichment=True), True, None),
    ],
)
def test_skip_status(
    known: dict[str, str], flags: EnrichmentFlags, only_missing: bool, expected: str | None
) -> None:
    assert skip_status(known, flags, only_missing) == expected


def test_skipped_rows_keep_their_lead_and_free_their_item() -> None:
    worklist = _worklist([{"email": "a@b.co"}, {"email": ""}])
    assert apply_skip_rules(worklist, FIND_EMAIL, force=False, only_missing=False) == 1
    first, second = worklist.rows
    assert first.status == "skipped_has_email" and first.key is None
    assert list(worklist.items) == [second.key]
    row = next(export_rows(worklist, {}, ExportContext(FIND_EMAIL)))
    assert row["lead_id"] == "lea_00000000000000001" and row["status"] == "skipped_has_email"
    forced = _worklist([{"email": "a@b.co"}])
    assert apply_skip_rules(forced, FIND_EMAIL, force=True, only_missing=False) == 0


def test_a_crm_id_column_never_hides_the_email_column(tmp_path: Path) -> None:
    table = table_from_records([{"id": 101, "email": "ada@acme.io"}])
    worklist = lead_file_worklist(table, tmp_path / "crm.csv")
    assert worklist.rows[0].status == "lookup"  # found by its email, not lead "101"
    ids = table_from_records([{"id": "lea_AAAAAAAAAAAAAAAAA", "email": "ada@acme.io"}])
    assert lead_file_worklist(ids, tmp_path / "x.csv").rows[0].key == "lea_AAAAAAAAAAAAAAAAA"
    named = lead_file_worklist(table, tmp_path / "crm.csv", id_column="id")
    assert named.rows[0].key == "101"  # the user said so
    with pytest.raises(ValueError, match="no column 'lead'"):
        lead_file_worklist(table, tmp_path / "crm.csv", id_column="lead")


def test_looks_like_lead_ids() -> None:
    assert looks_like_lead_ids(["lea_A", "lea_B", "", None])
    assert not looks_like_lead_ids(["101", "102", "lea_C"])
    assert not looks_like_lead_ids([])


def test_missing_column_hint_names_the_column_to_add() -> None:
    hint = missing_column_hint(["first_name", "last_name", "company_domain", "crm_id"], FIND_EMAIL)
    assert hint is not None and hint.startswith("add a company_name column")
    assert missing_column_hint(["linkedinUrl"], FIND_EMAIL) is None


def test_export_files_are_readable_like_any_file_a_person_writes(tmp_path: Path) -> None:
    from prefect_lemlist.pipeline.export import write_exports

    rows = [{"status": "done", "raw_result": {"a": 1}}]
    paths = write_exports(rows, ["status", "raw_result"], tmp_path / "out", ["csv", "jsonl"])
    assert {path.stat().st_mode & 0o777 for path in paths.values()} == {0o644}
    assert paths["csv"].read_text().splitlines() == ["status,raw_result", 'done,"{""a"": 1}"']
