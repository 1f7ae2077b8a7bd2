"""`brainvis evaluate`: generation and EEG classification metrics of a `brainvis generate` folder
(thin wrapper over :func:`brainvis_hf.evaluation.evaluate_generated`)."""

from __future__ import annotations

import argparse

from ._threads import add_threads_argument

DEFAULT_CLASSIFIER = "microsoft/beit-large-patch16-384"  # = evaluation.DEFAULT_IMAGE_CLASSIFIER (kept import-free)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="GA, IS, FID, SSIM and EEG classification metrics of a `brainvis generate` output folder",
        description=(
            "Reads DIR/manifest.json and the images of a `brainvis generate` output folder and writes "
            "metrics.json, metrics.md (the papers' table), confusion_matrix.png and per_class_ga.png."
        ),
    )
    parser.add_argument("--generated", required=True, metavar="DIR", help="output folder of `brainvis generate`")
    parser.add_argument("--classifier", default=DEFAULT_CLASSIFIER, metavar="REPO_OR_DIR",
                        help=f"ImageNet image classifier (AutoModelForImageClassification) for GA and IS (default: {DEFAULT_CLASSIFIER})")
    parser.add_argument("--feature-extractor", default=None, metavar="auto|inception|none|REPO_OR_DIR",
                        help="FID features: 'auto' (default: Inception-v3 when available, else FID is skipped with the reason), "
                             "'inception' (required), 'none', or a transformers vision model repo/folder")
    parser.add_argument("--n-way", type=int, default=50, help="GA: classes kept per trial (default: 50)")
    parser.add_argument("--top-k", type=int, default=1, help="GA: hit when the true class is in the top-k (default: 1)")
    parser.add_argument("--num-trials", type=int, default=50, help="GA: random draws per image (default: 50)")
    parser.add_argument("--seed", type=int, default=0, help="GA: sampling seed (default: 0)")
    parser.add_argument("--exact", action="store_true", help="GA: closed-form expected value instead of sampling")
    parser.add_argument("--inception-splits", type=int, default=10, help="IS splits (default: 10, capped at the image count)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default: 16)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--output", default=None, metavar="DIR", help="where to write the files (default: the --generated folder)")
    add_threads_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate_generated, metrics_markdown

    feature_extractor = None if args.feature_extractor in (None, "auto") else args.feature_extractor
    metrics = evaluate_generated(
        args.generated,
        classifier=args.classifier,
        feature_extractor=feature_extractor,
        n_way=args.n_way,
        top_k=args.top_k,
        num_trials=args.num_trials,
        seed=args.seed,
        exact=args.exact,
        inception_splits=args.inception_splits,
        output_dir=args.output,
        batch_size=args.batch_size,
        device=args.device,
    )
    print(metrics_markdown(metrics), end="")
    print(f"wrote metrics.json, metrics.md, confusion_matrix.png, per_class_ga.png to {args.output or args.generated}")
    return 0
