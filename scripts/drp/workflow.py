"""Helpers for the per-rule scripts: logging into the rule's log file, with tracebacks."""

from __future__ import annotations

import logging
import sys


def setup_logging(snakemake) -> None:
    """Send log records (and an uncaught exception's traceback) to the rule's log file and stderr."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if snakemake.log:
        handlers.append(logging.FileHandler(snakemake.log[0], mode="w"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)

    def log_uncaught(kind, value, traceback):
        logging.getLogger(f"rule {snakemake.rule}").error("failed", exc_info=(kind, value, traceback))

    sys.excepthook = log_uncaught
