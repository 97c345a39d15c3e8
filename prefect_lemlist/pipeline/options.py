"""The flows' parameters: what to enrich and how (rendered as forms by the Prefect UI), and the
credentials a run uses."""

from __future__ import annotations

from typing import Literal

from prefect.blocks.core import Block
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from prefect_lemlist.api.exceptions import CredentialsError
from prefect_lemlist.api.models import EnrichmentFlags
from prefect_lemlist.api.workflows import Workflow, option_text
from prefect_lemlist.credentials import LemlistCredentials
from prefect_lemlist.settings import lemlist_settings

OutputFormat = Literal["csv", "jsonl", "parquet"]


def _default_formats() -> list[OutputFormat]:
    return ["csv", "jsonl"]


class WebhookSettings(BaseModel):
    """Where the webhook receiver listens, which URL lemlist is given, and when to trust it."""

    model_config = ConfigDict(frozen=True)

    host: str = Field(
        default="127.0.0.1",
        description="Interface the receiver binds to (loopback unless you expose it on purpose).",
    )
    port: int = Field(default=0, ge=0, le=65535, description="Port; 0 picks a free one.")
    public_url: str | None = Field(
        default=None,
        description="URL at which lemlist can reach the receiver (e.g. a tunnel), without path.",
    )
    grace_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Poll an enrichment whose webhook has not arrived this long after its start.",
    )
    confirm: Literal["when_unclear", "always", "never"] = Field(
        default="when_unclear",
        description=(
            "Confirm a webhook result with one poll: when it lacks a recognisable result for a "
            "requested workflow (when_unclear), always, or never."
        ),
    )


DEFAULT_TABLE = "lemlist_enrichments"


