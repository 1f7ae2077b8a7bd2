"""Training-step throughput (samples/s) of every BrainVis stage at paper size.

One step = what ``BrainVisTrainer`` does per optimizer step: forward, backward, the stage's
optimizer (AdamW / Adam as in the paper preset) step, and for ``time-pretrain`` the momentum
update. Random EEG, random weights (the speed does not depend on them). Besides wall-clock
throughput the script reports the throughput from the process's CPU time (on the CPU), which
competing processes on a shared machine do not inflate much, and it checks the ``Trainer`` path
against the bare loop on one stage (``--trainer``).

    python benchmarks/bench_training.py                         # CPU, batch 8, 3 timed steps
    python benchmarks/bench_training.py --device cuda --batch-size 128 --bf16
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def build(stage: str, preset: str):
    from transformers import AutoConfig

    from brainvis_hf.models import (
        BrainVisForCLIPAlignment,
        BrainVisForEEGClassification,
        BrainVisFreqEncoderForEEGClassification,
        BrainVisTimeEncoderForEEGClassification,
        BrainVisTimeEncoderForMaskedModeling,
    )
    from brainvis_hf.presets import preset_dir
    from brainvis_hf.training.arguments import load_training_config

    classes = {
        "time-pretrain": ("time_encoder", BrainVisTimeEncoderForMaskedModeling),
        "time-finetune": ("time_encoder", BrainVisTimeEncoderForEEGClassification),
        "freq": ("freq_encoder", BrainVisFreqEncoderForEEGClassification),
        "timefreq": ("timefreq", BrainVisForEEGClassification),
        "align": ("align", BrainVisForCLIPAlignment),
    }
    name, cls = classes[stage]
    model = cls(AutoConfig.from_pretrained(preset_dir(name, preset)))
    hyper = load_training_config(stage, preset)["training_arguments"]
    return model, hyper


def make_batch(model, stage: str, batch_size: int, device):
    config = model.config
    channels, samples = config.num_channels, config.num_samples
    batch = {
        "eeg_values": torch.randn(batch_size, channels, samples, device=device),
        "labels": torch.randint(0, config.num_labels, (batch_size,), device=device),
    }
    if stage == "align":
        shape = (batch_size, config.prompt_sequence_length, config.prompt_embed_dim)
        batch["coarse_embeds"] = torch.randn(shape, device=device)
        batch["fine_embeds"] = torch.randn(shape, device=device)
    if stage == "time-pretrain":
        batch.pop("labels")
    return batch


def bench_stage(stage, preset, batch_size, steps, device, bf16):
    model, hyper = build(stage, preset)
    model.to(device).train()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=hyper["learning_rate"], weight_decay=hyper["weight_decay"]
    )
    batch = make_batch(model, stage, batch_size, device)
    autocast = torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=bf16)

    def step():
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if stage == "time-pretrain":
            model.momentum_update()

    step()  # warm-up (allocations, optimizer state)
    if device != "cpu":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    if device != "cpu":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    params = sum(p.numel() for p in model.parameters())
    return {
        "stage": stage,
        "parameters_M": round(params / 1e6, 1),
        "samples_per_s_wall": round(batch_size * steps / wall, 2),
        "samples_per_s_cpu_time": round(batch_size * steps / cpu, 2) if device == "cpu" else None,
        "s_per_step_wall": round(wall / steps, 3),
    }


def bench_trainer_overhead(stage, preset, batch_size, steps, device):
    """Samples/s of ``BrainVisTrainer.train`` (its ``train_samples_per_second``) on in-memory random data."""
    import tempfile

    import datasets
    import numpy as np

    from brainvis_hf.data import BrainVisDataCollator
    from brainvis_hf.training.arguments import build_training_arguments, load_training_config
    from brainvis_hf.training.trainer import BrainVisTrainer, compute_stage_metrics

    model, _ = build(stage, preset)
    n = batch_size * (steps + 1)
    rng = np.random.default_rng(0)
    eeg = rng.standard_normal((n, model.config.num_channels, model.config.num_samples)).astype("float32")
    ds = datasets.Dataset.from_dict({"eeg": list(eeg), "label": rng.integers(0, 40, n).tolist()}).with_format("numpy")
    with tempfile.TemporaryDirectory() as tmp:
        args = build_training_arguments(stage, tmp, load_training_config(stage, preset), {
            "max_steps": steps + 1, "per_device_train_batch_size": batch_size, "eval_strategy": "no",
            "save_strategy": "no", "report_to": [], "disable_tqdm": True, "logging_steps": 1000,
            "use_cpu": device == "cpu", "load_best_model_at_end": False,
        })
        trainer = BrainVisTrainer(model=model, args=args, data_collator=BrainVisDataCollator(), train_dataset=ds,
                                  compute_metrics=compute_stage_metrics("classification"))
        output = trainer.train()
    return round(output.metrics["train_samples_per_second"], 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", nargs="+", default=["time-pretrain", "time-finetune", "freq", "timefreq", "align"])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    parser.add_argument("--trainer", action="store_true", help="also time the Trainer path on the freq stage")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"device={args.device} threads={torch.get_num_threads()} batch={args.batch_size} steps={args.steps} "
          f"bf16={args.bf16} preset={args.preset}")
    results = []
    for stage in args.stages:
        result = bench_stage(stage, args.preset, args.batch_size, args.steps, args.device, args.bf16)
        results.append(result)
        print(json.dumps(result))
    if args.trainer:
        # measured back to back (same load); the Trainer figure includes its first (warm-up) step
        bare = bench_stage("freq", args.preset, args.batch_size, args.steps + 1, args.device, args.bf16)
        through = bench_trainer_overhead("freq", args.preset, args.batch_size, args.steps, args.device)
        print(json.dumps({"stage": "freq", "trainer_samples_per_s_wall": through,
                          "bare_loop_samples_per_s_wall": bare["samples_per_s_wall"],
                          "trainer_over_bare": round(through / bare["samples_per_s_wall"], 2)}))


if __name__ == "__main__":
    main()
