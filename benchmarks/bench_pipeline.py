"""Benchmark of BrainVisPipeline: pipeline overhead and batching speed-up, measured in one run.

1. Overhead. One pipeline call (end to end, output_type="pil") against the sum of its
   unavoidable work timed separately in the same run: every EEG-encoder, text-encoder, UNet and
   VAE encode/decode call the pipeline made, recorded with their exact inputs and replayed one by
   one. overhead = (call - sum) / call; the target is < 10 %.
2. Batching. Images per second of the pipeline (all EEG x samples through the UNet together, in
   chunks of --max-batch-size rows) against the naive composition the original code uses: per
   EEG, a StableDiffusionPipeline call (prompt_embeds = the EEG embedding, its samples in one
   batch) then a StableDiffusionImg2ImgPipeline call on its PIL images with the class words,
   both sharing the same UNet / VAE / text encoder.

Random weights (nothing is downloaded); the speed does not depend on the values.
`--preset cpu` is a moderately sized UNet for a ~1-2 minute CPU run; `--preset sd15` has
Stable Diffusion v1.5's UNet / VAE / CLIP-L sizes (and the paper-size alignment model) for a GPU.

    python benchmarks/bench_pipeline.py                        # CPU
    python benchmarks/bench_pipeline.py --preset sd15 --device cuda --dtype float16
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any, Callable

import torch


# ---------------------------------------------------------------------------------------------
# components
# ---------------------------------------------------------------------------------------------


def build_components(preset: str, seed: int = 0) -> dict[str, Any]:
    """Random components of the preset's sizes (+ a BrainVis alignment model of matching width)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from brainvis_hf.models import BrainVisConfig, BrainVisForCLIPAlignment
    from brainvis_hf.pipelines.tiny import build_sd15_scheduler, build_tiny_clip_tokenizer
    from brainvis_hf.presets import preset_dir

    torch.manual_seed(seed)
    tokenizer = build_tiny_clip_tokenizer()
    if preset == "cpu":
        width = 64
        unet = UNet2DConditionModel(
            sample_size=16, block_out_channels=(32, 64, 64), layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=width, attention_head_dim=8, norm_num_groups=16,
        )  # fmt: skip
        vae = AutoencoderKL(
            block_out_channels=(16, 32, 64), down_block_types=("DownEncoderBlock2D",) * 3,
            up_block_types=("UpDecoderBlock2D",) * 3, latent_channels=4, norm_num_groups=16, sample_size=64,
        )  # fmt: skip
        text_config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=4 * width,
                                     num_hidden_layers=4, num_attention_heads=4, max_position_embeddings=77,
                                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                     pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        align_config = BrainVisConfig.from_pretrained(preset_dir("align", preset="tiny"), prompt_embed_dim=width)
    elif preset == "sd15":
        width = 768
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)  # SD v1.x layout
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=2, sample_size=512,
        )  # fmt: skip
        text_config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=768, intermediate_size=3072,
                                     num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                     pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        align_config = BrainVisConfig.from_pretrained(preset_dir("align"))
    else:
        raise ValueError(f"unknown preset {preset!r}")
    return {
        "eeg_encoder": BrainVisForCLIPAlignment(align_config).eval(),
        "vae": vae.eval(),
        "text_encoder": CLIPTextModel(text_config).eval(),
        "tokenizer": tokenizer,
        "unet": unet.eval(),
        "scheduler": build_sd15_scheduler(),
    }


# ---------------------------------------------------------------------------------------------
# timing helpers
# ---------------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def clock(device: torch.device) -> Callable[[], float]:
    """Wall time on a GPU; on the CPU the process's CPU time, which other processes competing for
    the cores do not inflate (run with one torch thread, where CPU time = compute time)."""
    return time.perf_counter if device.type == "cuda" else time.process_time


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    now = clock(device)
    sync(device)
    start = now()
    fn()
    sync(device)
    return now() - start


