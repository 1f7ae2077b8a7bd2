"""`brainvis --help` starts without torch; `--threads N` reaches torch for every computing command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

HEAVY = ("torch", "transformers", "diffusers", "datasets", "matplotlib", "sklearn", "accelerate", "brainvis_hf.models")

HELP_COMMANDS = (
    [], ["demo"], ["train"], ["generate"], ["evaluate"], ["convert-original"], ["data"], ["data", "synth"],
    ["data", "prepare"], ["data", "clip-targets"],
)
COMPUTING_COMMANDS = {
    "demo": ["demo"],
    "train": ["train", "freq", "--data", "D", "--output", "O"],
    "generate": ["generate", "--model", "M", "--eeg", "E", "--output", "O"],
    "evaluate": ["evaluate", "--generated", "G"],
    "data synth": ["data", "synth", "--output", "O"],
    "data prepare": ["data", "prepare", "--eeg", "E", "--splits", "S", "--output", "O"],
    "data clip-targets": ["data", "clip-targets", "--data", "D"],
}


def _imported(stderr: str) -> set[str]:
    """Module names listed by ``python -X importtime``."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def _console_script() -> Path:
    script = Path(sys.executable).parent / "brainvis"
    if not script.is_file():
        pytest.skip(f"no brainvis console script next to {sys.executable}")
    return script


@pytest.mark.parametrize("how", ["console-script", "python -m"])
@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "brainvis")
def test_help_imports_no_heavy_library(command, how):
    entry = [str(_console_script())] if how == "console-script" else ["-m", "brainvis_hf"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-X", "importtime", *entry, *command, "--help"],
                          capture_output=True, text=True, env=env, timeout=120)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: brainvis")
    imported = _imported(done.stderr)
    assert "brainvis_hf.cli" in imported  # the listing is real
    assert not [m for m in HEAVY if m in imported], [m for m in HEAVY if m in imported]
    assert seconds < 10  # secondary signal only (the import check above is the test): < 1 s when idle


def test_a_command_run_from_the_console_script_registers_the_auto_classes(tmp_path):
    """The CLI skips the eager model import for --help, so a command must still find the models."""
    driver = (
        "import sys; sys.argv[0] = 'brainvis'\n"
        "from brainvis_hf.cli import main\n"
        "assert 'torch' not in sys.modules\n"
        "def check(args):\n"
        "    from transformers import AutoConfig\n"
        "    print(type(AutoConfig.for_model('brainvis')).__name__)\n"
        "    return 0\n"
        "import brainvis_hf.cli.evaluate as ev\n"
        "ev.run = check\n"
        "sys.exit(main(['evaluate', '--generated', 'x']))\n"
    )
    done = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "BrainVisConfig"


def _run_with_recorder(argv):
    """Parse ``argv`` as ``main`` does and run it with a handler that records the thread settings."""
    from brainvis_hf.cli import _prepare_command, build_parser

    seen = {}

    def record(args):
        seen.update(threads=torch.get_num_threads(), omp=os.environ.get("OMP_NUM_THREADS"),
                    mkl=os.environ.get("MKL_NUM_THREADS"), arg=args.threads)
        return 0

    args = build_parser().parse_args(argv)
    args.func = record
    _prepare_command(args)
    assert args.func(args) == 0
    return seen


@pytest.mark.parametrize("name", list(COMPUTING_COMMANDS))
def test_threads_option_reaches_torch(name, monkeypatch):
    before = torch.get_num_threads()
    omp_before = os.environ.get("OMP_NUM_THREADS")
    target = 3 if before != 3 else 2
    seen = _run_with_recorder([*COMPUTING_COMMANDS[name], "--threads", str(target)])
    assert seen == {"threads": target, "omp": str(target), "mkl": str(target), "arg": target}
    # restored afterwards (commands also run in-process, e.g. from tests and notebooks)
    assert torch.get_num_threads() == before and os.environ.get("OMP_NUM_THREADS") == omp_before


def test_threads_defaults(monkeypatch):
    from brainvis_hf.cli._threads import available_cpus

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert _run_with_recorder(COMPUTING_COMMANDS["generate"])["threads"] == min(4, available_cpus())
    assert _run_with_recorder(["demo"])["threads"] == 1  # tiny models: one thread
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the environment wins over the built-in default
    assert _run_with_recorder(COMPUTING_COMMANDS["generate"])["threads"] == 2


def test_threads_must_be_positive(capsys):
    from brainvis_hf.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["data", "synth", "--output", "x", "--threads", "0"])
    assert exit_info.value.code == 2
    assert "--threads: expected a whole number >= 1, got 0" in capsys.readouterr().err


def test_main_applies_threads_before_the_command_runs(tmp_path, monkeypatch):
    """Through ``main``: the library function a command calls sees the requested thread count."""
    import brainvis_hf.data.synthetic as synthetic
    from brainvis_hf.cli import main

    seen = []

    def fake_write(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise ValueError("stopped by the test")

    monkeypatch.setattr(synthetic, "write_synthetic_eeg_imagenet", fake_write)
    assert main(["data", "synth", "--output", str(tmp_path / "o"), "--threads", "2"]) == 2
    assert seen == [2]


def test_clip_targets_help_defaults_match_the_library():
    from brainvis_hf.cli import data_clip_targets
    from brainvis_hf.data import clip_targets

    assert data_clip_targets.DEFAULT_CLIP_MODEL == clip_targets.DEFAULT_CLIP_MODEL
    assert data_clip_targets.DEFAULT_CAPTIONER == clip_targets.DEFAULT_CAPTIONER
