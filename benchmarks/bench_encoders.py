"""Benchmark the BrainVis encoders against a faithful eager implementation of the original networks.

At paper size (d = 1024, 8 layers, 16 heads, 128 x 440 EEG, 77 x 768 prompt), on whatever CPU
(or GPU) runs it, with the SAME weights in both implementations:

* eval forward of the alignment model (`BrainVisForCLIPAlignment` vs the original `AlignNet`)
  at batch 8 and 32: fp32 (outputs checked equal to fp32 round-off) and the bf16 mode
  (bf16 weights + bf16 autocast; prompt-embedding cosine and predicted classes checked);
* one LMM training step (forward, backward, AdamW step, momentum update), fp32 and bf16
  autocast (ours with the fused AdamW kernel, the original with its plain AdamW, same
  hyper-parameters); the regression output and the gradients of the regression loss are
  checked equal in eval mode for a shared mask;
* achieved GFLOP/s of every row (from the median time) against a plain 2048^3 `torch.mm`
  measured in the same run (best of the measurements before and after each group: the
  machine's practical limit for that kernel), and the peak extra
  resident memory of one warm call (VmHWM reset before it).

`s/call` and `speedup` use the median of the interleaved calls, `best s` / `best x` the
fastest call (the least disturbed by other work on a shared machine), `cpu s` / `cpu x` the
median process CPU time (not inflated by other processes; with one thread, `--threads 1`, it is
the most load-robust figure).

brainvis-hf runs with its opt-in oneDNN CPU kernels (`model.enable_cpu_kernels()`, see
`brainvis_hf/models/cpu_kernels.py`); `--plain-kernels` measures the default plain PyTorch path.

Ratios are measured within one run, so they stay meaningful on a machine shared with other work.

    python benchmarks/bench_encoders.py                 # full run (several minutes on 2 cores)
    python benchmarks/bench_encoders.py --quick         # batch 8 only, fewer repeats
    python benchmarks/bench_encoders.py --json results.json
    python benchmarks/bench_encoders.py --plain-kernels  # without enable_cpu_kernels()
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the reference implementation of the original networks

from original_brainvis import OriginalArgs, build_original_align  # noqa: E402

from brainvis_hf.models import (  # noqa: E402
    BrainVisConfig,
    BrainVisForCLIPAlignment,
    BrainVisTimeEncoderForMaskedModeling,
)
from brainvis_hf.models.cpu_kernels import packed_weight_cache  # noqa: E402
from brainvis_hf.models.convert_original import (  # noqa: E402
    _brainvis_config,
    convert_align_state_dict,
    convert_time_state_dict,
    infer_time_config,
)

CPU_KERNELS = {"enabled": True}  # --plain-kernels turns them off


def opt_in_kernels(model):
    """`model` on the opt-in oneDNN CPU kernels unless `--plain-kernels`."""
    return model.enable_cpu_kernels() if CPU_KERNELS["enabled"] else model


# ---------------------------------------------------------------------------------------------
# measurement helpers
# ---------------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def peak_extra_mib(fn) -> float:
    """Peak resident memory of one call of `fn` above the level before it (Linux; NaN elsewhere)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets the high-water mark VmHWM to the current RSS
        before = _status_kib("VmRSS")
    except OSError:
        fn()
        return float("nan")
    fn()
    return (_status_kib("VmHWM") - before) / 1024


