"""Save and load the sandbox's state file: the format header, atomic writes, shared helpers.

Each component serialises itself (`to_state()` / `from_state()`); this module only knows the
file's envelope (format, version, the seed and lead count it was written for) and how to
write it atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

STATE_FILE_FORMAT = "lemlist-sandbox-state"
"""The `format` field of every state file."""

STATE_FILE_VERSION = 2
"""Layout version (2: one section per component; version 1 files are upgraded on load)."""

_V1_SECTIONS: dict[str, tuple[str, ...]] = {
    "directory": (
        "contacts",
        "lead_contacts",
        "person_leads",
        "people_campaigns",
        "contact_by_person",
        "lead_updated",
    ),
    "skips": ("running", "not_found", "linkedin_done"),
    "scheduler": ("due_seq",),
}
"""Version 2 sections made of version 1's flat fields."""


class Persistable(Protocol):
    """A component that saves and restores its own part of the state file."""

    def to_state(self) -> Any:
        """The component's mutable part as JSON-ready data."""

    def from_state(self, data: Any) -> None:
        """Replace the component's mutable part by saved data."""


@dataclass(frozen=True)
class TimeBase:
    """A pair of clock readings, to store monotonic times as wall-clock epoch seconds.

    Attributes:
        mono: `time.monotonic()` at the reading.
        wall: `time.time()` at the reading.
    """

    mono: float
    wall: float

    @classmethod
    def now(cls) -> TimeBase:
        """Read both clocks now."""
        return cls(time.monotonic(), time.time())

    def to_wall(self, monotonic: float) -> float:
        """Convert a monotonic time to epoch seconds."""
        return self.wall + (monotonic - self.mono)

    def to_mono(self, wall: float) -> float:
        """Convert epoch seconds to a monotonic time."""
        return self.mono + (float(wall) - self.wall)


def rng_state(rng: random.Random) -> list[Any]:
    """A `random.Random`'s position as JSON-ready data."""
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def set_rng_state(rng: random.Random, state: list[Any]) -> None:
    """Restore a `random.Random`'s position saved by `rng_state`."""
    version, internal, gauss = state
    rng.setstate((version, tuple(internal), gauss))


def envelope(seed: int, leads: int, sections: dict[str, Any]) -> dict[str, Any]:
    """The whole state file content: the header, then one section per component.

    Args:
        seed: the sandbox's seed.
        leads: the seeded campaign's size.
        sections: component name → its `to_state()`.

    Returns:
        A JSON-ready dict.
    """
    return {
        "format": STATE_FILE_FORMAT,
        "version": STATE_FILE_VERSION,
        "saved_at": time.time(),
        "seed": seed,
        "leads": leads,
        **sections,
    }


def write_state_file(target: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write the state file atomically (temp file, fsync, `os.replace`).

    Args:
        target: where to write.
        data: the content (see `envelope`).

    Returns:
        The written path.
    """
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return path


def read_state_file(path: Path, seed: int, leads: int) -> dict[str, Any]:
    """Read and check a state file written for this seed and lead count.

    Args:
        path: the state file.
        seed: the sandbox's seed.
        leads: the seeded campaign's size.

    Returns:
        The file's content.

    Raises:
        ValueError: unreadable, not a state file, another version, or another seed/size.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the sandbox state file {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != STATE_FILE_FORMAT:
        raise ValueError(f"{path} is not a lemlist sandbox state file")
    if data.get("version") == 1:
        data = upgrade_v1(data)
    if data.get("version") != STATE_FILE_VERSION:
        raise ValueError(f"{path}: unsupported state file version {data.get('version')!r}")
    if (data["seed"], data["leads"]) != (seed, leads):
        raise ValueError(
            f"{path} was saved by a sandbox with seed={data['seed']} leads={data['leads']}, "
            f"not seed={seed} leads={leads}"
        )
    return data


def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Turn a version 1 state file (one flat object) into the version 2 layout.

    Args:
        data: a version 1 file's content.

    Returns:
        The same world in the version 2 layout.
    """
    moved = {field for fields in _V1_SECTIONS.values() for field in fields}
    upgraded = {key: value for key, value in data.items() if key not in moved}
    for section, fields in _V1_SECTIONS.items():
        upgraded[section] = {field: data[field] for field in fields}
    upgraded["version"] = STATE_FILE_VERSION
    return upgraded


__all__ = [
    "STATE_FILE_FORMAT",
    "STATE_FILE_VERSION",
    "Persistable",
    "TimeBase",
    "envelope",
    "read_state_file",
    "rng_state",
    "set_rng_state",
    "upgrade_v1",
    "write_state_file",
]
