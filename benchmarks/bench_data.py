"""Data-layer benchmark: prepare time and DataLoader throughput on a full-size synthetic EEG-ImageNet.

    python benchmarks/bench_data.py                     # full size: 40 x 50 images x 6 subjects
    python benchmarks/bench_data.py --num-images-per-class 5 --num-subjects 2   # quick check

Steps, each timed in this one run:
1. write the synthetic signals + splits files (12,000 recordings, 11,964 in 450..600 samples);
2. ``load_eeg_imagenet`` (the ``datasets`` builder: read, filter, crop, write Arrow);
3. ``prepare_dataset`` (Parquet shards + dataset card) -- together with 2. this is what
   ``brainvis data prepare`` does;
4. ``load_prepared_dataset`` (first load of the Parquet folder: converts to the Arrow cache);
5. samples/s of a shuffled ``torch.utils.data.DataLoader`` over the prepared train split with
   ``BrainVisDataCollator``, for several formats / worker counts;
6. if the BrainVis models are importable: samples/s of one paper-size training step
   (``BrainVisForCLIPAlignment`` from ``hub_configs/align``, and the time encoder's latent
   masked modeling from ``hub_configs/time_encoder``): forward + backward + AdamW, and the FLOPs
   per sample of that step.

The loader must not be what limits training: the script prints loader rate / step rate.
Results go to ``<workdir>/bench_data.json``; the big files are deleted unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import datasets
import torch

from brainvis_hf.data import (
    BrainVisDataCollator,
    load_eeg_imagenet,
    load_prepared_dataset,
    prepare_dataset,
    write_synthetic_eeg_imagenet,
)


def _timed(label: str, fn, results: dict):
    print(f"\n== {label}", flush=True)
    start = time.perf_counter()
    value = fn()
    results[label] = round(time.perf_counter() - start, 2)
    print(f"   {label}: {results[label]:.1f} s", flush=True)
    return value


def loader_rate(ds: datasets.Dataset, *, fmt: str | None, num_workers: int, batch_size: int, max_batches: int) -> float:
    """Samples/s of a shuffled DataLoader + BrainVisDataCollator (first batch excluded: warm-up)."""
    ds = ds.select_columns(["eeg", "label"])
    ds = ds.with_format(fmt) if fmt else ds
    loader = torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=True, collate_fn=BrainVisDataCollator(), num_workers=num_workers,
        persistent_workers=False, generator=torch.Generator().manual_seed(0),
    )
    n, start = 0, None
    for i, batch in enumerate(loader):
        assert batch["eeg_values"].dtype == torch.float32 and batch["eeg_values"].dim() == 3
        if i == 0:
            start = time.perf_counter()
            continue
        n += len(batch["labels"])
        if i >= max_batches:
            break
    return n / (time.perf_counter() - start)


def step_rate(model, batch: dict, steps: int) -> tuple[float, float]:
    """(samples/s, FLOPs per sample) of forward + backward + AdamW step, after one warm-up step."""
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01)

    def one_step():
        optimizer.zero_grad(set_to_none=True)
        out = model(**batch)
        out.loss.backward()
        optimizer.step()

    with FlopCounterMode(display=False) as counter:
        one_step()  # warm-up, counted for FLOPs
    flops = counter.get_total_flops()
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    size = len(next(iter(batch.values())))
    return steps * size / (time.perf_counter() - start), flops / size


def model_rates(batch_size: int, steps: int, num_channels: int, num_samples: int) -> dict:
    try:
        from brainvis_hf import BrainVisConfig, BrainVisForCLIPAlignment, BrainVisTimeEncoderConfig
        from brainvis_hf import BrainVisTimeEncoderForMaskedModeling
        from brainvis_hf.presets import preset_dir
    except Exception as err:  # noqa: BLE001 - models not there yet
        print(f"   models not importable ({err}); skipping the training-step comparison")
        return {}
    out = {}
    g = torch.Generator().manual_seed(0)
    eeg = torch.randn(batch_size, num_channels, num_samples, generator=g)
    labels = torch.randint(0, 40, (batch_size,), generator=g)

    config = BrainVisConfig.from_pretrained(preset_dir("align"))
    model = BrainVisForCLIPAlignment(config)
    shape = (batch_size, config.prompt_sequence_length, config.prompt_embed_dim)
    batch = {"eeg_values": eeg, "labels": labels, "coarse_embeds": torch.randn(*shape, generator=g),
             "fine_embeds": torch.randn(*shape, generator=g)}
    rate, flops = step_rate(model, batch, steps)
    out["align"] = {"samples_per_s": round(rate, 2), "gflops_per_sample": round(flops / 1e9, 1),
                    "parameters_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 1)}
    print(f"   align step (paper size, batch {batch_size}): {rate:.2f} samples/s, {flops / 1e9:.1f} GFLOP/sample")
    del model

    config = BrainVisTimeEncoderConfig.from_pretrained(preset_dir("time_encoder"))
    model = BrainVisTimeEncoderForMaskedModeling(config)
    if hasattr(model, "init_momentum_encoder"):
        model.init_momentum_encoder()
    rate, flops = step_rate(model, {"eeg_values": eeg}, steps)
    out["time_pretrain"] = {"samples_per_s": round(rate, 2), "gflops_per_sample": round(flops / 1e9, 1),
                            "parameters_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 1)}
    print(f"   time-encoder LMM step (paper size, batch {batch_size}): {rate:.2f} samples/s, {flops / 1e9:.1f} GFLOP/sample")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=None, help="where to write the files (default: a temporary folder)")
    parser.add_argument("--num-images-per-class", type=int, default=50)
    parser.add_argument("--num-subjects", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=128, help="DataLoader batch size (paper: 128)")
    parser.add_argument("--max-batches", type=int, default=40, help="batches timed per loader variant")
    parser.add_argument("--model-batch-size", type=int, default=4, help="batch of the timed model step (CPU: keep small)")
    parser.add_argument("--model-steps", type=int, default=1, help="timed steps after one warm-up step")
    parser.add_argument("--skip-models", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args(argv)

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_data-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    timings: dict = {}
    try:
        files = _timed("synthesise", lambda: write_synthetic_eeg_imagenet(
            workdir / "raw", num_images_per_class=args.num_images_per_class, num_subjects=args.num_subjects,
            overwrite=True), timings)
        results["recordings"] = files.num_recordings
        results["recordings_in_length_range"] = files.num_in_length_range
        results["signals_file_GB"] = round(files.eeg_path.stat().st_size / 1e9, 2)

        dsd = _timed("builder (load_eeg_imagenet)", lambda: load_eeg_imagenet(
            files.eeg_path, files.splits_path, cache_dir=workdir / "builder_cache"), timings)
        results["rows"] = {k: len(v) for k, v in dsd.items()}
        out_dir = workdir / "prepared"
        _timed("prepare_dataset (Parquet + card)", lambda: prepare_dataset(dsd, out_dir, overwrite=True), timings)
        results["parquet_GB"] = round(sum(p.stat().st_size for p in (out_dir / "data").glob("*.parquet")) / 1e9, 2)
        prepared = _timed("load_prepared_dataset (first load)", lambda: load_prepared_dataset(
            out_dir, cache_dir=workdir / "hf_cache"), timings)
        timings["brainvis data prepare (builder + Parquet)"] = round(
            timings["builder (load_eeg_imagenet)"] + timings["prepare_dataset (Parquet + card)"], 2)
        results["timings_s"] = timings

        print("\n== DataLoader over the prepared train split (shuffled, BrainVisDataCollator)", flush=True)
        train = prepared["train"]
        loaders = {}
        for fmt, workers in ((None, 0), ("torch", 0), ("numpy", 0), ("numpy", 2)):
            key = f"format={fmt}, num_workers={workers}"
            max_batches = 5 if fmt is None else args.max_batches
            loaders[key] = round(loader_rate(train, fmt=fmt, num_workers=workers, batch_size=args.batch_size,
                                             max_batches=max_batches), 1)
            print(f"   {key}: {loaders[key]:.0f} samples/s", flush=True)
        results["loader_samples_per_s"] = loaders
        best = max(loaders.values())

        if not args.skip_models:
            print("\n== paper-size training steps (forward + backward + AdamW)", flush=True)
            shape = train.features["eeg"].shape
            rates = model_rates(args.model_batch_size, args.model_steps, shape[0], shape[1])
            results["model_step"] = rates
            for name, r in rates.items():
                r["loader_over_step"] = round(best / r["samples_per_s"], 1)
                print(f"   loader / {name} step: {r['loader_over_step']:.0f}x")
        (workdir / "bench_data.json").write_text(json.dumps(results, indent=2))
        print("\n" + json.dumps(results, indent=2))
        print(f"\nresults: {workdir / 'bench_data.json'}")
    finally:
        if not args.keep:
            for name in ("raw", "builder_cache", "prepared", "hf_cache"):
                shutil.rmtree(workdir / name, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
