from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reports import render_capacity_comparison, render_capacity_report, write_capacity_report
from reports.__main__ import main
from reports.capacity_pieces import money
from reports.errors import ReportError
from sla.files.capacity import CapacityError
from tests.capacity_helpers import capacity_result, run_name, write_sweep
from tests.reports import steady, write_run

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = "<script>alert('x')</script>"


def _rows(html_text: str, section: str) -> list[str]:
    """The body rows of the table in ``<section id=section>``."""
    match = re.search(f'<section id="{section}">(.*?)</section>', html_text, re.S)
    assert match, f"no section {section}"
    return re.findall(r"<tr[^>]*>.*?</tr>", match.group(1).split("<tbody>")[1], re.S)


def _cells(row: str) -> list[str]:
    return re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)


def test_the_headline_gives_capacity_bracket_precision_knee_and_cost(tmp_path: Path) -> None:
    text = render_capacity_report(write_sweep(tmp_path / "sweep"))
    assert 'id="verdict-badge">capacity found<' in text
    assert "capacity 24.675 req/s: the SLA holds at 24.675 req/s, fails at 26.909" in text
    assert '<b id="capacity-value">24.675 req/s</b>' in text
    assert (
        "highest PASS 24.675 req/s (step 10, PASS) · lowest FAIL 26.909 req/s (step 9, FAIL)"
    ) in text
    assert "<dt>Precision reached</dt><dd>9.1%</dd>" in text
    assert (
        "<dt>Knee</dt><dd>16 req/s (step 5: 15.900 req/s), where p90 latency_ms starts to "
        "climb</dd>"
    ) in text
    assert "<dt>Cost per 1M output tokens</dt><dd>$0.2214</dd>" in text
    assert "<dt>Cost per 1k requests</dt><dd>$0.02834</dd>" in text
    assert "$2.50/hour, at 24.675 req/s: 24.500 req/s, 3136.000 output tok/s" in text
    assert "<title>slabench capacity: chat (24.675 req/s)</title>" in text


def test_without_cost_or_knee_the_headline_says_so(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path / "s", capacity_result(cost=None, knee=None))
    text = render_capacity_report(sweep)
    assert "Cost per" not in text and "<dt>Knee</dt><dd>none found</dd>" in text


def test_a_knee_without_a_metric_or_step_says_only_its_load(tmp_path: Path) -> None:
    older = capacity_result(knee={"load": 16.0, "step": 5})  # before capacity.json named it
    text = render_capacity_report(write_sweep(tmp_path / "a", older))
    assert "<dt>Knee</dt><dd>16 req/s (step 5: 15.900 req/s)</dd>" in text
    odd = capacity_result(knee={"load": 3.0, "step": 99, "metric": HOSTILE})
    text = render_capacity_report(write_sweep(tmp_path / "b", odd))
    assert "<dt>Knee</dt><dd>3 req/s, where &lt;script&gt;alert(" in text


def test_the_step_table_has_a_row_per_step_with_its_numbers_and_run(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path / "sweep", run_reports={10})
    rows = _rows(render_capacity_report(sweep), "steps")
    assert len(rows) == 10
    assert rows[7].startswith('<tr class="ERROR">') and rows[5].startswith('<tr class="FAIL">')
    last = _cells(rows[9])
    assert rows[9].startswith('<tr class="PASS capacity">')
    assert last[:13] == [
        "10",
        "bisect",
        "24.675 req/s",
        f"{24.675 * 0.98:.3f}",
        "PASS (capacity)",
        "24.500",
        f"{24.5 * 0.991:.3f}",
        "99.1000%",
        "0.0000%",
        "430.000",
        "940.000",
        "188.000",
        f"{940 / 60:.3f}",
    ]
    assert last[13:16] == ["30.00 s", "no", ""]
    assert last[16] == f'<a href="{run_name(10, 24.675)}/report.html">{run_name(10, 24.675)}</a>'
    assert _cells(rows[0])[16] == run_name(1, 1.0)  # no report.html: the name only
    assert _cells(rows[4])[4] == "PASS (knee)" and _cells(rows[8])[4] == "FAIL (lowest fail)"
    errored = _cells(rows[7])
    assert errored[3:6] == ["n/a", "ERROR", "n/a"]
    assert errored[15] == "connection refused: the server restarted"


def test_run_links_are_relative_to_where_the_report_is_written(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path / "sweep", run_reports={1})
    (tmp_path / "out").mkdir()
    path = write_capacity_report(sweep, tmp_path / "out" / "cap.html")
    link = f'<a href="../sweep/{run_name(1, 1.0)}/report.html">'
    assert link in path.read_text(encoding="utf-8")
    assert write_capacity_report(sweep) == sweep / "report.html"


def test_failing_steps_say_why(tmp_path: Path) -> None:
    text = render_capacity_report(write_sweep(tmp_path / "sweep"))
    assert "<li>Step 6 (FAIL): p99 latency_ms 2400.0 ms vs limit 1000 ms</li>" in text
    assert "<li>Step 9 (FAIL): p99 latency_ms 1250.0 ms vs limit 1000 ms</li>" in text
    assert "Step 10 (" not in text and "Step 8 (" not in text


