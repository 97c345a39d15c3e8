"""Prefect's own block standards, and registration through the `prefect.collections` entry point."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import entry_points
from urllib.parse import urlsplit

import pytest
from prefect.blocks.core import Block
from prefect.settings import PREFECT_API_URL
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import HttpUrl, TypeAdapter

import prefect_lemlist
from prefect_lemlist import LemlistCredentials


@pytest.mark.parametrize("block", [LemlistCredentials])
class TestAllBlocksAdhereToStandards(BlockStandardTestSuite):
    """Runs Prefect's standard block checks (docstring, field descriptions, code example).

    The suite's logo test downloads `_logo_url` and opens it with Pillow; this machine has no
    internet, so Pillow is deliberately not a test dependency and that single check is skipped by
    the suite itself (it is not counted as passing here). Pillow opens raster images only, so it
    could not pass on our SVG logo anyway, which the Prefect UI shows in an `<img>` as it shows
    a PNG: see `test_logo_url_is_https_an_image_and_pinned_to_a_commit` below.
    """

    @pytest.fixture
    def block(self, block):
        return block


def test_logo_url_is_https_an_image_and_pinned_to_a_commit():
    """The logo is a file of a public repository at one commit (a branch's file can move or go),
    served by jsDelivr's GitHub CDN (`/gh/<owner>/<repo>@<commit>/<path>`, with an image content
    type), and an image the UI's `<img>` shows (SVG or PNG)."""
    url = urlsplit(str(LemlistCredentials._logo_url))
    assert url.scheme == "https"
    assert url.netloc == "cdn.jsdelivr.net"
    gh, owner, repo_at_commit, *path = url.path.lstrip("/").split("/")
    repo, _, commit = repo_at_commit.partition("@")
    assert gh == "gh" and owner and repo and path, url
    assert re.fullmatch(r"[0-9a-f]{40}", commit), f"not pinned to a commit: {commit}"
    assert path[-1].endswith((".svg", ".png")), url
    assert not url.query and not url.fragment, url
    # Prefect's block-type schema takes it as an HttpUrl
    assert str(TypeAdapter(HttpUrl).validate_python(str(url.geturl()))) == url.geturl()


def test_block_is_exported_and_registered_through_the_entry_point():
    [entry] = [
        ep for ep in entry_points(group="prefect.collections") if ep.name == "prefect_lemlist"
    ]
    assert entry.load() is LemlistCredentials  # loading it registers the block type
    assert prefect_lemlist.LemlistCredentials is LemlistCredentials
    assert issubclass(LemlistCredentials, Block)
    assert LemlistCredentials.get_block_type_slug() == "lemlist-credentials"


def test_prefect_block_register_module_works():
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "prefect_lemlist"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lemlist Credentials" in result.stdout


async def test_saved_block_round_trips_and_stays_masked():
    block = LemlistCredentials(api_key="secret-key-123", base_url="http://127.0.0.1:9/api/")
    await block.save("block-standards-test", overwrite=True)
    loaded = await LemlistCredentials.aload("block-standards-test")
    assert loaded.api_key.get_secret_value() == "secret-key-123"
    assert loaded.base_url == "http://127.0.0.1:9/api"
    assert "secret-key-123" not in repr(loaded)
    assert "secret-key-123" not in str(loaded.model_dump())
    assert loaded.fingerprint() == block.fingerprint()


def test_bad_base_url_is_refused_clearly():
    with pytest.raises(ValueError, match="base_url must be an absolute http"):
        LemlistCredentials(api_key="k", base_url="api.lemlist.com")
