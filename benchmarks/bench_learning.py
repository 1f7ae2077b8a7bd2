"""Does the chain learn what a linear decoder can? Test accuracy per data family and difficulty.

For every (family, difficulty, seed) cell this writes an EEG-ImageNet-format data set (the
project's generator, ``brainvis_hf.data.write_synthetic_eeg_imagenet``, or one of the signal
families of ``brainvis_hf.data.signal_families``, which nobody tuned the recipe to), prepares it,
and trains with ``train_stage``:

* ``chain``: time-pretrain -> time-finetune -> freq -> timefreq (the unified classifier, the
  README's ``brainvis train`` sequence);
* ``time``: time-pretrain -> time-finetune (the time branch alone, the chain's first half);
* ``freq``: the frequency branch alone;
* ``linear``: the standardised logistic regression every run reports (``linear_baseline``);
* ``lmm_probe`` / ``random_probe``: the linear probe (fit on train, scored on test) of the
  LMM-pretrained time encoder and of a randomly initialised one of the same architecture.

It prints a matrix of test accuracy (mean and standard deviation over seeds; chance 1/40) and
the chain / linear ratio, and writes ``results.json``, ``results.md`` and ``results.png`` into
``--output``. Cells already in ``results.json`` are skipped, so an interrupted run resumes.

    python benchmarks/bench_learning.py --preset small --seeds 0 1 2 --output bench-learning
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

FAMILIES = {  # name -> (generator, background); "project" is brainvis data synth's model
    "project": ("project", None),
    "evoked-pink": ("evoked", "pink"),
    "evoked-drift": ("evoked", "drift"),
    "induced-pink": ("induced", "pink"),
    "spatial-drift": ("spatial", "drift"),
    "latency-pink": ("latency", "pink"),
}
MODELS = ("linear", "chain", "time", "freq", "lmm_probe", "random_probe")


def write_family(folder: Path, family: str, difficulty: float, seed: int, images_per_class: int) -> Path:
    """Write, load and prepare one data set; returns the prepared folder."""
    from brainvis_hf.data import load_eeg_imagenet, prepare_dataset, write_synthetic_eeg_imagenet
    from brainvis_hf.data.signal_families import write_signal_family

    generator, background = FAMILIES[family]
    raw = folder / "raw"
    if generator == "project":
        # the project's generator is standardised and has its own background; its difficulty
        # scale differs (1 = no signal), so the same nominal values are used
        files = write_synthetic_eeg_imagenet(
            raw, num_images_per_class=images_per_class, num_subjects=2, difficulty=difficulty, seed=seed,
            num_splits=1, show_progress=False,
        )
    else:
        files = write_signal_family(
            raw, generator, background=background, difficulty=difficulty, num_images_per_class=images_per_class,
            seed=seed,
        )
    dataset = load_eeg_imagenet(files.eeg_path, files.splits_path, cache_dir=str(folder / "cache"))
    return prepare_dataset(dataset, folder / "prepared")


def run_cell(family: str, difficulty: float, seed: int, preset: str, work: Path, images_per_class: int) -> dict:
    """Train the four stages of one cell; returns the test accuracies of its models."""
    from brainvis_hf.training import train_stage

    data = write_family(work, family, difficulty, seed, images_per_class)
    quiet = {"disable_tqdm": True, "report_to": []}

    def train(stage: str, name: str, init=(), baseline=False):
        result = train_stage(
            stage, data, work / name, preset=preset, seed=seed, init=init, training_overrides=quiet,
            linear_baseline=baseline,
        )
        return result.metrics

    train("time-pretrain", "time-pretrain")
    lmm_probe, random_probe = probe_test_accuracy(data, work / "time-pretrain", seed)
    time_branch = train("time-finetune", "time-finetune", init=(work / "time-pretrain",))
    freq = train("freq", "freq", baseline=True)
    chain = train("timefreq", "timefreq", init=(work / "time-finetune", work / "freq"))
    test = lambda metrics: metrics["evaluation"]["test"]["accuracy"]  # noqa: E731
    return {
        "linear": freq["linear_baseline"]["test"]["accuracy"],
        "chain": test(chain),
        "time": test(time_branch),
        "freq": test(freq),
        "lmm_probe": lmm_probe,
        "random_probe": random_probe,
    }


def probe_test_accuracy(data: Path, pretrained: Path, seed: int) -> tuple[float, float]:
    """Linear-probe test accuracy (fit on train) of the LMM encoder and of a random one of its architecture."""
    import torch

    from brainvis_hf.data import BrainVisDataCollator, load_prepared_dataset
    from brainvis_hf.models import BrainVisTimeEncoderForMaskedModeling
    from brainvis_hf.training.callbacks import linear_probe

    dataset, collator = load_prepared_dataset(data), BrainVisDataCollator()
    trained = BrainVisTimeEncoderForMaskedModeling.from_pretrained(pretrained)
    torch.manual_seed(1000 + seed)
    untrained = BrainVisTimeEncoderForMaskedModeling(trained.config)
    return tuple(linear_probe(m.eval(), dataset["train"], dataset["test"], collator) for m in (trained, untrained))


def summarise(results: dict, families, difficulties) -> tuple[list[dict], str]:
    import numpy as np

    rows, lines = [], []
    header = "| family | difficulty | " + " | ".join(MODELS) + " | chain / linear |"
    lines += [header, "|" + "---|" * (len(MODELS) + 3)]
    for family in families:
        for difficulty in difficulties:
            cells = [v for k, v in results.items() if k.startswith(f"{family}|{difficulty}|")]
            if not cells:
                continue
            row = {"family": family, "difficulty": difficulty, "seeds": len(cells)}
            text = []
            for model in MODELS:
                values = np.array([c[model] for c in cells], dtype=float)
                row[model] = {"mean": float(values.mean()), "std": float(values.std())}
                text.append(f"{values.mean():.2f} ± {values.std():.2f}")
            ratio = row["chain"]["mean"] / row["linear"]["mean"] if row["linear"]["mean"] > 0 else float("nan")
            row["chain_over_linear"] = ratio
            rows.append(row)
            lines.append(f"| {family} | {difficulty} | " + " | ".join(text) + f" | {ratio:.2f} |")
    return rows, "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [f"{r['family']}\n{r['difficulty']}" for r in rows]
    x = np.arange(len(rows))
    width = 0.8 / len(MODELS)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rows)), 4))
    for i, model in enumerate(MODELS):
        ax.bar(x + (i - (len(MODELS) - 1) / 2) * width, [r[model]["mean"] for r in rows], width,
               yerr=[r[model]["std"] for r in rows], label=model, capsize=2)
    ax.axhline(1 / 40, color="grey", linestyle=":", label="chance")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.05)
    ax.legend(ncol=7, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small", choices=("tiny", "small", "paper"))
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--difficulties", nargs="+", type=float, default=[0.0, 0.5])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--images-per-class", type=int, default=10, help="40 classes x N images x 2 subjects")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: comparable on a shared CPU)")
    parser.add_argument("--output", default="bench-learning")
    parser.add_argument("--report-only", action="store_true", help="summarise the cells already in --output; train nothing")
    parser.add_argument("--shard", type=lambda v: tuple(int(x) for x in v.split("/")), default=None, metavar="I/N",
                        help="run only every N-th cell starting at I (run N processes, one per core)")
    args = parser.parse_args(argv)

    import torch
    import transformers
    from tqdm.auto import tqdm

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # no save/load bars between the cell lines
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    # one results file per shard (no two processes write one file); all of them are read back
    suffix = f".shard{args.shard[0]}of{args.shard[1]}" if args.shard else ""
    results_file = output / f"results{suffix}.json"
    results = {}
    for stored_file in sorted(output.glob("results*.json")):
        stored = json.loads(stored_file.read_text())
        if stored.get("preset") == args.preset and stored.get("images_per_class") == args.images_per_class:
            results.update(stored["cells"])
    mine = {}

    # seed-major order: a partial run has every (family, difficulty) at seed 0 before any at seed 1
    cells = [(f, d, s) for s in args.seeds for f in args.families for d in args.difficulties]
    started = time.time()
    for family, difficulty, seed in tqdm(cells, desc=f"bench_learning ({args.preset})", unit="cell"):
        key = f"{family}|{difficulty}|{seed}"
        if key in results or args.report_only:
            continue
        if args.shard is not None and cells.index((family, difficulty, seed)) % args.shard[1] != args.shard[0]:
            continue
        work = Path(tempfile.mkdtemp(prefix="bench-learning-"))
        try:  # the Trainer's log lines go to a file, the console keeps one line per cell
            with open(output / "train.log", "a") as log, contextlib.redirect_stdout(log):
                results[key] = mine[key] = run_cell(family, difficulty, seed, args.preset, work, args.images_per_class)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if results_file.exists():
            mine = {**json.loads(results_file.read_text())["cells"], **mine}
        payload = {"preset": args.preset, "images_per_class": args.images_per_class, "cells": mine}
        tmp = results_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=2, allow_nan=False))
        os.replace(tmp, results_file)
        tqdm.write(f"{key}: " + ", ".join(f"{k} {v:.2f}" for k, v in results[key].items() if v is not None))

    for stored_file in sorted(output.glob("results*.json")):  # what the other shards finished meanwhile
        stored = json.loads(stored_file.read_text())
        if stored.get("preset") == args.preset and stored.get("images_per_class") == args.images_per_class:
            results.update(stored["cells"])
    rows, table = summarise(results, args.families, args.difficulties)
    (output / "results.md").write_text(
        f"preset {args.preset}, seeds {args.seeds}, {args.images_per_class} images per class x 40 classes x 2 subjects; "
        f"test accuracy, mean ± sd over seeds (chance 0.025)\n\n{table}\n"
    )
    plot(rows, output / "results.png")
    print(table)
    print(f"({time.time() - started:.0f} s; {output / 'results.md'}, {output / 'results.png'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
