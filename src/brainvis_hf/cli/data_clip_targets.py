"""`brainvis data clip-targets` (placeholder until the training issue lands: registers nothing)."""

from __future__ import annotations


def register(subparsers) -> None:  # noqa: ARG001 - replaced by the real sub-command
    return None
