"""Smoke run of bench/fanout.py --locales at a tiny size: both Sends of each pair, and their ratio, are in the JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
CONTEXT_FIELDS = {"cpu", "cores", "ram_gib", "load_average", "python", "date_utc", "commit", "versions"}

pytestmark = pytest.mark.timeout(150)


def test_fanout_locales(tmp_path: Path) -> None:
    n = 400
    out = tmp_path / "fanout.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.fanout", "-n", str(n), "--null-provider", "--metrics", "--locales", "5",
         "--pairs", "2", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=130, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for fact in ("machine:", "date:", "commit:", "localized / unlocalized"):
        assert fact in proc.stdout, proc.stdout
    record = json.loads(out.read_text())
    assert CONTEXT_FIELDS <= set(record["context"]), record["context"]
    runs = record["runs"]
    # Two pairs, the order alternating; every Send delivered to every token, and /metrics counted all four.
    assert [r["kind"] for r in runs] == ["plain", "localized", "localized", "plain"], runs
    assert all((r["targeted"], r["delivered"], r["state"]) == (n, n, "completed") for r in runs), runs
    assert record["result"]["metrics_delivered"] == 4 * n
    locales = record["locales"]
    assert locales["locales"] == 5 and len(locales["plain_cpu_us"]) == len(locales["localized_cpu_us"]) == 2
    assert locales["ratio"] == pytest.approx(locales["localized_median_us"] / locales["plain_median_us"])
