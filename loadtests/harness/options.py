"""slabench's command-line options, added to Locust's own parser.

Every option has an environment variable (``SLABENCH_...``) and shows in ``locust --help``
under "slabench". ``LoadOptions.from_namespace`` turns the parsed values into one frozen,
validated object; a bad value raises ``SlabenchError`` with a one-line message.
"""

from __future__ import annotations

import math
import ssl
from dataclasses import dataclass, field
from typing import Any, Literal

from loadtests.capacity.options import add_search_options
from loadtests.client.tls import Tls
from loadtests.errors import LoadSpecError
from loadtests.harness.failing_target import FailingTargetOptions, add_failing_target_options
from loadtests.harness.prompt_cache import PromptCacheOptions, add_prompt_cache_options
from loadtests.harness.session_options import SessionOptions, add_session_options
from loadtests.harness.trace_options import add_trace_options, trace_spec
from loadtests.recording.disturbance import DEFAULT_MAX_LOOP_LAG_MS
from loadtests.workloads.arrivals import ArrivalSpec, parse_arrival
from loadtests.workloads.shapes import StagedShape, parse_duration_s, parse_shape
from loadtests.workloads.traces import TraceSpec


def add_options(parser: Any) -> None:
    if "--run-dir" in getattr(parser, "_option_string_actions", {}):
        return  # already added (the --help start-up hook and the scenario both register)
    listen_on_loopback(parser)
    g = parser.add_argument_group("slabench", "Exact per-request recording and open-loop load")

    def opt(flag: str, env: str, **kw: Any) -> None:
        kw["help"] = f"{kw.get('help', '')} [env SLABENCH_{env}]".lstrip()
        g.add_argument(flag, env_var=f"SLABENCH_{env}", **kw)

    opt(
        "--sla",
        "SLA",
        default="",
        help="judge the run against this SLA spec; sets the exit code (0 pass, 1 fail, "
        "3 inconclusive, 4 load generator saturated)",
    )
    opt(
        "--sla-allow-inconclusive",
        "SLA_ALLOW_INCONCLUSIVE",
        action="store_true",
        default=False,
        help="exit 0 instead of 3 when the verdict is INCONCLUSIVE",
    )
    opt(
        "--sla-stop-early",
        "SLA_STOP_EARLY",
        action="store_true",
        default=False,
        help="with --sla: end the run as soon as an objective's FAIL is statistically settled "
        "(its confidence split across the looks, one per --live-interval)",
    )
    opt(
        "--live-interval",
        "LIVE_INTERVAL",
        type=float,
        default=10.0,
        help="seconds between the live lines (TTFT, ITL, E2E, rates, errors, the SLA's "
        "provisional standing) printed while the test runs (0 = off)",
    )
    opt(
        "--no-report",
        "NO_REPORT",
        action="store_true",
        default=False,
        help="do not write report.html into the run directory at the end",
    )
    opt(
        "--run-dir",
        "RUN_DIR",
        default="",
        help="run directory (default runs/<UTC time>-<scenario>)",
    )
    opt(
        "--dataset",
        "DATASET",
        default="synthetic",
        help="'synthetic', a .jsonl file of prompts, or a ShareGPT .json file",
    )
    opt(
        "--input-len",
        "INPUT_LEN",
        default="fixed:128",
        help="synthetic prompt length in tokens: fixed:N, uniform:LO,HI, normal:MEAN,STD, "
        "lognormal:MEDIAN,SIGMA",
    )
    opt(
        "--output-len",
        "OUTPUT_LEN",
        default="fixed:64",
        help="max_tokens per request (same forms); files may set their own",
    )
    opt(
        "--chars-per-token",
        "CHARS_PER_TOKEN",
        type=float,
        default=0.0,
        help="for sizing synthetic prompts; 0 = 1.0 on the bundled byte-level server, else 4.0",
    )
    opt("--seed", "SEED", type=int, default=0, help="seed for datasets and arrival schedules")
    opt(
        "--warmup",
        "WARMUP",
        default="0s",
        help="time excluded from the measured window at the start (e.g. 10s); shorter than -t",
    )
    opt(
        "--arrival-rate",
        "ARRIVAL_RATE",
        type=float,
        default=0.0,
        help="open loop: requests/s on a precomputed schedule (0 = closed loop, Locust users)",
    )
    opt(
        "--arrival",
        "ARRIVAL",
        choices=["constant", "poisson", "gamma"],
        default="poisson",
        help="open-loop inter-arrival distribution",
    )
    opt(
        "--burstiness",
        "BURSTINESS",
        type=float,
        default=1.0,
        help="gamma shape: 1 = Poisson, < 1 burstier, > 1 smoother",
    )
    opt(
        "--max-inflight",
        "MAX_INFLIGHT",
        type=int,
        default=256,
        help="open loop: bound on requests in flight (per run); sends beyond it are dropped "
        "and recorded as dropped",
    )
    opt(
        "--api-key",
        "API_KEY",
        default="",
        help="sent as 'Authorization: Bearer ...'; never written to disk",
    )
    opt(
        "--ca-bundle",
        "CA_BUNDLE",
        default="",
        help="PEM file of the CAs to trust for an https --host (instead of the system's)",
    )
    opt(
        "--insecure",
        "INSECURE",
        action="store_true",
        default=False,
        help="do not check the https target's certificate or host name (the API key goes "
        "to whoever answers)",
    )
    opt("--model", "MODEL", default="", help="model name (default: the target's first model)")
    opt(
        "--ignore-eos",
        "IGNORE_EOS",
        choices=["auto", "on", "off"],
        default="auto",
        help="send ignore_eos for exact output lengths (auto: on for the bundled server)",
    )
    opt(
        "--no-stream",
        "NO_STREAM",
        action="store_true",
        default=False,
        help="ask chat/completions for non-streamed answers",
    )
    opt(
        "--idle-timeout",
        "IDLE_TIMEOUT",
        type=float,
        default=30.0,
        help="seconds of silence mid-response before a request is a timeout error",
    )
    opt(
        "--request-timeout",
        "REQUEST_TIMEOUT",
        type=float,
        default=300.0,
        help="seconds for a whole request before it is a timeout error",
    )
    add_failing_target_options(opt)
    add_prompt_cache_options(opt)
    add_session_options(opt)
    add_trace_options(opt)
    opt(
        "--shape",
        "SHAPE",
        default="",
        help="closed-loop load shape: steps:users=4,8,16,step=30s | ramp:from=1,to=64,over=2m "
        "| spike:base=8,peak=64,at=60s,for=15s,total=3m",
    )
    opt(
        "--scrape-interval",
        "SCRAPE_INTERVAL",
        type=float,
        default=2.0,
        help="seconds between scrapes of the target's Prometheus /metrics (0 = off)",
    )
    opt(
        "--scrape-url",
        "SCRAPE_URL",
        action="append",
        default=[],
        help="a Prometheus URL to scrape; give it several times for several (e.g. a DCGM "
        "exporter's :9400/metrics). Default: <host>/metrics, and when that answers 404 the "
        "host's KServe V2 metrics ports (8002 Triton, 8082 MLServer)",
    )
    opt(
        "--flush-interval",
        "FLUSH_INTERVAL",
        type=float,
        default=5.0,
        help="seconds between complete parts of the recorded requests on disk: what a load "
        "generator killed hard (SIGKILL, power loss) can lose at most",
    )
    opt(
        "--server-args",
        "SERVER_ARGS",
        default="",
        help="extra flags for the bundled reference server started when --host is not given",
    )
    opt(
        "--no-connection-warmup",
        "NO_CONNECTION_WARMUP",
        action="store_true",
        default=False,
        help="let the first requests pay for TCP connect",
    )
    opt(
        "--max-loop-lag",
        "MAX_LOOP_LAG",
        type=float,
        default=DEFAULT_MAX_LOOP_LAG_MS,
        help="ms the load generator's event loop may run late: a process whose loop was "
        "later than this for over 1%% of the measured window is disturbed (never a PASS)",
    )
    opt(
        "--poll-interval-ms",
        "POLL_INTERVAL_MS",
        type=float,
        default=2.0,
        help="on a plain http target, the load generator's event loop polls the network at "
        "most once per this many ms, taking every stream's reads that arrived meanwhile in "
        "one wake-up (less CPU a request); timings do not move: every read that times a "
        "request is stamped with the kernel's receive time of its bytes. 0 polls at once; "
        "https targets always do (TLS reads are stamped when they return)",
    )
    opt("--kserve-input", "KSERVE_INPUT", default="INPUT0", help="KServe V2 input tensor name")
    opt("--kserve-shape", "KSERVE_SHAPE", default="1,256", help="KServe V2 input shape")
    opt("--payload", "PAYLOAD", default="", help="http_json: JSON template file")
    opt("--path", "PATH", default="/", help="http_json: request path")
    opt("--method", "METHOD", default="POST", help="http_json: HTTP method")
    add_search_options(opt)


