"""What the capacity-search end-to-end tests share: short steps, the KServe MLP target and
SLA spec files written on the fly."""

from __future__ import annotations

from pathlib import Path

QUICK_STEPS = ("--step-time", "3s", "--step-warmup", "1s")
KSERVE = ("--kserve-shape", "1,16", "--model", "slabench-mlp")
STATUSES = ("PASS", "FAIL", "INCONCLUSIVE")


def write_spec(path: Path, *objectives: str, confidence: float = 0.9, warmup: str = "0s") -> Path:
    lines = [f"name: {path.stem}", f"confidence: {confidence}", f"warmup: {warmup}", "objectives:"]
    path.write_text("\n".join(lines + [f"  - {o}" for o in objectives]) + "\n")
    return path
