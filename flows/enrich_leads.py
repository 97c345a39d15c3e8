"""Deployment entrypoint and runnable example of the `enrich-leads` flow.

Run from a checkout:  python -m flows.enrich_leads --help
                      (the same as `prefect-lemlist enrich-leads`)
Deploy:               prefect.yaml (entrypoint flows/enrich_leads.py:enrich_leads)
"""

from __future__ import annotations

import sys

from prefect_lemlist.flows import enrich_leads

__all__ = ["enrich_leads"]

if __name__ == "__main__":
    from prefect_lemlist.cli import main

    sys.exit(main(["enrich-leads", *sys.argv[1:]]))
