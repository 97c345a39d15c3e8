"""Property-based tests of lead selection: lead files, explicit lists and campaign exports.

Every input row given by the user is in the worklist exactly once, with its line: a valid lead id
is an item (enriched once), a repeated one is a row with the same key (the result fans out), and
anything else is rejected with its reason. Campaign export rows are not chosen by the user: a
duplicate `_id` there is rejected, and leads that need nothing are only counted (`not_needed`).

Line numbers are physical lines of the file as Python's universal newlines count them (`\\r\\n`,
`\\n` or `\\r` end a line), the header being line 1. A record whose quoted field spans several
lines may be reported at any line of its span. A "blank" row is one whose cells are all empty or
whitespace: it is not data and is not in the worklist.
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

from prefect_lemlist.api.models import CampaignLead, EnrichmentFlags, LeadByEmail
from prefect_lemlist.api.validation import validate_id
from prefect_lemlist.pipeline.inputs import read_table
from prefect_lemlist.pipeline.selection import (
    EMAIL_COLUMNS,
    LEAD_ID_COLUMNS,
    campaign_worklist,
    emails_worklist,
    lead_file_worklist,
    lead_ids_worklist,
    resolve_emails,
)
from prefect_lemlist.pipeline.worklist import Source, Worklist

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


def invalid_reason(value: object) -> str:
    """The message `validate_id` gives for an invalid lead id."""
    try:
        validate_id(value, "lead id")
    except ValueError as exc:
        return str(exc)
    raise AssertionError(f"{value!r} is a valid lead id")


def expected_outcomes(values: list[object], repeat: str = "again") -> list[str]:
    """'selected', 'missing', 'invalid', or `repeat` per value (already stripped).

    `repeat` is what a repeated valid id becomes: 'again' for rows given by the user (a row with
    the same key), 'duplicate' for a campaign export (rejected).
    """
    seen: set[str] = set()
    outcomes = []
    for value in values:
        if value is None or value == "":
            outcomes.append("missing")
        elif not is_valid(value):
            outcomes.append("invalid")
        elif value in seen:
            outcomes.append(repeat)
        else:
            seen.add(value)  # type: ignore[arg-type]
            outcomes.append("selected")
    return outcomes


def reason_kind(reason: str | None) -> str:
    if reason == "missing lead id":
        return "missing"
    if reason and reason.startswith("duplicate"):
        return "duplicate"
    if reason and reason.startswith("lead id "):
        return "invalid"
    if reason and reason.startswith("not a lead of campaign"):
        return "absent"
    return f"other: {reason!r}"


def line_breaks(text: str) -> int:
    """Line breaks in `text` as universal newlines count them."""
    return len(re.findall(r"\r\n|\r|\n", text))


def check_user_rows(
    worklist: Worklist,
    values: list[object],
    spans: list[tuple[int, int]],
    contexts: list[dict] | None = None,
) -> None:
    """The worklist of rows given by the user (a file or a list), against the oracle.

    Args:
        worklist: what selection produced.
        values: the (stripped) id of every non-blank input row, in order.
        spans: the lines each such row may be reported at (first, last).
        contexts: the columns each row must carry into the export, if checked.
    """
    outcomes = expected_outcomes(values)
    rows = worklist.rows
    # every input row exactly once, in order, at its line
    assert len(rows) == len(values)
    for row, value, outcome, (first, last) in zip(rows, values, outcomes, spans, strict=True):
        assert first <= row.line <= last, (row, first, last)
        if outcome in ("selected", "again"):
            assert (row.key, row.status, row.reason) == (value, None, None), row
        else:
            assert row.key is None and row.status == "rejected", row
            assert reason_kind(row.reason) == outcome, row
            if outcome == "invalid":
                assert row.reason == invalid_reason(value), row
    lines = [row.line for row in rows]
    assert lines == sorted(set(lines)), lines
    if contexts is not None:
        assert [row.context for row in rows] == contexts

    # the distinct valid ids, first-seen order: each enriched once
    selected = [v for v, o in zip(values, outcomes, strict=True) if o == "selected"]
    assert list(worklist.items) == selected
    assert all(is_valid(lead_id) for lead_id in worklist.items)
    assert worklist.first_rows() == {
        v: row.line for row, v, o in zip(rows, values, outcomes, strict=True) if o == "selected"
    }

    # only missing and invalid rows are rejected (a repeat is not)
    expected_rejects = [
        (row.line, o) for row, o in zip(rows, outcomes, strict=True) if o in ("missing", "invalid")
    ]
    assert [(r.line, reason_kind(r.reason)) for r in worklist.rejected] == expected_rejects
    for rejected in worklist.rejected:
        index = lines.index(rejected.line)
        shown = values[index]
        assert rejected.value == str(shown)[:80]
    # nothing lost: items + repeats + rejected account for every row
    assert len(worklist.items) + outcomes.count("again") + len(worklist.rejected) == len(values)


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


@dataclass
class CsvFile:
    """A generated lead file: its text, its header (as written) and its records."""

    text: str
    header: list[str]
    position: int
    records: list[Record]


@st.composite
def csv_files(draw, id_cells=None) -> CsvFile:
    """A header with a lead id column (and maybe an email column), then records."""
    id_name = draw(st.sampled_from(["lead_id", "_id", "leadId", "id", " lead_id ", "_id "]))
    others = draw(st.lists(st.sampled_from(["name", "email", "company", "note"]), unique=True))
    position = draw(st.integers(0, len(others)))
    header = [*others[:position], id_name, *others[position:]]
    width = len(header)
    terminator = draw(st.sampled_from(["\r\n", "\n"]))
    bom = draw(st.booleans())

    pool = draw(st.lists(valid_ids, min_size=1, max_size=4, unique=True))  # for repeats
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
    return CsvFile(("\ufeff" if bom else "") + body, header, position, records)


_counter = itertools.count()


def write(directory: Path, text: str) -> Path:
    path = directory / f"leads-{next(_counter)}.csv"
    path.write_bytes(text.encode("utf-8"))
    return path


def as_read(cell: str) -> str:
    """A cell as the file is read: universal newlines turn `\\r\\n` and `\\r` into `\\n`,
    inside quoted cells too."""
    return re.sub(r"\r\n?", "\n", cell)


def read_leads(path: Path, id_column: str | None = None) -> Worklist:
    """What the lead flow does with a file."""
    return lead_file_worklist(read_table(path), path, id_column)


@pytest.fixture(scope="module")
def csv_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("csv")


def check_csv_worklist(path: Path, generated: CsvFile) -> None:
    position = generated.position
    id_name = generated.header[position].strip()
    # `_id` / `id` beside an email column are lead ids only when the user says so (or when
    # their values look like ids: tests/unit/test_schema.py)
    named = id_name if id_name in ("_id", "id") and "email" in generated.header else None
    worklist = read_leads(path, named)  # never raises for such files
    data = [r for r in generated.records if not r.blank]
    cells = [[as_read(cell) for cell in r.cells] for r in data]
    values: list[object] = [row[position].strip() if position < len(row) else "" for row in cells]
    names = [name.strip() for name in generated.header]
    contexts = [
        {name: (row[i] if i < len(row) else "") for i, name in enumerate(names)} for row in cells
    ]
    check_user_rows(
        worklist, values, [(r.first_line, r.last_line) for r in data], contexts=contexts
    )
    assert all(row.line >= 2 for row in worklist.rows)
    assert worklist.columns == names
    assert worklist.not_needed == 0


# ---------------------------------------------------------------------------- CSV properties


@PROPERTY_SETTINGS
@given(generated=csv_files())
def test_csv_rows_are_each_in_the_worklist_once_with_their_line(csv_dir, generated):
    check_csv_worklist(write(csv_dir, generated.text), generated)


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
    check_csv_worklist(write(csv_dir, generated.text), generated)


def test_quoted_id_with_a_line_break_is_rejected_not_glued(tmp_path):
    path = tmp_path / "leads.csv"
    path.write_bytes(b'lead_id,name\r\n"lea_a\r\nb",Ada\r\nlea_c,Bob\r\n')
    worklist = read_leads(path)
    assert "lea_ab" not in worklist.items  # "lea_a\r\nb" is not the id "lea_ab"
    assert list(worklist.items) == ["lea_c"]
    assert [(r.line, reason_kind(r.reason)) for r in worklist.rejected] in (
        [(2, "invalid")],
        [(3, "invalid")],
    )
    assert len(worklist.rows) == 2 and worklist.rows[0].context["name"] == "Ada"


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x0c", "\x0b", "\x1e", "\x85"])
def test_unicode_line_separators_inside_a_cell_do_not_split_the_row(tmp_path, separator):
    """Only \\r and \\n end a CSV line; a U+2028 (or a form feed) in a name is just a character:
    it must neither start a new row (whose first cell would be taken as a lead id) nor shift the
    line numbers of the rows after it."""
    path = tmp_path / "leads.csv"
    path.write_text(
        f"lead_id,name\nlea_1,Ada{separator}Lovelace\nlea_bad/id,Bob\n", encoding="utf-8"
    )
    worklist = read_leads(path)
    assert list(worklist.items) == ["lea_1"]
    assert [r.line for r in worklist.rejected] == [3]
    assert [row.line for row in worklist.rows] == [2, 3]
    assert worklist.rows[0].context["name"] == f"Ada{separator}Lovelace"


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
        "e,lea_1,w\n"  # 7: lea_1 again: shares the result of line 2
        "f,../etc,w\n"  # 8: malformed
        "g\n",  # 9: too short to have the id
        encoding="utf-8",
    )
    worklist = read_leads(path)
    assert list(worklist.items) == ["lea_1", "lea_2", "lea_3"]
    assert [(r.line, reason_kind(r.reason)) for r in worklist.rejected] == [
        (4, "missing"),
        (8, "invalid"),
        (9, "missing"),
    ]
    assert [(row.line, row.key, row.status) for row in worklist.rows] == [
        (2, "lea_1", None),
        (4, None, "rejected"),
        (5, "lea_2", None),
        (6, "lea_3", None),
        (7, "lea_1", None),
        (8, None, "rejected"),
        (9, None, "rejected"),
    ]
    assert worklist.first_rows() == {"lea_1": 2, "lea_2": 5, "lea_3": 6}
    assert worklist.columns == ["name", "lead_id", "email"]
    assert worklist.rows[2].context == {"name": "c", "lead_id": "lea_2", "email": ""}
    assert worklist.rows[4].context == {"name": "e", "lead_id": "lea_1", "email": "w"}


@pytest.mark.parametrize("column", LEAD_ID_COLUMNS)
def test_every_documented_id_column_is_found(tmp_path, column):
    path = tmp_path / "leads.csv"
    path.write_text(f"name,{column}\nAda,lea_1\n", encoding="utf-8")
    assert list(read_leads(path).items) == ["lea_1"]


def test_lead_id_column_wins_over_id(tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text("id,lead_id\nrow-1,lea_1\n", encoding="utf-8")
    assert list(read_leads(path).items) == ["lea_1"]


def test_lead_id_column_wins_over_email(tmp_path):
    """With a lead id column, the file is read by id: an empty id is not looked up by email."""
    path = tmp_path / "leads.csv"
    path.write_text("email,lead_id\nada@example.com,\nbob@example.com,lea_2\n", encoding="utf-8")
    worklist = read_leads(path)
    assert list(worklist.items) == ["lea_2"]
    assert [(r.line, reason_kind(r.reason)) for r in worklist.rejected] == [(2, "missing")]
    assert all(row.status != "lookup" for row in worklist.rows)


@pytest.mark.parametrize("header", ["lead_id", "_id,name"])
def test_a_bom_at_the_start_is_accepted(tmp_path, header):
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + header + "\r\nlea_1\r\nlea_2\r\n").encode("utf-8"))
    worklist = read_leads(path)
    assert list(worklist.items) == ["lea_1", "lea_2"]
    assert worklist.rejected == []
    assert worklist.columns[0] == header.split(",")[0]  # no BOM glued to the first name


def test_header_only_file_selects_nothing(tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text("lead_id\n", encoding="utf-8")
    worklist = read_leads(path)
    assert worklist.items == {} and worklist.rejected == [] and worklist.rows == []


def test_missing_file_is_a_clear_value_error(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(ValueError, match="input file not found") as info:
        read_table(path)
    assert str(path) in str(info.value)


def test_directory_is_a_clear_value_error(tmp_path):
    with pytest.raises(ValueError, match="is a directory") as info:
        read_table(tmp_path)
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
        read_table(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf"], ids=["empty", "bom-only"])
def test_empty_file_is_a_clear_value_error(tmp_path, content):
    path = tmp_path / "leads.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="input file is empty") as info:
        read_table(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("header", ["name,company", "lead,leadid,ID", "Lead_ID,EMAIL"])
def test_no_id_column_is_a_clear_value_error(tmp_path, header):
    path = tmp_path / "leads.csv"
    path.write_text(f"{header}\nlea_1,x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no lead id column") as info:
        read_leads(path)
    assert "lead_id" in str(info.value) and str(path) in str(info.value)


def test_blank_first_line_is_no_header(tmp_path):
    """A file whose first line is blank has no header (it used to be "no lead id column")."""
    path = tmp_path / "leads.csv"
    path.write_text("\n\nlea_1,x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no header row") as info:
        read_table(path)
    assert str(path) in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_is_a_clear_value_error(tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text("lead_id\nlea_1\n", encoding="utf-8")
    path.chmod(0)
    try:
        with pytest.raises(ValueError, match="permission denied"):
            read_table(path)
    finally:
        path.chmod(0o600)


# ---------------------------------------------------------------------------- email files


@pytest.mark.parametrize("column", EMAIL_COLUMNS)
def test_a_file_without_id_column_is_read_by_email(tmp_path, column):
    path = tmp_path / "people.csv"
    path.write_text(
        f"name,{column}\n"
        "Ada,ada@example.com\n"  # 2
        "Bob,not-an-email\n"  # 3: malformed
        "Cid,\n"  # 4: missing
        "Dan,  dan@example.com \n"  # 5: stripped
        "\n"  # 6: blank
        "Eve,ada@example.com\n",  # 7: the same email again: looked up like the first
        encoding="utf-8",
    )
    worklist = read_leads(path)
    assert [(row.line, row.status, row.key) for row in worklist.rows] == [
        (2, "lookup", None),
        (3, "rejected", None),
        (4, "rejected", None),
        (5, "lookup", None),
        (7, "lookup", None),
    ]
    assert [row.value for row in worklist.rows if row.status == "lookup"] == [
        "ada@example.com",
        "dan@example.com",
        "ada@example.com",
    ]
    assert worklist.items == {}  # nothing to enrich before `resolve_emails`
    assert worklist.first_rows() == {}
    malformed, missing = worklist.rejected
    assert malformed.line == 3 and malformed.value == "not-an-email"
    assert "not-an-email" in malformed.reason and "not an email address" in malformed.reason
    assert missing.line == 4 and missing.value == ""
    assert missing.reason.startswith("missing") and "email" in missing.reason
    assert worklist.rows[0].context == {"name": "Ada", column: "ada@example.com"}


def test_emails_given_from_python_are_looked_up_or_rejected():
    worklist = emails_worklist(["ada@example.com", None, " ", "ada@", " bob@example.com "])
    assert [(row.line, row.status) for row in worklist.rows] == [
        (1, "lookup"),
        (2, "rejected"),
        (3, "rejected"),
        (4, "rejected"),
        (5, "lookup"),
    ]
    assert worklist.rows[4].value == "bob@example.com"
    assert [r.line for r in worklist.rejected] == [2, 3, 4]
    assert "not an email address" in worklist.rejected[2].reason
    assert worklist.items == {}


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


def with_repeats(values: list[object], data) -> list[object]:
    if values:  # add some exact repeats
        values = values + data.draw(st.lists(st.sampled_from(values), max_size=5))
    return values


@settings(max_examples=300, deadline=None)
@given(values=st.lists(list_values, max_size=30), data=st.data())
def test_lead_ids_worklist_accounts_for_every_value(values, data):
    values = with_repeats(values, data)
    worklist = lead_ids_worklist(values)
    stripped = [v.strip() if isinstance(v, str) else v for v in values]
    positions = [(i, i) for i in range(1, len(values) + 1)]
    check_user_rows(worklist, stripped, positions)
    # the value as given is carried into the export, unstripped
    assert [row.context for row in worklist.rows] == [{"lead_id": v} for v in values]
    assert worklist.source.kind == "input"


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
def test_campaign_worklist_accounts_for_every_lead(leads, flags, force, data):
    ids = [lead.lead_id for lead in leads]
    already = set(data.draw(st.lists(st.sampled_from(ids), max_size=5))) if ids else set()
    only = data.draw(
        st.none() | st.lists(st.sampled_from([*ids, "lea_absent"]), max_size=6, unique=True)
    )
    worklist = campaign_worklist(
        "cam_1", "all", leads, flags, force=force, started_before=already, only=only
    )
    # a chosen lead the export does not have is reported (by its position in `only`), not lost
    absent = [(i, "absent") for i, lead_id in enumerate(only or [], 1) if lead_id not in ids]
    assert [
        (r.line, reason_kind(r.reason))
        for r in worklist.rejected[len(worklist.rejected) - len(absent) :]
    ] == absent
    absent_rows = worklist.rows[len(worklist.rows) - len(absent) :]
    assert all(row.key is None and row.status == "rejected" for row in absent_rows)
    worklist.rows = worklist.rows[: len(worklist.rows) - len(absent)]

    chosen = [(i, lead) for i, lead in enumerate(leads, 1) if only is None or lead.lead_id in only]
    outcomes = expected_outcomes([lead.lead_id for _, lead in chosen], repeat="duplicate")
    kept = [
        (i, lead)
        for (i, lead), outcome in zip(chosen, outcomes, strict=True)
        if outcome == "selected" and (force or lead.lead_id in already or needs(lead, flags))
    ]
    rejects = [(i, o) for (i, _), o in zip(chosen, outcomes, strict=True) if o != "selected"]

    assert list(worklist.items) == [lead.lead_id for _, lead in kept]
    assert worklist.not_needed == outcomes.count("selected") - len(kept)
    assert [(r.line, reason_kind(r.reason)) for r in worklist.rejected] == rejects
    for rejected in worklist.rejected:
        assert rejected.value == ids[rejected.line - 1][:80]
    # the worklist's rows: the kept and the rejected leads, by position; not_needed are counted
    assert [row.line for row in worklist.rows] == sorted(
        [i for i, _ in kept] + [i for i, _ in rejects]
    )
    assert len(worklist.rows) + worklist.not_needed == len(chosen)
    for row in worklist.rows:
        lead = leads[row.line - 1]
        assert row.lead["key"] == lead.lead_id and row.context["email"] == lead.email
        if row.status is None:
            assert row.key == lead.lead_id
        else:
            assert row.status == "rejected" and row.key is None
    assert len(set(worklist.items)) == len(worklist.items)
    assert all(is_valid(lead_id) for lead_id in worklist.items)
    assert worklist.first_rows() == {lead.lead_id: i for i, lead in kept}
    assert worklist.source.kind == "campaign" and worklist.source.name == "cam_1"
    if force:
        assert worklist.not_needed == 0


def test_already_started_leads_are_kept_even_when_enriched_since():
    leads = [CampaignLead(_id="lea_1", email="a@b.c"), CampaignLead(_id="lea_2", email="d@e.f")]
    flags = EnrichmentFlags(find_email=True)
    worklist = campaign_worklist("cam_1", "all", leads, flags, started_before={"lea_2"})
    assert list(worklist.items) == ["lea_2"] and worklist.not_needed == 1
    assert [(row.line, row.key) for row in worklist.rows] == [(2, "lea_2")]


def test_a_duplicate_in_a_campaign_export_is_rejected():
    leads = [CampaignLead(_id="lea_1"), CampaignLead(_id="lea_bad/1"), CampaignLead(_id="lea_1")]
    worklist = campaign_worklist("cam_1", "all", leads, EnrichmentFlags(find_email=True))
    assert list(worklist.items) == ["lea_1"]
    assert [(r.line, reason_kind(r.reason)) for r in worklist.rejected] == [
        (2, "invalid"),
        (3, "duplicate"),
    ]


def test_only_keeps_the_chosen_leads_at_their_export_position():
    leads = [
        CampaignLead(_id="lea_1"),
        CampaignLead(_id="lea_2", email="has@mail.com"),
        CampaignLead(_id="lea_3"),
        CampaignLead(_id="lea_4"),
        CampaignLead(_id="lea_3"),
    ]
    flags = EnrichmentFlags(find_email=True)
    worklist = campaign_worklist(
        "cam_1", "all", leads, flags, only=["lea_2", "lea_3", "lea_absent"]
    )
    assert list(worklist.items) == ["lea_3"]
    assert worklist.not_needed == 1  # lea_2 already has an email; lea_1 and lea_4 not chosen
    assert [(row.line, row.key, row.status) for row in worklist.rows] == [
        (3, "lea_3", None),
        (5, None, "rejected"),  # the export's duplicate of lea_3
        (3, None, "rejected"),  # the third chosen id is not in the export: reported, not lost
    ]
    assert worklist.rows[-1].reason == "not a lead of campaign cam_1 with state=all"
    everything = campaign_worklist("cam_1", "all", leads, flags, only=None)
    assert list(everything.items) == ["lea_1", "lea_3", "lea_4"]
    nothing = campaign_worklist("cam_1", "all", leads, flags, only=())
    assert nothing.rows == [] and nothing.items == {} and nothing.not_needed == 0


# ---------------------------------------------------------------------------- trial limits


def test_limit_reports_the_rows_beyond_it_as_not_started():
    values = ["lea_1", "lea_2", "lea_1", "bad/id", "lea_3", "lea_2", "lea_3"]
    worklist = lead_ids_worklist(values)
    worklist.limit(2, drop_others=False)
    assert list(worklist.items) == ["lea_1", "lea_2"]
    assert [(row.line, row.key, row.status) for row in worklist.rows] == [
        (1, "lea_1", None),
        (2, "lea_2", None),
        (3, "lea_1", None),
        (4, None, "rejected"),
        (5, None, "not_started"),
        (6, "lea_2", None),
        (7, None, "not_started"),
    ]
    for row in (worklist.rows[4], worklist.rows[6]):
        assert "limit 2" in row.reason
    assert worklist.first_rows() == {"lea_1": 1, "lea_2": 2}
    assert [r.line for r in worklist.rejected] == [4]  # not_started is not rejected


def test_limit_drops_the_rows_beyond_it_for_a_campaign():
    leads = [CampaignLead(_id=f"lea_{i}") for i in range(1, 5)] + [CampaignLead(_id="x/y")]
    worklist = campaign_worklist("cam_1", "all", leads, EnrichmentFlags(find_email=True))
    worklist.limit(2, drop_others=True)
    assert list(worklist.items) == ["lea_1", "lea_2"]
    assert [(row.line, row.key, row.status) for row in worklist.rows] == [
        (1, "lea_1", None),
        (2, "lea_2", None),
        (5, None, "rejected"),
    ]


@pytest.mark.parametrize("count", [None, 3, 4])
def test_limit_at_or_above_the_item_count_changes_nothing(count):
    worklist = lead_ids_worklist(["lea_1", "lea_2", "", "lea_3", "lea_1"])
    before = [(row.line, row.key, row.status, row.reason) for row in worklist.rows]
    worklist.limit(count, drop_others=False)
    assert list(worklist.items) == ["lea_1", "lea_2", "lea_3"]
    assert [(row.line, row.key, row.status, row.reason) for row in worklist.rows] == before


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(list_values, max_size=30),
    count=st.integers(1, 12),
    drop_others=st.booleans(),
    data=st.data(),
)
def test_limit_keeps_the_first_items_and_accounts_for_the_rest(values, count, drop_others, data):
    worklist = lead_ids_worklist(with_repeats(values, data))
    before = [(row.line, row.key, row.status, row.reason) for row in worklist.rows]
    items, first = list(worklist.items), worklist.first_rows()
    worklist.limit(count, drop_others=drop_others)

    kept = items[:count]
    assert list(worklist.items) == kept
    assert worklist.first_rows() == {key: line for key, line in first.items() if key in kept}
    expected = [r for r in before if r[1] is None or r[1] in kept or not drop_others]
    after = [(row.line, row.key, row.status, row.reason) for row in worklist.rows]
    assert [r[0] for r in after] == [r[0] for r in expected]
    for (line, key, status, reason), now in zip(expected, after, strict=True):
        if key is None or key in kept:
            assert now == (line, key, status, reason)
        else:
            assert now[1:3] == (None, "not_started")
            assert "limit" in now[3] and str(count) in now[3]


# ---------------------------------------------------------------------------- sources


@given(name=st.text(max_size=100))
def test_source_slug_is_lowercase_letters_digits_and_dashes(name):
    slug = Source("label", name).slug
    assert re.fullmatch(r"[a-z0-9-]+", slug), slug
    assert not slug.startswith("-") and len(slug) <= 60


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("cam_AbC 12", "cam-abc-12"),
        ("Leads (2024)!", "leads-2024"),
        ("élan", "lan"),
        ("___", "input"),
        ("", "input"),
        ("x" * 80, "x" * 60),
    ],
)
def test_source_slug_examples(name, slug):
    assert Source("label", name).slug == slug


def test_each_front_door_names_its_source(tmp_path):
    path = tmp_path / "My Leads.csv"
    path.write_text("lead_id\nlea_1\n", encoding="utf-8")
    file_source = read_leads(path).source
    assert (file_source.name, file_source.kind, file_source.slug) == (
        "My Leads",
        "input",
        "my-leads",
    )
    assert str(path) in file_source.label
    assert lead_ids_worklist(["lea_1"]).source.kind == "input"
    campaign = campaign_worklist("cam_X1", "all", [], EnrichmentFlags(find_email=True)).source
    assert (campaign.name, campaign.kind, campaign.slug) == ("cam_X1", "campaign", "cam-x1")


class _LeadsByEmail:
    """A stand-in for the client's `get_leads_by_email` (the flow test covers the real route)."""

    def __init__(self, leads: dict[str, list[LeadByEmail]]) -> None:
        self.leads, self.asked = leads, []

    async def get_leads_by_email(self, email: str) -> list[LeadByEmail]:
        self.asked.append(email)
        return self.leads.get(email, [])


async def test_an_email_in_several_campaigns_is_enriched_through_its_most_recent_lead() -> None:
    older = LeadByEmail(lead_id="lea_old0000000000000", updated_at="2026-01-05T10:00:00.000Z")
    newest = LeadByEmail(lead_id="lea_new0000000000000", updated_at="2026-11-02T08:00:00.000Z")
    undated = LeadByEmail(lead_id="lea_undated000000000")
    client = _LeadsByEmail({"ana@x.io": [older, undated, newest]})
    worklist = emails_worklist(["ana@x.io", "ANA@x.io", "bob@x.io"])
    assert await resolve_emails(worklist, client) == 2  # one lookup per distinct email
    assert sorted(client.asked) == ["ana@x.io", "bob@x.io"]
    ana, ana_again, bob = worklist.rows
    assert ana.key == ana_again.key == newest.lead_id
    assert "most recently updated of 3" in ana.note and older.lead_id in ana.note
    assert list(worklist.items) == [newest.lead_id]
    assert bob.status == "not_in_lemlist" and bob.key != newest.lead_id
