"""The flow commands' option flags, generated from the options models' fields.

Each field of `EnrichmentOptions` / `ContactOptions` (and of `WebhookSettings`, as `--webhook-…`)
becomes one flag: its help is the field's description with its default, choices (a `Literal`)
and bounds (`ge`, `gt`, `le`, `lt`); the value goes back to the field by its path. Only the few
flags named differently from their field are listed (`FLAG_ALIASES`).
"""

from __future__ import annotations

import argparse
import types
from collections.abc import Iterator
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

FLAG_ALIASES = {
    "collect_timeout_seconds": "collect-timeout",
    "formats": "format",
    "webhook.confirm": "confirm-webhooks",
    "refresh_after_days": "refresh-after",
    "destination.target": "to",
    "destination.table": "table",
    "destination.key": "key",
    "destination.overwrite": "overwrite",
    "destination.batch_size": "db-batch-size",
}
"""The few flags whose name is not their field's (the field's path, dashed: `--webhook-port`)."""
OPTION_DEST = "option:"  # namespace attributes of the options' flags: `option:webhook.port`
_BOUNDS = (("ge", "at least"), ("gt", "more than"), ("le", "at most"), ("lt", "less than"))


class OptionFlag:
    """One field of an options model as a command-line flag.

    Args:
        path: the field's path in the model (`limit`, `webhook.port`).
        field: the pydantic field (its description, default, bounds and type).
    """

    def __init__(self, path: str, field: FieldInfo) -> None:
        self.path = path
        self.field = field
        self.kind = _without_none(field.annotation)
        self.flag = flag_name(path)

    def add_to(self, parser: Any) -> None:
        """Declare the flag (unset, it is None and the field keeps its default)."""
        parser.add_argument(
            self.flag, dest=OPTION_DEST + self.path, default=None, help=self.help(), **self._kind()
        )

    def help(self) -> str:
        """The field's description, then its default and bounds."""
        text = (self.field.description or self.path.replace("_", " ")).rstrip(".")
        facts = [
            f"{word} {_shown(bound)}"
            for meta in self.field.metadata
            for attribute, word in _BOUNDS
            if (bound := getattr(meta, attribute, None)) is not None
        ]
        default = self.field.get_default(call_default_factory=True)
        if default is not None:
            facts.insert(0, f"default: {_shown(default)}")
        if get_origin(self.kind) is list:
            facts.append("repeatable")
        return (f"{text} ({'; '.join(facts)})" if facts else text).replace("%", "%%")

    def _kind(self) -> dict[str, Any]:
        if self.kind is bool:
            return {"action": argparse.BooleanOptionalAction}
        if get_origin(self.kind) is list:
            return {"action": "append", **_value_kind(get_args(self.kind)[0], self.flag)}
        kind = _value_kind(self.kind, self.flag)
        extra = self.field.json_schema_extra
        if isinstance(extra, dict) and "metavar" in kind and isinstance(extra.get("metavar"), str):
            kind["metavar"] = extra["metavar"]  # a field's own placeholder: --to URL|BLOCK
        return kind


def option_flags(model: type[BaseModel], prefix: str = "") -> Iterator[OptionFlag]:
    """The flags of an options model's fields, nested models' fields as `--<field>-<name>`."""
    for name, field in model.model_fields.items():
        kind = _without_none(field.annotation)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from option_flags(kind, f"{prefix}{name}.")
        else:
            yield OptionFlag(f"{prefix}{name}", field)


def _without_none(annotation: Any) -> Any:
    """`X` for `X | None`."""
    if get_origin(annotation) in (Union, types.UnionType):
        kinds = [kind for kind in get_args(annotation) if kind is not type(None)]
        return kinds[0] if len(kinds) == 1 else annotation
    return annotation


def _value_kind(kind: Any, flag: str) -> dict[str, Any]:
    if get_origin(kind) is Literal:
        return {"choices": list(get_args(kind))}
    metavar = flag.rsplit("-", 1)[-1].upper()  # --webhook-port PORT, --output-dir DIR
    return {"type": kind if kind in (int, float) else str, "metavar": metavar}


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def flag_name(path: str) -> str:
    """The flag of an options field path (`collect_timeout_seconds` -> `--collect-timeout`)."""
    return "--" + FLAG_ALIASES.get(path, path.replace(".", "-").replace("_", "-"))
