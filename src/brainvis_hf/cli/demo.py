"""``brainvis demo``: the whole chain on synthetic EEG, offline, on a CPU (see brainvis_hf.demo)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Run BrainVis end to end with no download and no GPU: synthesise an EEG-ImageNet-format data set,
prepare it, compute CLIP targets, train every stage (tiny preset), assemble a BrainVisPipeline,
generate images for test recordings, evaluate them and write a report folder (report.html,
the saved pipeline with its model card, every run). A few minutes on 2 CPU cores; --quick takes
well under a minute. With tiny random diffusion weights the images are noise; --sd-model uses
real Stable Diffusion weights where they can be downloaded."""


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
        help="ImageNet image classifier for GA/IS (default: a tiny random one built in code)",
    )
    parser.add_argument(
        "--feature-extractor", default=None, metavar="REPO_OR_DIR",
        help="FID feature extractor (default: a tiny random one built in code)",
    )
    parser.add_argument("--device", default=None, help="device for generation and evaluation (default: cuda if available)")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="CPU threads for torch during the run (default: 1 on a CPU unless OMP_NUM_THREADS is set: "
        "the models are tiny, and on a CPU shared with other work more threads oversubscribe the cores)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier demo run in --output")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1; got {args.threads}")
    from ..demo import run_demo

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
        )
    except FileExistsError as err:  # an earlier run in --output: a user error, no traceback
        raise ValueError(str(err)) from err
    print(result.report_path)
    return 0
