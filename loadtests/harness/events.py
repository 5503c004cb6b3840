"""Locust event wiring: options, the embedded server, the run directory's lifecycle, and
distributed record collection. Imported by ``loadtests.harness.users``, so every scenario has
it. Each listener finds this process's run state on the ``Environment`` it is handed.

Roles: a *local* process (plain ``locust``) both sends requests and writes the run
directory; in distributed mode *workers* send requests and ship records, and the *master*
writes the run directory.
"""

from __future__ import annotations

import gc
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests.bundled_server import ServerProcess
from loadtests.capacity.options import STEP_ENV, SearchOptions, bundled_by_search
from loadtests.capacity.search import CapacitySearch
from loadtests.client.clock import now
from loadtests.harness.distributed import (
    DONE,
    PLAN,
    RECORDS,
    MasterCollector,
    cache_locust_defaults,
)
from loadtests.harness.failing_target import EXIT_TARGET_DOWN
from loadtests.harness.load_shape import ConfiguredShape
from loadtests.harness.options import LoadOptions, add_options
from loadtests.harness.rundir import RunSession, check_exact_run_dir, default_run_dir, fresh_dir
from loadtests.harness.state import Plan, RunState, attach_run_state, find_run_state, run_state
from loadtests.harness.terminal import format_summary, generator_warnings, written_counts
from loadtests.workloads.datasets import Dataset, load_dataset
from reports import RunSummary, summarize_run, write_capacity_report, write_report
from sla.errors import EXIT_USAGE, SlabenchError, error_line, report_error
from sla.files.run import load_run
from sla.files.verdict import write_verdict
from sla.reading import Reading, read_run
from sla.spec import Spec, load_spec
from sla.table import format_table
from sla.verdict import Verdict, evaluate, exit_code

log = logging.getLogger("slabench")


def _fail(exc: SlabenchError) -> None:
    sys.stderr.flush()
    sys.exit(report_error(exc))


@events.init_command_line_parser.add_listener
def _options(parser: Any, **_: Any) -> None:
    add_options(parser)


