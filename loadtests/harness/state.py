"""Per-process state of a slabench run: which prompts this process sends, how requests are
built and executed, where their records go, and the open-loop dispatcher.

The state travels on Locust's ``Environment``: the ``init`` listener attaches it
(``attach_run_state``), and listeners and users read it back with ``run_state(environment)``
(users through ``self.environment``), so no module holds a global."""

from __future__ import annotations

import itertools
import json
import logging
import math
import random
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, cast

import gevent
from gevent.event import Event
from gevent.pool import Pool
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests.bundled_server import ServerProcess
from loadtests.capacity.options import bundled_by_search
from loadtests.client.backoff import ClosedLoopBackoff
from loadtests.client.clock import now
from loadtests.client.failures import tls_rejection
from loadtests.client.measure import Backoff, Timeouts, execute
from loadtests.client.polling import set_poll_interval
from loadtests.client.protocols import PreparedRequest, RequestBuilder
from loadtests.client.startup import NoAnswer, answer_within, startup_timeout_s
from loadtests.client.transport import Target, Transport
from loadtests.harness.credentials import ApiKey
from loadtests.harness.distributed import MasterCollector, WorkerShipper
from loadtests.harness.options import LoadOptions
from loadtests.harness.replay import Replay, end_when_replayed
from loadtests.live.monitor import LiveMonitor
from loadtests.recording.monitors import GeneratorMonitor
from loadtests.workloads.arrivals import for_worker, send_offsets
from loadtests.workloads.datasets import Dataset, Prompt
from loadtests.workloads.tokenizer import TokenizerFile
from loadtests.workloads.trace_prompts import TracePrompts
from loadtests.workloads.traces import Trace
from sla.errors import SlabenchError
from sla.files import error_class as ec
from sla.files.run import UNSENT_ERROR, RequestRecord
from sla.spec import Spec

if TYPE_CHECKING:
    from loadtests.harness.rundir import RunSession

log = logging.getLogger("slabench")
DROPPED = "dropped: --max-inflight requests were already in flight at the scheduled time"


class UserClass(Protocol):
    """What the run state asks of a user class (``loadtests.harness.users.SlabenchUser``
    and its subclasses, as class objects): its bundled model and how to build requests."""

    embedded_model: str
    needs_model: bool

    def make_builder(self, state: RunState) -> RequestBuilder: ...


@dataclass(frozen=True, slots=True)
class Plan:
    """This process's share of the load: worker ``index`` of ``count``, schedule origin t0;
    ``bundled``: the target is the reference server the master started (its model names);
    ``nonce``: the run's prompt nonce (``loadtests.client.nonce``; "" for none), the same
    in every process of the run."""

    index: int
    count: int
    t0: float
    bundled: bool = False
    nonce: str = ""


