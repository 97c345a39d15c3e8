"""lemlist's four enrichment workflows, in one table that every layer reads.

Each row says how the workflow is asked for on every endpoint, where its result sits in a polling
answer and in a webhook body, what it costs at most, and which inputs it needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum


class Workflow(str, Enum):
    """lemlist's name of an enrichment workflow (also the bulk endpoint's name)."""

    FIND_EMAIL = "find_email"
    VERIFY = "verify"
    LINKEDIN_ENRICHMENT = "linkedin_enrichment"
    FIND_PHONE = "find_phone"


@dataclass(frozen=True)
class WorkflowSpec:
    """Everything prefect-lemlist knows about one workflow.

    Attributes:
        workflow: the workflow (its value is the bulk endpoint's name).
        option: the keyword of tasks and flow options that asks for it (`verify_email`).
        query_flag: the query flag of `POST /leads/{id}/enrich` and `POST /enrich`.
        poll_keys: keys of its result in `GET /enrich/{id}` → `data` (first: documented).
        webhook_keys: keys of its result in a webhook item's `data` (first: documented).
        max_credits: the most it can cost per enrichment: the upper bound of every price
            lemlist has published (LinkedIn enrichment: 1 on the current help page, 2 on older
            ones and lemlist Academy).
        action: what it does, for people (`find emails`).
        price: how lemlist charges it, for people.
        required_inputs: alternatives of contact fields (snake_case), one of which must be
            complete (§7.2 of lemlist's bulk documentation).
        missing_code: lemlist's per-item error code when the inputs are missing.
        status_column: the export column with this workflow's own status.
    """

    workflow: Workflow
    option: str
    query_flag: str
    poll_keys: tuple[str, ...]
    webhook_keys: tuple[str, ...]
    max_credits: int
    action: str
    price: str
    required_inputs: tuple[tuple[str, ...], ...]
    missing_code: str
    status_column: str

    @property
    def bulk_name(self) -> str:
        """The name in a bulk item's `enrichmentRequests`."""
        return self.workflow.value

    def missing_inputs(self, present: Iterable[str]) -> bool:
        """Whether none of the required input combinations is complete in `present`."""
        have = set(present)
        return not any(set(combination) <= have for combination in self.required_inputs)

    def describe_inputs(self) -> str:
        """The required inputs as text, e.g. `linkedin_url, or first_name + last_name + …`."""
        return ", or ".join(" + ".join(combination) for combination in self.required_inputs)


WORKFLOWS: Mapping[Workflow, WorkflowSpec] = {
    spec.workflow: spec
    for spec in (
        WorkflowSpec(
            workflow=Workflow.FIND_EMAIL,
            option="find_email",
            query_flag="findEmail",
            poll_keys=("email",),
            webhook_keys=("find_email",),
            max_credits=5,
            action="find emails",
            price="5 credits when an email is found (deliverable or risky)",
            required_inputs=(
                ("linkedin_url",),
                ("first_name", "last_name", "company_name", "company_domain"),
            ),
            missing_code="MISSING_INPUTS",
            status_column="find_email_status",
        ),
        WorkflowSpec(
            workflow=Workflow.VERIFY,
            option="verify_email",
            query_flag="verifyEmail",
            poll_keys=("email",),
            webhook_keys=("verify",),
            max_credits=1,
            action="verify existing emails",
            price="1 credit per verification",
            required_inputs=(("email",),),
            missing_code="MISSING_EMAIL",
            status_column="verify_status",
        ),
        WorkflowSpec(
            workflow=Workflow.LINKEDIN_ENRICHMENT,
            option="linkedin_enrichment",
            query_flag="linkedinEnrichment",
            poll_keys=("linkedin", "linkedin_enrichment", "linkedinEnrichment"),
            webhook_keys=("linkedin_enrichment", "linkedin"),
            max_credits=2,
            action="enrich LinkedIn profiles",
            price="1 credit per enrichment (2 on older price pages: 2 is used as the bound)",
            required_inputs=(
                ("linkedin_url",),
                ("email",),
                ("first_name", "last_name", "company_name"),
                ("first_name", "last_name", "company_domain"),
            ),
            missing_code="MISSING_INPUTS",
            status_column="linkedin_status",
        ),
        WorkflowSpec(
            workflow=Workflow.FIND_PHONE,
            option="find_phone",
            query_flag="findPhone",
            poll_keys=("phone",),
            webhook_keys=("find_phone",),
            max_credits=20,
            action="find phone numbers",
            price="20 credits when a phone is found",
            required_inputs=(("linkedin_url",),),
            missing_code="MISSING_LINKEDIN_URL",
            status_column="find_phone_status",
        ),
    )
}
"""The table, in lemlist's processing order (find_email, verify, linkedin, phone)."""


def option_text(workflow: Workflow) -> str:
    """A workflow's option described for people: what it does and what it costs."""
    row = WORKFLOWS[workflow]
    return f"{row.action.capitalize()} ({row.price})."


def spec(workflow: Workflow | str) -> WorkflowSpec:
    """The table row of a workflow (by enum or by its lemlist name).

    Raises:
        ValueError: not one of lemlist's four workflow names.
    """
    try:
        return WORKFLOWS[Workflow(workflow)]
    except ValueError:
        names = ", ".join(w.value for w in Workflow)
        raise ValueError(f"unknown workflow {workflow!r}: expected one of {names}") from None


def max_credits(workflows: Iterable[Workflow], enrichments: int = 1) -> int:
    """The most `enrichments` enrichments running `workflows` can cost (upper-bound prices)."""
    return sum(WORKFLOWS[w].max_credits for w in workflows) * enrichments
