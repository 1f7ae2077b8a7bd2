"""`brainvis data`: write synthetic EEG-ImageNet files, prepare a Hub-ready Parquet folder.

    brainvis data synth --output DIR [--num-images-per-class 50 --num-subjects 6 --difficulty 0.5
                                      --seed 0 --with-images]
    brainvis data prepare --eeg FILE --splits FILE --output DIR [--split-num 0 --subject 0
                                      --image-root DIR --push-to-hub REPO]
    brainvis data clip-targets ...   (see `brainvis data clip-targets --help`)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ._threads import add_threads_argument


def register(subparsers) -> None:
    """Add `brainvis data` and its sub-commands to the top-level parser."""
    parser = subparsers.add_parser(
        "data",
        help="EEG data: synthetic files, Parquet preparation, CLIP targets",
        description="EEG-ImageNet data: write a synthetic data set of the real file format, convert "
        "the signals + splits files into a Hub-ready Parquet folder, compute CLIP targets.",
    )
    data_subparsers = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data_subparsers.required = True
    _register_synth(data_subparsers)
    _register_prepare(data_subparsers)
    _register_things_eeg2(data_subparsers)

    from .data_clip_targets import register as register_clip_targets

    register_clip_targets(data_subparsers)


def _register_synth(data_subparsers) -> None:
    p = data_subparsers.add_parser(
        "synth",
        help="write a synthetic EEG-ImageNet (real file format, learnable class signal)",
        description="Write eeg_5_95_std.pth and block_splits_by_image_all.pth of exactly the real "
        "structure, with class-specific evoked responses in 1/f noise (see docs/data.md). The full "
        "size (50 images x 40 classes x 6 subjects) is ~3 GB.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--output", required=True, help="folder to write into")
    p.add_argument("--num-images-per-class", type=int, default=50, help="images per class (real: 50)")
    p.add_argument("--num-subjects", type=int, default=6, help="subjects (real: 6)")
    p.add_argument("--num-channels", type=int, default=128, help="EEG channels (real: 128)")
    p.add_argument("--difficulty", type=float, default=0.5, help="0 = strong class signal .. 1 = no class signal")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--num-splits", type=int, default=6, help="splits in the splits file")
    p.add_argument("--with-images", action="store_true", help="also write tiny class images under images/<wnid>/")
    p.add_argument("--overwrite", action="store_true", help="replace existing files in --output")
    add_threads_argument(p)
    p.set_defaults(func=_run_synth)


def _register_prepare(data_subparsers) -> None:
    p = data_subparsers.add_parser(
        "prepare",
        help="convert the signals + splits files into Parquet shards + a dataset card",
        description="Apply the standard preprocessing (length filter, split, subject, crop) and write "
        "DIR/data/<split>-XXXXX-of-YYYYY.parquet and DIR/README.md, loadable offline with "
        "datasets.load_dataset(DIR) and ready to push to the Hub.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--eeg", required=True, help="signals file, e.g. eeg_5_95_std.pth")
    p.add_argument("--splits", required=True, help="splits file, e.g. block_splits_by_image_all.pth")
    p.add_argument("--output", required=True, help="folder to create")
    p.add_argument("--split-num", type=int, default=0, help="split index in the splits file")
    p.add_argument("--subject", type=int, default=0, help="keep one subject (1..6); 0 = all")
    p.add_argument("--time-window", type=int, nargs=2, default=(20, 460), metavar=("START", "END"), help="samples kept")
    p.add_argument("--length-range", type=int, nargs=2, default=(450, 600), metavar=("MIN", "MAX"), help="accepted raw lengths")
    p.add_argument("--image-root", default=None, help="ImageNet subset root (<wnid>/<name>.JPEG); adds an image column")
    p.add_argument("--drop-non-finite", action="store_true", help="drop recordings with NaN/Inf instead of failing")
    p.add_argument("--max-shard-size", default="500MB", help="largest Parquet shard")
    p.add_argument("--cache-dir", default=None, help="datasets cache for the intermediate Arrow files (default: a temporary folder)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --output folder")
    p.add_argument("--push-to-hub", default=None, metavar="REPO", help="also upload the folder to this Hub dataset repo")
    p.add_argument("--private", action="store_true", help="create the Hub repo as private")
    add_threads_argument(p)
    p.set_defaults(func=_run_prepare)


def _run_synth(args: argparse.Namespace) -> int:
    from ..data.synthetic import write_synthetic_eeg_imagenet

    try:
        files = write_synthetic_eeg_imagenet(
            args.output,
            num_images_per_class=args.num_images_per_class,
            num_subjects=args.num_subjects,
            num_channels=args.num_channels,
            difficulty=args.difficulty,
            seed=args.seed,
            num_splits=args.num_splits,
            with_images=args.with_images,
            overwrite=args.overwrite,
        )
    except FileExistsError as err:
        print(f"brainvis data synth: error: {err}", file=sys.stderr)
        return 2
    print(f"Wrote a synthetic EEG-ImageNet to {files.output_dir}:")
    print(f"  signals: {files.eeg_path} ({files.num_recordings} recordings, "
          f"{files.num_in_length_range} within 450..600 samples)")
    print(f"  splits:  {files.splits_path}")
    if files.image_root is not None:
        print(f"  images:  {files.image_root}/<wnid>/<name>.JPEG")
    print("Next: brainvis data prepare --eeg {} --splits {} --output <DIR>{}".format(
        files.eeg_path, files.splits_path, f" --image-root {files.image_root}" if files.image_root else ""))
    return 0


def _run_prepare(args: argparse.Namespace) -> int:
    from ..data.eeg_imagenet import EEGImageNet
    from ..data.prepare import prepare_dataset, push_prepared_dataset

    for flag, path in (("--eeg", args.eeg), ("--splits", args.splits)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{flag} {path}: no such file")
    output = Path(args.output)
    if output.is_dir() and any(output.iterdir()) and not args.overwrite:
        print(f"brainvis data prepare: error: {output}: folder is not empty; pass --overwrite to replace it", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="brainvis-prepare-") as tmp_cache:
        builder = EEGImageNet(
            cache_dir=args.cache_dir or tmp_cache,
            eeg_path=args.eeg,
            splits_path=args.splits,
            split_num=args.split_num,
            subject=args.subject,
            time_window=tuple(args.time_window),
            length_range=tuple(args.length_range),
            image_root=args.image_root,
            drop_non_finite=args.drop_non_finite,
        )
        builder.download_and_prepare()
        dataset_dict = builder.as_dataset()
        preprocessing = {
            "signals file": Path(args.eeg).name,
            "splits file": Path(args.splits).name,
            "split_num": args.split_num,
            "subject": f"{args.subject} (0 = all)",
            "length_range": f"{tuple(args.length_range)} samples (inclusive)",
            "time_window": f"{tuple(args.time_window)} samples (1 kHz)",
            "drop_non_finite": args.drop_non_finite,
        }
        try:
            prepare_dataset(dataset_dict, output, max_shard_size=args.max_shard_size,
                            preprocessing=preprocessing, overwrite=args.overwrite,
                            card_metadata={"eeg_signal": {"sfreq": 1000.0}})  # EEG-ImageNet: 1 kHz
        except FileExistsError as err:
            print(f"brainvis data prepare: error: {err}", file=sys.stderr)
            return 2
        counts = ", ".join(f"{name} {len(ds)}" for name, ds in dataset_dict.items())
        del dataset_dict, builder
    print(f"Wrote {output}/README.md and {output}/data/*.parquet ({counts} rows).")
    print(f"Load it with: datasets.load_dataset({str(output)!r})")
    if args.push_to_hub:
        url = push_prepared_dataset(output, args.push_to_hub, private=args.private)
        print(f"Uploaded to {url}")
    return 0


def _register_things_eeg2(data_subparsers) -> None:
    p = data_subparsers.add_parser(
        "prepare-things-eeg2",
        help="convert THINGS-EEG2's preprocessed release (Gifford et al. 2022) into Parquet shards + a dataset card",
        description="Read sub-XX/preprocessed_eeg_{training,test}.npy and image_metadata.npy with a restricted "
        "unpickler (no code runs), carve validation images from the training images, and write a prepared folder "
        "(17 channels x 100 samples; see docs/data.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", required=True, help="folder with sub-XX/preprocessed_eeg_*.npy")
    p.add_argument("--metadata", default=None, help="image_metadata.npy (default: DATA/image_metadata.npy)")
    p.add_argument("--output", required=True, help="folder to create")
    p.add_argument("--subjects", type=int, nargs="+", default=None, help="subject numbers (default: all found)")
    p.add_argument("--average-repetitions", default="1", help="train/validation: k (mean of each group of k) or 'all'")
    p.add_argument("--test-average-repetitions", default="all", help="test: k or 'all'")
    p.add_argument("--validation-images-per-concept", type=int, default=1)
    p.add_argument("--validation-seed", type=int, default=0)
    p.add_argument("--image-root", default=None, help="THINGS images (training_images/, test_images/); adds an image column")
    p.add_argument("--synthetic", action="store_true",
                   help="first write a small synthetic release of the real structure into --data (tests, demos)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --output folder")
    p.set_defaults(func=_run_things_eeg2)


def _repetitions(text: str):
    return "all" if text == "all" else int(text)


def _run_things_eeg2(args: argparse.Namespace) -> int:
    from ..data.things_eeg2 import prepare_things_eeg2, write_synthetic_things_eeg2

    try:
        if args.synthetic:
            write_synthetic_things_eeg2(args.data, overwrite=args.overwrite)
        with tempfile.TemporaryDirectory(prefix="brainvis-things-cache-") as cache:
            out = prepare_things_eeg2(
                args.data, args.output, metadata_path=args.metadata, subjects=args.subjects,
                average_repetitions=_repetitions(args.average_repetitions),
                test_average_repetitions=_repetitions(args.test_average_repetitions),
                validation_images_per_concept=args.validation_images_per_concept,
                validation_seed=args.validation_seed, image_root=args.image_root, cache_dir=cache,
                overwrite=args.overwrite,
            )
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"brainvis data prepare-things-eeg2: error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    print(f"Wrote {out}/README.md, {out}/splits.json and {out}/data/")
    return 0
