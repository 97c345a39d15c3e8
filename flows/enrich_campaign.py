"""Deployment entrypoint and runnable example of the `enrich-campaign` flow.

Run from a checkout:  python -m flows.enrich_campaign --help
                      (the same as `prefect-lemlist enrich-campaign`)
Deploy:               prefect.yaml (entrypoint flows/enrich_campaign.py:enrich_campaign)
"""

from __future__ import annotations

import sys

from prefect_lemlist.flows import enrich_campaign

__all__ = ["enrich_campaign"]

if __name__ == "__main__":
    from prefect_lemlist.cli import main

    sys.exit(main(["enrich-campaign", *sys.argv[1:]]))
