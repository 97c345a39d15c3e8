"""Narrow unit tests of the collector's adaptive first-poll time (no HTTP involved)."""

from __future__ import annotations

import random

from prefect_lemlist.pipeline.collect import ResultCollector


class NoClient:
    """The collector is never run here, so it never polls."""


def test_a_cohort_of_misses_does_not_compound():
    """2,000 enrichments started within seconds, all first-polled with the same 10 s estimate:
    their misses move the estimate to at most 1.5 x 10 s, not to 10 x 1.05 ** 2000."""
    collector = ResultCollector(NoClient(), first_poll_seconds=10.0)
    for n in range(2000):
        collector.add(f"lea_{n}", f"enr_{n}", started_at=float(n) / 200)
    items = list(collector._pending.values())
    for item in items:
        collector._learn_first_poll(item, finished=False)
    assert 10.0 * 1.05 < collector.stats.first_poll_delay <= 15.0 + 1e-9
    assert collector.stats.first_poll_misses == 2000
    for item in items:  # and a cohort of hits cannot collapse it either
        collector._learn_first_poll(item, finished=True)
    assert collector.stats.first_poll_delay >= 10.0 / 1.5 - 1e-9


def test_estimate_settles_near_the_91st_percentile_of_durations():
    """Enrichments of 5-30 s, polled in successive cohorts: the estimate converges where about
    9 % of first polls miss."""
    rng = random.Random(3)
    collector = ResultCollector(NoClient(), first_poll_seconds=10.0)
    misses = total = 0
    for cohort in range(300):
        for n in range(10):
            collector.add(f"lea_{cohort}_{n}", f"enr_{cohort}_{n}", started_at=0.0)
        for item in list(collector._pending.values()):
            finished = rng.uniform(5, 30) <= item.first_delay
            collector._learn_first_poll(item, finished=finished)
            collector._pending.pop(item.enrichment_id)
            if cohort >= 200:
                total += 1
                misses += not finished
    assert 24.0 <= collector.stats.first_poll_delay <= 30.0
    assert 0.03 <= misses / total <= 0.2
