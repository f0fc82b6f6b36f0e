"""Progress bars that stay readable in a log file: one place for every long loop's tqdm.

On a terminal: tqdm as usual (refreshed twice a second). Otherwise (stderr redirected to a file, a
CI log, a sweep step's log): a plain ASCII line at most every LOG_INTERVAL seconds, each on a line of
its own, instead of carriage-return refreshes that pile up on one line.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

LOG_INTERVAL = 30.0  # seconds between two lines of a bar in a log file


class LogLines:
    """A stream for tqdm in a log file: each refresh on a line of its own
    instead of after a carriage return."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        for part in text.split("\r"):
            if part.strip():
                self.stream.write(part.rstrip("\n") + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable=None, *, disable: bool = False, stream=None, **kw) -> tqdm:
    """tqdm on `stream` (default stderr): live on a terminal, a line per LOG_INTERVAL s in a log file."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return tqdm(iterable, mininterval=0.5, dynamic_ncols=True, file=stream, disable=disable, **kw)
    return tqdm(iterable, mininterval=LOG_INTERVAL, ascii=True, file=LogLines(stream), disable=disable, **kw)
