"""The examples people copy: every Python snippet of the README and every `Examples:` section of
the flows' and the client's docstrings compiles as pasted (no top-level `await`)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from prefect_lemlist.api.client import LemlistClient
from prefect_lemlist.flows import enrich_campaign, enrich_contacts, enrich_leads

ROOT = Path(__file__).resolve().parents[2]
FENCED = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _snippets(text: str) -> list[str]:
    return [inspect.cleandoc(block) for block in FENCED.findall(text)]


def test_every_readme_python_snippet_runs_as_pasted():
    snippets = _snippets((ROOT / "README.md").read_text(encoding="utf-8"))
    assert snippets
    for snippet in snippets:
        compile(snippet, "README.md", "exec")  # a top-level `await` is a SyntaxError here


def test_the_readme_says_how_to_reach_the_virtualenv():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "source .venv/bin/activate" in text and ".venv/bin/prefect-lemlist" in text


@pytest.mark.parametrize(
    "documented",
    [enrich_campaign.fn, enrich_leads.fn, enrich_contacts.fn, LemlistClient],
    ids=lambda thing: thing.__name__,
)
def test_the_flows_and_the_client_have_examples(documented):
    doc = inspect.getdoc(documented) or ""
    assert "\nExamples:\n" in doc, documented
    examples = doc.split("\nExamples:\n", 1)[1]
    snippets = [inspect.cleandoc(block) for block in FENCED.findall(examples)]
    assert snippets, documented
    namespace_setup = "import asyncio\n"  # later snippets continue the first one
    for snippet in snippets:
        compile(namespace_setup + snippet, documented.__name__, "exec")
