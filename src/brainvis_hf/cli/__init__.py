"""The ``brainvis`` command line: one command, one sub-command per job.

Each sub-command lives in its own module exposing ``register(subparsers)``; the handler it sets
imports the heavy libraries only when it runs, so ``brainvis --help`` stays quick. Every
sub-command is a thin wrapper over a library function with the same arguments.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from typing import Sequence

# sub-command modules, in the order they are listed by --help
_NO_VERIFY_ENV = "BRAINVIS_NO_VERIFY"  # read by brainvis_hf.data.prepare.load_prepared_dataset
_COMMAND_MODULES = ("data", "train", "generate", "evaluate", "convert", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brainvis",
        description="BrainVis: EEG -> image reconstruction with Hugging Face models and pipelines.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"brainvis-hf {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error (normally one line)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the sha256 check of prepared Parquet shards against checksums.json (faster loads)")  # fmt: skip
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(f".{name}", __name__).register(subparsers)
    _add_global_flags(subparsers)
    return parser


def _add_global_flags(subparsers) -> None:
    """Accept --debug / --no-verify after the sub-command too (``brainvis train ... --debug``)."""
    for sub in dict.fromkeys(subparsers.choices.values()):
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            _add_global_flags(nested[0])
            continue
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        sub.add_argument("--no-verify", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _prepare_command(args: argparse.Namespace) -> None:
    """Wrap ``args.func`` so that it runs with the command's torch threads (``--threads``) and the
    BrainVis Auto classes registered; both are done here, not at import, to keep ``--help`` quick.
    The process's thread settings and environment are restored afterwards (in-process calls)."""
    func = args.func

    def run(args: argparse.Namespace):
        from ._threads import apply_num_threads, resolve_num_threads

        saved_env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
        # torch already imported (an in-process call): its thread count is restored afterwards
        saved_threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
        if hasattr(args, "default_threads"):
            args.threads = apply_num_threads(resolve_num_threads(args.threads, args.default_threads))
        from .. import models  # noqa: F401  (registers the Auto classes; skipped at import by the CLI)

        try:
            return func(args)
        finally:
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            if saved_threads is not None:
                sys.modules["torch"].set_num_threads(saved_threads)

    args.func = run


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``brainvis`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = os.environ.get(_NO_VERIFY_ENV)
    if args.no_verify:
        os.environ[_NO_VERIFY_ENV] = "1"
    _prepare_command(args)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        print(f"brainvis {args.command}: interrupted; files already finished are kept: rerun the same command to "
              "resume (see docs/reliability.md).", file=sys.stderr)  # fmt: skip
        return 130
    except Exception as err:  # every error is one line: what, which file, what to do; --debug: traceback
        from ._checks import error_line, exit_code

        if args.debug:
            traceback.print_exc()
        print(f"brainvis {args.command}: error: {error_line(err)}", file=sys.stderr)
        return exit_code(err)
    finally:
        if args.no_verify:
            if previous is None:
                os.environ.pop(_NO_VERIFY_ENV, None)
            else:
                os.environ[_NO_VERIFY_ENV] = previous
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
