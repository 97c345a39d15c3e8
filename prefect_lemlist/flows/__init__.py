"""The enrichment flows: campaign leads, lead ids or emails, and people who are not leads."""

from prefect_lemlist.flows.enrich_campaign import enrich_campaign
from prefect_lemlist.flows.enrich_contacts import enrich_contacts
from prefect_lemlist.flows.enrich_leads import enrich_leads

__all__ = ["enrich_campaign", "enrich_contacts", "enrich_leads"]
