"""`Ledger`: the records of one lemlist team and one set of workflows, spoken to in intents.

- `recall_leads` / `recall_contacts`: what earlier runs did for these keys (`Recall`, each
  naming the record version it was read from);
- `claim_lead` / `claim_chunk`: the claim around one start request, tied to what was recalled;
- `record_outcomes`: the final results, so that a later run reports them without a request;
- `forget`: enrichments lemlist ended without charge, started again by a later run.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from prefect_lemlist.pipeline.ledger.claims import ChunkClaim, LeadClaim
from prefect_lemlist.pipeline.ledger.records import (
    LedgerState,
    Recall,
    Record,
    decode,
    encode,
    recall_of,
    unreadable_item,
    version_of,
)
from prefect_lemlist.pipeline.ledger.storage import LedgerStorage
from prefect_lemlist.settings import lemlist_settings

LEDGER_DIR = "lemlist-ledger"
DEFAULT_LEDGER_DAYS = 30
ANSWER_TTL = timedelta(hours=24)


def account_key(team_id: str) -> str:
    """The ledger namespace of a lemlist team: what identifies "the same account".

    It is the team's id (`GET /team`), the same for every API key of the team and whatever base
    URL reaches it (a proxy, lemlist directly): a rotated key finds what the old one started. The
    key itself is never part of it.
    """
    return hashlib.sha256(f"lemlist-team\0{team_id}".encode()).hexdigest()[:16]


class Ledger:
    """The records of one lemlist team and one set of workflows.

    Args:
        storage: where the records live (`default_storage()` in the flows).
        account: `account_key(team_id)`.
        workflows: the requested workflows' label (`find_email+find_phone`): records of other
            workflow sets are other work.
        expiration_days: how long a started enrichment is remembered (after that, lemlist's own
            409 `ALREADY_ENRICHED` is the only guard on the lead endpoint).
    """

    def __init__(
        self,
        storage: LedgerStorage,
        account: str,
        workflows: str,
        expiration_days: float = DEFAULT_LEDGER_DAYS,
    ) -> None:
        self.storage = storage
        self.account = account
        self.workflows = workflows
        self.expiration = timedelta(days=expiration_days)
        self.claim_hold = timedelta(seconds=lemlist_settings().claim_hold_seconds)
        self._chunk_of: dict[str, str] = {}  # contact key -> its chunk record's name

    def __repr__(self) -> str:
        return f"Ledger({self.storage!r}, account={self.account!r}, workflows={self.workflows!r})"

    def lead_record(self, lead_id: str) -> str:
        """The name of a lead's record."""
        return f"{LEDGER_DIR}/{self.account}/leads/{self.workflows}/{lead_id}.json"

    def _chunk_dir(self) -> str:
        return f"{LEDGER_DIR}/{self.account}/contacts/{self.workflows}"

    def _ttl(self, state: LedgerState) -> timedelta:
        if state is LedgerState.ANSWERED:
            return min(ANSWER_TTL, self.expiration)
        return self.expiration

    # ------------------------------------------------------------------ recall

    async def recall_leads(self, lead_ids: Iterable[str]) -> dict[str, Recall]:
        """What earlier runs did for these (validated) lead ids; leads without a record are
        left out (an expired record is recalled `expired`, with its version)."""
        names = {self.lead_record(lead_id): lead_id for lead_id in lead_ids}
        found = await self.storage.read_many(list(names))
        recalls = {}
        for name, data in found.items():
            lead_id = names[name]
            record = decode(data)
            item = record.items.get(lead_id) or unreadable_item()
            version = version_of(data, record, self.claim_hold)
            ttl = self._ttl(item.state)
            recalls[lead_id] = recall_of(lead_id, name, item, version, ttl, self.claim_hold)
        return recalls

    async def recall_contacts(self, keys: Iterable[str]) -> dict[str, Recall]:
        """What earlier runs did for these contact fingerprints (reads every chunk record of
        this team and workflow set once)."""
        wanted = set(keys)
        names = await self.storage.list(self._chunk_dir())
        recalls: dict[str, Recall] = {}
        for name, data in (await self.storage.read_many(names)).items():
            record = decode(data)
            version = version_of(data, record, self.claim_hold)
            for key, item in record.items.items():
                if key not in wanted:
                    continue
                ttl = self._ttl(item.state)
                recall = recall_of(key, name, item, version, ttl, self.claim_hold)
                old = recalls.get(key)
                if old is None or recall.rank() > old.rank():
                    recalls[key] = recall
                    self._chunk_of[key] = name
        return recalls

    # ------------------------------------------------------------------ claims

    def claim_lead(
        self, lead_id: str, *, replace: bool = False, recalled: Recall | None = None
    ) -> LeadClaim:
        """A claim on starting one lead's enrichment (use with `async with`).

        Args:
            lead_id: a validated lead id.
            replace: overwrite any record (a forced start).
            recalled: what the run's recall read for this lead (None: no record was read).
                Without `replace` the claim is exclusive: a lead without a record is created
                once, and the record version `recalled` names (an interrupted start, an
                expired answer) is taken over by one run only.
        """
        name = self.lead_record(lead_id)
        version = recalled.version if recalled is not None and recalled.record == name else None
        return LeadClaim(self.storage, name, lead_id, replace, version)

    def claim_chunk(
        self,
        keys: list[str],
        *,
        replace: bool = False,
        recalled: Mapping[str, Recall] | None = None,
    ) -> ChunkClaim:
        """A claim on one bulk request starting the enrichments of `keys` (use `async with`).

        The record's name comes from the keys, so two runs of the same file claim the same
        record and only one of them sends it; a record of that name the recall read (expired,
        or dead) is taken over through the version it read.

        Args:
            keys: the people's fingerprints.
            replace: a forced chunk (new work: a record of its own).
            recalled: the run's recall of these people.
        """
        digest = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:24]
        name = f"{self._chunk_dir()}/chunk-{digest}.json"
        if replace:  # a forced chunk is new work: its own record
            name = f"{self._chunk_dir()}/chunk-{digest}-{uuid.uuid4().hex[:8]}.json"
        versions = (r.version for r in (recalled or {}).values() if r.record == name)
        version = next((v for v in versions if v is not None), None)
        for key in keys:
            self._chunk_of[key] = name
        return ChunkClaim(self.storage, name, keys, replace, version)

    # ------------------------------------------------------------------ results

    async def record_outcomes(self, outcomes: Mapping[str, dict[str, Any]]) -> None:
        """Remember final results (one write per lead; one per chunk record for contacts).

        Args:
            outcomes: item key -> the result to report on later runs.
        """
        by_record: dict[str, dict[str, dict[str, Any]]] = {}
        for key, outcome in outcomes.items():
            name = self._chunk_of.get(key) or self.lead_record(key)
            by_record.setdefault(name, {})[key] = outcome
        found = await self.storage.read_many(list(by_record))
        for name, updates in by_record.items():
            record = decode(found[name]) if name in found else Record()
            for key, outcome in updates.items():
                item = record.items.get(key)
                if item is None or item.state is not LedgerState.STARTED:
                    continue  # only started enrichments have a result worth keeping
                record.items[key] = item.model_copy(
                    update={"state": LedgerState.COLLECTED, "outcome": outcome}
                )
            await self.storage.replace(name, encode(record))

    async def forget(self, keys: Iterable[str]) -> None:
        """Drop the records of `keys` (enrichments lemlist ended without charge): a later run
        starts them again."""
        by_record: dict[str, list[str]] = {}
        for key in keys:
            name = self._chunk_of.get(key) or self.lead_record(key)
            by_record.setdefault(name, []).append(key)
        found = await self.storage.read_many(list(by_record))
        for name, dropped in by_record.items():
            record = decode(found[name]) if name in found else Record()
            for key in dropped:
                record.items.pop(key, None)
            if record.items:
                await self.storage.replace(name, encode(record))
            else:
                await self.storage.delete(name)