def test_settings_and_spec_are_in_details(tmp_path: Path) -> None:
    text = render_capacity_report(write_sweep(tmp_path / "sweep"))
    details = text.split('<section id="details">')[1]
    assert "&quot;max_load&quot;: 64.0" in details and "&quot;chat-sla&quot;" in details


def test_every_string_from_the_file_is_escaped(tmp_path: Path) -> None:
    result = capacity_result(
        scenario=HOSTILE, message=HOSTILE, target_url=HOSTILE, settings={"x": HOSTILE}
    )
    result["spec"]["name"] = HOSTILE
    result["steps"][7]["error"] = HOSTILE
    result["steps"][0]["runs"] = [HOSTILE]
    result["steps"][5]["objectives"][0]["message"] = HOSTILE
    text = render_capacity_report(write_sweep(tmp_path / "sweep", result))
    assert HOSTILE not in text and "alert(" not in text.replace("&lt;script&gt;alert(", "")
    assert "<title>slabench capacity: &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert text.count("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;") >= 8


@pytest.mark.parametrize(
    ("outcome", "words"),
    [
        ("generator_saturated", "would be the generator&#x27;s, not the server&#x27;s"),
        ("budget_exhausted", "ran out of budget before reaching the precision asked"),
        ("unresolved", "could not resolve a capacity"),
        ("interrupted", "was interrupted"),
    ],
)
def test_an_untrustworthy_outcome_gets_a_warning_banner(
    tmp_path: Path, outcome: str, words: str
) -> None:
    result = capacity_result(outcome=outcome)
    result["steps"][6]["saturated"] = outcome == "generator_saturated"
    result["steps"].pop(7)  # no ERROR step: the outcome's banner alone
    text = render_capacity_report(write_sweep(tmp_path / "sweep", result))
    banners = re.findall(r'<div class="warning bad" role="alert">(.*?)</div>', text)
    assert len(banners) == 1 and words in banners[0]
    assert 'class="badge INCONCLUSIVE" id="verdict-badge"' in text
    if outcome == "generator_saturated":
        assert "(step 7)" in banners[0]


def test_a_clean_search_has_no_banner_and_an_errored_step_has_one(tmp_path: Path) -> None:
    clean = capacity_result()
    clean["steps"].pop(7)
    assert 'role="alert"' not in render_capacity_report(write_sweep(tmp_path / "a", clean))
    text = render_capacity_report(write_sweep(tmp_path / "b"))
    banners = re.findall(r'<div class="warning bad" role="alert">(.*?)</div>', text)
    assert banners == [
        "1 step(s) errored and are left out of the figures (step 8: connection refused: "
        "the server restarted)."
    ]


@pytest.mark.parametrize(
    ("overrides", "capacity", "badge"),
    [
        ({"outcome": "sla_holds_at_max", "lowest_fail": None}, "≥ 24.675 req/s", "PASS"),
        ({"outcome": "sla_fails_at_min", "capacity": None}, "none", "FAIL"),
    ],
)
def test_one_sided_outcomes(
    tmp_path: Path, overrides: dict[str, Any], capacity: str, badge: str
) -> None:
    text = render_capacity_report(write_sweep(tmp_path / "s", capacity_result(**overrides)))
    assert f'<b id="capacity-value">{capacity}</b>' in text
    assert f'class="badge {badge}" id="verdict-badge"' in text


def test_money_keeps_four_significant_digits_and_cents() -> None:
    assert [money(x) for x in (2.5, 0.22144, 0.000283446, 1234.5, 0.0, None)] == [
        "$2.50",
        "$0.2214",
        "$0.0002834",
        "$1,234.50",
        "$0.00",
        "n/a",
    ]


def _comparison_sweeps(tmp_path: Path) -> list[Path]:
    bigger = capacity_result(capacity={"load": 26.909, "step": 9}, lowest_fail=None)
    bigger["cost"]["per_1m_output_tokens"] = 0.5
    bigger["cost"]["per_1k_requests"] = 0.01
    saturated = capacity_result(outcome="generator_saturated", capacity={"load": 32, "step": 6})
    saturated["cost"]["per_1m_output_tokens"] = 0.01  # cheapest, but not the server's figure
    return [
        write_sweep(tmp_path / "base", run_reports={1}),
        write_sweep(tmp_path / "big", bigger),
        write_sweep(tmp_path / "sat", saturated),
    ]


