"""Smoke run of bench/express.py at a tiny size, so it cannot rot (latencies are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
CONTEXT_FIELDS = {"cpu", "cores", "ram_gib", "load_average", "python", "date_utc", "commit", "versions"}

pytestmark = pytest.mark.timeout(150)


def test_express_bench(tmp_path: Path) -> None:
    out = tmp_path / "express.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.express", "-n", "1000", "--tries", "3", "--partition-size", "250", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=130, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for fact in ("machine:", "date:", "commit:"):
        assert fact in proc.stdout, proc.stdout
    record = json.loads(out.read_text())
    assert CONTEXT_FIELDS <= set(record["context"]), record["context"]
    result = record["result"]
    # Every try was timed, idle (the ceiling of the same run) and during the fan-out, which delivered everything.
    assert len(result["idle_s"]) == 3 and len(result["during_fan_out_s"]) == 3, result
    assert result["fan_out_delivered"] == 1000, result
    for row in (result["idle"], result["during_fan_out"]):
        assert 0 < row["p50_s"] <= row["p99_s"] <= row["max_s"], row
