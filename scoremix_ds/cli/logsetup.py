"""Logging for the command line: through ``tqdm.write`` (a log line never cuts through a progress bar), rank 0's
records only (:class:`scoremix_ds.core.processes.MainProcessFilter`), and the level of ``-v`` / ``-q``."""

from __future__ import annotations

import logging
import os
import sys

NOISY = ("httpx", "httpx2", "httpcore", "urllib3", "filelock", "accelerate", "matplotlib")  # WARNING and up only

# Third-party warnings that say nothing a user can act on: torch's note on wrapping a read-only NumPy array (the
# images read from Arrow buffers; the tensors made from them are never written to).
QUIET_WARNINGS = (r"The given NumPy array is not writable",)
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TqdmHandler(logging.StreamHandler):
    """A stream handler that writes through ``tqdm.write`` to the CURRENT ``sys.stderr``, so open bars are cleared
    and redrawn around the line (and a replaced stderr, e.g. a test's capture, is followed)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller (as logging.Handler does)
            self.handleError(record)


def level_for(verbose: int = 0, quiet: int = 0) -> int:
    """``SCOREMIX_LOG_LEVEL`` (default INFO), ten lower per ``-v`` and ten higher per ``-q``.

    >>> level_for(1, 0), level_for(0, 2)
    (10, 40)
    """
    base = logging.getLevelName(os.environ.get("SCOREMIX_LOG_LEVEL", "INFO").upper())
    base = base if isinstance(base, int) else logging.INFO
    return min(logging.CRITICAL, max(logging.DEBUG, base - 10 * verbose + 10 * quiet))


def setup_logging(verbose: int = 0, quiet: int = 0) -> None:
    """Install the handler once, as ``logging.basicConfig`` would: only when the root logger has no handler yet (a
    host's own handlers, e.g. pytest's or a notebook's, are left alone); then set the level (always for -v/-q)."""
    from ..core.processes import MainProcessFilter

    root = logging.getLogger()
    ours = any(isinstance(h, TqdmHandler) for h in root.handlers)
    if not root.handlers:
        handler = TqdmHandler()
        handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
        handler.addFilter(MainProcessFilter())
        root.addHandler(handler)
        ours = True
    level = level_for(verbose, quiet)
    if ours or verbose or quiet:
        root.setLevel(level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, level))
    if level > logging.DEBUG:  # -v -v (DEBUG) shows them again
        import warnings

        for message in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
