"""Packaging: what `pip install prefect-lemlist` installs, the console script, the version,
and that importing the package does nothing but import."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import prefect_lemlist

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_installs_the_package_only_and_the_console_script(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("prefect_lemlist-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names}
    # the checkout's deployment entrypoints (`flows/`) are not a package of the wheel: no
    # top-level `flows` to collide with a user's own
    assert not any(name.startswith("flows/") for name in names)
    assert {t for t in top_level if not t.endswith((".dist-info", ".data"))} == {"prefect_lemlist"}
    assert "prefect_lemlist/flows/enrich_contacts.py" in names
    assert "prefect_lemlist/py.typed" in names
    metadata = next(n for n in names if n.endswith("entry_points.txt"))
    entry_points = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "prefect-lemlist = prefect_lemlist.cli:run" in entry_points
    assert "prefect_lemlist = prefect_lemlist" in entry_points  # prefect.collections
    version = re.search(r"prefect_lemlist-([^-]+)-", wheel.name).group(1)
    assert version == prefect_lemlist.__version__


def test_the_version_is_written_once():
    hits = [
        path
        for path in [ROOT / "pyproject.toml", *ROOT.joinpath("prefect_lemlist").rglob("*.py")]
        if re.search(r'(^|\n)\s*(version|__version__)\s*=\s*"\d', path.read_text())
    ]
    assert hits == [ROOT / "prefect_lemlist" / "_version.py"]


def test_the_console_script_lists_every_command():
    script = Path(sys.executable).parent / "prefect-lemlist"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in (
        "enrich-campaign",
        "enrich-leads",
        "enrich-contacts",
        "save-credentials",
        "global-limit",
        "sandbox",
    ):
        assert command in result.stdout


def test_only_public_prefect_apis():
    pattern = re.compile(r"prefect\._internal|types\._datetime|\._resolve_path")
    offenders = [
        str(path)
        for path in ROOT.joinpath("prefect_lemlist").rglob("*.py")
        if pattern.search(path.read_text())
    ]
    assert offenders == []


def test_importing_the_package_starts_nothing_and_filters_nothing():
    code = (
        "import logging, threading\n"
        "before = {t.name for t in threading.enumerate()}\n"
        "import prefect_lemlist, prefect_lemlist.flows, prefect_lemlist.cli\n"
        "after = {t.name for t in threading.enumerate()}\n"
        "print(sorted(after - before), logging.getLogger('httpx').filters)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    new_threads, filters = result.stdout.strip().rsplit("] ", 1)
    assert "lemlist" not in new_threads  # no lease keeper, no server
    assert filters == "[]"  # the httpx log filter is installed by the first client, not on import


def test_the_sandbox_and_the_package_root_do_not_import_prefect():
    code = (
        "import sys, prefect_lemlist, prefect_lemlist.sandbox; "
        "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_every_public_exception_is_importable_from_the_package_root():
    import prefect_lemlist
    from prefect_lemlist.api import exceptions

    public = {
        name
        for name, value in vars(exceptions).items()
        if isinstance(value, type) and issubclass(value, Exception) and not name.startswith("_")
    }
    assert public <= set(prefect_lemlist.__all__)
    assert all(getattr(prefect_lemlist, name) is getattr(exceptions, name) for name in public)
