"""Flow `enrich-campaign`: enrich the leads of a lemlist campaign that need it, collect, export."""

from __future__ import annotations

from collections.abc import Iterable

from prefect import flow

from prefect_lemlist.api.validation import CampaignId, LeadId
from prefect_lemlist.credentials import LemlistCredentials
from prefect_lemlist.flows._common import interruptible
from prefect_lemlist.pipeline.options import EnrichmentOptions, resolve_credentials
from prefect_lemlist.pipeline.report import PipelineSummary
from prefect_lemlist.pipeline.run import EnrichmentRun, LeadStarter
from prefect_lemlist.pipeline.selection import campaign_worklist

DEFAULT_OPTIONS = EnrichmentOptions()


@flow(name="enrich-campaign", validate_parameters=True)
async def enrich_campaign(
    campaign_id: str,
    credentials_block: LemlistCredentials | str | None = None,
    state: str = "all",
    options: EnrichmentOptions = DEFAULT_OPTIONS,
    lead_ids: list[str] | None = None,
) -> PipelineSummary:
    """Enrich a campaign's leads: select those that need it, enrich, collect results, export.

    Args:
        campaign_id: the lemlist campaign (`cam_…`).
        credentials_block: a `LemlistCredentials` block, or the name of a saved one; when empty,
            `LEMLIST_API_KEY` (and optionally `LEMLIST_BASE_URL`) from the environment.
        state: lemlist lead-state filter for the export (`all`, or e.g. `contacted,interested`).
        options: workflows, force, dry run, credit limit, trial limit, collection, output.
        lead_ids: a trial on chosen leads: only these leads of the campaign.

    Returns:
        The run's summary (counts per status, credits, requests, export paths, rows).

    Raises:
        ValueError: bad parameters or missing credentials (before any paid request).
        InsufficientCreditsError: the run could cost more than allowed (nothing spent).
        LemlistError: lemlist refused the export, the credit check, or the key mid-run.

    Examples:
        What would it cost, then a trial on 5 leads, with a saved credentials block:

        ```python
        import asyncio

        from prefect_lemlist import EnrichmentOptions
        from prefect_lemlist.flows import enrich_campaign

        dry_run = EnrichmentOptions(dry_run=True)
        plan = asyncio.run(enrich_campaign("cam_XXXXXXXXXXXXXXXXX", "lemlist", options=dry_run))
        print(plan.to_start, plan.max_credit_cost)
        summary = asyncio.run(
            enrich_campaign(
                "cam_XXXXXXXXXXXXXXXXX",
                "lemlist",
                options=EnrichmentOptions(find_email=True, verify_email=True, limit=5),
            )
        )
        print(summary.counts, summary.csv_path)
        ```

        The same from a shell: `prefect-lemlist enrich-campaign cam_XXXXXXXXXXXXXXXXX --block
        lemlist --verify-email --limit 5`.
    """
    return await interruptible(  # type: ignore[return-value]  # Cancelled: Prefect ends the run with it
        _enrich_campaign(campaign_id, credentials_block, state, options, lead_ids)
    )


async def _enrich_campaign(
    campaign_id: str,
    credentials_block: LemlistCredentials | str | None,
    state: str,
    options: EnrichmentOptions,
    lead_ids: list[str] | None,
) -> PipelineSummary:
    campaign = CampaignId(campaign_id)
    only = [LeadId(lead_id) for lead_id in lead_ids] if lead_ids else None
    credentials = await resolve_credentials(credentials_block)
    async with EnrichmentRun.open(credentials, options) as run:
        leads = await run.client.export_campaign_leads(campaign, state=state)
        recalls = await run.ledger.recall_leads(_valid_ids(lead.lead_id for lead in leads))
        worklist = campaign_worklist(
            campaign,
            state,
            leads,
            options.flags,
            force=options.force,
            started_before=recalls.keys(),
            only=only,
        )
        return await run.execute(worklist, LeadStarter(options), recalls)


def _valid_ids(values: Iterable[object]) -> list[str]:
    valid: list[str] = []
    for value in values:
        try:
            valid.append(LeadId(value))
        except ValueError:
            continue
    return valid
