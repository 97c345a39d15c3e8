"""Settings in one place: `LEMLIST_*` environment variables read by `LemlistSettings` only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from prefect_lemlist.settings import LemlistSettings, lemlist_settings

PACKAGE = Path(__file__).resolve().parents[2] / "prefect_lemlist"


def test_the_environment_is_read_through_the_settings(monkeypatch):
    monkeypatch.setenv("LEMLIST_API_KEY", "k-123")
    monkeypatch.setenv("LEMLIST_LEADS_IN_FLIGHT", "7")
    monkeypatch.setenv("LEMLIST_CLAIM_HOLD_SECONDS", "60")
    settings = lemlist_settings()
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "k-123"
    assert "k-123" not in repr(settings)
    assert (settings.leads_in_flight, settings.claim_hold_seconds) == (7, 60.0)
    monkeypatch.setenv("LEMLIST_LEADS_IN_FLIGHT", "0")
    with pytest.raises(ValidationError):
        LemlistSettings()


def _reads_lemlist_variable(node: ast.AST) -> bool:
    """`os.environ[...]`, `os.environ.get(...)` or `os.getenv(...)` of a `LEMLIST_` name."""
    if isinstance(node, ast.Subscript):
        target, key = node.value, node.slice
    elif isinstance(node, ast.Call) and node.args:
        target, key = node.func, node.args[0]
    else:
        return False
    source = ast.unparse(target)
    if not source.endswith(("environ", "environ.get", "getenv")):
        return False
    return isinstance(key, ast.Constant) and str(key.value).startswith("LEMLIST_")


def test_no_module_reads_a_lemlist_variable_from_the_environment_itself():
    readers = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in PACKAGE.rglob("*.py")
        if "sandbox" not in path.parts and path.name != "settings.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if _reads_lemlist_variable(node)
    ]
    assert readers == []
    # the check sees a read when there is one (docstring examples are text, not code)
    assert _reads_lemlist_variable(ast.parse('os.environ.get("LEMLIST_API_KEY")').body[0].value)
