"""Flow `enrich-leads`: enrich an explicit list of lead ids or the ids in a CSV file.

Run locally:  python -m flows.enrich_leads --csv leads.csv [--block NAME] ...
Deploy:       see prefect.yaml (entrypoint flows/enrich_leads.py:enrich_leads).
"""

from __future__ import annotations

from prefect import flow

from prefect_lemlist.pipeline import (
    EnrichmentOptions,
    PipelineSummary,
    resolve_credentials,
    run_pipeline,
)
from prefect_lemlist.selection import read_lead_ids_csv, select_lead_ids


@flow(name="enrich-leads", validate_parameters=True)
async def enrich_leads(
    lead_ids: list[str] | None = None,
    csv_path: str | None = None,
    credentials_block: str | None = None,
    options: EnrichmentOptions | None = None,
) -> PipelineSummary:
    """Enrich the given leads: validate the ids, enrich, collect results, export.

    Bad inputs (missing, malformed or duplicate ids) are reported with their line numbers and
    skipped; they never stop the run.

    Args:
        lead_ids: lead ids (`lea_…`); give this or `csv_path`.
        csv_path: a UTF-8 CSV file with a `lead_id` (or `_id`) column.
        credentials_block: name of a saved `LemlistCredentials` block; when empty,
            `LEMLIST_API_KEY` (and optionally `LEMLIST_BASE_URL`) from the environment.
        options: workflows, force, dry run, credit limit, batch size, collection mode, output.

    Returns:
        The run's summary.

    Raises:
        ValueError: neither or both of lead_ids and csv_path, an unreadable CSV file, or missing
            credentials (before any request).
        InsufficientCreditsError: the run could cost more than allowed (nothing spent).
    """
    options = options or EnrichmentOptions()
    if (lead_ids is None) == (csv_path is None):
        raise ValueError("give exactly one of lead_ids or csv_path")
    if csv_path is not None:
        selection = read_lead_ids_csv(csv_path)
        source = f"CSV {csv_path}"
    else:
        selection = select_lead_ids(lead_ids or [])
        source = f"{len(lead_ids or [])} lead ids"
    credentials = await resolve_credentials(credentials_block)
    return await run_pipeline(credentials, selection, options, source=source)


if __name__ == "__main__":
    from flows.cli import main_leads

    main_leads()
