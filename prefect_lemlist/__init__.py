"""prefect-lemlist: Prefect tasks, flows and a local sandbox for lemlist's enrichment API.

Everything a user needs is importable from here: the `LemlistCredentials` block, the
`LemlistClient`, the tasks, the flows' options, the models and the exceptions. The flows
themselves are in `prefect_lemlist.flows`.
"""

from prefect_lemlist._version import __version__
from prefect_lemlist.api.client import LemlistClient
from prefect_lemlist.api.exceptions import (
    EnrichmentInterruptedError,
    EnrichmentTimeoutError,
    InsufficientCreditsError,
    LemlistAuthError,
    LemlistError,
    LemlistNotFoundError,
    LemlistOutOfCreditsError,
    LemlistRateLimitError,
    LemlistResponseError,
    LemlistServerError,
)
from prefect_lemlist.api.models import (
    BulkItemResult,
    CampaignLead,
    Contact,
    Credits,
    EnrichLeadResult,
    Enrichment,
    EnrichmentFlags,
    EnrichmentStart,
)
from prefect_lemlist.api.workflows import Workflow
from prefect_lemlist.credentials import LemlistCredentials
from prefect_lemlist.pipeline.options import ContactOptions, EnrichmentOptions, WebhookSettings
from prefect_lemlist.pipeline.report import PipelineSummary
from prefect_lemlist.tasks import (
    bulk_enrich,
    enrich_contact,
    enrich_lead,
    export_campaign_leads,
    get_credits,
    get_enrichment,
    wait_for_enrichment,
)

__all__ = [
    "BulkItemResult",
    "CampaignLead",
    "Contact",
    "ContactOptions",
    "Credits",
    "EnrichLeadResult",
    "Enrichment",
    "EnrichmentFlags",
    "EnrichmentInterruptedError",
    "EnrichmentOptions",
    "EnrichmentStart",
    "EnrichmentTimeoutError",
    "InsufficientCreditsError",
    "LemlistAuthError",
    "LemlistClient",
    "LemlistCredentials",
    "LemlistError",
    "LemlistNotFoundError",
    "LemlistOutOfCreditsError",
    "LemlistRateLimitError",
    "LemlistResponseError",
    "LemlistServerError",
    "PipelineSummary",
    "WebhookSettings",
    "Workflow",
    "__version__",
    "bulk_enrich",
    "enrich_contact",
    "enrich_lead",
    "export_campaign_leads",
    "get_credits",
    "get_enrichment",
    "wait_for_enrichment",
]