def listen_on_loopback(parser: Any) -> None:
    """Locust's web UI listens on 127.0.0.1 unless ``--web-host`` says otherwise (it has no
    login, and its swarm form can start load against any host); so does the master of
    ``--processes`` (its workers are local) unless ``--master-bind-host`` is given."""
    actions = getattr(parser, "_option_string_actions", {})
    web_host = actions.get("--web-host")
    if web_host is not None:
        web_host.default = "127.0.0.1"
        web_host.help = "host to bind the web interface to (slabench: 127.0.0.1; '*' for all)"
    bind_host = actions.get("--master-bind-host")
    if bind_host is not None and not isinstance(bind_host.default, _AllInterfaces):
        bind_host.default = _AllInterfaces(bind_host.default)
        parse_args = parser.parse_args

        def parse_then_bind(*args: Any, **kwargs: Any) -> Any:
            return _bind_processes_master(parse_args(*args, **kwargs))

        parser.parse_args = parse_then_bind


class _AllInterfaces(str):
    """Locust's own ``--master-bind-host`` default ('*'), told apart from a user's '*'."""

    __slots__ = ()


def _bind_processes_master(ns: Any) -> Any:
    """--processes without --master-bind-host: the master listens on loopback only."""
    if isinstance(getattr(ns, "master_bind_host", None), _AllInterfaces):
        ns.master_bind_host = "127.0.0.1" if getattr(ns, "processes", None) else "*"
    return ns