class RunState:
    def __init__(
        self,
        environment: Environment,
        options: LoadOptions,
        dataset: Dataset,
        *,
        embedded: ServerProcess | None,
    ) -> None:
        self.environment = environment
        self.options = options
        self.dataset = dataset
        self.embedded = embedded
        self.timeouts = Timeouts(options.idle_timeout_s, options.request_timeout_s)
        # Fixed now: the host the key was given with, before any web UI form can change it.
        self.api_key = ApiKey.for_host(options.api_key, environment.host)
        self._withheld_from: set[str] = set()
        self.session: RunSession | None = None
        self.collector: MasterCollector | None = None
        self.workers: set[str] = set()
        self.stopping_at: float | None = None
        # Set while no test of this process is open: its run directory closed (master, local)
        # or its records shipped (worker). A stop waits on it (harness.events._wait_closed).
        self.closed = Event()
        self.closed.set()
        self.tests = 0  # tests started in this process
        # A test of the master (or local process) between test_start and its run directory:
        # still True at the end if a stop cut its start short (nothing was recorded).
        self.starting = False
        # run_start.preflight's findings for the next test, made before Locust's clock.
        self.preflight: dict[str, Any] | None = None
        self._finishing = False
        self.starter: Any = None  # master: the greenlet that fired test_start (Locust's start)
        self.plan = Plan(0, 1, 0.0)
        self._prompts: Iterator[Prompt] | None = None
        self._builders: dict[UserClass, RequestBuilder] = {}
        self._discovered_model: str | None = None
        self._seq = itertools.count()
        self._shipper: WorkerShipper | None = None
        self._monitor: GeneratorMonitor | None = None
        self._dispatcher: gevent.Greenlet[Any, None] | None = None
        self._pool: Pool | None = None
        # Open-loop sends spawned into the pool whose greenlet has not run yet (spawn_send).
        self._unstarted: dict[int, tuple[PreparedRequest, float]] = {}
        self._slot_ids = itertools.count()
        self._transport: Transport | None = None
        self.dropped = 0
        self.poll_interval_ms = 0.0  # --poll-interval-ms in effect (0: plain polls)
        self.spec: Spec | None = None  # --sla, judged on the master (or the local process)
        self.tokenizer: TokenizerFile | None = None  # --tokenizer
        self.trace: Trace | None = None  # --trace, and the prompts of its rows
        self.trace_prompts: TracePrompts | None = None
        self.sizing: Any = None  # how prompts are sized: the tokenizer, or chars per token
        self._replay: Replay | None = None
        self.live: LiveMonitor | None = None  # the live view of the last test (master, local)
        self.exit_code: int | None = None

    # --- identity and inputs ---------------------------------------------------------

    @property
    def label(self) -> str:
        runner = self.environment.runner
        if isinstance(runner, WorkerRunner):
            return f"worker-{runner.worker_index}"
        return "local"

    @property
    def bundled_target(self) -> bool:
        """The target is the bundled reference server, started here or by the master."""
        return self.embedded is not None or self.plan.bundled or bundled_by_search()

    @property
    def target(self) -> Target:
        return Target.parse(self.environment.host or "")

    def validate_user_classes(self) -> None:
        """Build every user class's request once, so that bad options, and a target that
        cannot name its model, fail before the load as one line (not as a traceback per
        user). Workers of a master that got that far ask for the model when they start."""
        is_worker = isinstance(self.environment.runner, WorkerRunner)
        for cls in self.user_classes():
            if not (is_worker and cls.needs_model and not self.options.model and not self.embedded):
                self.builder_for(cls)

    def user_classes(self) -> list[UserClass]:
        return [
            cast(UserClass, c) for c in self.environment.user_classes if hasattr(c, "make_builder")
        ]

    def set_plan(self, plan: Plan) -> None:
        if plan.nonce != self.plan.nonce:
            self._builders.clear()  # their bodies (memos) hold the last run's nonce
        self.plan = plan
        self._prompts = None

    def next_prompt(self) -> Prompt:
        if self._prompts is None:
            self._prompts = self.dataset.cycle(self.plan.index % len(self.dataset), self.plan.count)
        return next(self._prompts)

    def model_for(self, cls: UserClass) -> str:
        if self.options.model:
            return self.options.model
        if self.bundled_target:
            return cls.embedded_model
        if self._discovered_model is None:
            self._discovered_model = self._discover_model()
        return self._discovered_model

    def _discover_model(self) -> str:
        transport = self.new_transport(concurrency=1)
        try:
            with answer_within(self.startup_timeout_s, "GET /v1/models"):
                response = transport.send("GET", "/v1/models", None)
                body = response.read()
            data = json.loads(body).get("data") if response.status_code == 200 else None
            if not data or not isinstance(data[0].get("id"), str):
                raise ValueError(f"HTTP {response.status_code}")
            return str(data[0]["id"])
        except ssl.SSLCertVerificationError as exc:
            raise SlabenchError(f"{self.target.base_url}: {tls_rejection(exc)}") from None
        except NoAnswer as exc:
            raise SlabenchError(
                f"{self.target.base_url}: {exc} (--idle-timeout) to ask for the model name: "
                "the target takes connections but does not answer; is --host the right "
                "server and scheme (http, https)? (or pass --model)"
            ) from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise SlabenchError(
                f"cannot reach {self.target.base_url} ({reason}) to ask /v1/models for the "
                "model name: is the target up and --host right? (or pass --model)"
            ) from None
        except (ValueError, AttributeError) as exc:
            raise SlabenchError(
                f"--model not given and {self.target.base_url}/v1/models did not name one "
                f"({exc}); pass --model"
            ) from None
        finally:
            transport.close()

    def builder_for(self, cls: UserClass) -> RequestBuilder:
        builder = self._builders.get(cls)
        if builder is None:
            builder = self._builders[cls] = cls.make_builder(self)
        return builder

    @property
    def connect_timeout_s(self) -> float:
        return min(10.0, self.options.request_timeout_s)

    @property
    def startup_timeout_s(self) -> float:
        """The longest a request before the load waits for its whole answer: the model
        lookup, the prefix-cache reset, the calibration's GETs, a connection warm-up."""
        return startup_timeout_s(self.options.idle_timeout_s, self.options.request_timeout_s)

    def new_transport(self, concurrency: int) -> Transport:
        headers = {"Accept-Encoding": "identity", "Content-Type": "application/json"}
        headers.update(self._key_headers())
        return Transport(
            self.target,
            concurrency=concurrency,
            connect_timeout_s=self.connect_timeout_s,
            network_timeout_s=self.options.idle_timeout_s + 5.0,
            headers=headers,
            tls=self.options.tls,
        )

    def _key_headers(self) -> dict[str, str]:
        """The key's header for the current target, or none (said once per target)."""
        url = self.target.base_url
        if self.api_key.withheld_from(url) and url not in self._withheld_from:
            self._withheld_from.add(url)
            print(
                f"slabench: WARNING: the target is now {url}, not the --host the --api-key "
                "was given for: requests to it carry no key",
                flush=True,
            )
        return self.api_key.headers_for(url)

    # --- requests ----------------------------------------------------------------------

    def prepare(self, cls: UserClass) -> PreparedRequest:
        return self.builder_for(cls).build(self.next_prompt())

    def send(
        self,
        transport: Transport,
        req: PreparedRequest,
        scheduled_at: float = math.nan,
        backoff: Backoff | None = None,
        on_reply: Callable[[str], None] | None = None,
    ) -> RequestRecord:
        """Send ``req`` and record it; with ``backoff`` (a closed-loop user), the record's
        ``backoff_ms`` is how long the caller must wait before its next request; with
        ``on_reply``, a successful answer's text is handed to it (a conversation's history)."""
        return execute(
            transport,
            req,
            request_id=f"{self.label}-{next(self._seq)}",
            worker=self.label,
            timeouts=self.timeouts,
            on_record=self.record,
            scheduled_at=scheduled_at,
            backoff=backoff,
            on_reply=on_reply,
            count_tokens=self.tokenizer.count if self.tokenizer is not None else None,
        )

    def new_backoff(self) -> ClosedLoopBackoff:
        """The waits of one closed-loop user (``--retry-after-max``, ``--backoff-max``)."""
        return ClosedLoopBackoff(self.options.failing.backoff)

    def record(self, rec: RequestRecord) -> None:
        if rec.error and self.api_key.key:
            rec = replace(rec, error=self.api_key.redact(rec.error))  # a server may echo it
        if self.session is not None:
            self.session.add(rec)
        elif self._shipper is not None:
            self._shipper.add(rec)
        else:
            return  # the test has stopped: late stragglers are not part of this run
        if rec.error_class == ec.CANCELLED:
            return  # cut off by the end of the test: not a failure of the target
        start = rec.scheduled_at if not math.isnan(rec.scheduled_at) else rec.sent_at
        self.environment.events.request.fire(
            request_type="POST",
            name=rec.endpoint,
            response_time=(rec.done_at - start) * 1000.0,
            response_length=0,
            # By class, not by text: texts that embed numbers would give Locust's failure
            # table (and its stats messages) one entry per request. The rows keep the text.
            exception=RuntimeError(rec.error_class or rec.error) if rec.error else None,
            context={},
            response=None,
        )

    # --- lifecycle per role --------------------------------------------------------------

    def start_local(self) -> None:
        self.dropped = 0
        self._batch_polls()
        if self.options.open_loop:
            self._start_dispatcher()

    def workload(self) -> dict[str, Any]:
        """run.json ``workload``: how prompts were sized, and the trace replayed."""
        out: dict[str, Any] = {"tokenizer": self.sizing}
        if self.trace is not None:
            out["trace"] = self.trace.describe()
        return out

    def finish_local(self) -> dict[str, Any]:
        set_poll_interval(0.0)
        return {
            "worker": self.label,
            "dropped": self.dropped,
            "poll_interval_ms": self.poll_interval_ms,
            **self._replayed(),
        }

    def _batch_polls(self) -> None:
        """``--poll-interval-ms`` for the load (after the start-up's calibration, whose
        round trips are timed on return): on a plain http target only."""
        wanted = self.options.poll_interval_ms if self.target.base_url.startswith("http:") else 0
        self.poll_interval_ms = wanted if wanted and set_poll_interval(wanted / 1000.0) else 0.0

    def _replayed(self) -> dict[str, Any]:
        return {"trace": self._replay.summary()} if self._replay is not None else {}

    def start_worker(self) -> None:
        runner = self.environment.runner
        assert isinstance(runner, WorkerRunner)
        self.closed.clear()
        self.tests += 1
        self.dropped = 0
        self._shipper = WorkerShipper(runner.send_message)
        self._monitor = GeneratorMonitor()
        self._monitor.start()
        self._batch_polls()
        if self.options.open_loop:
            self._start_dispatcher()

    @property
    def worker_test_open(self) -> bool:
        """A worker's test started and its records are not all shipped yet."""
        return self._shipper is not None or self._finishing

    def finish_worker(self) -> None:
        """Ship the rest of the records and the `done` note; a second call while the first
        is under way (two stops at once) returns at once, and the stop waits on ``closed``."""
        if self._finishing or self._shipper is None:
            return
        self._finishing = True
        try:
            self.stop_dispatcher()
            measured: dict[str, Any] = {}
            if self._monitor is not None:
                measured = self._monitor.stop(
                    self.options.max_loop_lag_ms,
                    since=self.plan.t0 + self.options.warmup_s,
                    until=self.stopping_at,
                )
                self._monitor = None
            set_poll_interval(0.0)
            summary = {
                "worker": self.label,
                "dropped": self.dropped,
                "poll_interval_ms": self.poll_interval_ms,
                **self._replayed(),
            }
            self._shipper.close({**summary, **measured})
            self._shipper = None
        finally:
            self._finishing = False
            self.closed.set()

    def dropped_total(self, generator: dict[str, Any]) -> int:
        senders = [generator["local"]] if "local" in generator else generator.get("workers", [])
        return sum(int(s.get("dropped", 0)) for s in senders)

    # --- open loop -----------------------------------------------------------------------

    def _start_dispatcher(self) -> None:
        bound = max(1, math.ceil(self.options.max_inflight / self.plan.count))
        self._pool = Pool(bound)
        transport = self._transport = self.new_transport(concurrency=bound)
        classes = self.user_classes()
        if self.trace is not None:
            self._start_replay(self.trace, transport, classes)
            return
        arrival = self.options.arrival
        assert arrival is not None
        share = for_worker(arrival, self.plan.index, self.plan.count)
        own = getattr(classes[0], "dispatch_open_loop", None) if len(classes) == 1 else None
        if own is not None:  # a user class that schedules its own sends (sessions)
            self._pool = Pool()  # its greenlets; it bounds the requests in flight itself
            self._dispatcher = gevent.spawn(
                own, self, send_offsets(share), transport, self._pool, bound
            )
            return
        self._dispatcher = gevent.spawn(
            self._dispatch, send_offsets(share), transport, classes, self.plan.t0
        )

    def _start_replay(self, trace: Trace, transport: Transport, classes: list[Any]) -> None:
        assert self._pool is not None and self.trace_prompts is not None
        self._replay = Replay(
            self,
            trace,
            self.trace_prompts,
            index=self.plan.index,
            count=self.plan.count,
            t0=self.plan.t0,
            measured_from=self.plan.t0 + self.options.warmup_s,
            max_send_lag_ms=self.options.max_send_lag_ms,
            seed=self.options.seed,
        )
        self._dispatcher = gevent.spawn(
            self._replay.run, self._pool, transport, classes, end_when_replayed(self.environment)
        )

    def _dispatch(
        self, offsets: Iterator[float], transport: Transport, classes: list[Any], t0: float
    ) -> None:
        assert self._pool is not None
        pool, rng = self._pool, random.Random(self.options.seed + self.plan.index)
        weights = [getattr(c, "weight", 1) for c in classes]
        for offset in offsets:
            scheduled_at = t0 + offset
            cls = rng.choices(classes, weights)[0] if len(classes) > 1 else classes[0]
            req = self.prepare(cls)  # built before the send time: never inside the latency
            delay = scheduled_at - now()
            if delay > 0:
                gevent.sleep(delay)
            if pool.full():
                self.record_dropped(req, scheduled_at)
                continue
            self.spawn_send(pool, req, scheduled_at, self.send, transport, req, scheduled_at)

    def spawn_send(
        self,
        pool: Pool,
        req: PreparedRequest,
        scheduled_at: float,
        run: Callable[..., Any],
        *args: Any,
    ) -> None:
        """Run ``run(*args)``, which sends ``req`` (due at ``scheduled_at``), in a greenlet of
        ``pool``. The greenlet starts at the loop's next pass: if the test stops first, the
        send is recorded as cancelled (``stop_dispatcher``) rather than lost."""
        slot = next(self._slot_ids)
        self._unstarted[slot] = (req, scheduled_at)
        pool.spawn(self._start_send, slot, run, args)

    def _start_send(self, slot: int, run: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if self._unstarted.pop(slot, None) is None:
            return  # the stop came first and recorded it as cancelled: never sent
        run(*args)

    def record_dropped(self, req: PreparedRequest, scheduled_at: float) -> None:
        """An open-loop send that found ``--max-inflight`` requests in flight: not sent."""
        self.dropped += 1
        self._record_unsent(req, scheduled_at, DROPPED, ec.DROPPED)

    def _record_unsent(
        self, req: PreparedRequest, scheduled_at: float, error: str, error_class: str
    ) -> None:
        self.record(
            RequestRecord(
                f"{self.label}-{next(self._seq)}",
                self.label,
                req.endpoint,
                scheduled_at,
                math.nan,
                math.nan,
                now(),
                0,
                error,
                req.input_tokens_hint,
                None,
                None,
                0,
                (),
                error_class,
                session_id=req.session_id,
                turn=req.turn,
            )
        )

    def stop_dispatcher(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.kill(block=True)
            self._dispatcher = None
        if self._pool is not None:
            self._pool.kill(block=True)  # in-flight requests are recorded as cancelled
            self._pool = None
        # Sends spawned but killed before their greenlet ran (the stop came in the same pass
        # of the loop): never sent, and kept as cancelled rows like those in flight.
        unstarted, self._unstarted = self._unstarted, {}
        for req, scheduled_at in unstarted.values():
            self._record_unsent(req, scheduled_at, UNSENT_ERROR, ec.CANCELLED)
        if self._transport is not None:
            self._transport.close()
            self._transport = None


_ATTRIBUTE = "slabench_run_state"


def attach_run_state(environment: Environment, state: RunState) -> None:
    """Hang this process's run state on its Locust environment (done once, at ``init``)."""
    setattr(environment, _ATTRIBUTE, state)


def find_run_state(environment: Environment) -> RunState | None:
    """The run state, or None before ``init`` attached it (or when ``init`` failed)."""
    state = getattr(environment, _ATTRIBUTE, None)
    return state if isinstance(state, RunState) else None


def run_state(environment: Environment) -> RunState:
    state = find_run_state(environment)
    if state is None:
        raise RuntimeError("slabench is not initialised: run this through `locust -f`")
    return state
