"""The pipeline stages shared by every flow: inputs → plan → start → collect → report → export.

See `docs/architecture.md` for the map.
"""

from prefect_lemlist.pipeline.options import ContactOptions, EnrichmentOptions, WebhookSettings
from prefect_lemlist.pipeline.report import PipelineSummary, render_summary

__all__ = [
    "ContactOptions",
    "EnrichmentOptions",
    "PipelineSummary",
    "WebhookSettings",
    "render_summary",
]
