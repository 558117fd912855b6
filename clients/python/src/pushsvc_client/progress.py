"""Progress of a long operator command on stderr: a tqdm bar on a terminal, a plain line every few seconds otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO


def count_lines(path: str) -> int:
    """The file's lines (a last line without a newline counts), read in 1 MiB chunks."""
    lines = 0
    last = b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


class LineProgress:
    """`N of ~TOTAL rows (P%), R rows/s, ETA S s` every `interval_s` seconds, and once at the end."""

    def __init__(self, total: int, out: TextIO, *, interval_s: float = 5.0, prog: str = "pushsvc-client",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._total, self._out, self._interval_s, self._prog, self._clock = total, out, interval_s, prog, clock
        self._done = 0
        self._status = ""
        self._start = self._last = clock()

    def update(self, n: int) -> None:
        """Counts `n` more rows; prints when the interval has passed."""
        self._done += n
        self._maybe_print()

    def status(self, text: str) -> None:
        """What the command is doing while no row moves (waiting, retrying); "" when that is over."""
        self._status = text
        self._maybe_print()

    def write(self, line: str) -> None:
        """A message line (a bad row) of its own."""
        self._out.write(line + "\n")
        self._out.flush()

    def close(self) -> None:
        """Prints the final line."""
        self._status = ""
        self._print(self._clock())

    def _maybe_print(self) -> None:
        now = self._clock()
        if now - self._last >= self._interval_s:
            self._last = now
            self._print(now)

    def _print(self, now: float) -> None:
        elapsed = max(now - self._start, 1e-9)
        rate = self._done / elapsed
        pct = f" ({100 * self._done / self._total:.0f}%)" if self._total else ""
        left = max(self._total - self._done, 0)
        eta = f", ETA {left / rate:.0f} s" if rate and left else ""
        status = f"; {self._status}" if self._status else ""
        self._out.write(f"{self._prog}: {self._done:,} of ~{self._total:,} rows{pct}, {rate:,.0f} rows/s{eta}{status}\n")
        self._out.flush()


BAR_FORMAT = "{percentage:3.0f}%|{bar}| {n:,}/{total:,} rows [{elapsed}<{remaining}, {rate_fmt}]{postfix}"
"""Whole rows with thousands separators (tqdm's unit_scale would show `0.00/20.0k`)."""


class BarProgress:
    """A tqdm bar (rate and ETA) on a terminal; message lines go above it, never into it."""

    def __init__(self, total: int, out: TextIO) -> None:
        from tqdm import tqdm  # the client's one dependency beyond grpc: only this command needs it

        self._out = out
        self._tqdm = tqdm
        self._bar = tqdm(
            total=total, unit=" rows", file=out, dynamic_ncols=True, smoothing=0.1, bar_format=BAR_FORMAT,
        )

    def update(self, n: int) -> None:
        """Counts `n` more rows."""
        # The total is the file's line count when the import began, an estimate:
        # a file that grew since must raise it (past it, tqdm drops the total,
        # which BAR_FORMAT needs).
        if self._bar.total is not None and self._bar.n + n > self._bar.total:
            self._bar.total = self._bar.n + n
        self._bar.update(n)

    def status(self, text: str) -> None:
        """Shown after the bar while no row moves (waiting, retrying); "" clears it."""
        # set_postfix_str redraws at once: the bar shows the wait even though no row moved.
        # tqdm puts ", " before it.
        self._bar.set_postfix_str(text, refresh=True)

    def write(self, line: str) -> None:
        """A message line (a bad row) above the bar: tqdm clears the bar, writes, and redraws it."""
        self._tqdm.write(line, file=self._out)

    def close(self) -> None:
        """Leaves the bar where it ended."""
        self._bar.set_postfix_str("", refresh=False)
        self._bar.close()


class NoProgress:
    """Shows no progress; message lines still go out."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def update(self, n: int) -> None:
        """Does nothing."""

    def status(self, text: str) -> None:
        """Does nothing."""

    def write(self, line: str) -> None:
        """A message line (a bad row)."""
        self._out.write(line + "\n")
        self._out.flush()

    def close(self) -> None:
        """Does nothing."""
