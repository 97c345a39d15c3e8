"""prefect-lemlist: Prefect tasks, flows building blocks and a local sandbox for lemlist enrichment.

Everything a user needs is importable from here: the `LemlistCredentials` block, the
`LemlistClient`, the tasks (`enrich_lead`, `get_enrichment`, `wait_for_enrichment`,
`export_campaign_leads`, `get_credits`), the models and the exceptions.
"""

from prefect_lemlist.client import LemlistClient
from prefect_lemlist.credentials import LemlistCredentials
from prefect_lemlist.exceptions import (
    EnrichmentTimeoutError,
    LemlistAuthError,
    LemlistError,
    LemlistNotFoundError,
    LemlistRateLimitError,
    LemlistResponseError,
    LemlistServerError,
)
from prefect_lemlist.ledger import EnrichmentInterruptedError
from prefect_lemlist.models import (
    CampaignLead,
    Credits,
    EnrichLeadResult,
    Enrichment,
    EnrichmentFlags,
)
from prefect_lemlist.tasks import (
    enrich_lead,
    export_campaign_leads,
    get_credits,
    get_enrichment,
    wait_for_enrichment,
)

__version__ = "0.1.0"

__all__ = [
    "CampaignLead",
    "Credits",
    "EnrichLeadResult",
    "Enrichment",
    "EnrichmentFlags",
    "EnrichmentInterruptedError",
    "EnrichmentTimeoutError",
    "LemlistAuthError",
    "LemlistClient",
    "LemlistCredentials",
    "LemlistError",
    "LemlistNotFoundError",
    "LemlistRateLimitError",
    "LemlistResponseError",
    "LemlistServerError",
    "__version__",
    "enrich_lead",
    "export_campaign_leads",
    "get_credits",
    "get_enrichment",
    "wait_for_enrichment",
]
