"""`brainvis convert-original`: turn the original BrainVis checkpoints into `from_pretrained` folders.

    brainvis convert-original [--time CKPT] [--freq CKPT] [--timefreq CKPT] [--align CKPT]
                              --output DIR [--num-heads 16] [--time-task masked_modeling]
"""

from __future__ import annotations

import argparse

from ._threads import add_threads_argument


def register(subparsers) -> None:
    """Add `brainvis convert-original` to the top-level parser."""
    p = subparsers.add_parser(
        "convert-original",
        help="convert the original authors' BrainVis checkpoints to Hugging Face folders",
        description="Convert whichever original BrainVis checkpoints are given into DIR/time_encoder, "
        "DIR/freq_encoder, DIR/timefreq and DIR/align (safetensors + config.json, loadable with "
        "from_pretrained). Sizes are inferred from the tensors; unused original heads are dropped "
        "and listed. State dicts are read weights-only; a whole pickled frequency encoder is read "
        "with a restricted unpickler that admits only tensors and the LSTM/Linear/ReLU layers.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--time", help="original time encoder state dict (TimeEncoder)")
    p.add_argument("--freq", help="original frequency encoder (state dict or whole pickled module)")
    p.add_argument("--timefreq", help="original time-frequency model state dict (TimeFreqEncoder)")
    p.add_argument("--align", help="original alignment model state dict (AlignNet)")
    p.add_argument("--output", required=True, help="folder to write the converted models into")
    p.add_argument("--num-heads", type=int, default=16, help="attention heads (not recoverable from the weights)")
    p.add_argument(
        "--time-task",
        choices=("masked_modeling", "classification"),
        default="masked_modeling",
        help="convert --time as the LMM model (keeps momentum encoder, tokenizer, regressor) or as the "
        "classifier (keeps predict_head)",
    )
    p.add_argument("--num-samples", type=int, default=None,
                   help="EEG length T for the frequency encoder when --time is not given (default 440)")  # fmt: skip
    add_threads_argument(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..models.convert_original import convert_original_checkpoints

    def report(name: str, dropped: list[str]) -> None:
        if dropped:
            print(f"{name}: dropped {len(dropped)} unused original key(s):")
            for key in dropped:
                print(f"  {key}")

    written = convert_original_checkpoints(
        time=args.time,
        freq=args.freq,
        timefreq=args.timefreq,
        align=args.align,
        output_dir=args.output,
        num_heads=args.num_heads,
        time_task=args.time_task,
        num_samples=args.num_samples,
        on_dropped=report,
    )
    for name, folder in written.items():
        print(f"wrote {name}: {folder}")
    return 0
