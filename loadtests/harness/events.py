"""Locust event wiring: options, the embedded server, the run directory's lifecycle, and
distributed record collection. Imported by ``loadtests.harness.users``, so every scenario has
it. Each listener finds this process's run state on the ``Environment`` it is handed.

Roles: a *local* process (plain ``locust``) both sends requests and writes the run
directory; in distributed mode *workers* send requests and ship records, and the *master*
writes the run directory.

Start-up: ``init`` reads the options, starts the bundled server, asks for the model and,
when Locust starts the test by itself (headless, ``--autostart``), makes the pre-flight
requests (``harness.run_start.preflight``: the prefix-cache reset, the calibration). All of it
comes before Locust arms ``-t``, which it does as it starts the test, before ``test_start``
runs: ``-t`` is the time of load. ``test_start`` then only opens the run directory.

Stop signals (SIGINT, SIGTERM) are handled by ``harness.stopping``, installed here: before
the test they end the process in one line; once ``init`` is done, Locust's shutdown runs
``quitting``, which closes the run directory. Locust may run that shutdown twice at once (its
SIGTERM handler beside a Ctrl-C), so the stop is idempotent: one greenlet closes the run
(``_test_stop``), and ``quitting`` waits until it is closed (``RunState.closed``, cleared
only while a run directory is open, so that a stop that cut a test's start short before it
had one has nothing to wait for).
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
from loadtests.children import tie_forks
from loadtests.client.clock import now
from loadtests.harness.conclude import conclude
from loadtests.harness.failing_target import EXIT_TARGET_DOWN
from loadtests.harness.live_run import start_live
from loadtests.harness.load_shape import ConfiguredShape
from loadtests.harness.options import LoadOptions, add_options
from loadtests.harness.replay import listen_for_trace_ends
from loadtests.harness.run_start import preflight, run_start_meta
from loadtests.harness.rundir import RunSession, check_exact_run_dir, default_run_dir, fresh_dir
from loadtests.harness.state import Plan, RunState, attach_run_state, find_run_state, run_state
from loadtests.harness.stopping import (
    STOPPER,
    quitting_first,
    stopped_while_starting,
    wait_closed,
)
from loadtests.harness.terminal import written_counts
from loadtests.harness.trace_options import check_trace_users
from loadtests.harness.workers import (
    collect_from_workers,
    hand_over,
    listen_to_master,
    plan_workers,
    stop_starting,
    wait_for_workers,
)
from loadtests.live.web import install as install_web_ui
from loadtests.workloads.datasets import Dataset, load_dataset
from loadtests.workloads.tokenizer import CharSizing, TokenizerFile, load_tokenizer
from loadtests.workloads.trace_prompts import TracePrompts
from loadtests.workloads.traces import open_trace
from sla.errors import EXIT_USAGE, SlabenchError, error_line, report_error
from sla.spec import Spec, load_spec

log = logging.getLogger("slabench")
STOPPER.install()
tie_forks(True)  # Locust forks its --processes workers next, before `init`


def _fail(exc: SlabenchError) -> None:
    sys.stderr.flush()
    sys.exit(report_error(exc))


@events.init_command_line_parser.add_listener
def _options(parser: Any, **_: Any) -> None:
    add_options(parser)


@events.init.add_listener
def _init(environment: Environment, **_: Any) -> None:
    tie_forks(False)
    STOPPER.worker = isinstance(environment.runner, WorkerRunner)
    _initialise(environment)  # a stop signal meanwhile ends the process (harness.stopping)
    # Added last, so that `quitting` (which runs its listeners in reverse) runs it first.
    environment.events.quitting.add_listener(quitting_first)
    STOPPER.initialised = True


def _initialise(environment: Environment) -> None:
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
        environment.shape_class = ConfiguredShape(
            state.options.shape,
            lambda: state.session.started_at if state.session is not None else None,
        )
        environment.shape_class.runner = runner
    if isinstance(runner, MasterRunner):
        state.collector = collect_from_workers(runner)
        if state.trace is not None:
            listen_for_trace_ends(environment, lambda: state.workers)
    if isinstance(runner, WorkerRunner):
        listen_to_master(environment, runner)
    if environment.web_ui is not None:
        install_web_ui(environment.web_ui, lambda: state.live)
    if isinstance(runner, MasterRunner):
        wait_for_workers(runner, environment.parsed_options)
    if not is_worker and _starts_by_itself(environment.parsed_options):
        try:  # before -t's clock; a stop signal meanwhile ends the process in one line
            state.preflight = preflight(state)
        except BaseException:
            if state.embedded is not None:
                state.embedded.stop()
            raise
    # Until Locust starts the test the gevent loop has not run, so its cached clock still
    # reads the moment the hub was created (before imports, the dataset, the embedded
    # server...): timers started from it, `-t/--run-time` included, would fire that much early.
    gevent.get_hub().loop.update_now()


def _starts_by_itself(opts: Any) -> bool:
    """Locust starts the test as soon as ``init`` is done (and arms ``-t`` with it)."""
    return bool(getattr(opts, "headless", False) or getattr(opts, "autostart", False))


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
    tokenizer = load_tokenizer(options.tokenizer) if options.tokenizer else None
    trace = open_trace(options.trace) if options.trace else None  # checked before the load
    embedded = _start_embedded(options) if not environment.host and not is_worker else None
    try:
        if embedded is not None:
            environment.host = embedded.url
        bundled = embedded is not None or bundled_by_search()
        cpt = options.chars_per_token or (1.0 if bundled or not environment.host else 4.0)
        dataset = _load_dataset(options, cpt, tokenizer)
        state = RunState(environment, options, dataset, embedded=embedded)
        state.spec = spec
        state.tokenizer, state.trace = tokenizer, trace
        sizer = tokenizer or CharSizing(cpt)
        state.sizing = sizer.describe()
        if trace is not None:
            state.trace_prompts = TracePrompts(sizer, trace.spec.block_size, options.seed)
        attach_run_state(environment, state)
        if trace is not None:
            check_trace_users(environment.user_classes)
        state.validate_user_classes()
    except BaseException:  # a user error, or a stop signal while the dataset loads
        if embedded is not None:
            embedded.stop()
        raise
    return state, search


def _load_dataset(options: LoadOptions, cpt: float, tokenizer: TokenizerFile | None) -> Dataset:
    """The prompts; the bundled server's tokenizer is one character per token (``cpt``),
    unless ``--tokenizer`` sizes them exactly."""
    return load_dataset(
        options.dataset,
        input_len=options.input_len,
        output_len=options.output_len,
        seed=options.seed,
        chars_per_token=cpt,
        sizer=tokenizer,
    )


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
        capacity = CapacitySearch(
            options=search,
            spec=spec,
            target_url=environment.host or "",
            scenario=scenario,
            sweep_dir=sweep,
            argv=sys.argv[1:],
            bundled=state.embedded is not None,
            seed=state.options.seed,
            local_master=isinstance(environment.runner, MasterRunner),
            live_interval_s=state.options.live_interval_s,
        )
        STOPPER.hand_over(capacity.interrupt)  # a signal stops the step, the search ends
        code = capacity.run()
        _write_capacity_html(sweep)
    finally:
        if isinstance(environment.runner, MasterRunner):
            environment.runner.quit()  # tells the idle workers to quit
        if state.embedded is not None:
            state.embedded.stop()
    sys.exit(code)


def _write_capacity_html(sweep: Path) -> None:
    """The capacity report; a failure here is logged and never changes the exit code."""
    from reports.capacity import write_capacity_report  # plotly: only when it is written

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
    if STOPPER.stopping:
        # The process is ending (a stop signal came while Locust was about to start the
        # test): end Locust's start here, before any user is spawned, so that no request
        # goes out that no run directory records.
        raise gevent.GreenletExit
    # Everything alive now lives for the whole run: keep the collector from rescanning it,
    # which otherwise pauses every greenlet (and lands on measured latencies) for ~50 ms.
    gc.collect()
    gc.freeze()
    state = run_state(environment)
    state.stopping_at = None
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        state.start_worker()
        return
    state.starting = True
    # Made in `init` for a test Locust starts by itself; a test started from the web UI
    # makes it here, inside the run time the web UI armed (started_at comes after it).
    found, state.preflight = state.preflight, None
    found = found if found is not None else preflight(state)
    nonce = state.options.cache.run_nonce()
    bundled = state.embedded is not None or bundled_by_search()
    meta = run_start_meta(state, nonce, bundled=bundled, preflight=found)
    session = RunSession(
        options=state.options,
        scenario=_scenario_name(environment),
        target_url=environment.host or "",
        embedded=state.embedded is not None,
        users=_users_profile(environment),
        extra_meta={**meta, "workload": state.workload()},
    )
    # No yield since the session was made: a stop from now on finds it and closes it.
    state.session = session
    state.closed.clear()
    state.tests += 1
    state.starting = False
    if runner is not None:  # a failed write ends the run (see _test_stop)
        state.session.on_failure = runner.quit
    print(f"slabench: recording to {state.session.path}", flush=True)
    state.live = start_live(environment, state, state.session, _scenario_name(environment))
    t0 = now() + 0.5  # workers need a moment to receive the plan and start
    if isinstance(runner, MasterRunner):
        plan_workers(runner, state, state.session, Plan(0, 1, t0, bundled, nonce))
    else:
        state.set_plan(Plan(index=0, count=1, t0=t0, bundled=bundled, nonce=nonce))
        state.start_local()


@events.test_stopping.add_listener
def _test_stopping(environment: Environment, **_: Any) -> None:
    state = run_state(environment)
    if state.stopping_at is None:  # the first stop of this test (a second one may overlap)
        state.stopping_at = now()
        if state.live is not None:
            state.live.state.until = state.stopping_at
    if isinstance(environment.runner, MasterRunner):
        stop_starting(state)
    state.stop_dispatcher()


@events.test_stop.add_listener
def _test_stop(environment: Environment, **_: Any) -> None:
    state = run_state(environment)
    if isinstance(environment.runner, WorkerRunner):
        state.finish_worker()
        return
    session, state.session = state.session, None
    if session is None:
        return  # no test, or another greenlet is closing it
    try:
        _close(environment, state, session)
    finally:
        state.closed.set()


def _close(environment: Environment, state: RunState, session: RunSession) -> None:
    """Close the run directory with every record (the workers' too), then conclude it."""
    generator: dict[str, Any] = {"workers": []}
    runner = environment.runner
    if isinstance(runner, MasterRunner) and state.collector is not None:
        generator = hand_over(runner, state)
    else:
        generator["local"] = state.finish_local()
    ended_at = state.stopping_at or now()
    stopped_early = None
    if state.live is not None:
        state.live.stop(ended_at)
        stopped_early = state.live.stopped_early
    meta = session.close(
        status="complete",
        ended_at=ended_at,
        generator=generator,
        extra={
            "dropped": state.dropped_total(generator),
            **({"stopped_early": stopped_early} if stopped_early else {}),
        },
    )
    if session.failure is not None:
        # Not judged: what was written is readable (load_run), but it is not the run.
        state.exit_code = session.failure.exit_code
        print(error_line(session.failure), file=sys.stderr, flush=True)
        print(written_counts(session.path), flush=True)
        return
    conclude(session.path, meta, state)
    if session.target_down is not None:
        # Summarised and judged (never a PASS: incomplete), but the exit code says why.
        state.exit_code = EXIT_TARGET_DOWN
        print(error_line(SlabenchError(session.target_down)), file=sys.stderr, flush=True)


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
    if not wait_closed(state):
        state.exit_code = state.exit_code or EXIT_USAGE  # never 0 for a run left unclosed
    if not state.tests and not isinstance(runner, WorkerRunner):
        if STOPPER.signum is not None:
            state.exit_code = STOPPER.stopped_before_test()
        elif state.starting:  # a stop (-t, an early stop) cut the test's start short
            state.exit_code = stopped_while_starting()
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