def timed_interleaved(fns: dict, repeats: int, warmup: int = 1) -> dict:
    """Median seconds and peak extra memory per function, calling them in turn (A B C A B C ...).

    Interleaving spreads the drift of a shared machine evenly over the implementations.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    memory = {name: peak_extra_mib(fn) for name, fn in fns.items()}
    times = {name: [] for name in fns}
    cpu_times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - start)
            cpu_times[name].append(time.process_time() - cpu_start)
    return {
        name: (statistics.median(times[name]), memory[name], min(times[name]), statistics.median(cpu_times[name]))
        for name in fns
    }


def timed(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def matmul_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    seconds = timed(lambda: torch.mm(a, b), repeats, warmup=2)
    return 2 * size**3 / seconds / 1e9


def linear_flops(batch_tokens: int, fan_in: int, fan_out: int) -> int:
    return 2 * batch_tokens * fan_in * fan_out


def encoder_flops(tokens: int, d: int, inner: int, layers: int, kv_tokens: int | None = None) -> int:
    """Forward FLOPs of `layers` blocks on `tokens` queries (self-attention, or cross to kv_tokens)."""
    kv = tokens if kv_tokens is None else kv_tokens
    per_layer = (
        linear_flops(tokens, d, d) * 2  # query, output
        + linear_flops(kv, d, d) * 2  # key, value
        + 2 * 2 * tokens * kv * d  # scores and mixing
        + linear_flops(tokens, d, inner) * 2  # feed-forward
    )
    return layers * per_layer


def align_forward_flops(config: BrainVisConfig, batch: int) -> int:
    t, f = config.time_config, config.freq_config
    n, d = t.num_units, t.hidden_size
    flops = linear_flops(batch * n, t.num_channels * t.wave_length, d)
    flops += encoder_flops(batch * n, d, t.intermediate_size, t.num_hidden_layers)
    # attention FLOPs above used batch*n tokens for both sides: correct the n^2 term per sample
    flops -= t.num_hidden_layers * 4 * (batch * n) * (batch * n) * d - t.num_hidden_layers * 4 * batch * n * n * d
    h = f.lstm_hidden_size
    flops += f.num_frequency_bins * linear_flops(batch, f.num_channels + h, 4 * h)
    flops += linear_flops(batch, h, f.feature_size) + linear_flops(batch, config.feature_size, config.num_labels)
    wide = 4 * d
    widths = [config.feature_size + config.num_labels, wide, d, wide, d, wide]
    for fan_in, fan_out in zip(widths, widths[1:] + [config.prompt_sequence_length * config.prompt_embed_dim]):
        flops += linear_flops(batch, fan_in, fan_out)
    return flops


def lmm_step_flops(config, batch: int) -> int:
    """Approximate FLOPs of one LMM step: forward of everything, backward (2x) of the trained parts."""
    n, m, d = config.num_units, config.num_masked_units, config.hidden_size
    v = n - m
    projection = linear_flops(batch * n, config.num_channels * config.wave_length, d)
    tokenize = linear_flops(batch * n, d, config.codebook_size)
    visible = batch * encoder_flops(v, d, config.intermediate_size, config.num_hidden_layers)
    momentum = batch * encoder_flops(m, d, config.intermediate_size, config.num_hidden_layers)
    regressor = batch * encoder_flops(m, d, config.intermediate_size, config.num_regressor_layers, kv_tokens=v)
    predict = linear_flops(batch * m, d, config.codebook_size)
    trained = projection + visible + regressor + predict
    return tokenize + momentum + 3 * trained


# ---------------------------------------------------------------------------------------------
# models with shared weights
# ---------------------------------------------------------------------------------------------


def build_pair(seed: int = 0):
    """The original AlignNet at paper size and our BrainVisForCLIPAlignment with its weights."""
    torch.manual_seed(seed)
    args = OriginalArgs()
    original = build_original_align(args)
    with torch.no_grad():  # trained-looking residual scales, so that every block matters
        for name, param in original.named_parameters():
            if name.endswith(".a"):
                param.uniform_(0.5, 1.5)
    state = original.state_dict()
    config = _brainvis_config(state, "pretrained_model.", num_heads=args.attn_heads, prompt_embed_dim=768)
    converted, _ = convert_align_state_dict(state)
    ours = BrainVisForCLIPAlignment(config)
    ours.load_state_dict(converted)
    return original.eval(), opt_in_kernels(ours).eval(), args


def build_lmm_pair(original_time):
    state = original_time.state_dict()
    config = infer_time_config(state, num_heads=16)
    converted, _ = convert_time_state_dict(state, task="masked_modeling")
    ours = BrainVisTimeEncoderForMaskedModeling(config)
    ours.load_state_dict(converted)
    return opt_in_kernels(ours)


# ---------------------------------------------------------------------------------------------
# benchmarks
# ---------------------------------------------------------------------------------------------


def refresh_peak(peak: dict) -> None:
    """Re-measure the plain matmul and keep the best figure seen (the load of a shared machine varies)."""
    for dtype_name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        peak[dtype_name] = max(peak[dtype_name], matmul_gflops(dtype))


def bench_alignment(original, ours, ours_bf16, batch: int, repeats: int, peak: dict) -> list[dict]:
    eeg = torch.randn(batch, 128, 440, generator=torch.Generator().manual_seed(batch))
    time_major = eeg.transpose(1, 2).contiguous()
    config = ours.config
    flops = align_forward_flops(config, batch)

    with torch.no_grad():
        reference = original(time_major)
        ref_logits = original.pretrained_model(time_major)[2]
        fp32_out = ours(eeg)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16_out = ours_bf16(eeg)
    fp32_diff = (fp32_out.prompt_embeds.reshape(batch, -1) - reference).abs().max().item()
    fp32_logit_diff = (fp32_out.logits - ref_logits).abs().max().item()
    cosine = F.cosine_similarity(bf16_out.prompt_embeds.float().reshape(batch, -1), reference, dim=1).min().item()
    same_classes = bool(torch.equal(bf16_out.logits.float().argmax(-1), ref_logits.argmax(-1)))

    def run_original():
        with torch.no_grad():
            original(time_major)

    def run_ours():
        with torch.no_grad():
            ours(eeg)

    def run_bf16():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            ours_bf16(eeg)

    impls = {"original (eager, fp32)": (run_original, "fp32"), "brainvis-hf fp32": (run_ours, "fp32"),
             "brainvis-hf bf16 mode": (run_bf16, "bf16")}  # fmt: skip
    measured = timed_interleaved({name: fn for name, (fn, _) in impls.items()}, repeats)
    refresh_peak(peak)
    rows = []
    base_seconds, _, base_best, base_cpu = measured["original (eager, fp32)"]
    for name, (_, dtype) in impls.items():
        seconds, memory, best, cpu_seconds = measured[name]
        gflops = flops / seconds / 1e9
        rows.append(dict(
            task=f"align forward, batch {batch}", impl=name, seconds=seconds, samples_per_s=batch / seconds,
            speedup_vs_original=base_seconds / seconds, best_seconds=best,
            best_speedup_vs_original=base_best / best, cpu_seconds=cpu_seconds,
            cpu_speedup_vs_original=base_cpu / cpu_seconds, gflops=gflops,
            pct_of_matmul=100 * gflops / peak[dtype], peak_extra_mib=memory,
        ))  # fmt: skip
    rows[1]["check"] = f"max |prompt diff| {fp32_diff:.2e}, max |logit diff| {fp32_logit_diff:.2e}"
    rows[2]["check"] = f"min cosine {cosine:.5f}, same predicted classes: {same_classes}"
    rows[1]["max_abs_diff"], rows[2]["min_cosine"], rows[2]["same_classes"] = fp32_diff, cosine, same_classes
    return rows


def _original_lmm_loss(original_time, eeg_time_major, args, permutation=None):
    (rep_masked, prediction), (logits, tokens) = original_time.pretrain_forward(eeg_time_major, permutation)
    mse = F.mse_loss(rep_masked, prediction)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1), label_smoothing=0.2)
    return 4.0 * mse + 2.0 * ce, mse, prediction


def bench_lmm(original_time, ours_lmm, args, batch: int, repeats: int, peak: dict) -> list[dict]:
    eeg = torch.randn(batch, 128, 440, generator=torch.Generator().manual_seed(100 + batch))
    time_major = eeg.transpose(1, 2).contiguous()
    config = ours_lmm.config

    # equality checks (eval mode: no dropout) with a shared mask: the outputs, and the gradients
    # of the regression loss (through the regressor, the online encoder and the projection)
    permutation = np.random.default_rng(0).permutation(config.num_units)
    noise = torch.empty(config.num_units)
    noise[torch.as_tensor(permutation)] = torch.arange(config.num_units, dtype=torch.float32)
    original_time.eval(), ours_lmm.eval()
    with torch.no_grad():
        _, ref_mse, ref_prediction = _original_lmm_loss(original_time, time_major, args, permutation)
        out = ours_lmm(eeg, noise=noise)
    prediction_diff = (out.predicted_representations - ref_prediction).abs().max().item()
    mse_diff = abs(out.regression_loss.item() - ref_mse.item())
    original_time.zero_grad(set_to_none=True), ours_lmm.zero_grad(set_to_none=True)
    _original_lmm_loss(original_time, time_major, args, permutation)[1].backward()
    ours_lmm(eeg, noise=noise).regression_loss.backward()
    grad_pairs = [(original_time.input_projection.weight, ours_lmm.time_encoder.embeddings.patch_projection.weight),
                  (original_time.mask_token, ours_lmm.mask_token),
                  (original_time.encoder.TRMs[0].ffn.linear1.weight, ours_lmm.time_encoder.encoder.layers[0].feed_forward.fc1.weight)]  # fmt: skip
    grad_diff = max(((a.grad - b.grad).abs().max() / a.grad.abs().max()).item() for a, b in grad_pairs)
    original_time.zero_grad(set_to_none=True), ours_lmm.zero_grad(set_to_none=True)
    original_time.train(), ours_lmm.train()

    # the original code's optimizer is the plain `torch.optim.AdamW`; ours is the same AdamW
    # (same hyper-parameters) with the fused CPU/GPU kernel, as the training presets use it
    # (`"optim": "adamw_torch_fused"`)
    original_opt = torch.optim.AdamW(original_time.parameters(), lr=5e-4)
    ours_opt = torch.optim.AdamW([p for p in ours_lmm.parameters() if p.requires_grad], lr=5e-4, fused=True)
    original_time.copy_weight()

    def step_original():
        original_opt.zero_grad(set_to_none=True)
        loss, _, _ = _original_lmm_loss(original_time, time_major, args)
        loss.backward()
        original_opt.step()
        original_time.momentum_update()

    def step_ours():
        ours_opt.zero_grad(set_to_none=True)
        ours_lmm(eeg).loss.backward()
        ours_opt.step()
        ours_lmm.momentum_update()

    def step_ours_bf16():
        ours_opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = ours_lmm(eeg).loss
        loss.backward()
        ours_opt.step()
        ours_lmm.momentum_update()

    flops = lmm_step_flops(config, batch)
    impls = {"original (eager, fp32)": (step_original, "fp32"), "brainvis-hf fp32": (step_ours, "fp32"),
             "brainvis-hf bf16 autocast": (step_ours_bf16, "bf16")}  # fmt: skip
    measured = timed_interleaved({name: fn for name, (fn, _) in impls.items()}, repeats)
    refresh_peak(peak)
    rows = []
    base_seconds, _, base_best, base_cpu = measured["original (eager, fp32)"]
    for name, (_, dtype) in impls.items():
        seconds, memory, best, cpu_seconds = measured[name]
        gflops = flops / seconds / 1e9
        rows.append(dict(
            task=f"LMM train step, batch {batch}", impl=name, seconds=seconds, samples_per_s=batch / seconds,
            speedup_vs_original=base_seconds / seconds, best_seconds=best,
            best_speedup_vs_original=base_best / best, cpu_seconds=cpu_seconds,
            cpu_speedup_vs_original=base_cpu / cpu_seconds, gflops=gflops,
            pct_of_matmul=100 * gflops / peak[dtype], peak_extra_mib=memory,
        ))  # fmt: skip
    rows[1]["check"] = (f"eval, shared mask: max |prediction diff| {prediction_diff:.2e}, |MSE diff| {mse_diff:.2e}, "
                        f"max rel. MSE-gradient diff {grad_diff:.2e}")  # fmt: skip
    rows[1]["max_abs_diff"], rows[1]["max_rel_grad_diff"] = prediction_diff, grad_diff
    return rows


def resident_model_mib(model: torch.nn.Module) -> float:
    """Parameters plus the cached oneDNN packed weights of `model`, in MiB."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and packed_weight_cache(module) is not None:
            total += module.weight.numel() * module.weight.element_size()
    return total / 2**20


