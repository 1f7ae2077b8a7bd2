"""``brainvis demo``: the whole chain on synthetic EEG, offline, on a CPU (see brainvis_hf.apps.demo)."""

from __future__ import annotations

import argparse
import sys

from ._threads import add_threads_argument

DESCRIPTION = """\
Run BrainVis end to end with no download and no GPU: synthesise an EEG-ImageNet-format data set,
prepare it, compute CLIP targets, train every stage (tiny preset), assemble a BrainVisPipeline,
generate images for test recordings, evaluate them and write a report folder (report.html,
the saved pipeline with its model card, every run). A few minutes on 2 CPU cores; --quick takes
well under a minute. The diffusion part is a small Stable Diffusion trained on the demo's
synthetic class images, shipped in the package (--train-diffusion retrains it, 10-20 min);
--sd-model uses real Stable Diffusion weights where they can be downloaded. The report's
generation accuracy compares images from test EEG with two controls: the oracle class name and
EEG shuffled across trials.

The console gets one line per phase (and a progress bar for training and generation); the
libraries' output (Trainer logs, loading reports) goes to OUT/logs/demo.log unless --verbose.
Ctrl-C stops the run (exit status 130); --resume continues it after its last finished phase."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on synthetic data and write an HTML report",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", default="brainvis-demo", help="report folder to write (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, training and generation (default: 0)")
    parser.add_argument("--quick", action="store_true", help="a much smaller run (for tests and a first look)")
    parser.add_argument(
        "--sd-model",
        default=None,
        metavar="REPO_OR_DIR",
        help="Stable Diffusion v1.x weights (Hub repo id or folder) instead of tiny random ones, "
        "e.g. stable-diffusion-v1-5/stable-diffusion-v1-5 (needs a download; a GPU is advisable)",
    )
    parser.add_argument(
        "--classifier", default=None, metavar="REPO_OR_DIR",
        help="image classifier for GA/IS (default: the demo's image classifier shipped in the package)",
    )
    parser.add_argument(
        "--feature-extractor", default=None, metavar="REPO_OR_DIR",
        help="FID feature extractor (default: a tiny random one built in code)",
    )
    parser.add_argument(
        "--train-diffusion", action="store_true",
        help="train the small diffusion model and the image classifier on the demo's data instead of loading "
        "the shipped ones (10-20 min on a CPU)",
    )
    parser.add_argument("--device", default=None, help="device for generation and evaluation (default: cuda if available)")
    add_threads_argument(parser, default=1)
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier demo run in --output")
    parser.add_argument(
        "--resume", action="store_true",
        help="continue the run in --output after its last finished phase (same options as that run)",
    )
    parser.add_argument(
        "--verbose", action="store_true",
        help="also print the libraries' output (Trainer log dicts, progress bars, loading reports)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..apps.demo import DemoInterrupted, run_demo

    try:
        result = run_demo(
            args.output,
            seed=args.seed,
            quick=args.quick,
            sd_model=args.sd_model,
            classifier=args.classifier,
            feature_extractor=args.feature_extractor,
            device=args.device,
            num_threads=args.threads,
            overwrite=args.overwrite,
            resume=args.resume,
            verbose=args.verbose,
            train_diffusion=args.train_diffusion,
        )
    except FileExistsError as err:  # an earlier run in --output: a user error, no traceback
        raise ValueError(str(err)) from err
    except DemoInterrupted as err:  # Ctrl-C: one line, the shell's status for SIGINT
        print(f"brainvis demo: {err}", file=sys.stderr)
        return 130
    print(result.report_path)
    return 0
