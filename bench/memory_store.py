"""What `memory://` holds per registered token and per receipt, against the least any registry could hold.

Each case runs in a fresh child process, so memory freed by one cannot hide
the next one's growth; a case reads its RSS after a full collection before
and after loading (VmRSS, so it counts allocator overhead and fragmentation,
as the gateway's RSS does):

- `tokens`: N tokens as bench/fanout.py makes them (half 64-hex APNs
  tokens, half `bench-{i}` FCM tokens, no user, no topic), loaded through
  `insert_new` in batches of 5,000; then one Send's worth of receipts (a
  draft per token, each with its own `at` and its own provider message id,
  as the dispatcher makes them from real answers), appended in batches of
  500, for the receipt log's bytes per receipt.
- `users`: the same tokens, with a user id on every other token (a user per
  token) and the topic "news" on every tenth.
- `set` (the peer): the same token strings in a plain `set`: no registry
  can hold less than its tokens, and this is what they alone cost.

Usage:
    python -m bench.memory_store [-n 1000000] [--out results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.machine import REPO, run_context
from pushsvc import models
from pushsvc.clock import SystemClock
from pushsvc.providers.apns import ApnsIds
from pushsvc.storage import NotificationDraft, PartitionPlan, ReceiptDraft, TargetQuery, open_stores

CASES = ("set", "tokens", "users")
BATCH = 5000
APP = "bench"


def rss_kib() -> int:
    """This process's resident set size now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def settled_rss_kib() -> int:
    """RSS after a full collection, so garbage does not count."""
    gc.collect()
    return rss_kib()


def registration(i: int, n: int, users: bool) -> models.TokenRegistration:
    """Token i of n: the first half APNs (64 hex digits), the rest FCM, as bench/fanout.py makes them."""
    token, platform = (f"{i:064x}", models.Platform.APNS) if i < n // 2 else (f"bench-{i}", models.Platform.FCM)
    if not users:
        return models.TokenRegistration(APP, token, platform)
    return models.TokenRegistration(APP, token, platform, user_id=f"user-{i}" if i % 2 else "",
                                    topics=("news",) if i % 10 == 0 else ())


_IDS = ApnsIds()
_NAMES = random.Random(20)


def message_id(platform: models.Platform) -> str:
    """A provider message id as a real provider answers it: pushsvc's apns-id, or an FCM message name
    (bench/nginx.py's, with a random 32-hex id)."""
    if platform is models.Platform.APNS:
        return _IDS.next()
    return f"projects/bench/messages/{_NAMES.getrandbits(128):032x}"


def token_string(i: int, n: int) -> str:
    return f"{i:064x}" if i < n // 2 else f"bench-{i}"


async def measure_store(n: int, users: bool) -> dict[str, Any]:
    """Loads n tokens into `memory://`, then appends one receipt per token; RSS around each."""
    clock = SystemClock()
    stores = open_stores("memory://", clock=clock)
    before = settled_rss_kib()
    started = time.process_time()
    for lo in range(0, n, BATCH):
        regs = [registration(i, n, users) for i in range(lo, min(n, lo + BATCH))]
        await stores.tokens.insert_new(regs, clock.now())
    del regs
    load_cpu_s = time.process_time() - started
    loaded = settled_rss_kib()
    counted = await stores.tokens.count_targets(APP, TargetQuery("all"))
    now = clock.now()
    await stores.notifications.create(
        NotificationDraft("bench-note", APP, models.NotificationState.RUNNING, now, n, TargetQuery("all"), {}, now),
        [PartitionPlan(0, (0, models.BUCKETS))],
    )
    logged_before = settled_rss_kib()
    receipts = 0
    expires_at = now + timedelta(days=7)
    async for page in stores.tokens.scan_targets(APP, TargetQuery("all"), (0, models.BUCKETS), None, 500):
        drafts = [ReceiptDraft(t.token, t.platform, t.user_id, models.DeliveryStatus.DELIVERED, message_id(t.platform),
                               200, "", 1, False, clock.now()) for t in page]
        receipts += len(await stores.receipts.append(APP, "bench-note", drafts, expires_at))
    del page, drafts
    logged = settled_rss_kib()
    return {
        "tokens": counted,
        "bytes_per_token": (loaded - before) * 1024 / n,
        "load_cpu_us_per_token": 1e6 * load_cpu_s / n,
        "receipts": receipts,
        "bytes_per_receipt": (logged - logged_before) * 1024 / max(1, receipts),
        "rss_mib": {"before": before / 1024, "loaded": loaded / 1024, "logged": logged / 1024},
    }


def measure_set(n: int) -> dict[str, Any]:
    """The peer: the same token strings in a plain set."""
    before = settled_rss_kib()
    tokens = {token_string(i, n) for i in range(n)}
    held = settled_rss_kib()
    return {"tokens": len(tokens), "bytes_per_token": (held - before) * 1024 / n,
            "rss_mib": {"before": before / 1024, "loaded": held / 1024}}


def child(case: str, n: int) -> dict[str, Any]:
    if case == "set":
        return measure_set(n)
    return asyncio.run(measure_store(n, users=case == "users"))


def run_case(case: str, n: int) -> dict[str, Any]:
    """One case in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-m", "bench.memory_store", "--child", case, "-n", str(n)],
                          cwd=REPO, capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"case {case} failed: {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--tokens", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "pushsvc-bench-memory-store.json")
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.tokens)))
        return 0
    context = run_context(packages=("pushsvc",))
    results = {case: run_case(case, args.tokens) for case in CASES}
    print(f"memory:// registry and receipt log, N = {args.tokens:,} tokens (50% APNs 64-hex, 50% FCM bench-{{i}})")
    print(context.header)
    print(f"{'case':44} {'bytes/token':>12} {'bytes/receipt':>14} {'RSS loaded':>11}")
    rows = (("set: the token strings in a plain set (peer)", "set"),
            ("tokens: as bench/fanout.py registers them", "tokens"),
            ("users: + user id on 1/2, topic on 1/10", "users"))
    for label, case in rows:
        r = results[case]
        per_receipt = f"{r['bytes_per_receipt']:>14,.0f}" if "bytes_per_receipt" in r else f"{'':>14}"
        print(f"{label:44} {r['bytes_per_token']:>12,.0f} {per_receipt} {r['rss_mib']['loaded']:>7,.0f} MiB")
    ratio = results["tokens"]["bytes_per_token"] / results["set"]["bytes_per_token"]
    print(f"registry / plain set of its tokens: {ratio:.2f}x")
    args.out.write_text(json.dumps({"context": context.__dict__, "n": args.tokens, "results": results}, indent=2))
    print(f"results: {args.out}")
    complete = all(results[c]["tokens"] == args.tokens for c in CASES)
    return 0 if complete and all(results[c]["receipts"] == args.tokens for c in ("tokens", "users")) else 1


if __name__ == "__main__":
    raise SystemExit(main())
