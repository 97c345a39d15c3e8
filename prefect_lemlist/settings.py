"""`LemlistSettings`: every environment variable and tuning value of prefect-lemlist, in one place.

Read from `LEMLIST_*` environment variables (and, as Prefect's own settings are, from a `.env`
file or the `[integrations.lemlist]` table of `prefect.toml`). Nothing else in the package
reads the environment for these.

Example:
    ```bash
    export LEMLIST_API_KEY=...                 # credentials when no block is given
    export LEMLIST_LEDGER_DIR=/shared/ledger   # where the enrichment ledger lives
    ```
"""

from __future__ import annotations

from typing import ClassVar

from prefect.settings.base import PrefectBaseSettings, build_settings_config
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict


class LemlistSettings(PrefectBaseSettings):
    """prefect-lemlist's settings (environment variables `LEMLIST_<FIELD>`)."""

    # Prefect's config (a `.env` file, `[integrations.lemlist]` in prefect.toml), but the
    # `LEMLIST_` prefix users know rather than `PREFECT_INTEGRATIONS_LEMLIST_`
    model_config: ClassVar[SettingsConfigDict] = {  # type: ignore[typeddict-unknown-key]  # Prefect adds its own keys
        **build_settings_config(("integrations", "lemlist")),
        "env_prefix": "LEMLIST_",
    }

    api_key: SecretStr | None = Field(
        default=None,
        description="The API key used when a flow gets no credentials block (never logged).",
    )
    base_url: str | None = Field(
        default=None, description="The API's base URL with LEMLIST_API_KEY (the sandbox, a proxy)."
    )
    ledger_dir: str | None = Field(
        default=None,
        description="The enrichment ledger's directory; it wins over every other choice.",
    )
    leads_in_flight: int = Field(
        default=20, ge=1, le=100, description="Lead start requests in flight at once per batch."
    )
    stop_grace_seconds: float = Field(
        default=5.0,
        ge=0,
        description="After a Ctrl-C, how long start requests on the wire may take to answer.",
    )
    claim_hold_seconds: float = Field(
        default=900.0,
        gt=0,
        description=(
            "How long a start record of another host counts as in flight (longer than any "
            "request's attempts and rate-limit waits); host clocks must roughly agree."
        ),
    )
    follow_seconds: float = Field(
        default=1.0, gt=0, description="How often a run re-reads a start another run holds."
    )
    credit_check_seconds: float = Field(
        default=5.0, gt=0, description="The shortest gap between two credit reads after failures."
    )


def lemlist_settings() -> LemlistSettings:
    """The current settings (read now: a test or a caller may have changed the environment)."""
    return LemlistSettings()