def _check_warmup_fits(ns: Any, warmup_s: float, shape: Any) -> None:
    """A warm-up as long as the load leaves nothing to measure: a usage error before any
    load, not a run whose every figure is NaN. The load's length is ``-t`` (Locust parses
    it to seconds), else a ``--shape``'s; a capacity search times its own steps."""
    if not warmup_s or getattr(ns, "capacity_search", False):
        return
    length, flag = getattr(ns, "run_time", None), "-t"
    if not length and shape is not None:
        length, flag = shape.total_duration_s, "--shape"
    if isinstance(length, int | float) and 0 < length <= warmup_s:
        raise LoadSpecError(
            f"--warmup {ns.warmup} is not shorter than the load ({flag}: {length:g} s): "
            "nothing would be measured; shorten the warm-up or run longer"
        )


def _warmup_s(text: str) -> float:
    try:
        seconds = parse_duration_s(text)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise LoadSpecError(f"--warmup {text!r} must be a duration >= 0 like 10s, 1m or 5")
    return seconds


@dataclass(frozen=True, slots=True)
class LoadOptions:
    run_dir: str
    dataset: str
    input_len: str
    output_len: str
    chars_per_token: float
    seed: int
    warmup_s: float
    arrival: ArrivalSpec | None  # None: closed loop
    max_inflight: int
    api_key: str
    tls: Tls
    model: str
    ignore_eos: Literal["auto", "on", "off"]
    stream: bool
    idle_timeout_s: float
    request_timeout_s: float
    shape: StagedShape | None
    scrape_interval_s: float
    scrape_urls: tuple[str, ...]
    flush_interval_s: float
    server_args: str
    sla_path: str
    sla_allow_inconclusive: bool
    write_report: bool
    connection_warmup: bool
    max_loop_lag_ms: float
    poll_interval_ms: float
    kserve_input: str
    kserve_shape: str
    payload: str
    path: str
    method: str
    failing: FailingTargetOptions
    sessions: SessionOptions
    cache: PromptCacheOptions = field(default_factory=PromptCacheOptions)
    trace: TraceSpec | None = None  # --trace: open loop at the trace's own times
    tokenizer: str = ""  # --tokenizer: a local tokenizer.json
    max_send_lag_ms: float = 10.0  # --max-send-lag: a trace replay later than this is saturated
    live_interval_s: float = 10.0
    sla_stop_early: bool = False

    @property
    def open_loop(self) -> bool:
        return self.arrival is not None or self.trace is not None

    @classmethod
    def from_namespace(cls, ns: Any) -> LoadOptions:
        arrival = _arrival(ns)
        _check_limits(ns)
        shape = parse_shape(ns.shape) if ns.shape else None
        if shape is not None and arrival is not None:
            raise LoadSpecError("--shape drives users (closed loop); drop it or --arrival-rate")
        warmup_s = _warmup_s(ns.warmup)
        _check_warmup_fits(ns, warmup_s, shape)
        if getattr(ns, "host", None):
            # Here, not at the top: listing the options must not import gevent.
            from loadtests.client.transport import Target

            Target.parse(ns.host)  # a bad --host is one line before anything uses it
        return cls(
            run_dir=ns.run_dir,
            dataset=ns.dataset,
            input_len=ns.input_len,
            output_len=ns.output_len,
            chars_per_token=ns.chars_per_token,
            seed=ns.seed,
            warmup_s=warmup_s,
            arrival=arrival,
            max_inflight=ns.max_inflight,
            api_key=ns.api_key,
            tls=_tls(ns.insecure, ns.ca_bundle),
            model=ns.model,
            ignore_eos=ns.ignore_eos,
            stream=not ns.no_stream,
            idle_timeout_s=ns.idle_timeout,
            request_timeout_s=ns.request_timeout,
            shape=shape,
            scrape_interval_s=max(0.0, ns.scrape_interval),
            scrape_urls=_scrape_urls(ns.scrape_url),
            flush_interval_s=ns.flush_interval,
            server_args=ns.server_args,
            sla_path=ns.sla,
            sla_allow_inconclusive=ns.sla_allow_inconclusive,
            write_report=not ns.no_report,
            connection_warmup=not ns.no_connection_warmup,
            max_loop_lag_ms=ns.max_loop_lag,
            poll_interval_ms=ns.poll_interval_ms,
            kserve_input=ns.kserve_input,
            kserve_shape=ns.kserve_shape,
            payload=ns.payload,
            path=ns.path,
            method=ns.method,
            failing=FailingTargetOptions.from_namespace(ns),
            cache=PromptCacheOptions.from_namespace(ns),
            sessions=SessionOptions.from_namespace(ns),
            trace=trace_spec(ns),
            tokenizer=ns.tokenizer,
            max_send_lag_ms=ns.max_send_lag,
            live_interval_s=ns.live_interval,
            sla_stop_early=ns.sla_stop_early,
        )

    def describe(self) -> dict[str, Any]:
        """The load profile for run.json (no secrets)."""
        arrival = self.arrival
        return {
            "mode": "trace" if self.trace else "open" if arrival else "closed",
            "arrival_rate_rps": arrival.rate_rps if arrival else None,
            "arrival": arrival.kind if arrival else None,
            "burstiness": arrival.burstiness if arrival else None,
            "max_inflight": self.max_inflight if self.open_loop else None,
            "shape": self.shape.spec if self.shape else None,
            # The stages themselves, so that readers (dashboards) never parse the text.
            "stages": [list(stage) for stage in self.shape.levels()] if self.shape else None,
            "dataset": self.dataset,
            "input_len": self.input_len,
            "output_len": self.output_len,
            "seed": self.seed,
            "warmup_s": self.warmup_s,
            "stream": self.stream,
            "idle_timeout_s": self.idle_timeout_s,
            "request_timeout_s": self.request_timeout_s,
            **self.failing.describe(),
            "reset_prefix_cache": self.cache.reset_prefix_cache,
            **({"trace": self.trace.path} if self.trace else {}),
        }


