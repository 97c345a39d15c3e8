"""prefect-lemlist: Prefect tasks, flows and a local sandbox for lemlist's enrichment API.

Everything a user needs is importable from here: the `LemlistCredentials` block, the
`LemlistClient`, the tasks, the flows' options, the models and every public exception. The
flows themselves are in `prefect_lemlist.flows`.

Names are imported on first use (PEP 562), so `import prefect_lemlist.sandbox` (the local
lemlist) does not import Prefect.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from prefect_lemlist._version import __version__

if TYPE_CHECKING:
    from prefect_lemlist.api.client import (
        LemlistClient,
    )
    from prefect_lemlist.api.exceptions import (
        ClaimedElsewhereError,
        CredentialsError,
        DatabaseTargetError,
        EnrichmentInterruptedError,
        EnrichmentsNotCollectedError,
        EnrichmentTimeoutError,
        InsufficientCreditsError,
        LedgerError,
        LemlistAuthError,
        LemlistError,
        LemlistNotFoundError,
        LemlistOutOfCreditsError,
        LemlistRateLimitError,
        LemlistResponseError,
        LemlistServerError,
        LemlistUnreachableError,
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
    from prefect_lemlist.api.workflows import (
        Workflow,
    )
    from prefect_lemlist.credentials import (
        LemlistCredentials,
    )
    from prefect_lemlist.pipeline.options import (
        ContactOptions,
        EnrichmentOptions,
        WebhookSettings,
    )
    from prefect_lemlist.pipeline.report import (
        PipelineSummary,
    )
    from prefect_lemlist.tasks import (
        bulk_enrich,
        enrich_contact,
        enrich_lead,
        export_campaign_leads,
        get_credits,
        get_enrichment,
        wait_for_enrichment,
    )

_EXPORTS: dict[str, str] = {
    "LemlistClient": "prefect_lemlist.api.client",
    "ClaimedElsewhereError": "prefect_lemlist.api.exceptions",
    "EnrichmentInterruptedError": "prefect_lemlist.api.exceptions",
    "EnrichmentTimeoutError": "prefect_lemlist.api.exceptions",
    "EnrichmentsNotCollectedError": "prefect_lemlist.api.exceptions",
    "InsufficientCreditsError": "prefect_lemlist.api.exceptions",
    "LedgerError": "prefect_lemlist.api.exceptions",
    "LemlistAuthError": "prefect_lemlist.api.exceptions",
    "LemlistError": "prefect_lemlist.api.exceptions",
    "LemlistNotFoundError": "prefect_lemlist.api.exceptions",
    "LemlistOutOfCreditsError": "prefect_lemlist.api.exceptions",
    "LemlistRateLimitError": "prefect_lemlist.api.exceptions",
    "LemlistResponseError": "prefect_lemlist.api.exceptions",
    "LemlistServerError": "prefect_lemlist.api.exceptions",
    "LemlistUnreachableError": "prefect_lemlist.api.exceptions",
    "BulkItemResult": "prefect_lemlist.api.models",
    "CampaignLead": "prefect_lemlist.api.models",
    "Contact": "prefect_lemlist.api.models",
    "Credits": "prefect_lemlist.api.models",
    "EnrichLeadResult": "prefect_lemlist.api.models",
    "Enrichment": "prefect_lemlist.api.models",
    "EnrichmentFlags": "prefect_lemlist.api.models",
    "EnrichmentStart": "prefect_lemlist.api.models",
    "Workflow": "prefect_lemlist.api.workflows",
    "LemlistCredentials": "prefect_lemlist.credentials",
    "ContactOptions": "prefect_lemlist.pipeline.options",
    "CredentialsError": "prefect_lemlist.api.exceptions",
    "DatabaseTargetError": "prefect_lemlist.api.exceptions",
    "EnrichmentOptions": "prefect_lemlist.pipeline.options",
    "WebhookSettings": "prefect_lemlist.pipeline.options",
    "PipelineSummary": "prefect_lemlist.pipeline.report",
    "bulk_enrich": "prefect_lemlist.tasks",
    "enrich_contact": "prefect_lemlist.tasks",
    "enrich_lead": "prefect_lemlist.tasks",
    "export_campaign_leads": "prefect_lemlist.tasks",
    "get_credits": "prefect_lemlist.tasks",
    "get_enrichment": "prefect_lemlist.tasks",
    "wait_for_enrichment": "prefect_lemlist.tasks",
}

__all__ = [
    "BulkItemResult",
    "CampaignLead",
    "ClaimedElsewhereError",
    "Contact",
    "ContactOptions",
    "CredentialsError",
    "Credits",
    "DatabaseTargetError",
    "EnrichLeadResult",
    "Enrichment",
    "EnrichmentFlags",
    "EnrichmentInterruptedError",
    "EnrichmentOptions",
    "EnrichmentStart",
    "EnrichmentTimeoutError",
    "EnrichmentsNotCollectedError",
    "InsufficientCreditsError",
    "LedgerError",
    "LemlistAuthError",
    "LemlistClient",
    "LemlistCredentials",
    "LemlistError",
    "LemlistNotFoundError",
    "LemlistOutOfCreditsError",
    "LemlistRateLimitError",
    "LemlistResponseError",
    "LemlistServerError",
    "LemlistUnreachableError",
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


def __getattr__(name: str) -> Any:
    """Import a public name on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'prefect_lemlist' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
