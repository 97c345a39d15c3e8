"""`WebhookReceiver`: the webhook app served on loopback (or a chosen interface) in a thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect_lemlist.asgi_thread import ThreadedASGIServer
from prefect_lemlist.models import Enrichment
from prefect_lemlist.validation import validate_http_url
from prefect_lemlist.webhook import (
    DEFAULT_MAX_BODY_BYTES,
    WEBHOOK_PATH,
    WebhookStats,
    create_webhook_app,
    new_token,
)


class WebhookReceiver:
    """Receives lemlist's webhook calls for one run; use as a context manager.

    Args:
        on_result: called for each result (see `create_webhook_app`).
        host: interface to bind; loopback by default.
        port: port; 0 picks a free one.
        public_url: the base URL lemlist should call (a tunnel or proxy in front of this
            receiver); default: the receiver's own address.
        max_body_bytes: larger bodies are refused.
    """

    def __init__(
        self,
        on_result: Callable[[Enrichment], Any],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        public_url: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.token = new_token()
        self.stats = WebhookStats()
        self.public_url = (
            validate_http_url(public_url, "public_url").rstrip("/") if public_url else None
        )
        app = create_webhook_app(
            self.token, on_result, max_body_bytes=max_body_bytes, stats=self.stats
        )
        self._server = ThreadedASGIServer(app, host=host, port=port)

    @property
    def webhook_url(self) -> str:
        """The URL to give lemlist, token included (a secret: do not log it)."""
        base = self.public_url or self._server.base_url
        return f"{base}{WEBHOOK_PATH}?token={self.token}"

    def __enter__(self) -> WebhookReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.stop()

    def __repr__(self) -> str:
        return f"WebhookReceiver(listening={self._server.base_url!r})"