def _arrival(ns: Any) -> ArrivalSpec | None:
    """The open-loop schedule of --arrival-rate (None: closed loop)."""
    if not ns.arrival_rate:
        return None
    if not (math.isfinite(ns.arrival_rate) and ns.arrival_rate > 0):
        raise LoadSpecError(f"--arrival-rate {ns.arrival_rate} must be > 0")
    return parse_arrival(ns.arrival, ns.arrival_rate, ns.burstiness, ns.seed)


def _tls(insecure: bool, ca_bundle: str) -> Tls:
    """--insecure or --ca-bundle (a file of PEM certificates, checked now, not per request)."""
    if insecure and ca_bundle:
        raise LoadSpecError("--insecure checks no certificate: drop it or --ca-bundle")
    if ca_bundle:
        try:
            ssl.create_default_context(cafile=ca_bundle)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
            raise LoadSpecError(
                f"--ca-bundle {ca_bundle!r}: no PEM certificates ({reason})"
            ) from None
    return Tls(verify=not insecure, ca_bundle=ca_bundle)


def _check_limits(ns: Any) -> None:
    """Timeouts, --flush-interval, --max-inflight and --chars-per-token in their ranges."""
    for flag, value in (
        ("--idle-timeout", ns.idle_timeout),
        ("--request-timeout", ns.request_timeout),
        ("--flush-interval", ns.flush_interval),
    ):
        if not value > 0:
            raise LoadSpecError(f"{flag} {value} must be > 0 seconds")
    if ns.max_inflight < 1:
        raise LoadSpecError(f"--max-inflight {ns.max_inflight} must be at least 1")
    if not (math.isfinite(ns.max_loop_lag) and ns.max_loop_lag > 0):
        raise LoadSpecError(f"--max-loop-lag {ns.max_loop_lag} must be > 0 milliseconds")
    if not (math.isfinite(ns.poll_interval_ms) and 0 <= ns.poll_interval_ms <= 100):
        raise LoadSpecError(
            f"--poll-interval-ms {ns.poll_interval_ms} must be 0 to 100 milliseconds"
        )
    if not (math.isfinite(ns.live_interval) and ns.live_interval >= 0):
        raise LoadSpecError(f"--live-interval {ns.live_interval} must be >= 0 seconds (0 = off)")
    if ns.sla_stop_early and not (ns.sla and ns.live_interval > 0):
        raise LoadSpecError("--sla-stop-early needs --sla SPEC and a --live-interval above 0")
    if ns.chars_per_token < 0:
        raise LoadSpecError(f"--chars-per-token {ns.chars_per_token} must be >= 0")


def _scrape_urls(given: Any) -> tuple[str, ...]:
    """``--scrape-url`` as given (once, several times, or a plain environment value)."""
    values = [given] if isinstance(given, str) else list(given or [])
    return tuple(v for v in (str(v).strip() for v in values) if v)
