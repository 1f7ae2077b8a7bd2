"""Fault injection for training runs: a crash after a checkpoint, half-written and damaged
checkpoints, and the histories that metrics.json must keep across resumes."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
from transformers import TrainerCallback

from brainvis_hf.cli import main
from brainvis_hf.training import train_stage

OPTS = {"disable_tqdm": True, "report_to": [], "eval_strategy": "epoch", "save_strategy": "epoch", "save_total_limit": None}


class CrashAfterSaves(TrainerCallback):
    """Stands for a crash (OOM kill, preemption) right after the `n`-th checkpoint was written."""

    def __init__(self, n: int):
        self.n, self.saves = n, 0

    def on_save(self, args, state, control, **kwargs):
        self.saves += 1
        if self.saves == self.n:
            raise KeyboardInterrupt


def _pretrain(data, out, epochs, **kwargs):
    return train_stage("time-pretrain", data, out, preset="tiny", seed=0, linear_probe_every_n_epochs=1,
                       training_overrides={**OPTS, "num_train_epochs": epochs}, **kwargs)  # fmt: skip


@pytest.fixture(scope="module")
def crashed_run(prepared_data_dir, tmp_path_factory):
    """A 3-epoch pretraining run that crashed after its 2nd checkpoint (epoch 2)."""
    out = tmp_path_factory.mktemp("crashed") / "run"
    with pytest.raises(KeyboardInterrupt):
        _pretrain(prepared_data_dir, out, 3, callbacks=[CrashAfterSaves(2)])
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert len(checkpoints) == 2
    return out, checkpoints


def _copy_run(crashed_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(crashed_run[0], out)
    return out, [out / p.name for p in crashed_run[1]]


def test_resume_skips_a_half_written_checkpoint_and_keeps_the_probe_history(crashed_run, prepared_data_dir, tmp_path, caplog):
    out, (first, second) = _copy_run(crashed_run, tmp_path)
    steps = int(second.name.split("-")[1])
    # a later checkpoint that a crash (or a full disk) cut short: weights but no trainer_state.json
    half = out / f"checkpoint-{steps + 1}"
    half.mkdir()
    shutil.copy(second / "model.safetensors", half / "model.safetensors")
    # and one whose optimizer state was truncated
    damaged = out / f"checkpoint-{steps + 2}"
    shutil.copytree(second, damaged)
    data = (damaged / "optimizer.pt").read_bytes()
    (damaged / "optimizer.pt").write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="brainvis_hf.training.run"):
        result = _pretrain(prepared_data_dir, out, 3, resume_from_checkpoint="last")
    warnings = [r.getMessage() for r in caplog.records if r.name == "brainvis_hf.training.run"]
    assert warnings == [
        f"skipping {damaged / 'optimizer.pt'} is truncated or corrupted (not a complete PyTorch file); resuming from an earlier checkpoint",
        f"skipping {half} is incomplete: no trainer_state.json (its save was interrupted); resuming from an earlier checkpoint",
    ]
    assert all("\n" not in w for w in warnings)
    assert result.trainer.state.global_step == steps * 3 // 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["linear_probe"]] == [1.0, 2.0, 3.0]  # the probes before the crash are kept
    logged = [e["eval_linear_probe_accuracy"] for e in result.trainer.state.log_history if "eval_linear_probe_accuracy" in e]
    assert [h["linear_probe_accuracy"] for h in metrics["linear_probe"]] == pytest.approx(logged)


def test_no_complete_checkpoint(crashed_run, prepared_data_dir, tmp_path, capsys):
    out, checkpoints = _copy_run(crashed_run, tmp_path)
    for checkpoint in checkpoints:
        (checkpoint / "trainer_state.json").unlink()
    code = main(["train", "time-pretrain", "--data", str(prepared_data_dir), "--output", str(out), "--preset", "tiny",
                 "--resume-from-checkpoint", "--report-to", "none"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"brainvis train: error: --resume-from-checkpoint last: no complete checkpoint in {out} (2 damaged or incomplete); "
        "start afresh with --overwrite-output."
    )


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda c: (c / "trainer_state.json").write_text('{"global_step": 3,'), "trainer_state.json is not a valid trainer state"),
        (lambda c: (c / "trainer_state.json").unlink(), "is incomplete: no trainer_state.json"),
        (lambda c: (c / "optimizer.pt").write_bytes((c / "optimizer.pt").read_bytes()[:100]), "optimizer.pt is truncated or corrupted"),
        (lambda c: (c / "model.safetensors").write_bytes((c / "model.safetensors").read_bytes()[:-10]), "model.safetensors is truncated or corrupted"),
    ],
    ids=["invalid trainer_state.json", "no trainer_state.json", "truncated optimizer.pt", "truncated weights"],
)
def test_explicit_damaged_checkpoint_is_one_line_naming_the_file(crashed_run, prepared_data_dir, tmp_path, capsys, damage, message):
    out, (_, second) = _copy_run(crashed_run, tmp_path)
    damage(second)
    code = main(["train", "time-pretrain", "--data", str(prepared_data_dir), "--output", str(out), "--preset", "tiny",
                 "--resume-from-checkpoint", str(second), "--report-to", "none"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"brainvis train: error: --resume-from-checkpoint {second}: {second}")
    assert message in line and line.endswith("use --resume-from-checkpoint last to take the last complete one.")
