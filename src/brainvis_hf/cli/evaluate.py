"""`brainvis evaluate`: generation and EEG classification metrics of a `brainvis generate` folder
(thin wrapper over :func:`brainvis_hf.evaluation.evaluate_generated`), or, with ``--zero-shot``,
n-way retrieval of unseen concepts by an alignment model
(:func:`brainvis_hf.evaluation.evaluate_zero_shot`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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
    parser.add_argument("--generated", default=None, metavar="DIR", help="output folder of `brainvis generate` (required without --zero-shot)")
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
    parser.add_argument("--output", default=None, metavar="DIR",
                        help="where to write the files (default: the --generated folder; --zero-shot: the --model folder)")
    zs = parser.add_argument_group(
        "zero-shot retrieval (--zero-shot)",
        "Rank the concepts of a split (THINGS-EEG2 test: 200 concepts never seen in training) for every recording by "
        "the cosine between the alignment model's predicted prompt embedding and each concept's CLIP text embedding; "
        "writes zero_shot.json and zero_shot.md.",
    )
    zs.add_argument("--zero-shot", action="store_true", help="run zero-shot retrieval instead of the generation metrics")
    zs.add_argument("--model", default=None, metavar="DIR", help="alignment model folder (`brainvis train align` output)")
    zs.add_argument("--data", default=None, metavar="DIR", help="prepared data folder (`brainvis data prepare`)")
    zs.add_argument("--clip-model", default=None, metavar="REPO_OR_DIR",
                    help="CLIP model (or Stable Diffusion folder) whose text encoder made the alignment targets")
    zs.add_argument("--split", default="test", help="split whose concepts are retrieved (default: test)")
    zs.add_argument("--n-ways", type=int, nargs="+", default=[2, 4, 50, 200], help="subset sizes (the full ranking is always added)")
    zs.add_argument("--center", action="store_true", help="subtract the candidates' mean embedding before the cosine")
    zs.add_argument("--image-features", default=None, metavar="FILE",
                    help="safetensors file with 'queries' (N x D, EEG-side predictions in a CLIP image space, split order) "
                         "and 'candidates' (K x D, CLIP image features of the concepts' images, label order)")
    add_threads_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.zero_shot:
        return run_zero_shot(args)
    if args.generated is None:
        print("brainvis evaluate: error: --generated DIR is required (or use --zero-shot)", file=sys.stderr)
        return 2
    from ..evaluation import evaluate_generated, metrics_markdown

    from pathlib import Path

    from ._checks import check_model_folder

    feature_extractor = None if args.feature_extractor in (None, "auto") else args.feature_extractor
    for value in (args.classifier, feature_extractor):
        if value and Path(value).is_dir():
            check_model_folder(Path(value))  # damaged JSON / safetensors: one line naming the file
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


def run_zero_shot(args: argparse.Namespace) -> int:
    """`brainvis evaluate --zero-shot`: write zero_shot.json / zero_shot.md and print the table."""
    missing = [flag for flag, value in (("--model", args.model), ("--data", args.data), ("--clip-model", args.clip_model))
               if value is None]
    if missing:
        print(f"brainvis evaluate --zero-shot: error: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    from ..evaluation.zero_shot import evaluate_zero_shot, zero_shot_markdown

    image_features = None
    if args.image_features is not None:
        from safetensors.numpy import load_file

        image_features = load_file(args.image_features)
        if set(image_features) < {"queries", "candidates"}:
            print(f"brainvis evaluate: error: {args.image_features}: needs tensors 'queries' and 'candidates', "
                  f"has {sorted(image_features)}", file=sys.stderr)
            return 2
    try:
        metrics = evaluate_zero_shot(
            args.model, args.data, args.clip_model, split=args.split, n_ways=args.n_ways, center=args.center,
            image_features=image_features, device=args.device, batch_size=max(1, args.batch_size),
        )
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"brainvis evaluate: error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    output = Path(args.output or args.model)
    output.mkdir(parents=True, exist_ok=True)
    (output / "zero_shot.json").write_text(json.dumps(metrics, indent=2, allow_nan=False))
    table = zero_shot_markdown(metrics)
    note = ""
    if metrics["train_overlap"]:
        note = (f"\n**Not zero-shot: {len(metrics['train_overlap'])} of the {len(metrics['concepts'])} candidate concepts "
                "also occur in the training split.**\n")
    (output / "zero_shot.md").write_text(f"## Zero-shot retrieval ({args.split} split, {len(metrics['concepts'])} concepts)\n\n"
                                         + table + note)
    section = (output / "zero_shot.md").read_text()
    card = Path(args.model) / "README.md"
    if card.is_file():  # the model card carries the latest zero-shot result (replaced, never duplicated)
        text = card.read_text()
        begin, end = "<!-- brainvis-zero-shot -->", "<!-- /brainvis-zero-shot -->"
        if begin in text and end in text:
            text = text[: text.index(begin)].rstrip("\n") + text[text.index(end) + len(end):]
        card.write_text(text.rstrip("\n") + f"\n\n{begin}\n{section}{end}\n")
    print(table + note, end="")
    print(f"wrote zero_shot.json and zero_shot.md to {output}" + (f"; updated {card}" if card.is_file() else ""))
    return 0
