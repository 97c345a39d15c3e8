"""Flow `enrich-leads`: enrich lead ids, emails, or the rows of a file of either."""

from __future__ import annotations

import warnings

from prefect import flow, get_run_logger
from prefect.blocks.core import Block

from prefect_lemlist.credentials import LemlistCredentials
from prefect_lemlist.flows._common import interruptible, sql_input
from prefect_lemlist.pipeline.inputs import read_table
from prefect_lemlist.pipeline.options import EnrichmentOptions, resolve_credentials
from prefect_lemlist.pipeline.report import PipelineSummary
from prefect_lemlist.pipeline.run import EnrichmentRun, LeadStarter
from prefect_lemlist.pipeline.selection import (
    emails_worklist,
    lead_file_worklist,
    lead_ids_worklist,
    lead_table_worklist,
    resolve_emails,
)
from prefect_lemlist.pipeline.worklist import Worklist

DEFAULT_OPTIONS = EnrichmentOptions()


@flow(name="enrich-leads", validate_parameters=True)
async def enrich_leads(
    lead_ids: list[str] | None = None,
    path: str | None = None,
    credentials_block: LemlistCredentials | str | None = None,
    options: EnrichmentOptions = DEFAULT_OPTIONS,
    emails: list[str] | None = None,
    csv_path: str | None = None,
    sql_query: str | None = None,
    sql_source: str | Block | None = None,
) -> PipelineSummary:
    """Enrich the given leads: read and check the inputs, enrich, collect results, export.

    Bad inputs (missing or malformed ids, unknown emails) are reported with their line numbers
    and never stop the run; every input row is in the export exactly once (repeats share one
    enrichment).

    Args:
        lead_ids: lead ids (`lea_…`); give exactly one of this, `emails` or `path`.
        path: a CSV or JSON Lines file with a `lead_id` (or `_id`) column, or an `email`
            column; its other columns are carried into the export (the same parameter name
            as `enrich_contacts`'s file).
        credentials_block: a `LemlistCredentials` block, or the name of a saved one; when empty,
            `LEMLIST_API_KEY` (and optionally `LEMLIST_BASE_URL`) from the environment.
        options: workflows, force, dry run, credit limit, trial limit, collection, output.
        emails: emails of people who are lemlist leads (one `GET /leads/{email}` each).
        csv_path: deprecated name of `path` (still accepted, with a warning).
        sql_query: a `select …` whose rows are read like a file's (streamed); give this or
            one of the other inputs.
        sql_source: the database `sql_query` reads: a SQLAlchemy URL, a saved
            `SqlAlchemyConnector` block's name, or the block (default: the destination
            database, `options.destination.target`).

    Returns:
        The run's summary.

    Raises:
        ValueError: not exactly one input, an unreadable file, or missing credentials (before
            any request).
        InsufficientCreditsError: the run could cost more than allowed (nothing spent).

    Examples:
        A file of lead ids (or emails) from a CRM, with a saved credentials block:

        ```python
        import asyncio

        from prefect_lemlist import EnrichmentOptions
        from prefect_lemlist.flows import enrich_leads

        summary = asyncio.run(
            enrich_leads(
                path="crm-export.csv",
                credentials_block="lemlist",
                options=EnrichmentOptions(find_email=True, verify_email=True),
            )
        )
        print(summary.counts, summary.csv_path)
        ```

        A few lead ids, a trial run that starts nothing:

        ```python
        trial = EnrichmentOptions(dry_run=True)
        asyncio.run(enrich_leads(["lea_XXXXXXXXXXXXXXXXX"], options=trial))
        ```
    """
    path = _deprecated_csv_path(path, csv_path)
    return await interruptible(  # type: ignore[return-value]  # Cancelled: Prefect ends the run with it
        _enrich_leads(lead_ids, path, credentials_block, options, emails, sql_query, sql_source)
    )


CSV_PATH_DEPRECATED = "enrich_leads: `csv_path` is deprecated, use `path` (as enrich_contacts does)"


def _deprecated_csv_path(path: str | None, csv_path: str | None) -> str | None:
    """`path`, or the deprecated `csv_path` (with a warning in the run's logs and to Python)."""
    if csv_path is None:
        return path
    if path is not None:
        raise ValueError("give path only (csv_path is its deprecated name), not both")
    warnings.warn(CSV_PATH_DEPRECATED, DeprecationWarning, stacklevel=3)
    get_run_logger().warning(CSV_PATH_DEPRECATED)
    return csv_path


async def _enrich_leads(
    lead_ids: list[str] | None,
    path: str | None,
    credentials_block: LemlistCredentials | str | None,
    options: EnrichmentOptions,
    emails: list[str] | None,
    sql_query: str | None = None,
    sql_source: str | Block | None = None,
) -> PipelineSummary:
    given = [value is not None for value in (lead_ids, path, emails, sql_query)]
    if sum(given) != 1:
        raise ValueError("give exactly one of lead_ids, emails, path or sql_query")
    if sql_query is not None:
        table, source = await sql_input(sql_query, sql_source, options.destination.target)
        worklist = lead_table_worklist(table, source, options.id_column)
    else:
        worklist = _worklist(lead_ids, path, emails, options.id_column)
    credentials = await resolve_credentials(credentials_block)
    async with EnrichmentRun.open(credentials, options) as run:
        await resolve_emails(worklist, run.client)
        return await run.execute(worklist, LeadStarter(options))


def _worklist(
    lead_ids: list[str] | None,
    path: str | None,
    emails: list[str] | None,
    id_column: str | None,
) -> Worklist:
    if path is not None:
        return lead_file_worklist(read_table(path), path, id_column)
    if emails is not None:
        return emails_worklist(emails)
    return lead_ids_worklist(lead_ids or [])
