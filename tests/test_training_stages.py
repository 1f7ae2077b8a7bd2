"""The stage registry (``training/stages.py``): every module reads its one ``Stage`` entry, and the
diffusion stage, registered there, runs through ``brainvis train diffusion``."""

from __future__ import annotations

import json

import pytest

from brainvis_hf.training import stage_models
from brainvis_hf.training.arguments import STAGES as TRAINER_STAGES_OLD_NAME
from brainvis_hf.training.arguments import load_training_config
from brainvis_hf.training.stages import (
    STAGE_REGISTRY,
    STAGES,
    TRAINER_STAGES,
    Stage,
    get_stage,
    stage_loss_parts,
    stage_runner,
)


def test_each_stage_has_its_model_code_and_hyper_parameters():
    for stage in STAGE_REGISTRY.values():
        if stage.runner is None:
            assert callable(getattr(stage_models, stage.model_builder)), stage.name
            for preset in ("paper", "tiny"):
                assert load_training_config(stage.name, preset)["model"] == stage.model_preset
        else:
            assert callable(stage_runner(stage)), stage.name
    assert TRAINER_STAGES == TRAINER_STAGES_OLD_NAME == tuple(s for s in STAGES if s != "diffusion")


def test_a_stage_entry_is_checked_when_it_is_written():
    with pytest.raises(ValueError, match="unknown kind 'regression'"):
        Stage(name="x", kind="regression", help="", init_help="", model_builder="build_x")
    with pytest.raises(ValueError, match="exactly one of model_builder and runner"):
        Stage(name="x", kind="classification", help="", init_help="")
    with pytest.raises(ValueError, match="Unknown stage 'nope'; expected one of time-pretrain, .*diffusion"):
        get_stage("nope")


def test_the_trainer_logs_the_loss_parts_the_registry_gives():
    from brainvis_hf.training.trainer import LOSS_PART_KEYS

    assert LOSS_PART_KEYS["alignment"] == get_stage("align").loss_parts == stage_loss_parts("alignment")
    assert LOSS_PART_KEYS["masked_modeling"] == get_stage("time-pretrain").loss_parts
    assert LOSS_PART_KEYS["classification"] == ()


def test_cards_take_title_summary_and_task_from_the_stage():
    from brainvis_hf.hub import training_run_card

    for stage in STAGE_REGISTRY.values():
        card = training_run_card(".", {"stage": stage.name, "evaluation": {"test": {"accuracy": 0.5}}})
        assert f"# {stage.card_title}\n\n{stage.card_summary}" in card.text
        assert stage.card_task_type in str(card.data.eval_results[0].task_type)


def test_cli_lists_every_stage_and_its_init():
    from brainvis_hf.cli import build_parser

    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    stage_action = next(a for a in train._actions if a.dest == "stage")
    assert tuple(stage_action.choices) == STAGES
    init_help = next(a for a in train._actions if a.dest == "init").help
    assert all(f"{s.name}: {s.init_help}" in init_help for s in STAGE_REGISTRY.values())


@pytest.mark.parametrize("kwargs,message", [
    (dict(config="model.json"), "Stage 'diffusion' does not take --config"),
    (dict(protocol="paper", merge_lora=True), "does not take --protocol, --merge-lora"),
    (dict(training_overrides={"eval_strategy": "epoch"}), r"does not take the training option\(s\) \['eval_strategy'\]"),
    (dict(init=["a", "b"]), r"Stage 'diffusion' needs 0 to 1 --init folder\(s\)"),
])
def test_the_diffusion_stage_refuses_options_it_has_no_use_for(kwargs, message, tmp_path):
    from brainvis_hf.training import train_stage

    with pytest.raises(ValueError, match=message):
        train_stage("diffusion", tmp_path / "data", tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_brainvis_train_diffusion_adapts_sd_with_lora(prepared_data_dir, tiny_sd_dir, tmp_path, capsys):
    from brainvis_hf.cli import main

    out = tmp_path / "diffusion"
    code = main(["train", "diffusion", "--data", str(prepared_data_dir), "--output", str(out), "--init",
                 str(tiny_sd_dir), "--lora", "--lora-r", "2", "--max-steps", "2", "--per-device-train-batch-size",
                 "4", "--save-steps", "2", "--training-arg", "sample_images=false", "--seed", "3"])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert f"brainvis train diffusion: model saved in {out}" in printed and '"global_step": 2' in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stage"] == "diffusion" and metrics["lora"] is True and metrics["seed"] == 3
    assert metrics["batch_size"] == 4 and metrics["global_step"] == 2
    lora = json.loads((out / "brainvis_diffusion_lora.json").read_text())
    assert lora["rank"] == 2 and sorted(lora["target_modules"]) == sorted(get_stage("diffusion").lora_targets.names)
    assert (out / "pytorch_lora_weights.safetensors").is_file()
