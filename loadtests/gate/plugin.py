"""pytest plugin: SLA gates in CI. Registered through the ``pytest11`` entry point.

    import pytest

    @pytest.fixture(scope="module")
    def chat_run(sla_locust):
        return sla_locust("chat", users=8, run_time="20s", warmup="5s")

    @pytest.mark.sla_spec("sla/examples/chat-interactive.yaml")
    def test_chat_meets_its_sla(chat_run, sla_objective):
        sla_objective.check(chat_run)

Each objective of the spec becomes its own test (``test_chat_meets_its_sla[p99 ttft_ms]``);
a failing one reads ``[p99 ttft_ms] 812.4 ms > 450 ms (n=3120, 95% CI 790–840)`` with no
traceback. INCONCLUSIVE fails too unless ``--sla-allow-inconclusive``; an incomplete run
(``Run.incomplete``) or a disturbed load generator (``Run.disturbed``) fails every objective,
whatever that option says. A bad spec is a usage
error. ``sla_metric_change`` does the same against ``--sla-baseline RUN_DIR``.

Locust runs as a subprocess (``sla_locust``): gevent never touches the pytest process. This
module imports no locust. Every name is prefixed ``sla`` so that Locust's own pytest plugin
(fixture ``session``, option ``--host``) never clashes.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loadtests.bundled_server import ServerProcess, ServerStartError
from sla.compare import (
    DEFAULT_METRICS,
    Change,
    Comparison,
    MetricChange,
    compare,
    parse_max_regression,
)
from sla.files.run import Run, RunDirError, load_run
from sla.files.verdict import write_verdict
from sla.objectives import Status
from sla.spec import Spec, SpecError, load_spec
from sla.verdict import Verdict, evaluate

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
# loadtests.capacity.options.EXACT_RUN_DIR_ENV (the gate imports no locust-side module)
EXACT_RUN_DIR_ENV = "SLABENCH_EXACT_RUN_DIR"


def parse_run_time(text: str) -> str:
    """argparse type for Locust durations such as 30s, 2m, 1h30m."""
    if not text or not any(ch.isdigit() for ch in text):
        raise ValueError(f"{text!r} is not a duration like 30s or 2m")
    return text


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("slabench", "slabench SLA gates")
    group.addoption("--sla-spec", default=None, help="default SLA spec for @sla_spec without one")
    group.addoption("--sla-allow-inconclusive", action="store_true", default=None,
                    help="an INCONCLUSIVE objective skips instead of failing")  # fmt: skip
    group.addoption(
        "--sla-host",
        default=None,
        help="drive this endpoint instead of starting the bundled reference server",
    )
    group.addoption(
        "--sla-server-args",
        default=None,
        help="flags for the bundled reference server (quoted string)",
    )
    group.addoption(
        "--sla-locust-args", default=None, help="extra flags for every Locust run (quoted string)"
    )
    group.addoption("--sla-baseline", default=None, help="baseline run directory for regressions")
    group.addoption(
        "--sla-max-regression",
        default=None,
        type=parse_max_regression,
        help="largest tolerated regression, e.g. 10%% (default 10%%)",
    )
    group.addoption(
        "--sla-run-dir",
        default=None,
        help="where Locust runs are written (default: pytest's tmp dir)",
    )
    for name, kind, help_text in (
        ("sla_spec", "string", "default SLA spec file"),
        ("sla_allow_inconclusive", "bool", "INCONCLUSIVE skips instead of failing"),
        ("sla_host", "string", "external endpoint to drive"),
        ("sla_server_args", "string", "flags for the bundled reference server"),
        ("sla_locust_args", "string", "extra flags for every Locust run"),
        ("sla_baseline", "string", "baseline run directory"),
        ("sla_max_regression", "string", "largest tolerated regression, e.g. 10%"),
        ("sla_run_dir", "string", "where Locust runs are written"),
    ):
        parser.addini(name, help_text, type=kind, default=None)  # type: ignore[arg-type]


def pytest_configure(config: pytest.Config) -> None:
    # Bad settings are one usage error now, not an error in every test that uses them.
    try:
        _max_regression(_setting(config, "sla_max_regression"))
    except ValueError as exc:
        raise pytest.UsageError(f"sla_max_regression: {exc}") from None
    baseline = _setting(config, "sla_baseline")
    if baseline and not Path(baseline).is_dir():
        raise pytest.UsageError(f"--sla-baseline: {baseline} is not a run directory")
    config.addinivalue_line(
        "markers", "sla_spec(path=None): judge the test's run against each objective of the spec"
    )


def _setting(config: pytest.Config, name: str) -> Any:
    value = config.getoption(name)
    return value if value is not None else config.getini(name)


@dataclass(frozen=True)
class SlaObjective:
    """One objective of a spec, handed to a test by the ``sla_objective`` fixture."""

    spec: Spec
    index: int
    allow_inconclusive: bool
    _verdicts: dict[tuple[str, str], Verdict]

    def check(self, run: Run) -> None:
        key = (self.spec.source, str(run.path))
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts[key] = evaluate(self.spec, run)
            write_verdict(run.path, verdict)
        result = verdict.objectives[self.index]
        suffix = " [load generator saturated: figures not trustworthy]" if verdict.saturated else ""
        if verdict.incomplete:
            suffix += f" [incomplete run, never a PASS: {'; '.join(verdict.incomplete)}]"
        if verdict.disturbed:
            suffix += f" [load generator disturbed, never a PASS: {'; '.join(verdict.disturbed)}]"
        if result.status is Status.FAIL:
            pytest.fail(result.message + suffix, pytrace=False)
        if verdict.incomplete or verdict.disturbed:  # not excused by --sla-allow-inconclusive
            pytest.fail(f"INCONCLUSIVE {result.message}{suffix}", pytrace=False)
        if result.status is Status.INCONCLUSIVE:
            if self.allow_inconclusive:
                pytest.skip(f"INCONCLUSIVE {result.message}")
            pytest.fail(f"INCONCLUSIVE {result.message}{suffix}", pytrace=False)
        if verdict.saturated:
            pytest.fail(f"{result.message}{suffix}", pytrace=False)


def _spec_of(metafunc: pytest.Metafunc) -> Spec:
    marker = metafunc.definition.get_closest_marker("sla_spec")
    path = (marker.args[0] if marker and marker.args else None) or (
        marker.kwargs.get("path") if marker else None
    )
    path = path or _setting(metafunc.config, "sla_spec")
    if not path:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: uses sla_objective but has no "
            "@pytest.mark.sla_spec(PATH) and no --sla-spec"
        )
    resolved = Path(path)
    if not resolved.is_absolute():
        resolved = Path(metafunc.config.rootpath) / resolved
    return load_spec(resolved)


_VERDICTS: dict[tuple[str, str], Verdict] = {}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sla_objective" in metafunc.fixturenames:
        try:
            spec = _spec_of(metafunc)
        except (SpecError, pytest.UsageError) as exc:
            # Raised here it would be a collection error with a traceback; collected, it
            # becomes one usage error once collection is done.
            metafunc.config.stash.setdefault(_SPEC_ERRORS, []).append(str(exc))
            metafunc.parametrize("sla_objective", [], ids=[])
            return
        allow = bool(_setting(metafunc.config, "sla_allow_inconclusive"))
        params = [SlaObjective(spec, i, allow, _VERDICTS) for i in range(len(spec.objectives))]
        ids = [o.label for o in spec.objectives]
        metafunc.parametrize("sla_objective", params, ids=ids)
    if "sla_metric_change" in metafunc.fixturenames:
        labels = _comparison_labels()
        metafunc.parametrize("sla_metric_change", labels, ids=labels, indirect=True)


_SPEC_ERRORS = pytest.StashKey[list[str]]()


def pytest_collection_finish(session: pytest.Session) -> None:
    errors = session.config.stash.get(_SPEC_ERRORS, [])
    if errors:
        raise pytest.UsageError("\n".join(dict.fromkeys(errors)))


def _comparison_labels() -> list[str]:
    return [f"{stat} {metric}" if stat else metric for metric, stat in DEFAULT_METRICS]


@pytest.fixture(scope="session")
def sla_server(pytestconfig: pytest.Config) -> Iterator[str]:
    """The URL under test: ``--sla-host``, or the bundled reference server started once."""
    host = _setting(pytestconfig, "sla_host")
    if host:
        yield host
        return
    args = shlex.split(_setting(pytestconfig, "sla_server_args") or "")
    try:
        server = ServerProcess(args=args).start()
    except ServerStartError as exc:
        raise pytest.UsageError(f"--sla-server-args {' '.join(args)!r}: {exc}") from None
    try:
        yield server.url
    finally:
        server.stop()


class LocustRunError(Exception):
    pass


@pytest.fixture(scope="session")
def sla_locust(
    pytestconfig: pytest.Config, sla_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Run]:
    """Run a scenario with Locust (a subprocess) and return the loaded run directory.

    ``sla_locust(scenario, *, users=8, spawn_rate=None, run_time="10s", warmup="0s",
    extra=())`` — ``scenario`` is a name in loadtests/scenarios or a locustfile path.
    """
    root_setting = _setting(pytestconfig, "sla_run_dir")
    root = Path(root_setting) if root_setting else tmp_path_factory.mktemp("sla-runs")
    common = shlex.split(_setting(pytestconfig, "sla_locust_args") or "")
    counter = iter(range(1_000_000))

    def run(
        scenario: str,
        *,
        users: int = 8,
        spawn_rate: float | None = None,
        run_time: str = "10s",
        warmup: str = "0s",
        extra: tuple[str, ...] | list[str] = (),
        timeout_s: float = 600.0,
    ) -> Run:
        locustfile = SCENARIOS / f"{scenario}.py" if "/" not in scenario else Path(scenario)
        run_dir = _new_dir(root, counter, locustfile.stem)
        cmd = [
            sys.executable, "-m", "locust", "-f", str(locustfile), "--headless",
            "--host", sla_server, "-u", str(users), "-r", str(spawn_rate or users),
            "-t", parse_run_time(run_time), "--warmup", warmup, "--run-dir", str(run_dir),
            "--only-summary", *common, *extra,
        ]  # fmt: skip
        env = {**os.environ, EXACT_RUN_DIR_ENV: "1"}  # Locust writes there or fails
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
        return _load_or_fail(run_dir, scenario, proc)

    return run


def _new_dir(root: Path, counter: Iterator[int], stem: str) -> Path:
    """The next ``NNN-<stem>`` under ``root`` that this call creates: a run directory left by
    an earlier session is never read back as this one's."""
    root.mkdir(parents=True, exist_ok=True)
    while True:
        path = root / f"{next(counter):03d}-{stem}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def _load_or_fail(run_dir: Path, scenario: str, proc: subprocess.CompletedProcess[str]) -> Run:
    """The run Locust wrote, or a failed test showing the end of its output."""
    try:
        return load_run(run_dir)
    except RunDirError as exc:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        pytest.fail(
            f"Locust run of {scenario} left no run directory ({exc}); exit {proc.returncode}:\n"
            + "\n".join(tail),
            pytrace=False,
        )


