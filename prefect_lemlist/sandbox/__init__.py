"""A local, faithful emulation of lemlist's lead-enrichment API, for offline flows and tests.

Example:
    >>> from prefect_lemlist.sandbox import SandboxConfig, run_sandbox
    >>> with run_sandbox(SandboxConfig(leads=50, seed=3)) as sandbox:  # doctest: +SKIP
    ...     print(sandbox.base_url, sandbox.campaign_id)
"""

from prefect_lemlist.sandbox.config import DEFAULT_API_KEY, SandboxConfig
from prefect_lemlist.sandbox.data import LeadKind, SandboxLead
from prefect_lemlist.sandbox.models import WebhookDelivery
from prefect_lemlist.sandbox.people import (
    PersonTruth,
    generate_people,
    normalize_inputs,
    person_key,
    person_truth,
    row_inputs,
    write_people_file,
)
from prefect_lemlist.sandbox.recorder import SandboxStats
from prefect_lemlist.sandbox.server import Sandbox, run_sandbox

__all__ = [
    "DEFAULT_API_KEY",
    "LeadKind",
    "PersonTruth",
    "Sandbox",
    "SandboxConfig",
    "SandboxLead",
    "SandboxStats",
    "WebhookDelivery",
    "generate_people",
    "normalize_inputs",
    "person_key",
    "person_truth",
    "row_inputs",
    "run_sandbox",
    "write_people_file",
]