@events.init.add_listener
def _init(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    assert runner is not None, "Locust creates the runner before firing init"
    is_worker = isinstance(runner, WorkerRunner)
    try:
        state, search = _build_state(environment, is_worker)
    except SlabenchError as exc:
        _fail(exc)
        return
    if not state.options.tls.verify and not is_worker:
        print(
            "slabench: WARNING: --insecure: the target's TLS certificate and host name are "
            "not checked; the API key goes to whoever answers",
            flush=True,
        )
    if search is not None:
        assert state.spec is not None, "SearchOptions requires --sla"
        _capacity_search(environment, state, search, state.spec)
    if state.options.shape is not None:
        environment.shape_class = ConfiguredShape(state.options.shape)
        environment.shape_class.runner = runner
    if isinstance(runner, MasterRunner):
        state.collector = _collect_from_workers(runner)
    if isinstance(runner, WorkerRunner):
        _listen_to_master(environment, runner)
    # Until Locust starts the test the gevent loop has not run, so its cached clock still
    # reads the moment the hub was created (before imports, the dataset, the embedded
    # server...): timers started from it, `-t/--run-time` included, would fire that much early.
    gevent.get_hub().loop.update_now()


def _build_state(
    environment: Environment, is_worker: bool
) -> tuple[RunState, SearchOptions | None]:
    """Read the options, the spec and the dataset, start the bundled server when there is no
    --host, and attach the run state to the environment. A user error raises (and stops a
    server started here); the caller turns it into one line."""
    options = LoadOptions.from_namespace(environment.parsed_options)
    if not is_worker:
        check_exact_run_dir(options.run_dir)
    search: SearchOptions | None = None
    if not is_worker and not os.environ.get(STEP_ENV):
        search = SearchOptions.from_namespace(environment.parsed_options)
    # A bad spec is reported before anything starts; only the master judges.
    spec = load_spec(options.sla_path) if options.sla_path and not is_worker else None
    embedded = _start_embedded(options) if not environment.host and not is_worker else None
    try:
        if embedded is not None:
            environment.host = embedded.url
        bundled = embedded is not None or bundled_by_search()
        dataset = _load_dataset(options, bundled=bundled or not environment.host)
        state = RunState(environment, options, dataset, embedded=embedded)
        state.spec = spec
        attach_run_state(environment, state)
        state.validate_user_classes()
    except SlabenchError:
        if embedded is not None:
            embedded.stop()
        raise
    return state, search


def _load_dataset(options: LoadOptions, *, bundled: bool) -> Dataset:
    """The prompts; the bundled server's tokenizer is one character per token."""
    cpt = options.chars_per_token or (1.0 if bundled else 4.0)
    return load_dataset(
        options.dataset,
        input_len=options.input_len,
        output_len=options.output_len,
        seed=options.seed,
        chars_per_token=cpt,
    )


def _collect_from_workers(runner: MasterRunner) -> MasterCollector:
    """On the master: gather the records and the `done` notes the workers send."""
    collector = MasterCollector()

    def on_records(environment: Environment, msg: Any, **_: Any) -> None:
        collector.on_records(msg.node_id, msg.data["rows"])

    def on_done(environment: Environment, msg: Any, **_: Any) -> None:
        collector.on_done(msg.node_id, msg.data)

    runner.register_message(RECORDS, on_records)
    runner.register_message(DONE, on_done)
    return collector


def _listen_to_master(environment: Environment, runner: WorkerRunner) -> None:
    """On a worker: take this worker's share of the load from the master's plan."""

    def on_plan(environment: Environment, msg: Any, **_: Any) -> None:
        run_state(environment).set_plan(Plan(**msg.data))

    runner.register_message(PLAN, on_plan)
    cache_locust_defaults()
    # Added after the runner's own `quitting` listener, which tells the master that this
    # worker quit; `quitting` runs its listeners in reverse, so this one ships every
    # record first. (Ctrl-C in a terminal reaches the workers as well as the master, and
    # a master that hears of its last worker quitting stops listening to the workers.)
    environment.events.quitting.add_listener(_worker_quitting)


def _capacity_search(
    environment: Environment, state: RunState, search: SearchOptions, spec: Spec
) -> None:
    """--capacity-search: run the steps as locusts of their own, then exit (this process
    sends no load itself; with --processes its own workers idle until it quits them)."""
    scenario = _scenario_name(environment)
    run_dir = state.options.run_dir
    sweep = fresh_dir(Path(run_dir)) if run_dir else default_run_dir(f"{scenario}-capacity")
    code = EXIT_USAGE
    try:
        code = CapacitySearch(
            options=search,
            spec=spec,
            target_url=environment.host or "",
            scenario=scenario,
            sweep_dir=sweep,
            argv=sys.argv[1:],
            bundled=state.embedded is not None,
            seed=state.options.seed,
            local_master=isinstance(environment.runner, MasterRunner),
        ).run()
        _write_capacity_html(sweep)
    finally:
        if isinstance(environment.runner, MasterRunner):
            environment.runner.quit()  # tells the idle workers to quit
        if state.embedded is not None:
            state.embedded.stop()
    sys.exit(code)


def _write_capacity_html(sweep: Path) -> None:
    """The capacity report; a failure here is logged and never changes the exit code."""
    try:
        written = write_capacity_report(sweep)
    except (SlabenchError, OSError, ValueError) as exc:
        log.error("slabench: no report.html for %s: %s", sweep, exc)
        return
    print(f"slabench: report {written}", flush=True)


def _start_embedded(options: LoadOptions) -> ServerProcess:
    args = shlex.split(options.server_args)
    print(f"slabench: starting the bundled reference server {' '.join(args)}".rstrip(), flush=True)
    server = ServerProcess(args=args).start()
    print(f"slabench: reference server ready at {server.url} (pid {server.pid})", flush=True)
    return server


@events.test_start.add_listener
def _test_start(environment: Environment, **_: Any) -> None:
    # Everything alive now lives for the whole run: keep the collector from rescanning it,
    # which otherwise pauses every greenlet (and lands on measured latencies) for ~50 ms.
    gc.collect()
    gc.freeze()
    state = run_state(environment)
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        state.start_worker()
        return
    state.session = RunSession(
        options=state.options,
        scenario=_scenario_name(environment),
        target_url=environment.host or "",
        embedded=state.embedded is not None,
        users=_users_profile(environment),
    )
    if runner is not None:  # a failed write ends the run (see _test_stop)
        state.session.on_failure = runner.quit
    print(f"slabench: recording to {state.session.path}", flush=True)
    t0 = now() + 0.5  # workers need a moment to receive the plan and start
    bundled = state.embedded is not None or bundled_by_search()
    if isinstance(runner, MasterRunner):
        assert state.collector is not None
        workers = sorted(c.id for c in runner.clients.all)
        state.workers = set(workers)
        state.collector.attach(state.session.add_rows, state.workers)
        for index, client_id in enumerate(workers):
            plan = {"index": index, "count": len(workers), "t0": t0, "bundled": bundled}
            runner.send_message(PLAN, plan, client_id=client_id)
    else:
        state.set_plan(Plan(index=0, count=1, t0=t0, bundled=bundled))
        state.start_local()


@events.test_stopping.add_listener
def _test_stopping(environment: Environment, **_: Any) -> None:
    state = run_state(environment)
    state.stopping_at = now()
    state.stop_dispatcher()


@events.test_stop.add_listener
def _test_stop(environment: Environment, **_: Any) -> None:
    state = run_state(environment)
    if isinstance(environment.runner, WorkerRunner):
        state.finish_worker()
        return
    session = state.session
    if session is None:
        return
    state.session = None
    generator: dict[str, Any] = {"workers": []}
    runner = environment.runner
    if isinstance(runner, MasterRunner) and state.collector is not None:
        if runner.user_count:
            # Locust's quit() stops the master without telling the workers (it sends them
            # `quit` later): ask them to stop now so that they hand over their records.
            for client_id in state.workers:
                runner.send_message("stop", None, client_id=client_id)
        missing = state.collector.wait_for(
            state.workers, 30.0, gone=lambda: _lost(runner, state.workers)
        )
        state.collector.detach()
        generator["workers"] = list(state.collector.done.values())
        if state.collector.ignored:
            generator["ignored_nodes"] = dict(state.collector.ignored)
        if missing:
            generator["missing_workers"] = sorted(missing)
    else:
        generator["local"] = state.finish_local()
    meta = session.close(
        status="complete",
        ended_at=state.stopping_at or now(),
        generator=generator,
        extra={"dropped": state.dropped_total(generator)},
    )
    if session.failure is not None:
        # Not judged: what was written is readable (load_run), but it is not the run.
        state.exit_code = session.failure.exit_code
        print(error_line(session.failure), file=sys.stderr, flush=True)
        print(written_counts(session.path), flush=True)
        return
    _conclude(session.path, meta, state)
    if session.target_down is not None:
        # Summarised and judged (never a PASS: incomplete), but the exit code says why.
        state.exit_code = EXIT_TARGET_DOWN
        print(error_line(SlabenchError(session.target_down)), file=sys.stderr, flush=True)


def _lost(runner: MasterRunner, workers: set[str]) -> set[str]:
    """Workers the master no longer hears: their heartbeats stopped, or they left its list."""
    present = {c.id for c in runner.clients.all}
    return {c.id for c in runner.clients.missing} | (workers - present)


def _conclude(path: Path, meta: dict[str, Any], state: RunState) -> None:
    """Read the closed run once, then summarise, judge and render that one reading."""
    try:
        reading = read_run(load_run(path))
    except SlabenchError as exc:
        log.error("slabench: cannot read back %s: %s", path, exc)
        if state.spec is not None:
            state.exit_code = EXIT_USAGE
        return
    summary = _summarize(reading)
    _warn(meta, state)
    verdict = _judge(reading, state) if state.spec is not None else None
    if state.options.write_report:
        _write_html(reading, verdict, summary)


def _summarize(reading: Reading) -> RunSummary | None:
    try:
        summary = summarize_run(reading)
    except ValueError as exc:
        log.error("slabench: could not summarise %s: %s", reading.path, exc)
        return None
    print(format_summary(str(reading.path), summary), flush=True)
    return summary


def _judge(reading: Reading, state: RunState) -> Verdict:
    """--sla: judge the whole run (every worker's records) and decide the exit code."""
    assert state.spec is not None
    verdict = evaluate(state.spec, reading)
    write_verdict(reading.path, verdict)
    print(format_table(verdict), flush=True)
    state.exit_code = exit_code(verdict, allow_inconclusive=state.options.sla_allow_inconclusive)
    return verdict


def _write_html(reading: Reading, verdict: Verdict | None, summary: RunSummary | None) -> None:
    """The HTML report; a failure here is logged and never changes the exit code."""
    try:
        written = write_report(reading, verdict, summary=summary)
    except (SlabenchError, OSError, ValueError) as exc:
        log.error("slabench: no report.html for %s: %s", reading.path, exc)
        return
    print(f"slabench: report {written}", flush=True)


def _warn(meta: dict[str, Any], state: RunState) -> None:
    for warning in generator_warnings(meta.get("generator")):
        print(f"slabench: WARNING: {warning}", flush=True)
    if state.embedded is not None and not state.embedded.alive():
        print(
            "slabench: WARNING: the bundled reference server exited during the run:\n"
            + "".join(list(state.embedded.output)[-10:]),
            flush=True,
        )


def _worker_quitting(environment: Environment, **_: Any) -> None:
    if environment.runner is not None:
        environment.runner.stop()  # test_stop ships the records and the `done` note


@events.quitting.add_listener
def _quitting(environment: Environment, **_: Any) -> None:
    # Locust fires `quitting` before it stops a running test (SIGTERM, Ctrl-C): stop it
    # here first, so that the run directory is closed with every request recorded.
    state = find_run_state(environment)
    if state is None:
        return
    runner = environment.runner
    if runner is not None and state.session is not None:
        runner.stop()
    if state.embedded is not None:
        state.embedded.stop()
    if state.exit_code is not None:
        # The one place the exit code is decided when --sla is given (never on workers).
        environment.process_exit_code = state.exit_code


def _scenario_name(environment: Environment) -> str:
    locustfile = getattr(environment.parsed_options, "locustfile", "") or "scenario"
    return Path(str(locustfile).split(",")[0]).stem


def _users_profile(environment: Environment) -> dict[str, Any]:
    opts = environment.parsed_options
    return {
        "users": getattr(opts, "num_users", None),
        "spawn_rate": getattr(opts, "spawn_rate", None),
        "run_time_s": getattr(opts, "run_time", None),
        "processes": getattr(opts, "processes", None),
        "user_classes": sorted(cls.__name__ for cls in environment.user_classes),
    }