def test_comparison_has_a_row_per_sweep_and_marks_the_best(tmp_path: Path) -> None:
    sweeps = _comparison_sweeps(tmp_path)
    (sweeps[0] / "report.html").write_text("x")
    text = render_capacity_comparison(sweeps, out_dir=tmp_path)
    rows = [_cells(r) for r in _rows(text, "sweeps")]
    assert [r[0] for r in rows] == ['<a href="base/report.html">base</a>', "big", "sat"]
    assert rows[0][1:7] == [
        "chat",
        "http://127.0.0.1:8000",
        "capacity found",
        "24.675 req/s",
        "26.909 req/s",
        "9.1%",
    ]
    assert (
        rows[0][7] == '<mark class="best" title="lowest cost per 1M output tokens">$0.2214</mark>'
    )
    assert rows[0][9:] == ["940.000", "188.000"]  # the capacity step's p99 latency and TTFT
    assert rows[1][4] == '<mark class="best" title="highest capacity">26.909 req/s</mark>'
    assert rows[1][8] == '<mark class="best" title="lowest cost per 1k requests">$0.01</mark>'
    assert rows[1][9:] == ["1250.000", "250.000"]
    assert rows[2][4] == "32 req/s" and rows[2][7] == "$0.01"  # saturated: never the best
    assert "Highest capacity: big (26.909 req/s)." in text
    assert "sat: The load generator saturated" in text
    assert text.count('<div class="figure"') == 1


def test_comparison_labels_replace_the_names_and_are_escaped(tmp_path: Path) -> None:
    sweeps = _comparison_sweeps(tmp_path)[:2]
    text = render_capacity_comparison(sweeps, ["before", HOSTILE])
    assert [_cells(r)[0] for r in _rows(text, "sweeps")] == [
        "before",
        "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;",
    ]
    assert HOSTILE not in text
    with pytest.raises(ReportError, match="got 1 labels for 2 sweeps; give one per sweep or none"):
        render_capacity_comparison(sweeps, ["one"])


def test_a_run_directory_is_not_a_capacity_result(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", steady(10))
    with pytest.raises(
        CapacityError, match=r"capacity\.json is missing; pass the directory of a capacity search"
    ):
        render_capacity_report(run)


def test_cli_writes_the_report_and_the_comparison(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = write_sweep(tmp_path / "a"), write_sweep(tmp_path / "b")
    assert main(["capacity", str(a)]) == 0 and main(["capacity", str(b)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"capacity report written to {a / 'report.html'}",
        f"capacity report written to {b / 'report.html'}",
    ]
    assert "24.675 req/s" in (a / "report.html").read_text(encoding="utf-8")
    out = tmp_path / "cmp.html"
    argv = ["capacity-compare", str(a), str(b), "--label", "A", "--label", "B", "-o", str(out)]
    assert main(argv) == 0
    assert [_cells(r)[0] for r in _rows(out.read_text(encoding="utf-8"), "sweeps")] == [
        '<a href="a/report.html">A</a>',
        '<a href="b/report.html">B</a>',
    ]
    (a / "report.html").unlink()
    assert main([str(a)]) == 0  # a sweep directory without a command: the capacity report
    assert (a / "report.html").is_file()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["capacity", "/no/such/sweep"], "/no/such/sweep is missing; pass the directory"),
        (["capacity", "{run}"], "capacity.json is missing; pass the directory"),
        (["capacity", "{bad}"], "is not a slabench capacity result"),
        (["capacity", "{sweep}", "-o", "/no/such/dir/x.html"], "is not a directory"),
        (["capacity-compare", "{sweep}", "-o", "{tmp}/x.html"], "at least two sweep"),
        (["capacity-compare", "{sweep}", "{sweep}"], "the following arguments are required: -o"),
        (
            ["capacity-compare", "{sweep}", "{sweep}", "--label", "x", "-o", "{tmp}/x.html"],
            "got 1 labels for 2 sweeps",
        ),
        (["capacity-compare", "{sweep}", "{run}", "-o", "{tmp}/x.html"], "capacity.json is"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = {
        "{sweep}": str(write_sweep(tmp_path / "sweep")),
        "{run}": str(write_run(tmp_path / "run", steady(10))),
        "{tmp}": str(tmp_path),
        "{bad}": str(tmp_path / "bad"),
    }
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "capacity.json").write_text('{"kind": "run"}')
    for key, value in paths.items():
        argv = [a.replace(key, value) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m reports: error: ") and words in err, err
    assert err.count("\n") == 1


def test_python_m_reports_capacity_runs_as_a_program(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path / "sweep")
    proc = subprocess.run(
        [sys.executable, "-m", "reports", "capacity", str(sweep), "-o", str(tmp_path / "r.html")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"capacity report written to {tmp_path / 'r.html'}"
    missing = subprocess.run(
        [sys.executable, "-m", "reports", "capacity", str(tmp_path / "nope")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.count("\n") == 1


def test_why_the_search_failed_or_distrusted_a_step_is_listed(tmp_path: Path) -> None:
    result = capacity_result()
    result["steps"][5]["unsustainable"] = "the backlog grew by 60 requests <b>"
    result["steps"][6]["saturation"] = "its CPU was >= 90% of a core"
    text = render_capacity_report(write_sweep(tmp_path / "s", result))
    step6, step7 = result["steps"][5], result["steps"][6]
    assert (
        f"Step {step6['step']} ({step6['status']}): not sustainable: the backlog grew by 60 "
        "requests &lt;b&gt;" in text
    )
    assert f"Step {step7['step']} ({step7['status']}): load generator saturated: its CPU" in text
