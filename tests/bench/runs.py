"""Running one bench entry point as its README says, for the smoke tests of tests/bench."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
CONTEXT_FIELDS = {"cpu", "cores", "ram_gib", "load_average", "python", "date_utc", "commit", "versions"}
RUN_TIMEOUT_S = 130
"""Per bench run: a little less than its test's timeout, so a hung bench fails with its output rather than pytest's dump."""


def run_bench(args: list[str], out: Path, *, timeout_s: float = RUN_TIMEOUT_S, facts: tuple[str, ...] = ()) -> dict[str, Any]:
    """Runs one bench from the repository root; checks its exit status, header and JSON context.

    Args:
        args: What follows the interpreter: `-m bench.x` or a script, and its options (not `--out`).
        out: Where the bench writes its JSON.
        timeout_s: How long the run may take.
        facts: More text its output must show (a table's title, a ratio's name).
    """
    proc = subprocess.run([sys.executable, *args, "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout_s, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for fact in ("machine:", "date:", "commit:", *facts):
        assert fact in proc.stdout, proc.stdout
    record = dict(json.loads(out.read_text()))
    context = record["context"]
    assert CONTEXT_FIELDS <= set(context), context
    assert context["commit"] and context["commit"] != "unknown", context
    return record
