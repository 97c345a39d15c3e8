"""Flow `enrich-campaign`: enrich the leads of a lemlist campaign that need it, collect, export.

Run locally:  python -m flows.enrich_campaign CAMPAIGN_ID [--block NAME] [--find-phone] ...
Deploy:       see prefect.yaml (entrypoint flows/enrich_campaign.py:enrich_campaign).
"""

from __future__ import annotations

from prefect import flow

from prefect_lemlist.ledger import EnrichmentLedger, LedgerEntry
from prefect_lemlist.pipeline import (
    EnrichmentOptions,
    PipelineSummary,
    resolve_credentials,
    run_pipeline,
)
from prefect_lemlist.selection import select_campaign_leads
from prefect_lemlist.tasks import export_campaign_leads
from prefect_lemlist.validation import validate_id


@flow(name="enrich-campaign", validate_parameters=True)
async def enrich_campaign(
    campaign_id: str,
    credentials_block: str | None = None,
    state: str = "all",
    options: EnrichmentOptions | None = None,
) -> PipelineSummary:
    """Enrich a campaign's leads: select those that need it, enrich, collect results, export.

    Args:
        campaign_id: the lemlist campaign (`cam_…`).
        credentials_block: name of a saved `LemlistCredentials` block; when empty,
            `LEMLIST_API_KEY` (and optionally `LEMLIST_BASE_URL`) from the environment.
        state: lemlist lead-state filter for the export (`all`, or e.g. `contacted,interested`).
        options: workflows, force, dry run, credit limit, batch size, collection mode, output.

    Returns:
        The run's summary (counts per status, credits, requests, export paths).

    Raises:
        ValueError: bad parameters or missing credentials (before any paid request).
        InsufficientCreditsError: the run could cost more than allowed (nothing spent).
        LemlistError: lemlist refused the export or the credit check.
    """
    options = options or EnrichmentOptions()
    validate_id(campaign_id, "campaign id")
    credentials = await resolve_credentials(credentials_block)
    leads = await export_campaign_leads(campaign_id, credentials, state=state)
    entries: dict[str, LedgerEntry] = {}
    if not options.force:
        ledger = EnrichmentLedger(credentials.fingerprint(), options.flags)
        entries = await ledger.read_many(
            [lead.lead_id for lead in leads if _valid_id(lead.lead_id)]
        )
    started_before = {
        lead_id for lead_id, entry in entries.items() if entry.state in ("started", "starting")
    }
    selection = select_campaign_leads(
        leads, options.flags, force=options.force, already_started=started_before
    )
    return await run_pipeline(
        credentials,
        selection,
        options,
        source=f"campaign {campaign_id} (state={state}, {len(leads)} leads)",
        requests_before=1,
        ledger_entries=entries,
    )


def _valid_id(lead_id: str) -> bool:
    try:
        validate_id(lead_id)
    except ValueError:
        return False
    return True


if __name__ == "__main__":
    from flows.cli import main_campaign

    main_campaign()
