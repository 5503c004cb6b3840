"""What the capacity-search end-to-end tests share: short steps, the KServe MLP target and
SLA spec files written on the fly."""

from __future__ import annotations

from pathlib import Path

QUICK_STEPS = ("--step-time", "3s", "--step-warmup", "1s")
# For tests about something other than saturation: on a busy 2-core machine the sends of an
# open-loop step can run 10 ms late (the default bound), and the step would end saturated.
TOLERANT_STEPS = (*QUICK_STEPS, "--max-send-lag", "250")
KSERVE = ("--kserve-shape", "1,16", "--model", "slabench-mlp")
STATUSES = ("PASS", "FAIL", "INCONCLUSIVE")


def write_spec(path: Path, *objectives: str, confidence: float = 0.9, warmup: str = "0s") -> Path:
    lines = [f"name: {path.stem}", f"confidence: {confidence}", f"warmup: {warmup}", "objectives:"]
    path.write_text("\n".join(lines + [f"  - {o}" for o in objectives]) + "\n")
    return path
