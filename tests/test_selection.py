"""Property-based tests of lead selection: CSV files, explicit lists and campaign exports.

Line numbers are physical lines of the file as Python's universal newlines count them (`\\r\\n`,
`\\n` or `\\r` end a line), the header being line 1. A record whose quoted field spans several
lines may be reported at any line of its span. A "blank" row is one whose cells are all empty or
whitespace: it is not data and is neither selected nor rejected.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prefect_lemlist.models import CampaignLead, EnrichmentFlags
from prefect_lemlist.selection import (
    LEAD_ID_COLUMNS,
    read_lead_ids_csv,
    select_campaign_leads,
    select_lead_ids,
)
from prefect_lemlist.validation import validate_id

PROPERTY_SETTINGS = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# ---------------------------------------------------------------------------- the oracle


def is_valid(value: object) -> bool:
    try:
        validate_id(value)
    except ValueError:
        return False
    return True


def expected_outcomes(values: list[object]) -> list[str]:
    """'selected', 'missing', 'invalid' or 'duplicate' per value (already stripped)."""
    seen: set[str] = set()
    outcomes = []
    for value in values:
        if value is None or value == "":
            outcomes.append("missing")
        elif not is_valid(value):
            outcomes.append("invalid")
        elif value in seen:
            outcomes.append("duplicate")
        else:
            seen.add(value)  # type: ignore[arg-type]
            outcomes.append("selected")
    return outcomes


def reason_kind(reason: str) -> str:
    if reason.startswith("missing"):
        return "missing"
    if reason.startswith("duplicate"):
        return "duplicate"
    return "invalid"


def line_breaks(text: str) -> int:
    """Line breaks in `text` as universal newlines count them."""
    return len(re.findall(r"\r\n|\r|\n", text))


# ---------------------------------------------------------------------------- CSV generation


@dataclass
class Record:
    """One data record as written: its cells, its physical lines, and whether it is blank."""

    cells: list[str]
    first_line: int
    last_line: int

    @property
    def blank(self) -> bool:
        return not any(cell.strip() for cell in self.cells)


def encode_cell(cell: str, force_quotes: bool) -> str:
    if force_quotes or any(c in cell for c in ',"\r\n') or cell != cell.strip():
        return '"' + cell.replace('"', '""') + '"'
    return cell


valid_ids = st.from_regex(r"lea_[A-Za-z0-9_\-]{1,16}", fullmatch=True)
bad_ids = st.one_of(
    st.builds(
        lambda a, bad, b: f"lea_{a}{bad}{b}",
        st.from_regex(r"[A-Za-z0-9]{0,5}", fullmatch=True),
        st.sampled_from(["/", "?", "#", " ", "..", "\\", "\t", "%2F/", "a b"]),
        st.from_regex(r"[A-Za-z0-9]{0,5}", fullmatch=True),
    ),
    st.sampled_from([".", "..", "../x", "/", "?", "#"]),
)
# ids that need quoting but are still valid (commas and quotes are allowed in an id)
quoted_valid_ids = st.builds(lambda a, b: f"lea_{a},{b}", valid_ids, st.text("xyz'\"", max_size=3))
other_text = st.text(
    alphabet=st.sampled_from(list("abcXYZ019 ,;\"'\n\r\té-_.")) | st.characters(codec="utf-8"),
    max_size=12,
).filter(lambda t: not any(ch in t for ch in "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00"))


@st.composite
def csv_files(draw, id_cells=None):
    """(file text, id column index, records): a header with a lead id column, then records."""
    id_name = draw(st.sampled_from(["lead_id", "_id", "leadId", "id", " lead_id ", "_id "]))
    others = draw(st.lists(st.sampled_from(["name", "email", "company", "note"]), unique=True))
    position = draw(st.integers(0, len(others)))
    header = [*others[:position], id_name, *others[position:]]
    width = len(header)
    terminator = draw(st.sampled_from(["\r\n", "\n"]))
    bom = draw(st.booleans())

    pool = draw(st.lists(valid_ids, min_size=1, max_size=4, unique=True))  # for duplicates
    if id_cells is None:
        id_cells = st.one_of(
            valid_ids,
            st.sampled_from(pool),
            st.just(""),
            st.just("   "),
            st.sampled_from(pool).map(lambda v: f"  {v} "),
            bad_ids,
            quoted_valid_ids,
        )
    lines = [",".join(header)]
    records: list[Record] = []
    line = 2
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.sampled_from(["row", "row", "row", "row", "blank", "short", "long"]))
        if kind == "blank":
            text = draw(st.sampled_from(["", "   ", ",", ",,", " , "]))
            cells = [c for c in text.split(",")]
        else:
            cells = draw(st.lists(other_text, min_size=width, max_size=width))
            cells[position] = draw(id_cells)
            if kind == "short":
                cells = cells[: draw(st.integers(0, position + 1))]
            elif kind == "long":
                cells += draw(st.lists(other_text, min_size=1, max_size=3))
            text = ",".join(encode_cell(c, draw(st.booleans())) for c in cells)
            if cells == [""] or not cells:
                text, cells = "", [""]
        lines.append(text)
        records.append(Record(cells, line, line + line_breaks(text)))
        line += line_breaks(text) + 1
    body = terminator.join(lines) + (terminator if draw(st.booleans()) else "")
    return ("\ufeff" if bom else "") + body, position, records


_counter = itertools.count()


def write(directory: Path, text: str) -> Path:
    path = directory / f"leads-{next(_counter)}.csv"
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.fixture(scope="module")
def csv_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("csv")


def check_csv_selection(path: Path, position: int, records: list[Record]) -> None:
    selection = read_lead_ids_csv(path)  # never raises for such files
    data = [r for r in records if not r.blank]
    values = [r.cells[position].strip() if position < len(r.cells) else "" for r in data]
    outcomes = expected_outcomes(values)

    assert selection.lead_ids == [v for v, o in zip(values, outcomes) if o == "selected"]
    assert len(set(selection.lead_ids)) == len(selection.lead_ids)
    assert all(is_valid(lead_id) for lead_id in selection.lead_ids)
    assert len(selection.lead_ids) + len(selection.rejected) == len(data)

    expected_rejects = [(r, o) for r, o in zip(data, outcomes) if o != "selected"]
    assert len(selection.rejected) == len(expected_rejects)
    for rejected, (record, outcome) in zip(selection.rejected, expected_rejects):
        assert record.first_line <= rejected.line <= record.last_line, (rejected, record)
        assert reason_kind(rejected.reason) == outcome, (rejected, record)
    lines = [r.line for r in selection.rejected]
    assert lines == sorted(lines) and all(line >= 2 for line in lines)


# ---------------------------------------------------------------------------- CSV properties


@PROPERTY_SETTINGS
@given(generated=csv_files())
def test_csv_rows_are_selected_or_rejected_with_their_line(csv_dir, generated):
    text, position, records = generated
    check_csv_selection(write(csv_dir, text), position, records)


line_break_ids = st.builds(
    lambda a, br, b: f"lea_{a}{br}{b}",
    st.from_regex(r"[A-Za-z0-9]{1,5}", fullmatch=True),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.from_regex(r"[A-Za-z0-9]{1,5}", fullmatch=True),
)


@PROPERTY_SETTINGS
@given(generated=csv_files(id_cells=st.one_of(valid_ids, line_break_ids)))
def test_line_breaks_inside_a_quoted_id_are_kept(csv_dir, generated):
    """An id cell holding a line break is not a valid id: it must not turn into another one."""
    text, position, records = generated
    check_csv_selection(write(csv_dir, text), position, records)


def test_quoted_id_with_a_line_break_is_rejected_not_glued(tmp_path):
    path = tmp_path / "leads.csv"
    path.write_bytes(b'lead_id,name\r\n"lea_a\r\nb",Ada\r\nlea_c,Bob\r\n')
    selection = read_lead_ids_csv(path)
    assert "lea_ab" not in selection.lead_ids  # "lea_a\r\nb" is not the id "lea_ab"
    assert selection.lead_ids == ["lea_c"]
    assert [(r.line, reason_kind(r.reason)) for r in selection.rejected] in (
        [(2, "invalid")],
        [(3, "invalid")],
    )


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x0c", "\x0b", "\x1e", "\x85"])
def test_unicode_line_separators_inside_a_cell_do_not_split_the_row(tmp_path, separator):
    """Only \\r and \\n end a CSV line; a U+2028 (or a form feed) in a name is just a character:
    it must neither start a new row (whose first cell would be taken as a lead id) nor shift the
    line numbers of the rows after it."""
    path = tmp_path / "leads.csv"
    path.write_text(
        f"lead_id,name\nlea_1,Ada{separator}Lovelace\nlea_bad/id,Bob\n", encoding="utf-8"
    )
    selection = read_lead_ids_csv(path)
    assert selection.lead_ids == ["lea_1"]
    assert [r.line for r in selection.rejected] == [3]


# ---------------------------------------------------------------------------- CSV examples


def test_header_is_line_one_and_rows_are_numbered_from_two(tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text(
        "name,lead_id,email\n"
        "a,lea_1,x\n"  # 2
        "\n"  # 3: blank
        "b,,y\n"  # 4: missing
        "c,lea_2\n"  # 5: fewer columns
        'd,"lea_3",z,extra,columns\n'  # 6: more columns
        "e,lea_1,w\n"  # 7: duplicate
        "f,../etc,w\n"  # 8: malformed
        "g\n",  # 9: too short to have the id
        encoding="utf-8",
    )
    selection = read_lead_ids_csv(path)
    assert selection.lead_ids == ["lea_1", "lea_2", "lea_3"]
    assert [(r.line, reason_kind(r.reason)) for r in selection.rejected] == [
        (4, "missing"),
        (7, "duplicate"),
        (8, "invalid"),
        (9, "missing"),
    ]


@pytest.mark.parametrize("column", LEAD_ID_COLUMNS)
def test_every_documented_id_column_is_found(tmp_path, column):
    path = tmp_path / "leads.csv"
    path.write_text(f"name,{column}\nAda,lea_1\n", encoding="utf-8")
    assert read_lead_ids_csv(path).lead_ids == ["lea_1"]


def test_lead_id_column_wins_over_id(tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text("id,lead_id\nrow-1,lea_1\n", encoding="utf-8")
    assert read_lead_ids_csv(path).lead_ids == ["lea_1"]


@pytest.mark.parametrize("header", ["lead_id", "_id,name"])
def test_a_bom_at_the_start_is_accepted(tmp_path, header):
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + header + "\r\nlea_1\r\nlea_2\r\n").encode("utf-8"))
    selection = read_lead_ids_csv(path)
    assert selection.lead_ids == ["lea_1", "lea_2"]
    assert selection.rejected == []


def test_header_only_file_selects_nothing(tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text("lead_id\n", encoding="utf-8")
    selection = read_lead_ids_csv(path)
    assert selection.lead_ids == [] and selection.rejected == []


def test_missing_file_is_a_clear_value_error(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(ValueError, match="CSV file not found") as info:
        read_lead_ids_csv(path)
    assert str(path) in str(info.value)


def test_directory_is_a_clear_value_error(tmp_path):
    with pytest.raises(ValueError, match="is a directory") as info:
        read_lead_ids_csv(tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize(
    "content",
    [b"lead_id\nlea_\xe9t\xe9\n", b"\xff\xfel\x00e\x00a\x00d\x00_\x00i\x00d\x00", b"\x80\x81\x82"],
    ids=["latin-1", "utf-16", "garbage"],
)
def test_non_utf8_file_is_a_clear_value_error(tmp_path, content):
    path = tmp_path / "leads.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not UTF-8") as info:
        read_lead_ids_csv(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf"], ids=["empty", "bom-only"])
def test_empty_file_is_a_clear_value_error(tmp_path, content):
    path = tmp_path / "leads.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="CSV file is empty"):
        read_lead_ids_csv(path)


@pytest.mark.parametrize("header", ["name,email", "lead,leadid,ID", "\n"])
def test_no_id_column_is_a_clear_value_error(tmp_path, header):
    path = tmp_path / "leads.csv"
    path.write_text(f"{header}\nlea_1,x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no lead id column") as info:
        read_lead_ids_csv(path)
    assert "lead_id" in str(info.value) and str(path) in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_is_a_clear_value_error(tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text("lead_id\nlea_1\n", encoding="utf-8")
    path.chmod(0)
    try:
        with pytest.raises(ValueError, match="permission denied"):
            read_lead_ids_csv(path)
    finally:
        path.chmod(0o600)


# ---------------------------------------------------------------------------- explicit lists

list_values = st.one_of(
    valid_ids,
    valid_ids.map(lambda v: f" {v}\t"),
    bad_ids,
    st.just(""),
    st.just("  "),
    st.none(),
    st.integers(),
    st.lists(st.integers(), max_size=2),
    st.text(max_size=10),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(list_values, max_size=30), data=st.data())
def test_select_lead_ids_accounts_for_every_value(values, data):
    if values:  # add some exact duplicates
        values = values + data.draw(st.lists(st.sampled_from(values), max_size=5))
    selection = select_lead_ids(values)
    stripped = [v.strip() if isinstance(v, str) else v for v in values]
    outcomes = expected_outcomes(stripped)
    assert selection.lead_ids == [v for v, o in zip(stripped, outcomes) if o == "selected"]
    assert len(set(selection.lead_ids)) == len(selection.lead_ids)
    assert all(is_valid(lead_id) for lead_id in selection.lead_ids)
    assert len(selection.lead_ids) + len(selection.rejected) == len(values)
    expected = [(i, o) for i, o in enumerate(outcomes, start=1) if o != "selected"]
    assert [(r.line, reason_kind(r.reason)) for r in selection.rejected] == expected
    for rejected in selection.rejected:
        assert rejected.value == str(values[rejected.line - 1])[:80]


# ---------------------------------------------------------------------------- campaign exports

optional_text = st.one_of(st.none(), st.just(""), st.from_regex(r"[a-z@.]{1,8}", fullmatch=True))
campaign_leads = st.builds(
    lambda lead_id, email, status, phone: CampaignLead(
        _id=lead_id, email=email, emailStatus=status, phone=phone
    ),
    st.one_of(valid_ids, bad_ids, st.just(""), st.sampled_from(["lea_dup1", "lea_dup2"])),
    optional_text,
    optional_text,
    optional_text,
)
flag_sets = st.builds(
    EnrichmentFlags,
    find_email=st.booleans(),
    verify_email=st.booleans(),
    linkedin_enrichment=st.booleans(),
    find_phone=st.booleans(),
).filter(lambda flags: bool(flags.workflows))


def needs(lead: CampaignLead, flags: EnrichmentFlags) -> bool:
    """The README's rules, written independently of `needs_enrichment`."""
    if flags.linkedin_enrichment:
        return True
    if flags.find_email and not lead.email:
        return True
    if flags.verify_email and lead.email and not lead.email_status:
        return True
    return bool(flags.find_phone and not lead.phone)


