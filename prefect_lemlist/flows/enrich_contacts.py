"""Flow `enrich-contacts`: enrich people who are not lemlist leads, 500 per bulk request."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.blocks.core import Block

from prefect_lemlist.api.models import Contact
from prefect_lemlist.credentials import LemlistCredentials
from prefect_lemlist.flows._common import interruptible, sql_input
from prefect_lemlist.pipeline.contacts import contact_records, contacts_worklist, file_source
from prefect_lemlist.pipeline.inputs import read_table
from prefect_lemlist.pipeline.options import ContactOptions, resolve_credentials
from prefect_lemlist.pipeline.report import PipelineSummary
from prefect_lemlist.pipeline.run import EnrichmentRun, PeopleStarter
from prefect_lemlist.pipeline.worklist import Source

DEFAULT_OPTIONS = ContactOptions()


@flow(name="enrich-contacts", validate_parameters=True)
async def enrich_contacts(
    path: str | None = None,
    contacts: list[dict[str, Any] | Contact] | None = None,
    credentials_block: LemlistCredentials | str | None = None,
    options: ContactOptions = DEFAULT_OPTIONS,
    sql_query: str | None = None,
    sql_source: str | Block | None = None,
) -> PipelineSummary:
    """Enrich people from a CSV / JSON Lines file or a list: bulk starts, collect, export.

    Every input row is in the export exactly once, with its columns carried through; rows that
    cannot be enriched are `rejected` with the reason (and cost nothing); rows describing the
    same person are enriched once.

    Args:
        path: a CSV or JSON Lines file with any of `email`, `linkedin_url`, `first_name`,
            `last_name`, `company_name`, `company_domain`, `job_title` (or lemlist's camelCase
            names: `linkedinUrl`, `firstName`, …); give this or `contacts`.
        contacts: the people as `Contact`s or dicts.
        credentials_block: a `LemlistCredentials` block, or the name of a saved one; when empty,
            `LEMLIST_API_KEY` (and optionally `LEMLIST_BASE_URL`) from the environment.
        options: workflows, force, dry run, credit limit, trial limit, collection, output.
        sql_query: a `select …` whose rows are read like a file's (streamed); give this,
            `path` or `contacts`.
        sql_source: the database `sql_query` reads: a SQLAlchemy URL, a saved
            `SqlAlchemyConnector` block's name, or the block (default: the destination
            database, `options.destination.target`).

    Returns:
        The run's summary.

    Raises:
        ValueError: not exactly one input, an unreadable file, or missing credentials.
        InsufficientCreditsError: the run could cost more than allowed (nothing spent).

    Examples:
        A people file, results by webhook, with a saved credentials block:

        ```python
        import asyncio

        from prefect_lemlist import ContactOptions
        from prefect_lemlist.flows import enrich_contacts

        summary = asyncio.run(
            enrich_contacts(
                path="people.csv",
                credentials_block="lemlist",
                options=ContactOptions(find_email=True, collection="webhook"),
            )
        )
        print(summary.counts, summary.csv_path)
        ```

        People given from Python (dicts or `Contact`s), LinkedIn enrichment only:

        ```python
        people = [{"linkedinUrl": "https://www.linkedin.com/in/someone"}]
        options = ContactOptions(find_email=False, linkedin_enrichment=True)
        asyncio.run(enrich_contacts(contacts=people, credentials_block="lemlist", options=options))
        ```
    """
    work = _enrich_contacts(path, contacts, credentials_block, options, sql_query, sql_source)
    return await interruptible(work)  # type: ignore[return-value]  # Cancelled: Prefect ends the run with it


async def _enrich_contacts(
    path: str | None,
    contacts: list[dict[str, Any] | Contact] | None,
    credentials_block: LemlistCredentials | str | None,
    options: ContactOptions,
    sql_query: str | None = None,
    sql_source: str | Block | None = None,
) -> PipelineSummary:
    if sum(value is not None for value in (path, contacts, sql_query)) != 1:
        raise ValueError("give exactly one of path, contacts or sql_query")
    if sql_query is not None:
        table, source = await sql_input(sql_query, sql_source, options.destination.target)
        worklist = contacts_worklist(table, options.flags, source)
    elif path is not None:
        worklist = contacts_worklist(read_table(path), options.flags, file_source(path))
    else:
        source = Source(f"{len(contacts or [])} contacts", "contacts")
        worklist = contacts_worklist(contact_records(contacts or []), options.flags, source)
    credentials = await resolve_credentials(credentials_block)
    async with EnrichmentRun.open(credentials, options) as run:
        return await run.execute(worklist, PeopleStarter(options))