def _clone(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


class CallRecorder:
    """Wraps the model entry points of a pipeline and records every call with its inputs."""

    ENTRY_POINTS = (("eeg_encoder", "forward"), ("text_encoder", "forward"), ("unet", "forward"),
                    ("vae", "encode"), ("vae", "decode"))  # fmt: skip

    def __init__(self, pipe):
        self.pipe, self.calls, self._saved = pipe, [], []

    def __enter__(self):
        for component, method in self.ENTRY_POINTS:
            module = getattr(self.pipe, component)
            original = getattr(module, method)
            self._saved.append((module, method))

            def wrapper(*args, _original=original, _name=f"{component}.{method}", **kwargs):
                self.calls.append((_name, _original, _clone(args), _clone(kwargs)))
                return _original(*args, **kwargs)

            setattr(module, method, wrapper)
        return self

    def __exit__(self, *exc):
        for module, method in self._saved:
            delattr(module, method)  # back to the class's method

    def replay(self, device: torch.device) -> dict[str, float]:
        """Seconds per entry point, each call timed on its own (with a sync before and after)."""
        totals: dict[str, float] = {}
        with torch.no_grad():
            for name, fn, args, kwargs in self.calls:
                generator_free = {k: v for k, v in kwargs.items() if k != "generator"}
                totals[name] = totals.get(name, 0.0) + timed(lambda: fn(*args, **generator_free), device)
        return totals


# ---------------------------------------------------------------------------------------------
# the two ways of generating
# ---------------------------------------------------------------------------------------------


def run_pipeline(pipe, eeg, args):
    return pipe(
        eeg,
        num_images_per_prompt=args.images_per_eeg,
        num_inference_steps=args.steps,
        refine_num_inference_steps=args.refine_steps,
        generator=torch.Generator().manual_seed(0),
        max_batch_size=args.max_batch_size,
        output_type="pil",
    )


def run_naive(pipe, sd, img2img, eeg, args):
    """The original's composition: per EEG, one text-to-image call then one img2img call."""
    images = []
    with torch.no_grad():
        for i in range(eeg.shape[0]):
            out = pipe.eeg_encoder(eeg_values=eeg[i : i + 1].to(pipe.device, pipe.eeg_encoder.dtype))
            word = pipe.predicted_words(out.logits.argmax(-1).tolist())[0]
            stage1 = sd(
                prompt_embeds=out.prompt_embeds.to(pipe.unet.dtype),
                num_images_per_prompt=args.images_per_eeg,
                num_inference_steps=args.steps,
                guidance_scale=1.0,
                generator=torch.Generator().manual_seed(i),
            ).images
            images += img2img(
                prompt=[word] * args.images_per_eeg,
                image=stage1,
                strength=0.85,
                guidance_scale=7.5,
                num_inference_steps=args.refine_steps,
                generator=torch.Generator().manual_seed(i),
            ).images
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=("cpu", "sd15"), default="cpu")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32")
    parser.add_argument("--num-eegs", type=int, default=4)
    parser.add_argument("--images-per-eeg", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="stage-1 steps (paper: 50)")
    parser.add_argument("--refine-steps", type=int, default=20, help="stage-2 schedule (paper: 100)")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()

    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    from brainvis_hf.pipelines import BrainVisPipeline

    torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    components = build_components(args.preset)
    pipe = BrainVisPipeline(**components).to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    shared = {k: getattr(pipe, k) for k in ("vae", "text_encoder", "tokenizer", "unet")}
    no_checker = dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    sd = StableDiffusionPipeline(**shared, scheduler=type(pipe.scheduler).from_config(pipe.scheduler.config), **no_checker)
    img2img = StableDiffusionImg2ImgPipeline(**shared, scheduler=type(pipe.scheduler).from_config(pipe.scheduler.config), **no_checker)
    for p in (sd, img2img):
        p.set_progress_bar_config(disable=True)
    num_channels, num_samples, _ = pipe.eeg_input_layout
    eeg = torch.randn(args.num_eegs, num_channels, num_samples, generator=torch.Generator().manual_seed(0))
    num_images = args.num_eegs * args.images_per_eeg
    print(("wall-clock seconds" if device.type == "cuda" else "CPU seconds of this process (other work shares the cores)"))
    print(f"preset {args.preset} on {device} ({args.dtype}, {args.threads} CPU threads): {args.num_eegs} EEGs x "
          f"{args.images_per_eeg} images, {args.steps} + {args.refine_steps} steps, max_batch_size {args.max_batch_size}, "
          f"image {pipe.unet.config.sample_size * pipe.vae_scale_factor}px; UNet "
          f"{sum(p.numel() for p in pipe.unet.parameters()) / 1e6:.1f}M params")  # fmt: skip

    # warm-up (allocator, kernels) of both paths
    small = argparse.Namespace(**{**vars(args), "steps": 2, "refine_steps": 3})
    run_pipeline(pipe, eeg, small)
    run_naive(pipe, sd, img2img, eeg[:1], small)

    # the three measurements are interleaved so that a change of machine load hits them alike
    call_times, replay_sums, replay_parts, naive_times = [], [], [], []
    for _ in range(args.repeats):
        call_times.append(timed(lambda: run_pipeline(pipe, eeg, args), device))
        recorder = CallRecorder(pipe)
        with recorder:
            run_pipeline(pipe, eeg, args)
        parts = recorder.replay(device)
        replay_parts.append(parts)
        replay_sums.append(sum(parts.values()))
        naive_times.append(timed(lambda: run_naive(pipe, sd, img2img, eeg, args), device))

    call, work, naive = statistics.median(call_times), statistics.median(replay_sums), statistics.median(naive_times)
    overhead = (call - work) / call
    parts = {k: statistics.median(p[k] for p in replay_parts) for k in replay_parts[0]}
    counts = {k: sum(1 for c in recorder.calls if c[0] == k) for k in parts}
    results = {
        "preset": args.preset,
        "device": str(device),
        "dtype": args.dtype,
        "num_images": num_images,
        "pipeline_call_s": call,
        "unavoidable_work_s": work,
        "work_breakdown_s": parts,
        "work_calls": counts,
        "overhead_fraction": overhead,
        "pipeline_images_per_s": num_images / call,
        "naive_images_per_s": num_images / naive,
        "speedup_vs_naive": naive / call,
        "clock": "wall" if device.type == "cuda" else "process CPU time",
        "call_times_s": call_times,
        "naive_times_s": naive_times,
    }
    print(f"pipeline call        {call:8.2f} s   ({num_images / call:.3f} images/s)")
    print(f"unavoidable work     {work:8.2f} s   = " + ", ".join(f"{k} {v:.2f} s ({counts[k]} calls)" for k, v in parts.items()))
    print(f"overhead             {100 * overhead:8.1f} %  (target < 10 %)")
    print(f"naive composition    {naive:8.2f} s   ({num_images / naive:.3f} images/s)")
    print(f"speed-up vs naive    {naive / call:8.2f} x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
