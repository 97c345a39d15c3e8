"""Deployment entrypoint and runnable example of the `enrich-contacts` flow.

Run from a checkout:  python -m flows.enrich_contacts --help
                      (the same as `prefect-lemlist enrich-contacts`)
Deploy:               prefect.yaml (entrypoint flows/enrich_contacts.py:enrich_contacts)
"""

from __future__ import annotations

import sys

from prefect_lemlist.flows import enrich_contacts

__all__ = ["enrich_contacts"]

if __name__ == "__main__":
    from prefect_lemlist.cli import main

    sys.exit(main(["enrich-contacts", *sys.argv[1:]]))
