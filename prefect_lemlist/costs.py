"""lemlist's credit prices per enrichment workflow, in one table.

Source: lemlist's help centre (the developer docs do not list prices). find_email and find_phone
are charged only when something is found; the maximum cost assumes everything is found.
"""

from __future__ import annotations

from prefect_lemlist.models import EnrichmentFlags

CREDITS_PER_WORKFLOW: dict[str, int] = {
    "find_email": 5,
    "verify": 1,
    "linkedin_enrichment": 1,
    "find_phone": 20,
}


def max_credits_per_lead(flags: EnrichmentFlags) -> int:
    """The most one enrichment with these workflows can cost, in credits."""
    return sum(CREDITS_PER_WORKFLOW[name] for name in flags.workflows)


def max_credits(flags: EnrichmentFlags, leads: int) -> int:
    """The most `leads` enrichments with these workflows can cost, in credits."""
    return max_credits_per_lead(flags) * leads