def print_table(rows: list[dict]) -> None:
    header = (f"{'task':<26} {'implementation':<26} {'s/call':>8} {'samples/s':>10} {'speedup':>8} "
              f"{'best s':>7} {'best x':>7} {'cpu s':>7} {'cpu x':>7} {'GFLOP/s':>8} {'% mm':>6} {'peak MiB':>9}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['task']:<26} {row['impl']:<26} {row['seconds']:>8.3f} {row['samples_per_s']:>10.2f} "
            f"{row['speedup_vs_original']:>7.2f}x {row['best_seconds']:>7.3f} {row['best_speedup_vs_original']:>6.2f}x "
            f"{row['cpu_seconds']:>7.2f} {row['cpu_speedup_vs_original']:>6.2f}x "
            f"{row['gflops']:>8.1f} {row['pct_of_matmul']:>5.0f}% "
            f"{row['peak_extra_mib']:>9.0f}"
        )
        if row.get("check"):
            print(f"{'':<26}   check: {row['check']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--lmm-batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="batch 8 only, 3 repeats")
    parser.add_argument("--skip-lmm", action="store_true")
    parser.add_argument("--skip-align", action="store_true")
    parser.add_argument("--lmm-repeats", type=int, default=None, help="LMM repeats (default: repeats - 2, at least 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    parser.add_argument("--plain-kernels", action="store_true", help="brainvis-hf without enable_cpu_kernels()")
    args = parser.parse_args(argv)
    CPU_KERNELS["enabled"] = not args.plain_kernels
    if args.quick:
        args.batch_sizes, args.repeats = [8], 3
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU count {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip

    peak = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    print(f"plain 2048^3 matmul: fp32 {peak['fp32']:.1f} GFLOP/s, bf16 {peak['bf16']:.1f} GFLOP/s")

    original, ours, original_args = build_pair()
    ours_bf16 = copy.deepcopy(ours).to(torch.bfloat16)
    rows = []
    for batch in [] if args.skip_align else args.batch_sizes:
        rows += bench_alignment(original, ours, ours_bf16, batch, args.repeats, peak)
        print_table(rows[-3:])
    print(f"resident model memory: original {resident_model_mib(original):.0f} MiB, "
          f"brainvis-hf fp32 {resident_model_mib(ours):.0f} MiB (with packed weights), "
          f"bf16 {resident_model_mib(ours_bf16):.0f} MiB")  # fmt: skip
    del ours_bf16
    if not args.skip_lmm:
        original_time = original.pretrained_model.pretrained_model_time
        ours_lmm = build_lmm_pair(original_time)
        del original, ours
        lmm_repeats = args.lmm_repeats or max(2, args.repeats - 2)
        rows += bench_lmm(original_time, ours_lmm, original_args, args.lmm_batch, lmm_repeats, peak)
    print()
    print_table(rows)
    peak_again = matmul_gflops(torch.float32)
    print(f"\nplain matmul fp32 at the end: {peak_again:.1f} GFLOP/s (best seen {peak['fp32']:.1f}); "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"matmul_gflops": peak, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
