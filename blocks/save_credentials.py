"""Save a `LemlistCredentials` block from `LEMLIST_API_KEY` (and `LEMLIST_BASE_URL`).

    LEMLIST_API_KEY=... python blocks/save_credentials.py [NAME] [--base-url URL] [--overwrite]

The same as `prefect-lemlist save-credentials` (see its `--help`): the key is read from the
environment only, checked with `GET /team/credits` before it is saved, and never printed.
"""

from __future__ import annotations

import sys

from prefect_lemlist.cli import main

if __name__ == "__main__":
    sys.exit(main(["save-credentials", *sys.argv[1:]]))
