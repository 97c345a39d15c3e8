"""The `LemlistCredentials` block: the API key, where to send requests, and client settings."""

from __future__ import annotations

from prefect.blocks.abstract import CredentialsBlock
from pydantic import Field, SecretStr, field_validator

from prefect_lemlist.api.client import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_TIMEOUT_SECONDS,
    LemlistClient,
    credentials_fingerprint,
)
from prefect_lemlist.api.validation import validate_http_url
from prefect_lemlist.ratelimit import LEMLIST_RATE_LIMIT, LEMLIST_RATE_WINDOW_SECONDS

_CODE_EXAMPLE = """In an async flow or task (prefect-lemlist's tasks are async):
```python
from prefect_lemlist import LemlistCredentials, enrich_lead

credentials = await LemlistCredentials.aload("BLOCK_NAME")
started = await enrich_lead("lea_XXXXXXXXXXXXXXXXX", credentials, find_email=True)
```

In synchronous code:
```python
from prefect_lemlist import LemlistCredentials

lemlist_credentials_block = LemlistCredentials.load("BLOCK_NAME")
```"""


class LemlistCredentials(CredentialsBlock):
    """Credentials for lemlist's API: the API key and, optionally, another base URL.

    The key is stored as a secret: Prefect shows it masked in the UI, in flow-run parameters and in
    reprs, and prefect-lemlist never logs it.

    Examples:
        Load a saved block in an async flow and start an enrichment:
        ```python
        from prefect_lemlist import LemlistCredentials

        credentials = await LemlistCredentials.aload("BLOCK_NAME")
        async with credentials.get_client() as client:
            result = await client.enrich_lead("lea_XXXXXXXXXXXXXXXXX", find_email=True)
        ```
    """

    _block_type_name = "Lemlist Credentials"
    # Block annotates these two `HttpUrl | None` but accepts plain strings (it validates them when
    # registering the block type); they stay `str` so code reading them gets a string.
    # lemlist's icon as n8n ships it (its lemlist node), pinned to a commit so it never moves,
    # through jsDelivr's GitHub CDN, which serves an SVG as `image/svg+xml` (raw GitHub URLs
    # have served SVGs as text/plain, which an `<img>` refuses)
    _logo_url = (
        "https://cdn.jsdelivr.net/gh/n8n-io/n8n@d76c4af8ef9be65b2974256c8c616b8f863ff294"
        "/packages/nodes-base/nodes/Lemlist/lemlist.svg"  # type: ignore[assignment]
    )
    _documentation_url = (
        "https://developer.lemlist.com/api-reference/getting-started/authentication"  # type: ignore[assignment]
    )
    _description = "Credentials (API key and base URL) for lemlist's lead-enrichment API."
    _code_example = _CODE_EXAMPLE

    api_key: SecretStr = Field(
        default=...,
        title="API key",
        description="lemlist API key (Settings > Integrations), sent as the Basic-auth password.",
    )
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        title="Base URL",
        description="Base URL of the lemlist API; change it for a proxy or the local sandbox.",
    )
    timeout_seconds: float = Field(
        default=DEFAULT_TIMEOUT_SECONDS,
        gt=0,
        description="Timeout of each HTTP request, in seconds.",
    )
    max_attempts: int = Field(
        default=DEFAULT_MAX_ATTEMPTS,
        ge=1,
        le=20,
        description="Attempts per request for transient errors (5xx, connection errors).",
    )
    rate_limit: int = Field(
        default=LEMLIST_RATE_LIMIT,
        ge=1,
        description="Requests allowed per rate window for this key (lemlist allows 20).",
    )
    rate_window_seconds: float = Field(
        default=LEMLIST_RATE_WINDOW_SECONDS,
        gt=0,
        description="Length of the rate window in seconds (lemlist uses 2).",
    )
    global_rate_limit: str | None = Field(
        default=None,
        description=(
            "Name of a Prefect global concurrency limit shared by all processes using this key "
            "(create it with `prefect-lemlist global-limit NAME`); empty: none."
        ),
    )

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        return validate_http_url(value, "base_url").rstrip("/")

    def get_client(self) -> LemlistClient:
        """A new `LemlistClient` configured from this block; use it with `async with`.

        Returns:
            The client. All clients of the same key share one rate budget.
        """
        return LemlistClient(
            self.api_key,
            base_url=self.base_url,
            timeout_seconds=self.timeout_seconds,
            max_attempts=self.max_attempts,
            rate_limit=self.rate_limit,
            rate_window_seconds=self.rate_window_seconds,
            global_rate_limit=self.global_rate_limit or None,
        )

    def fingerprint(self) -> str:
        """A short one-way id of this key and base URL, safe for logs and cache keys."""
        return credentials_fingerprint(self.api_key, self.base_url)
