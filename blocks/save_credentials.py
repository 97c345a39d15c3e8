"""Save a `LemlistCredentials` block from the `LEMLIST_API_KEY` environment variable.

    LEMLIST_API_KEY=... python blocks/save_credentials.py [NAME] [--base-url URL]

The key is read from the environment only (never from the command line, where it would land in
the shell history and the process list) and is never printed.
"""

from __future__ import annotations

import argparse
import os
import sys

from prefect_lemlist import LemlistCredentials


def main(argv: list[str] | None = None) -> int:
    """Save the block; returns the exit code."""
    parser = argparse.ArgumentParser(description="Save a LemlistCredentials block.")
    parser.add_argument("name", nargs="?", default="lemlist", help="block name (default: lemlist)")
    parser.add_argument("--base-url", default=None, help="override the API base URL")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing block")
    parser.add_argument(
        "--global-rate-limit",
        default=None,
        help="name of a Prefect global concurrency limit shared by all processes using this key",
    )
    args = parser.parse_args(argv)
    api_key = os.environ.get("LEMLIST_API_KEY", "").strip()
    if not api_key:
        print("error: set LEMLIST_API_KEY in the environment first", file=sys.stderr)
        return 2
    fields = {"api_key": api_key}
    if args.base_url:
        fields["base_url"] = args.base_url
    if args.global_rate_limit:
        fields["global_rate_limit"] = args.global_rate_limit
    try:
        block = LemlistCredentials(**fields)
        block.save(args.name, overwrite=args.overwrite, _sync=True)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Saved LemlistCredentials block {args.name!r} (key fingerprint {block.fingerprint()}).")
    print(f'Load it with: LemlistCredentials.load("{args.name}")')
    return 0


if __name__ == "__main__":
    sys.exit(main())