@pytest.fixture(scope="session")
def sla_baseline(pytestconfig: pytest.Config) -> Run | None:
    path = _setting(pytestconfig, "sla_baseline")
    if not path:
        return None
    try:
        return load_run(path)
    except RunDirError as exc:
        raise pytest.UsageError(f"--sla-baseline: {exc}") from None


def _max_regression(raw: object) -> float:
    """The option's value (parsed already: 0.0 for "0%" is no tolerance, not the default)
    or the ini's text; 10% when neither is set."""
    if raw is None or raw == "":
        return 0.10
    return parse_max_regression(raw) if isinstance(raw, str) else float(raw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SlaMetricChange:
    """One compared metric, handed to a test by the ``sla_metric_change`` fixture."""

    label: str
    baseline: Run | None
    max_regression: float
    allow_inconclusive: bool
    _cache: dict[str, Comparison]

    def check(self, run: Run) -> None:
        if self.baseline is None:
            pytest.skip("no --sla-baseline given")
        comparison = self._cache.get(str(run.path))
        if comparison is None:
            comparison = compare(self.baseline, run, max_regression=self.max_regression,
                                 confidence=0.95)  # fmt: skip
            self._cache[str(run.path)] = comparison
        change = _find(comparison, self.label)
        if change.verdict is Change.REGRESSED:
            pytest.fail(change.message, pytrace=False)
        # As the objectives: an untrustworthy pair never passes, whatever the options say.
        reasons = list(comparison.untrusted)
        for role, flag in (("baseline", comparison.baseline_saturated),
                           ("candidate", comparison.candidate_saturated)):  # fmt: skip
            if flag:
                reasons.append(f"the {role} run's load generator was saturated")
        if reasons:
            pytest.fail(f"{change.message} [never a pass: {'; '.join(reasons)}]", pytrace=False)
        if change.verdict is Change.INCONCLUSIVE:
            if self.allow_inconclusive:
                pytest.skip(change.message)
            pytest.fail(change.message, pytrace=False)


def _find(comparison: Comparison, label: str) -> MetricChange:
    for change in comparison.changes:
        if change.label == label:
            return change
    raise LookupError(f"{label} was not compared")


_COMPARISONS: dict[str, Comparison] = {}


@pytest.fixture
def sla_metric_change(
    request: pytest.FixtureRequest, sla_baseline: Run | None, pytestconfig: pytest.Config
) -> SlaMetricChange:
    raw = _setting(pytestconfig, "sla_max_regression")
    try:
        # The command line's value comes parsed (0.0 for "0%": no tolerance, not the default).
        max_regression = _max_regression(raw)
    except ValueError as exc:
        raise pytest.UsageError(f"sla_max_regression: {exc}") from None
    allow = bool(_setting(pytestconfig, "sla_allow_inconclusive"))
    return SlaMetricChange(request.param, sla_baseline, max_regression, allow, _COMPARISONS)
