"""Landing a run's results: the export files, the rejected rows, and a database table.

Files and tables hold the same rows in the same schema (`pipeline/schema.py`). The database
write is a merge by key (`prefect_lemlist.sql.upsert_rows`), in batches, one transaction each;
it runs after the files are written, so a database that refuses the rows loses nothing.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect_lemlist.api.exceptions import DatabaseTargetError
from prefect_lemlist.pipeline.export import (
    ExportContext,
    export_columns,
    export_rows,
    output_stem,
    text_row,
    write_exports,
    write_rejected,
)
from prefect_lemlist.pipeline.options import DestinationSettings, RunOptions
from prefect_lemlist.pipeline.outcomes import Outcome
from prefect_lemlist.pipeline.schema import KEY_COLUMNS, PROTECTED_COLUMNS, column_kind
from prefect_lemlist.pipeline.worklist import Worklist
from prefect_lemlist.sql import (
    ColumnSpec,
    UpsertResult,
    describe_target,
    resolve_engine,
    upsert_rows,
)


@dataclass
class Landed:
    """Where a run's results landed.

    Attributes:
        paths: export format -> absolute path.
        rejected_path: the rejected rows' file, if any.
        table: the database table's description (`sqlite:///… table lemlist_enrichments`).
        upsert: what the merge did (rows inserted and updated), when a database was given.
        table_error: why the database refused the rows (the files are written), or None.
        shown: the first rows as text (for the flow's result and the UI's table).
    """

    paths: dict[str, Path] = field(default_factory=dict)
    rejected_path: Path | None = None
    table: str | None = None
    upsert: UpsertResult | None = None
    table_error: DatabaseTargetError | None = None
    shown: list[dict[str, Any]] = field(default_factory=list)


async def land_results(
    worklist: Worklist,
    outcomes: Mapping[str, Outcome],
    options: RunOptions,
    context: ExportContext,
    *,
    shown_rows: int,
) -> Landed:
    """Write the export files and the rejected rows, then merge the rows into the database.

    Args:
        worklist: the run's rows.
        outcomes: item key -> outcome.
        options: the run's options (output, formats, destination).
        context: what the rows share.
        shown_rows: how many rows to keep as text for the report.

    Returns:
        Where the results are.

    Raises:
        ExportError, OSError: a file cannot be written (a database that cannot be reached or
            refuses the rows is `table_error`: the files are written already).
    """
    columns = export_columns(worklist)
    stem = output_stem(options.output_dir, options.output_name, worklist.source.slug)
    landed = Landed()
    landed.paths = write_exports(
        export_rows(worklist, outcomes, context), columns, stem, options.formats
    )
    landed.rejected_path = write_rejected(worklist, stem)
    rows = export_rows(worklist, outcomes, context)
    landed.shown = [text_row(row) for row in itertools.islice(rows, shown_rows)]
    destination = options.destination
    if destination.target is not None:
        landed.table = f"{describe_target(destination.target)} table {destination.table}"
        try:
            landed.upsert = await asyncio.to_thread(
                merge_into_table, export_rows(worklist, outcomes, context), columns, destination
            )
        except DatabaseTargetError as exc:
            landed.table_error = exc
    return landed


async def check_destination(destination: DestinationSettings) -> None:
    """Connect to the destination database once, before anything is spent.

    Raises:
        DatabaseTargetError: the database cannot be reached (nothing was sent to lemlist).
    """
    if destination.target is None:
        return
    engine = await asyncio.to_thread(resolve_engine, destination.target)
    engine.dispose()


def merge_into_table(
    rows: Iterable[Mapping[str, Any]], columns: list[str], destination: DestinationSettings
) -> UpsertResult:
    """Merge result rows into the destination's table (created if missing).

    Raises:
        DatabaseTargetError: no target, or the database cannot be reached or refuses the rows.
    """
    if destination.target is None:
        raise DatabaseTargetError("no database destination was given")
    engine = resolve_engine(destination.target)
    try:
        return upsert_rows(
            engine,
            destination.table,
            rows,
            columns=[ColumnSpec(name, column_kind(name)) for name in columns],
            key=list(KEY_COLUMNS),
            protected=list(PROTECTED_COLUMNS),
            overwrite=destination.overwrite,
            batch_size=destination.batch_size,
        )
    finally:
        engine.dispose()
