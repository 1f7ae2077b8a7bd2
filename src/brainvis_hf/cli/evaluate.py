"""`brainvis evaluate` (placeholder until its issue lands: registers nothing)."""

from __future__ import annotations


def register(subparsers) -> None:  # noqa: ARG001 - replaced by the real sub-command
    return None
