"""Training mechanics: momentum updates per optimizer step, resume equivalence, start-up errors,
LoRA, the CLI, Hub upload, ``accelerate launch`` with 2 CPU processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback


REPO = Path(__file__).resolve().parents[1]
FAST = {"disable_tqdm": True, "eval_strategy": "no", "save_strategy": "no", "report_to": []}


def _tiny_config(name, **overrides):
    from transformers import AutoConfig

    from brainvis_hf.presets import preset_dir

    return AutoConfig.from_pretrained(preset_dir(name, "tiny"), **overrides)


@pytest.fixture(scope="module")
def tiny_time_encoder_dir(tmp_path_factory):
    """A (fresh) tiny masked-modeling time encoder saved with save_pretrained."""
    from brainvis_hf.models import BrainVisTimeEncoderForMaskedModeling

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("time_encoder")
    BrainVisTimeEncoderForMaskedModeling(_tiny_config("time_encoder")).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_freq_encoder_dir(tmp_path_factory):
    from brainvis_hf.models import BrainVisFreqEncoderForEEGClassification

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("freq_encoder")
    BrainVisFreqEncoderForEEGClassification(_tiny_config("freq_encoder")).save_pretrained(folder)
    return folder


# ----------------------------------------------------------------------------------------------
# Momentum encoder
# ----------------------------------------------------------------------------------------------


class StepRecorder(TrainerCallback):
    """Snapshots of the online and momentum encoders around each optimizer step."""

    def __init__(self):
        self.optimizer_steps = 0
        self.substeps = 0
        self.first_step_equal = None
        self.last_online = None
        self.last_momentum = None

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == 0 and self.first_step_equal is None:
            pairs = zip(model.time_encoder.encoder.parameters(), model.momentum_encoder.parameters())
            self.first_step_equal = all(torch.equal(a, b) for a, b in pairs)

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.optimizer_steps += 1

    def on_substep_end(self, args, state, control, **kwargs):
        self.substeps += 1

    def on_step_end(self, args, state, control, model=None, **kwargs):  # runs before the momentum callback
        self.last_online = [p.detach().clone() for p in model.time_encoder.encoder.parameters()]
        self.last_momentum = [p.detach().clone() for p in model.momentum_encoder.parameters()]


def test_momentum_update_once_per_optimizer_step_under_accumulation(prepared_data_dir, tmp_path):
    from brainvis_hf.training import MomentumUpdateCallback, train_stage

    recorder = StepRecorder()
    result = train_stage(
        "time-pretrain", prepared_data_dir, tmp_path / "run", preset="tiny", callbacks=[recorder],
        linear_probe_every_n_epochs=0,
        training_overrides={**FAST, "max_steps": 3, "gradient_accumulation_steps": 2, "per_device_train_batch_size": 8},
    )
    momentum_cb = next(c for c in result.trainer.callback_handler.callbacks if isinstance(c, MomentumUpdateCallback))
    assert recorder.optimizer_steps == 3 and recorder.substeps == 3  # 6 micro-batches, 3 optimizer steps
    assert momentum_cb.num_updates == 3 == result.trainer.state.global_step
    assert recorder.first_step_equal  # momentum encoder = online encoder at the start
    m = result.model.config.momentum
    model = result.model
    for online, before, after in zip(recorder.last_online, recorder.last_momentum, model.momentum_encoder.parameters()):
        torch.testing.assert_close(after.detach(), m * before + (1 - m) * online, rtol=1e-6, atol=1e-7)
    moved = [not torch.equal(a, b) for a, b in zip(recorder.last_momentum, model.momentum_encoder.parameters())]
    assert any(moved)


# ----------------------------------------------------------------------------------------------
# Resume equivalence
# ----------------------------------------------------------------------------------------------


def _state(folder):
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(prepared_data_dir, tmp_path):
    """20 steps at once vs 10 steps, interrupted (mid-epoch: 15 steps per epoch), resumed to 20."""
    from brainvis_hf.training import train_stage

    # the interruption is simulated by a shorter max_steps, which would also shorten a decaying
    # schedule: a constant learning rate keeps the two runs' step sizes equal
    opts = {**FAST, "save_strategy": "steps", "save_steps": 10, "per_device_train_batch_size": 16,
            "lr_scheduler_type": "constant", "warmup_steps": 0}
    kwargs = dict(preset="tiny", seed=3, linear_probe_every_n_epochs=0)
    train_stage("time-pretrain", prepared_data_dir, tmp_path / "full", training_overrides={**opts, "max_steps": 20},
                **kwargs)
    train_stage("time-pretrain", prepared_data_dir, tmp_path / "part", training_overrides={**opts, "max_steps": 10},
                **kwargs)
    assert (tmp_path / "part" / "checkpoint-10").is_dir()
    resumed = train_stage("time-pretrain", prepared_data_dir, tmp_path / "part", resume_from_checkpoint="last",
                          training_overrides={**opts, "max_steps": 20}, **kwargs)
    assert resumed.trainer.state.global_step == 20
    full, part = _state(tmp_path / "full"), _state(tmp_path / "part")
    assert set(full) == set(part) and any(k.startswith("momentum_encoder.") for k in full)
    for key in full:
        torch.testing.assert_close(part[key], full[key], rtol=1e-5, atol=1e-6, msg=key)
    # and training did change the weights
    first = _state(tmp_path / "part" / "checkpoint-10")
    assert not torch.equal(first["tokenizer.weight"], full["tokenizer.weight"])


# ----------------------------------------------------------------------------------------------
# Bad configurations fail at start
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ten_class_time_classifier_dir(tmp_path_factory):
    from brainvis_hf.models import BrainVisTimeEncoderForEEGClassification

    folder = tmp_path_factory.mktemp("ten_classes")
    BrainVisTimeEncoderForEEGClassification(_tiny_config("time_encoder", num_labels=10)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def sixty_four_channel_config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("config64")
    _tiny_config("freq_encoder", num_channels=64).save_pretrained(folder)
    return folder / "config.json"


def _bad_cases(data, tmp, time_dir, freq_dir, ten_dir, config64):
    return [
        (dict(stage="time-shuffle"), "Unknown stage 'time-shuffle'; expected one of time-pretrain, time-finetune, "
         "freq, timefreq, align"),
        (dict(stage="freq", preset="huge"), "Unknown preset 'huge'; expected one of paper, small, tiny, things-eeg2-base, things-eeg2-small, things-eeg2-tiny"),
        (dict(stage="freq", protocol="test"), "Unknown protocol 'test'"),
        (dict(stage="timefreq"), "Stage 'timefreq' needs 2 --init folder(s) (the time-encoder folder"),
        (dict(stage="time-finetune"), "Stage 'time-finetune' needs 1 --init folder(s)"),
        (dict(stage="align", init=[tmp]), "Stage 'align' needs CLIP targets, but "),
        (dict(stage="timefreq", init=[freq_dir, time_dir]), "expected a time encoder first"),
        (dict(stage="time-finetune", init=[ten_dir]),
         "Class count mismatch: the data in {data} has 40 classes but the model (--init {ten}) has 10 labels."),
        (dict(stage="freq", config=config64),
         "The data in {data} has EEG of 128 channels x 440 samples, but the model configuration ({config}) "
         "expects 64 channels x 440 samples"),
        (dict(stage="freq", lora=True), "--lora applies to the stages that fine-tune a pretrained time encoder"),
        (dict(stage="freq", training_overrides={"learning_rat": 1.0}),
         "training overrides: unknown TrainingArguments field(s) ['learning_rat']"),
        (dict(stage="freq", init=[tmp / "missing"]), "--init {missing}: no such folder"),
    ]


def test_bad_configurations_fail_at_start_with_clear_messages(
    prepared_data_dir, tmp_path, tiny_time_encoder_dir, tiny_freq_encoder_dir, ten_class_time_classifier_dir,
    sixty_four_channel_config,
):
    from brainvis_hf.training import train_stage

    cases = _bad_cases(prepared_data_dir, tmp_path, tiny_time_encoder_dir, tiny_freq_encoder_dir,
                       ten_class_time_classifier_dir, sixty_four_channel_config)
    for i, (kwargs, message) in enumerate(cases):
        message = message.format(data=prepared_data_dir, ten=ten_class_time_classifier_dir,
                                 config=sixty_four_channel_config, missing=tmp_path / "missing")
        out = tmp_path / f"out{i}"
        stage = kwargs.pop("stage")
        kwargs.setdefault("preset", "tiny")
        with pytest.raises((ValueError, FileNotFoundError)) as info:
            train_stage(stage, prepared_data_dir, out, **kwargs)
        assert message in str(info.value), (stage, kwargs, str(info.value))
        assert not list(out.glob("checkpoint-*"))  # nothing was trained


def test_refuses_to_mix_runs_and_data_without_splits(prepared_data_dir, tmp_path):
    from brainvis_hf.training import train_stage

    (tmp_path / "run" / "checkpoint-5").mkdir(parents=True)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        train_stage("freq", prepared_data_dir, tmp_path / "run", preset="tiny")
    with pytest.raises(FileNotFoundError, match="no checkpoint-"):
        train_stage("freq", prepared_data_dir, tmp_path / "empty", preset="tiny", resume_from_checkpoint="last")


def test_cli_errors(prepared_data_dir, tmp_path, capsys):
    from brainvis_hf.cli import main

    rc = main(["train", "timefreq", "--data", str(prepared_data_dir), "--output", str(tmp_path / "o"),
               "--preset", "tiny", "--init", str(tmp_path)])
    assert rc == 2
    assert "Stage 'timefreq' needs 2 --init folder(s)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["train", "time-shuffle", "--data", "d", "--output", "o"])
    assert info.value.code == 2
    assert "invalid choice: 'time-shuffle'" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# CLI run, Hub upload
# ----------------------------------------------------------------------------------------------


def test_cli_train_and_push_to_hub(prepared_data_dir, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    from brainvis_hf.cli import main

    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create"] = (repo_id, kwargs)

    def upload_folder(self, **kwargs):
        calls["upload"] = kwargs
        return "https://huggingface.co/me/brainvis-freq/commit/0"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    out = tmp_path / "freq"
    rc = main(["train", "freq", "--data", str(prepared_data_dir), "--output", str(out), "--preset", "tiny",
               "--max-steps", "4", "--per-device-train-batch-size", "8", "--learning-rate", "0.02",
               "--eval-strategy", "steps", "--eval-steps", "2", "--save-strategy", "steps", "--save-steps", "2",
               "--training-arg", "disable_tqdm=true", "--seed", "7", "--push-to-hub", "me/brainvis-freq",
               "--hub-private"])
    assert rc == 0
    assert "model saved in" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    hp = metrics["hyperparameters"]
    assert (hp["max_steps"], hp["per_device_train_batch_size"], hp["learning_rate"], hp["seed"]) == (4, 8, 0.02, 7)
    assert metrics["best_model_checkpoint"].endswith(("checkpoint-2", "checkpoint-4"))
    assert calls["create"] == ("me/brainvis-freq", {"private": True, "exist_ok": True, "repo_type": "model"})
    assert calls["upload"]["folder_path"] == str(out) and calls["upload"]["repo_id"] == "me/brainvis-freq"
    assert "checkpoint-*" in calls["upload"]["ignore_patterns"]


def test_paper_protocol_trains_on_train_plus_validation(prepared_data_dir, tmp_path):
    from brainvis_hf.data import load_prepared_dataset
    from brainvis_hf.training import train_stage

    sizes = {k: len(v) for k, v in load_prepared_dataset(prepared_data_dir).items()}
    result = train_stage("freq", prepared_data_dir, tmp_path / "paper", preset="tiny", protocol="paper",
                         training_overrides={**FAST, "max_steps": 2})
    assert result.metrics["protocol"] == "paper" and result.metrics["selection_split"] == "test"
    assert result.metrics["data"]["num_train"] == sizes["train"] + sizes["validation"]
    assert set(result.metrics["evaluation"]) == {"test"}
    assert "Paper protocol" in (tmp_path / "paper" / "README.md").read_text()


# ----------------------------------------------------------------------------------------------
# LoRA
# ----------------------------------------------------------------------------------------------


def test_lora_trains_adapters_only_and_merges(prepared_data_dir, tmp_path, tiny_time_encoder_dir):
    from safetensors.torch import load_file

    from brainvis_hf.data import BrainVisDataCollator, load_prepared_dataset
    from brainvis_hf.models import BrainVisTimeEncoderForEEGClassification
    from brainvis_hf.training import merge_lora_adapter, train_stage

    out = tmp_path / "lora"
    result = train_stage("time-finetune", prepared_data_dir, out, preset="tiny", init=[tiny_time_encoder_dir],
                         lora=True, lora_r=4, merge_lora=True, training_overrides={**FAST, "max_steps": 4})
    lora = result.metrics["lora"]
    assert 0 < lora["trainable_parameters"] < 0.5 * lora["total_parameters"]
    adapter = out / "lora_adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    adapter_weights = load_file(str(adapter / "adapter_model.safetensors"))
    assert any("lora_A" in k for k in adapter_weights) and any("classifier" in k for k in adapter_weights)
    assert not any("patch_projection" in k for k in adapter_weights)  # the frozen encoder is not in the adapter
    peft_model = result.model.eval()
    base = peft_model.get_base_model()
    initial = load_file(str(tiny_time_encoder_dir / "model.safetensors"))
    key = next(k for k in initial if k.endswith("embeddings.patch_projection.weight"))
    torch.testing.assert_close(base.time_encoder.embeddings.patch_projection.weight.detach(), initial[key])

    batch = BrainVisDataCollator()([load_prepared_dataset(prepared_data_dir)["test"][i] for i in range(6)])
    with torch.no_grad():
        expected = peft_model(eeg_values=batch["eeg_values"]).logits
        merged_here = BrainVisTimeEncoderForEEGClassification.from_pretrained(out).eval()
        torch.testing.assert_close(merged_here(eeg_values=batch["eeg_values"]).logits, expected, rtol=1e-4, atol=1e-5)
        merged_later = BrainVisTimeEncoderForEEGClassification.from_pretrained(
            merge_lora_adapter(adapter, tmp_path / "merged")).eval()
        torch.testing.assert_close(merged_later(eeg_values=batch["eeg_values"]).logits, expected, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# accelerate launch: 2 CPU processes (gloo)
# ----------------------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(prepared_data_dir, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    # accelerate 1.x: `--cpu` alone starts ONE process (multi-CPU needs an MPI hostfile); `--multi_gpu`
    # starts torchrun, and the script's --use-cpu keeps the processes on the CPU (gloo backend).
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()),
           str(REPO / "training" / "train.py"), "freq", "--use-cpu", "--data", str(prepared_data_dir),
           "--output", str(out),
           "--preset", "tiny", "--max-steps", "4", "--per-device-train-batch-size", "8",
           "--eval-strategy", "steps", "--eval-steps", "2", "--save-strategy", "steps", "--save-steps", "2",
           "--training-arg", "disable_tqdm=true"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stderr[-4000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["hyperparameters"]["num_processes"] == 2
    assert metrics["hyperparameters"]["effective_batch_size"] == 16
    assert metrics["global_step"] == 4
    assert metrics["train"]["epoch"] == pytest.approx(4 * 16 / metrics["data"]["num_train"], rel=1e-3)
    from brainvis_hf.models import BrainVisFreqEncoderForEEGClassification

    assert BrainVisFreqEncoderForEEGClassification.from_pretrained(out).config.num_labels == 40


# ----------------------------------------------------------------------------------------------
# align: head options from --config, class-count check against the unified model
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def align_data(prepared_data_dir, tmp_path_factory):
    import shutil

    from brainvis_hf.data.clip_targets import compute_clip_targets
    from brainvis_hf.pipelines.tiny import build_tiny_clip_text_model, build_tiny_clip_tokenizer

    data = tmp_path_factory.mktemp("align_data") / "data"
    shutil.copytree(prepared_data_dir, data)
    tokenizer = build_tiny_clip_tokenizer()
    compute_clip_targets(data, captioner=None, tokenizer=tokenizer, device="cpu", show_progress=False,
                         text_encoder=build_tiny_clip_text_model(hidden_size=16, tokenizer=tokenizer))
    return data


def _unified_dir(folder, num_labels=40):
    from brainvis_hf.models import BrainVisForEEGClassification

    BrainVisForEEGClassification(_tiny_config("timefreq", num_labels=num_labels)).save_pretrained(folder)
    return folder


def test_align_keeps_the_class_loss_by_default_and_config_restores_the_papers(align_data, tmp_path):
    from brainvis_hf.training import train_stage

    unified = _unified_dir(tmp_path / "u")
    fast = {**FAST, "max_steps": 1, "logging_steps": 1}
    default = train_stage("align", align_data, tmp_path / "a", preset="tiny", init=[unified], training_overrides=fast)
    assert default.model.config.alignment_classification_loss_weight == 1.0

    paper = tmp_path / "paper.json"
    paper.write_text(json.dumps({"alignment_classification_loss_weight": 0.0}))
    result = train_stage("align", align_data, tmp_path / "b", preset="tiny", init=[unified], config=paper,
                         training_overrides=fast)
    assert result.model.config.alignment_classification_loss_weight == 0.0


def test_align_takes_head_options_and_checks_classes(align_data, tmp_path):
    from brainvis_hf.training import train_stage

    config = tmp_path / "align.json"
    config.write_text(json.dumps({"alignment_classification_loss_weight": 1.0}))
    result = train_stage("align", align_data, tmp_path / "align", preset="tiny", init=[_unified_dir(tmp_path / "u")],
                         config=config, training_overrides={**FAST, "max_steps": 2, "logging_steps": 1})
    model = result.model
    assert model.config.alignment_classification_loss_weight == 1.0
    assert (model.config.prompt_sequence_length, model.config.prompt_embed_dim) == (77, 16)  # from the targets
    train_logs = [h for h in result.trainer.state.log_history if "classification_loss" in h]
    assert train_logs and "mse_fine_loss" in train_logs[0]

    with pytest.raises(ValueError, match=r"Class count mismatch: .* has 40 classes but the model \(--init .*\) has 10"):
        train_stage("align", align_data, tmp_path / "bad", preset="tiny",
                    init=[_unified_dir(tmp_path / "u10", num_labels=10)])


def test_gradient_checkpointing_and_bf16_options(prepared_data_dir, tmp_path, tiny_time_encoder_dir):
    from brainvis_hf.training import train_stage

    result = train_stage("time-finetune", prepared_data_dir, tmp_path / "gc", preset="tiny",
                         init=[tiny_time_encoder_dir],
                         training_overrides={**FAST, "max_steps": 2, "activation_checkpointing": True, "bf16": True,
                                             "use_cpu": not torch.cuda.is_available()})
    hp = result.metrics["hyperparameters"]
    assert hp["activation_checkpointing"] is True and hp["bf16"] is True
    assert result.model.is_activation_checkpointing
    assert result.trainer.state.global_step == 2


def test_cli_trainer_options_map_to_training_arguments():
    from brainvis_hf.cli import build_parser
    from brainvis_hf.cli.train import training_overrides

    args = build_parser().parse_args([
        "train", "time-pretrain", "--data", "d", "--output", "o", "--num-train-epochs", "3", "--max-steps", "7",
        "--per-device-train-batch-size", "4", "--gradient-accumulation-steps", "2", "--learning-rate", "1e-4",
        "--gradient-checkpointing", "--bf16", "--report-to", "none",
        "--training-arg", "warmup_steps=0.1", "--training-arg", "optim=adamw_torch_fused",
    ])
    assert training_overrides(args) == {
        "num_train_epochs": 3.0, "max_steps": 7, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2,
        "learning_rate": 1e-4, "report_to": ["none"], "bf16": True, "activation_checkpointing": True,
        "warmup_steps": 0.1, "optim": "adamw_torch_fused",
    }
    assert args.resume_from_checkpoint is None and args.protocol == "validation" and args.preset == "paper"
    resumed = build_parser().parse_args(["train", "freq", "--data", "d", "--output", "o", "--resume-from-checkpoint"])
    assert resumed.resume_from_checkpoint == "last"


def test_label_smoothing_factor_smooths_the_classification_training_loss(tmp_path):
    """``label_smoothing_factor`` is a TrainingArguments field users rely on; the stage trainer
    must not drop it (the models compute their own plain cross-entropy)."""
    import torch.nn.functional as F
    from transformers import TrainingArguments

    from brainvis_hf.models import BrainVisTimeEncoderForEEGClassification
    from brainvis_hf.training.trainer import BrainVisTrainer

    config = _tiny_config("time_encoder", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    model = BrainVisTimeEncoderForEEGClassification(config)
    inputs = {"eeg_values": torch.randn(6, 128, 440), "labels": torch.tensor([0, 3, 5, 7, 9, 39])}

    def loss(factor, training=True):
        args = TrainingArguments(tmp_path / str(factor), label_smoothing_factor=factor, report_to=[], use_cpu=True)
        trainer = BrainVisTrainer(model=model, args=args, stage_kind="classification")
        model.train(training)
        with torch.no_grad():
            return trainer.compute_loss(model, dict(inputs))

    with torch.no_grad():
        logits = model.train()(inputs["eeg_values"]).logits
    torch.testing.assert_close(loss(0.2), F.cross_entropy(logits, inputs["labels"], label_smoothing=0.2))
    torch.testing.assert_close(loss(0.0), F.cross_entropy(logits, inputs["labels"]))
    torch.testing.assert_close(loss(0.2, training=False), F.cross_entropy(logits, inputs["labels"]))
