from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from reports.__main__ import main
from sla.files.run import load_run
from sla.files.verdict import write_verdict
from sla.spec import parse_spec
from sla.verdict import evaluate
from tests.reports import steady, write_run
from tests.sla.test_cli import run_into_a_closed_pipe

ROOT = Path(__file__).resolve().parents[2]
SPEC_YAML = """
name: cli
confidence: 0.9
objectives:
  - {metric: latency_ms, stat: p50, max: 1000}
  - {metric: latency_ms, stat: p99.9, max: 1000}
"""


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run", steady(100))


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "sla.yaml"
    path.write_text(SPEC_YAML)
    return path


def test_python_m_reports_writes_report_html_into_the_run(run_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "reports", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = run_dir / "report.html"
    assert proc.stdout.strip() == f"report written to {report}"
    assert 'id="verdict-badge">no SLA<' in report.read_text(encoding="utf-8")


def test_sla_judges_and_o_chooses_the_file(
    run_dir: Path, spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.html"
    assert main([str(run_dir), "-o", str(out), "--sla", str(spec_file), "--window", "2s"]) == 0
    text = out.read_text(encoding="utf-8")
    assert 'id="verdict-badge">INCONCLUSIVE<' in text  # p99.9 of 100 samples cannot be bounded
    assert not (run_dir / "verdict.json").exists()  # reporting does not judge for keeps
    assert not (run_dir / "report.html").exists()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["/no/such/run"], "does not exist"),
        (["{run}", "--sla", "/no/such.yaml"], "cannot read the SLA spec"),
        (["{run}", "--window", "-3s"], "--window"),
        (["{run}", "-o", "/no/such/dir/r.html"], "is not a directory"),
        (["compare", "{run}"], "the following arguments are required"),
        (["compare", "{run}", "{run}", "--max-regression", "10"], "did you mean 10%?"),
        (["junit", "{run}"], "has no verdict.json; pass --sla SPEC"),
        (["{run}/run.json"], "run.json is not a directory"),
        (["{run}", "--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(
    run_dir: Path, argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([a.replace("{run}", str(run_dir)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m reports: error: ") and words in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("command", [[], ["markdown"], ["junit"], ["compare", "{run}"]])
def test_a_malformed_run_json_time_is_one_line_and_exit_2(
    tmp_path: Path, spec_file: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_run(tmp_path / "good", steady(20))
    bad = write_run(tmp_path / "bad", steady(20), meta={"measured_from": "yesterday"})
    argv = [a.replace("{run}", str(good)) for a in command] + [str(bad)]
    argv += ["--sla", str(spec_file)] if command in ([], ["markdown"], ["junit"]) else []
    assert main(argv) == 2
    err = capsys.readouterr().err
    expected = f"{bad / 'run.json'}: measured_from must be a number, got 'yesterday'"
    assert err == f"python -m reports: error: {expected}\n"


@pytest.mark.parametrize("module", ["reports", "loadtests"])
def test_a_closed_stdout_ends_quietly_with_141(run_dir: Path, module: str) -> None:
    # `python -m reports markdown RUN | head` must not end in a BrokenPipeError traceback.
    args = ["markdown", str(run_dir)] if module == "reports" else ["options"]
    result = run_into_a_closed_pipe(module, *args)
    assert (result.returncode, result.stderr) == (141, "")


def test_compare_writes_the_comparison_into_the_candidate(tmp_path: Path) -> None:
    base = write_run(tmp_path / "base", steady(400, latency_s=0.1))
    cand = write_run(tmp_path / "cand", steady(400, latency_s=0.3))
    assert main(["compare", str(base), str(cand), "--max-regression", "5%"]) == 0
    text = (cand / "comparison.html").read_text(encoding="utf-8")
    assert "REGRESSED (" in text and "max regression" not in text
    assert "Tolerated worsening 5%" in text


def test_junit_uses_verdict_json_and_allow_inconclusive(run_dir: Path, spec_file: Path) -> None:
    run = load_run(run_dir)
    write_verdict(
        run_dir,
        evaluate(
            parse_spec(
                {
                    "name": "j",
                    "confidence": 0.9,
                    "objectives": [{"metric": "latency_ms", "stat": "p99.9", "max": 1000}],
                }
            ),
            run,
        ),
    )
    assert main(["junit", str(run_dir)]) == 0
    root = ET.parse(run_dir / "junit.xml").getroot()
    assert (root.attrib["tests"], root.attrib["failures"]) == ("1", "1")
    out = run_dir / "j2.xml"
    assert main(["junit", str(run_dir), "-o", str(out), "--allow-inconclusive"]) == 0
    assert ET.parse(out).getroot().attrib["skipped"] == "1"
    assert main(["junit", str(run_dir), "-o", str(out), "--sla", str(spec_file)]) == 0
    assert ET.parse(out).getroot().attrib["tests"] == "2"


def test_markdown_goes_to_stdout(
    run_dir: Path, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["markdown", str(run_dir), "--sla", str(spec_file)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("### slabench: chat: ⚠️ INCONCLUSIVE (SLA cli)")
    assert "| p50 latency\\_ms |" in out
    assert json.dumps("no SLA") not in out
