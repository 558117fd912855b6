"""`freeze_startup_heap`: what serve and `pushsvc dev` call once the application has started.

Each case runs in a fresh interpreter, so freezing never reaches the test
process's own heap.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

_CASE = textwrap.dedent(
    """
    import gc, weakref
    from pushsvc.bootstrap import freeze_startup_heap

    class Node:
        pass

    def cycle():
        a, b = Node(), Node()
        a.other, b.other = b, a
        return weakref.ref(a)

    kept = Node()
    left_over = cycle()  # unreachable garbage from "startup"
    gc.disable()  # nothing collects it but freeze_startup_heap itself
    frozen = freeze_startup_heap()
    print("frozen", frozen, gc.get_freeze_count())
    print("left over collected", left_over() is None)
    print("kept frozen", gc.is_tracked(kept) and not any(o is kept for o in gc.get_objects()))
    later = cycle()
    gc.collect()
    print("later collected", later() is None)
    """
)


@pytest.fixture(scope="module")
def lines() -> list[str]:
    done = subprocess.run([sys.executable, "-c", _CASE], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.splitlines()


def test_it_freezes_what_is_alive_and_says_how_much(lines: list[str]) -> None:
    _, reported, counted = lines[0].split()
    assert int(reported) == int(counted) > 1000  # the imported modules at least


def test_the_garbage_startup_left_is_collected_not_frozen(lines: list[str]) -> None:
    assert lines[1] == "left over collected True"


def test_live_objects_leave_the_collectors_walks(lines: list[str]) -> None:
    assert lines[2] == "kept frozen True"


def test_garbage_made_after_startup_is_still_collected(lines: list[str]) -> None:
    assert lines[3] == "later collected True"
