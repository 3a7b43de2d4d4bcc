"""Helpers for the per-rule scripts: logging into the rule's log file, with tracebacks, and the job's timing.

``run_stage`` is what every rule script calls: it sets up logging, imports the stage function, calls it, and
logs one ``timing:`` line (seconds from the process start to the import, of the import itself, and of the
work), which ``bench/profile_run.py`` collects from the logs of a finished run.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time

TIMING_PREFIX = "timing:"


def process_age() -> float:
    """Seconds since this process started (interpreter start-up and Snakemake's script preamble included),
    from Linux's /proc (start time in clock ticks since boot); NaN where there is no /proc."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            fields = stat.read().rsplit(")", 1)[1].split()  # after the command name: field 3 onwards
            return float(uptime.read().split()[0]) - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError):
        return float("nan")


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


def run_stage(snakemake, function: str, *args, **kwargs):
    """Call the stage function ``module:name`` with the given arguments, logging its timing."""
    setup_logging(snakemake)
    started = process_age()
    clock = time.perf_counter()
    module_name, _, name = function.partition(":")
    stage = getattr(importlib.import_module(module_name), name)
    imported = time.perf_counter()
    result = stage(*args, **kwargs)
    logging.getLogger(f"rule {snakemake.rule}").info(
        "%s start-up %.2f s, imports %.2f s, work %.2f s", TIMING_PREFIX, started, imported - clock,
        time.perf_counter() - imported)
    return result
