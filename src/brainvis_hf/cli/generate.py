"""`brainvis generate`: EEG recordings -> images with a BrainVisPipeline, into a folder.

    brainvis generate --model DIR_OR_REPO --eeg INPUT --output DIR [--split test --indices 0-9
        --num-images-per-eeg 4 --steps 50 --refine-steps 100 --no-refine --seed 0 --batch-size 8
        --device cuda --dtype float16]

INPUT is a prepared data folder (`brainvis data prepare`), a .npy / .pt array (C x T or N x C x T),
an EEG-ImageNet signals file (.pth) with --indices, or MNE epochs (*-epo.fif: channels picked by
the model's ch_names, resampled to its sfreq and cut to its window; needs the `mne` extra). Writes images/, stage1/, ground_truth/,
manifest.json and contact_sheet.png (see docs/pipeline.md); resumes where a previous run stopped.
Run it under `accelerate launch` to split the work across processes / GPUs.
"""

from __future__ import annotations

import argparse

from ._threads import add_threads_argument


def register(subparsers) -> None:
    """Add `brainvis generate` to the top-level parser."""
    p = subparsers.add_parser(
        "generate",
        help="generate images from EEG with a BrainVisPipeline (resumable, multi-process)",
        description="Generate num-images-per-eeg images per EEG recording (stage 1 from the EEG prompt "
        "embedding, stage 2 refined with the predicted class words) and write one PNG per image, the "
        "stage-1 images, the ground truth when known, manifest.json and contact_sheet.png. Images already "
        "written are skipped. Under `accelerate launch` the images are split across processes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", required=True, help="BrainVisPipeline folder or Hub repo (or an alignment model with --sd)")
    p.add_argument("--sd", default=None, metavar="DIR_OR_REPO",
                   help="assemble the pipeline from --model (an alignment model) and this Stable Diffusion v1.x model")  # fmt: skip
    p.add_argument("--eeg", required=True, help="prepared data folder, .npy/.pt array, EEG-ImageNet signals .pth file, or MNE -epo.fif epochs")
    p.add_argument("--output", required=True, help="output folder (created; resumed when it exists)")
    p.add_argument("--split", default="test", help="split of a prepared data folder")
    p.add_argument("--indices", default=None, help="rows / recording indices to use, e.g. 0,3,10-19 (default: all)")
    p.add_argument("--image-root", default=None, help="ImageNet images (<wnid>/<name>.JPEG) for a signals file's ground truth")
    p.add_argument("--num-images-per-eeg", type=int, default=4, help="samples per EEG")
    p.add_argument("--steps", type=int, default=50, help="stage-1 denoising steps (PLMS)")
    p.add_argument("--guidance-scale", type=float, default=1.0, help="stage-1 classifier-free guidance (1 = none)")
    p.add_argument("--refine-steps", type=int, default=100, help="stage-2 (img2img) schedule length")
    p.add_argument("--refine-strength", type=float, default=0.85, help="stage-2 img2img strength")
    p.add_argument("--refine-guidance-scale", type=float, default=7.5, help="stage-2 classifier-free guidance")
    p.add_argument("--no-refine", action="store_true", help="stage 1 only")
    p.add_argument("--seed", type=int, default=0, help="base seed; image k of EEG e uses seed + e * num_images_per_eeg + k")
    p.add_argument("--batch-size", type=int, default=8, help="images per pipeline call (and per UNet call)")
    p.add_argument("--height", type=int, default=None, help="image height (default: the UNet's sample size x 8)")
    p.add_argument("--width", type=int, default=None, help="image width")
    p.add_argument("--device", default=None, help="torch device (default: the accelerate process's device, else cuda if available, else cpu)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"), help="model dtype")
    p.add_argument("--contact-sheet-rows", type=int, default=16, help="EEGs shown in contact_sheet.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_argument(p)
    p.set_defaults(func=run)


def _load_pipeline(args, device, dtype):
    from ..pipelines import BrainVisPipeline

    if args.sd:
        pipe = BrainVisPipeline.from_alignment_and_sd(args.model, args.sd, torch_dtype=dtype)
    else:
        pipe = BrainVisPipeline.from_pretrained(args.model, **({} if dtype is None else {"dtype": dtype}))
    return pipe.to(device)


def _source_description(args: argparse.Namespace) -> str:
    from pathlib import Path

    path = Path(args.eeg).resolve()
    return f"{path} (split {args.split})" if path.is_dir() else str(path)


def run(args: argparse.Namespace) -> int:
    import torch
    from accelerate import PartialState

    from ._checks import check_pipeline_source

    from ..apps.generate_folder import GenerationSettings, generate_to_folder, load_eeg_records, parse_indices, read_manifest

    for name in ("num_images_per_eeg", "steps", "refine_steps", "batch_size", "contact_sheet_rows"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}.")
    from pathlib import Path

    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output {output} is an existing file, not a folder; give a new folder or the folder of a previous run.")
    if output.is_dir():
        read_manifest(output)  # a damaged or hand-edited manifest is reported before the models load
    check_pipeline_source(args.model, args.sd)  # a typo is "folder not found" at once, not Hub retries
    is_mne = str(args.eeg).lower().endswith((".fif", ".fif.gz"))
    state = PartialState(cpu=args.device == "cpu")
    device = args.device or (state.device if state.num_processes > 1 or torch.cuda.is_available() else "cpu")
    pipe = None
    if is_mne:  # MNE epochs are fitted to the model (channels, rate, window): load it first
        pipe = _load_pipeline(args, device, None if args.dtype == "float32" else getattr(torch, args.dtype))
    records = load_eeg_records(
        args.eeg, split=args.split, indices=parse_indices(args.indices), image_root=args.image_root,
        model_config=pipe.eeg_encoder.config if pipe is not None else None,
    )  # fmt: skip
    if not records:
        raise ValueError(f"--eeg {args.eeg}: no recordings selected.")
    if pipe is None:
        pipe = _load_pipeline(args, device, None if args.dtype == "float32" else getattr(torch, args.dtype))
    settings = GenerationSettings(
        num_images_per_eeg=args.num_images_per_eeg,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        refine=not args.no_refine,
        refine_num_inference_steps=args.refine_steps,
        refine_strength=args.refine_strength,
        refine_guidance_scale=args.refine_guidance_scale,
        seed=args.seed,
        height=args.height,
        width=args.width,
        batch_size=args.batch_size,
    )
    manifest = generate_to_folder(
        pipe,
        records,
        args.output,
        settings,
        model_name=args.model if not args.sd else f"{args.model} + {args.sd}",
        rank=state.process_index,
        world_size=state.num_processes,
        barrier=state.wait_for_everyone,
        contact_sheet_rows=args.contact_sheet_rows,
        show_progress=not args.quiet,
        eeg_source=_source_description(args),
    )
    if manifest is not None:
        print(f"{len(manifest['images'])} images of {len(manifest['eegs'])} EEGs in {args.output} (manifest.json, contact_sheet.png)")
    return 0