class DestinationSettings(BaseModel):
    """A database table the results are merged into (besides the export files).

    The target is a SQLAlchemy URL or a saved prefect-sqlalchemy `SqlAlchemyConnector` block
    (its name, or the block itself from Python). Rows are upserted by their merge key
    (`record_key` + `workflows`, see docs/schema.md), so a re-run updates rows instead of
    appending them, and a later `not_found` or error never overwrites a value found earlier.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    target: str | Block | None = Field(
        default=None,
        description=(
            "Also merge the results into a database: a SQLAlchemy URL (sqlite:///results.db, "
            "postgresql+psycopg://user@host/db, duckdb:///results.duckdb) or the name of a "
            "saved SqlAlchemyConnector block."
        ),
        json_schema_extra={"metavar": "URL|BLOCK"},
    )
    table: str = Field(
        default=DEFAULT_TABLE, description="The table (created if missing; schema.table works)."
    )
    key: str | None = Field(
        default=None,
        description=(
            "An input column identifying each row (e.g. crm_id): the merge key instead of the "
            "lead id or person key."
        ),
        json_schema_extra={"metavar": "COLUMN"},
    )
    overwrite: bool = Field(
        default=False,
        description="Let a later not_found or error replace values found by an earlier run.",
    )
    batch_size: int = Field(
        default=1000, ge=1, le=10_000, description="Rows per upsert statement and transaction."
    )


class _RunOptions(BaseModel):
    """The options every enrichment flow has."""

    model_config = ConfigDict(frozen=True)

    find_email: bool = Field(default=True, description=option_text(Workflow.FIND_EMAIL))
    verify_email: bool = Field(default=False, description=option_text(Workflow.VERIFY))
    linkedin_enrichment: bool = Field(
        default=False, description=option_text(Workflow.LINKEDIN_ENRICHMENT)
    )
    find_phone: bool = Field(default=False, description=option_text(Workflow.FIND_PHONE))
    force: bool = Field(
        default=False,
        description="Enrich again what an earlier run (or lemlist) already did: costs again.",
    )
    dry_run: bool = Field(
        default=False, description="Only report what would be enriched and the maximum cost."
    )
    max_credits: float | None = Field(
        default=None, ge=0, description="Refuse to start if the run could cost more than this."
    )
    limit: int | None = Field(
        default=None, ge=1, description="Trial: enrich only the first N (the rest not started)."
    )
    collection: Literal["poll", "webhook"] = Field(
        default="poll", description="Collect results by polling, or by webhook with polling."
    )
    collect_timeout_seconds: float = Field(
        default=600.0, gt=0, description="Report an enrichment timed_out after this long."
    )
    first_poll_seconds: float = Field(
        default=10.0, gt=0, description="First guess of an enrichment's duration (adapts)."
    )
    unreachable_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        description=(
            "While lemlist cannot be reached, keep polling started enrichments this long, "
            "then report them not_collected (a re-run collects them by id)."
        ),
    )
    only_missing: bool = Field(
        default=False,
        description=(
            "Skip input rows that already have what was asked (an email, a phone, an email "
            "status): reported skipped_has_data, no charge."
        ),
    )
    refresh_after_days: float | None = Field(
        default=None,
        ge=0,
        description=(
            "Enrich again (and pay again) what an earlier run enriched more than this many days "
            "ago; default: never."
        ),
        json_schema_extra={"metavar": "DAYS"},
    )
    credits_alert: float | None = Field(
        default=None,
        ge=0,
        description="Emit the Prefect event lemlist.credits.low when credits end below this.",
        json_schema_extra={"metavar": "CREDITS"},
    )
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    destination: DestinationSettings = Field(default_factory=DestinationSettings)
    output_dir: str = Field(default="lemlist-output", description="Directory for the exports.")
    output_name: str | None = Field(
        default=None,
        description="Export file name without extension (default: the input and a timestamp).",
    )
    formats: list[OutputFormat] = Field(
        default_factory=_default_formats,
        min_length=1,
        description="Export formats (parquet needs `pip install prefect-lemlist[parquet]`).",
    )

    @model_validator(mode="after")
    def _needs_a_flag(self) -> _RunOptions:
        self.flags.require_any()
        return self

    @property
    def flags(self) -> EnrichmentFlags:
        """The requested workflows."""
        return EnrichmentFlags(
            find_email=self.find_email,
            verify_email=self.verify_email,
            linkedin_enrichment=self.linkedin_enrichment,
            find_phone=self.find_phone,
        )


class EnrichmentOptions(_RunOptions):
    """What to enrich and how, for the lead flows (`enrich-campaign`, `enrich-leads`)."""

    batch_size: int = Field(default=100, ge=1, le=1000, description="Leads per enrich task run.")
    id_column: str | None = Field(
        default=None,
        description=(
            "The input column holding lemlist lead ids (default: a column whose values look "
            "like lea_…; otherwise rows are found by their email column)."
        ),
    )


class ContactOptions(_RunOptions):
    """What to enrich and how, for the contacts flow (`enrich-contacts`)."""

    bulk_size: int = Field(
        default=500, ge=1, le=500, description="People per bulk request (lemlist: at most 500)."
    )


RunOptions = EnrichmentOptions | ContactOptions


async def resolve_credentials(block: LemlistCredentials | str | None) -> LemlistCredentials:
    """The credentials to use: the block itself, a saved block by name, else `LEMLIST_API_KEY`
    (and optionally `LEMLIST_BASE_URL`) from the environment.

    Raises:
        CredentialsError: the block does not exist, the environment has no key, or a bad base
            URL (a `ValueError` too).
    """
    if isinstance(block, LemlistCredentials):
        return block
    if block:
        try:
            return await LemlistCredentials.aload(block)
        except (ValueError, ObjectNotFound):
            raise CredentialsError(
                f"No LemlistCredentials block named {block!r} exists on this Prefect API"
            ) from None
    settings = lemlist_settings()
    api_key = settings.api_key.get_secret_value().strip() if settings.api_key else ""
    if not api_key:
        raise CredentialsError(
            "No lemlist credentials: pass credentials_block (a saved LemlistCredentials block) "
            "or set LEMLIST_API_KEY."
        )
    base_url = (settings.base_url or "").strip()
    try:
        if base_url:
            return LemlistCredentials(api_key=SecretStr(api_key), base_url=base_url)
        return LemlistCredentials(api_key=SecretStr(api_key))
    except ValidationError as exc:
        raise CredentialsError(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None
