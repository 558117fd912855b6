"""Smoke run of bench/webhooks.py at a tiny size (a receiver down 2 s, backoff shrunk), so it cannot rot.

Its figures (rates, recovery time) are never asserted; what is: the header
facts, and that the JSON accounts for every receipt in every case.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.runs import run_bench

pytestmark = pytest.mark.timeout(150)


def test_webhooks_bench(tmp_path: Path) -> None:
    out = tmp_path / "webhooks.json"
    record = run_bench(["-m", "bench.webhooks", "-n", "300", "--down-s", "2", "--initial-backoff-s", "0.1",
                        "--max-backoff-s", "0.5", "--max-delay-ms", "50"], out)
    rows = {r["case"]: r for r in record["rows"]}
    assert set(rows) == {"none", "up", "down"}
    assert all(r["delivered"] == 300 for r in rows.values())
    for case in ("up", "down"):
        r = rows[case]
        assert (r["received"], r["lost"], r["signatures_ok"]) == (300, 0, True), r
        assert r["duplicates"] <= 100 and r["largest_repeated_batch"] <= 100, r
    assert rows["down"]["posts_refused"] >= 1 and rows["down"]["last_receipt_after_s"] is not None