@settings(max_examples=300, deadline=None)
@given(
    leads=st.lists(campaign_leads, max_size=30),
    flags=flag_sets,
    force=st.booleans(),
    data=st.data(),
)
def test_select_campaign_leads_accounts_for_every_lead(leads, flags, force, data):
    ids = [lead.lead_id for lead in leads]
    already = set(data.draw(st.lists(st.sampled_from(ids), max_size=5))) if ids else set()
    selection = select_campaign_leads(leads, flags, force=force, already_started=already)

    outcomes = expected_outcomes(ids)
    wanted = [
        lead.lead_id
        for lead, outcome in zip(leads, outcomes)
        if outcome == "selected" and (force or lead.lead_id in already or needs(lead, flags))
    ]
    valid_unique = outcomes.count("selected")
    assert selection.lead_ids == wanted
    assert selection.not_needed == valid_unique - len(wanted)
    assert len(selection.lead_ids) + len(selection.rejected) + selection.not_needed == len(leads)
    assert len(set(selection.lead_ids)) == len(selection.lead_ids)
    assert all(is_valid(lead_id) for lead_id in selection.lead_ids)
    expected = [(i, o) for i, o in enumerate(outcomes, start=1) if o != "selected"]
    assert [(r.line, reason_kind(r.reason)) for r in selection.rejected] == expected
    if force:
        assert selection.not_needed == 0


def test_already_started_leads_are_kept_even_when_enriched_since():
    leads = [CampaignLead(_id="lea_1", email="a@b.c"), CampaignLead(_id="lea_2", email="d@e.f")]
    flags = EnrichmentFlags(find_email=True)
    selection = select_campaign_leads(leads, flags, already_started={"lea_2"})
    assert selection.lead_ids == ["lea_2"] and selection.not_needed == 1
