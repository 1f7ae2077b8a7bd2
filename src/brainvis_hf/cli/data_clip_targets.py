"""`brainvis data clip-targets`: CLIP coarse/fine targets per image of a prepared data set."""

from __future__ import annotations

import argparse

from ._threads import add_threads_argument

# = data.clip_targets.DEFAULT_CLIP_MODEL / DEFAULT_CAPTIONER, kept import-free for a quick --help
DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"
DEFAULT_CAPTIONER = "Salesforce/blip2-opt-2.7b"


def register(data_subparsers) -> None:
    """Add the ``clip-targets`` sub-command to ``brainvis data``."""
    parser = data_subparsers.add_parser(
        "clip-targets",
        help="compute the CLIP text targets (class words + BLIP-2 caption) of every image",
        description=(
            "Computes, once per image, the CLIP text-encoder last hidden state of the class words "
            "(coarse target) and of a BLIP-2 caption of the image (fine target), and stores them "
            "as float16 safetensors in DIR/clip_targets/. Resumable: chunks already written are skipped."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", required=True, help="prepared data folder (brainvis data prepare)")
    parser.add_argument("--clip-model", default=DEFAULT_CLIP_MODEL, help="Hub id or folder of the CLIP model")
    parser.add_argument(
        "--captioner",
        default=DEFAULT_CAPTIONER,
        help="Hub id or folder of the BLIP-2 captioner; 'none' uses the class words as fine targets too",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--chunk-size", type=int, default=256, help="images per stored chunk (resumption unit)")
    parser.add_argument("--device", default=None, help="e.g. cuda, cuda:1, cpu (default: cuda if available)")
    parser.add_argument("--overwrite", action="store_true", help="recompute existing chunks")
    add_threads_argument(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..data.clip_targets import compute_clip_targets, load_clip_target_index

    captioner = None if str(args.captioner).lower() == "none" else args.captioner
    folder = compute_clip_targets(
        args.data,
        args.clip_model,
        captioner,
        batch_size=args.batch_size,
        device=args.device,
        chunk_size=args.chunk_size,
        overwrite=args.overwrite,
    )
    index = load_clip_target_index(args.data)
    count = sum(len(c["image_names"]) for c in index["chunks"])
    print(f"CLIP targets of {count} images ({index['sequence_length']} x {index['hidden_size']}) in {folder}")
    return 0
