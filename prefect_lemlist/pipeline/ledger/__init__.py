"""The enrichment ledger: a durable record of the paid enrichments started, so none starts twice.

lemlist has no idempotency key and no endpoint listing a person's enrichments: the only way to
never pay twice for the same work after a crash is to remember, before and after each start, what
was sent. The ledger keeps small JSON records (`records.py`) on a storage (`storage.py`: a
directory shared by every process of the user by default, or Prefect's configured result storage:
a shared directory or a `RemoteFileSystem` block), under one namespace per lemlist team. Starts
go through claims (`claims.py`), and `Ledger` (`core.py`) speaks in intents.
"""

from prefect_lemlist.api.exceptions import ClaimedElsewhereError, LedgerError
from prefect_lemlist.pipeline.ledger.claims import ChunkClaim, LeadClaim, after_failure
from prefect_lemlist.pipeline.ledger.core import (
    ANSWER_TTL,
    DEFAULT_LEDGER_DAYS,
    LEDGER_DIR,
    Ledger,
    account_key,
)
from prefect_lemlist.pipeline.ledger.records import CLAIM_HOLD, LedgerState, Recall, RecordedAnswer
from prefect_lemlist.pipeline.ledger.storage import (
    LEDGER_DIR_ENV,
    NOT_ATOMIC_WARNING,
    FsspecStorage,
    LedgerStorage,
    LocalDirectoryStorage,
    default_storage,
    describe_storage,
    user_ledger_dir,
)

__all__ = [
    "ANSWER_TTL",
    "CLAIM_HOLD",
    "DEFAULT_LEDGER_DAYS",
    "LEDGER_DIR",
    "LEDGER_DIR_ENV",
    "NOT_ATOMIC_WARNING",
    "ChunkClaim",
    "ClaimedElsewhereError",
    "FsspecStorage",
    "LeadClaim",
    "Ledger",
    "LedgerError",
    "LedgerState",
    "LedgerStorage",
    "LocalDirectoryStorage",
    "Recall",
    "RecordedAnswer",
    "account_key",
    "after_failure",
    "default_storage",
    "describe_storage",
    "user_ledger_dir",
]
