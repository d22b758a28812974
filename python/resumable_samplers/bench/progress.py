"""Progress of a run on stderr: a live bar on a terminal, one line per step elsewhere.

With tqdm installed the bar is tqdm's; without it a bar is drawn in place with ``\\r``. When
stderr is not a terminal (a log file, CI) each step gets its own line, ``[k/N] label ... note``.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import time
from typing import Any, TextIO

BAR_WIDTH = 24
"""Characters of the hand-drawn bar between its brackets."""


class Progress:
    """A progress display for ``total`` steps.

    Args:
        total: the number of steps.
        stream: where to draw (default: ``sys.stderr``).
        live: draw a bar in place; by default, when ``stream`` is a terminal.
        use_tqdm: use tqdm's bar when it is installed and the bar is live (default: yes).
    """

    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        *,
        live: bool | None = None,
        use_tqdm: bool = True,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._total = total
        self._done = 0
        self._label = ""
        self._started = time.monotonic()
        self._live = self._stream.isatty() if live is None else live
        self._bar: Any = None
        if self._live and use_tqdm:
            try:
                tqdm = importlib.import_module("tqdm").tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=total, unit="run", file=self._stream, dynamic_ncols=True)

    def start(self, label: str) -> None:
        """A step begins."""
        self._label = label
        if self._bar is not None:
            self._bar.set_description(label)
        elif self._live:
            self._draw()
        else:
            self._stream.write(f"[{self._done + 1}/{self._total}] {label} ...")
            self._stream.flush()

    def finish(self, note: str, message: str | None = None) -> None:
        """The step ended with ``note`` (e.g. ``ok (1.2 s)``).

        ``message`` is printed above a live bar, so that skips and failures stay visible;
        without a live bar the note ends the step's own line.
        """
        self._done += 1
        if self._bar is not None:
            if message:
                self._bar.write(message, file=self._stream)
            self._bar.update(1)
        elif self._live:
            if message:
                self._clear()
                self._stream.write(message + "\n")
            self._draw()
        else:
            self._stream.write(f" {note}\n")
            self._stream.flush()

    def close(self) -> None:
        """Remove the bar (a line-per-step display has nothing to remove)."""
        if self._bar is not None:
            self._bar.close()
        elif self._live:
            self._clear()

    def _draw(self) -> None:
        filled = BAR_WIDTH * self._done // max(self._total, 1)
        elapsed = int(time.monotonic() - self._started)
        line = (
            f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self._done}/{self._total} "
            f"{elapsed // 60}:{elapsed % 60:02d} {self._label}"
        )
        width = shutil.get_terminal_size().columns - 1
        self._stream.write("\r" + line[:width].ljust(width))
        self._stream.flush()

    def _clear(self) -> None:
        width = shutil.get_terminal_size().columns - 1
        self._stream.write("\r" + " " * width + "\r")
        self._stream.flush()
