"""``--threads``: how many CPU threads torch (and its OpenMP/MKL runtimes) may use.

Why a default other than torch's: torch starts one busy-waiting OpenMP thread per core. When the
cores are shared with other work, those threads spin while waiting for each other; on a 2-core
machine with another busy process ``brainvis generate`` ran ~60x slower (105 s vs 1.8 s) than with
one thread. The ``brainvis`` command therefore uses ``min(4, available cores)`` threads (1 for the
demo, whose models are tiny), lets idle OpenMP threads sleep (``OMP_WAIT_POLICY=PASSIVE``) and
passes the same limits to sub-processes (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``). ``--threads N``
or an ``OMP_NUM_THREADS`` already set in the environment take precedence.

This module imports nothing heavy: the settings are applied before torch is first imported.
"""

from __future__ import annotations

import argparse
import os

#: the most threads chosen by default: beyond it the small BrainVis models gain little
MAX_DEFAULT_THREADS = 4


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def add_threads_argument(parser: argparse.ArgumentParser, *, default: int | None = None) -> None:
    """Add ``--threads N`` to a sub-command; ``default`` replaces ``min(4, cores)`` (e.g. 1 for the demo)."""
    auto = f"{default}" if default is not None else f"min({MAX_DEFAULT_THREADS}, available cores)"
    parser.add_argument(
        "--threads", type=_positive_int, default=None, metavar="N",
        help=f"CPU threads for torch and its sub-processes (default: $OMP_NUM_THREADS if set, else {auto}; "
        "see docs/threads.md)",
    )
    parser.set_defaults(default_threads=default)


def resolve_num_threads(requested: int | None, default: int | None = None) -> int:
    """``requested`` if given, else a valid ``OMP_NUM_THREADS``, else ``default`` or ``min(4, cores)``."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--threads must be >= 1; got {requested}")
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return int(env)
    return default if default is not None else min(MAX_DEFAULT_THREADS, available_cpus())


def apply_num_threads(num_threads: int) -> int:
    """Limit torch's intra-op threads (and OpenMP/MKL of sub-processes) to ``num_threads``.

    Call it before torch is imported where possible: the OpenMP runtime reads
    ``OMP_WAIT_POLICY`` once, when it loads. Returns ``num_threads``.
    """
    os.environ["OMP_NUM_THREADS"] = str(num_threads)
    os.environ["MKL_NUM_THREADS"] = str(num_threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(num_threads)
    return num_threads
