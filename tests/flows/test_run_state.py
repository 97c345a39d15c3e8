"""One run state per execution: a run object executes twice, each execution reports only what it
did; one stop signal that every stage reads, with its reason."""

from __future__ import annotations

from prefect import flow

from prefect_lemlist import EnrichmentOptions, LemlistCredentials
from prefect_lemlist.api.exceptions import LemlistAuthError, LemlistUnreachableError
from prefect_lemlist.pipeline.run import EnrichmentRun, LeadStarter
from prefect_lemlist.pipeline.selection import lead_ids_worklist
from prefect_lemlist.pipeline.stop import NOT_STARTED_BECAUSE, StopReason, StopSignal
from prefect_lemlist.sandbox import LeadKind, SandboxConfig, run_sandbox


async def test_a_run_executes_twice_and_each_execution_reports_its_own_work(tmp_path):
    config = SandboxConfig(leads=30, seed=12, enrichment_seconds=(0.2, 0.4))
    with run_sandbox(config) as sandbox:
        leads = [lead.lead_id for lead in sandbox.leads if lead.kind == LeadKind.FINDABLE]
        first, second = leads[:3], leads[3:8]
        credentials = LemlistCredentials(api_key=sandbox.api_key, base_url=sandbox.base_url)
        options = EnrichmentOptions(first_poll_seconds=0.3, output_dir=str(tmp_path))

        @flow
        async def twice():
            async with EnrichmentRun.open(credentials, options) as run:
                one = await run.execute(lead_ids_worklist(first), LeadStarter(options))
                two = await run.execute(lead_ids_worklist(second), LeadStarter(options))
                return one, two

        one, two = await twice()
        stats = sandbox.stats()
    assert (one.started, two.started) == (3, 5)
    nonzero = [{status: n for status, n in run.counts.items() if n} for run in (one, two)]
    assert nonzero == [{"done": 3}, {"done": 5}]
    assert one.csv_path != two.csv_path
    assert sum(stats.enrichments_started_by_lead.values()) == 8
    # each execution counts its own requests (the run's one GET /team in the first)
    assert one.requests_made + two.requests_made == stats.total_requests
    assert two.requests_made < stats.total_requests - 3  # not the first's starts too


def test_the_stop_signal_keeps_the_first_reason_and_tells_every_listener_once():
    stop, heard = StopSignal(), []
    stop.subscribe(lambda signal: heard.append(signal.reason))
    unreachable = LemlistUnreachableError("could not connect")
    assert stop.stop_for(unreachable)
    assert stop.stop_for(LemlistAuthError("401", status_code=401))  # it stops too...
    assert stop.reason is StopReason.UNREACHABLE  # ...but the first reason is kept
    stop.subscribe(lambda signal: heard.append(("late", signal.reason)))
    assert heard == [StopReason.UNREACHABLE, ("late", StopReason.UNREACHABLE)]
    assert stop.error is unreachable and not stop.cancelled
    assert stop.not_started == NOT_STARTED_BECAUSE[StopReason.UNREACHABLE]
    stop.cancel()  # a Ctrl-C after the stop still keeps anything more from being sent
    assert stop.cancelled and stop.reason is StopReason.UNREACHABLE


async def test_the_stop_signal_a_start_task_sets_is_the_runs_own():
    """Prefect rebuilds dataclass task parameters it visits: the signal must stay one object."""
    from prefect import task

    from prefect_lemlist.pipeline.start import StartContext

    @task
    async def stop_inside(context: StartContext) -> None:
        context.stop.stop_for(LemlistAuthError("401", status_code=401))

    stop = StopSignal()

    @flow
    async def run():
        await stop_inside(StartContext(None, None, None, stop=stop))  # type: ignore[arg-type]

    await run()
    assert stop.reason is StopReason.KEY_REFUSED
