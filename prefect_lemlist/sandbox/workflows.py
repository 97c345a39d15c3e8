"""lemlist's enrichment workflows: the one table of their names, flags, keys and prices.

Every other module of the sandbox derives what it needs (query flags, bulk names, webhook
result keys, processing order, credit prices) from `WORKFLOW_TABLE`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Workflow = Literal["find_email", "verify", "linkedin_enrichment", "find_phone"]
"""lemlist enrichment workflow names."""


@dataclass(frozen=True)
class WorkflowSpec:
    """One lemlist enrichment workflow.

    Attributes:
        name: the workflow name (bulk `enrichmentRequests` value and webhook result key).
        flag: the query flag of `POST /leads/{id}/enrich` and `POST /enrich`.
        unknown_key: its webhook result key in the `unknown_keys` body style.
        credits: its price when charged (`linkedin_enrichment`: `config.linkedin_credits`).
    """

    name: Workflow
    flag: str
    unknown_key: str
    credits: int


WORKFLOW_TABLE: tuple[WorkflowSpec, ...] = (
    WorkflowSpec("find_email", "findEmail", "emailFinder", 5),
    WorkflowSpec("verify", "verifyEmail", "emailVerifier", 1),
    WorkflowSpec("linkedin_enrichment", "linkedinEnrichment", "linkedinEnricher", 1),
    WorkflowSpec("find_phone", "findPhone", "phoneFinder", 20),
)
"""Every workflow, in processing order (the order flags, bulk items and results follow)."""

WORKFLOWS: tuple[str, ...] = tuple(spec.name for spec in WORKFLOW_TABLE)
"""Workflow names in processing order."""

WORKFLOW_FLAGS: dict[str, str] = {spec.flag: spec.name for spec in WORKFLOW_TABLE}
"""Query flag → workflow name, in processing order."""

WORKFLOW_QUERY_FLAGS: tuple[str, ...] = tuple(WORKFLOW_FLAGS)
"""The query flags of the enrich routes."""

UNKNOWN_WEBHOOK_KEYS: dict[str, str] = {spec.name: spec.unknown_key for spec in WORKFLOW_TABLE}
"""Workflow name → webhook result key of the `unknown_keys` body style."""

CREDIT_COSTS: dict[str, int] = {spec.name: spec.credits for spec in WORKFLOW_TABLE}
"""Workflow name → credits (find_email only when found deliverable/risky, find_phone when found)."""


def requested_workflows(flags: Mapping[str, bool]) -> tuple[str, ...]:
    """The workflows a request's query flags ask for, in processing order.

    Args:
        flags: query flag name (`findEmail`…) → value.

    Returns:
        The workflow names whose flag is true.
    """
    return tuple(name for flag, name in WORKFLOW_FLAGS.items() if flags.get(flag))


def in_processing_order(workflows: Iterable[str]) -> tuple[str, ...]:
    """The given workflow names (deduplicated) in processing order.

    Args:
        workflows: known workflow names, any order.

    Returns:
        A tuple ordered like `WORKFLOWS`.
    """
    wanted = set(workflows)
    return tuple(name for name in WORKFLOWS if name in wanted)


__all__ = [
    "CREDIT_COSTS",
    "UNKNOWN_WEBHOOK_KEYS",
    "WORKFLOWS",
    "WORKFLOW_FLAGS",
    "WORKFLOW_QUERY_FLAGS",
    "WORKFLOW_TABLE",
    "Workflow",
    "WorkflowSpec",
    "in_processing_order",
    "requested_workflows",
]
