#!/usr/bin/env python
"""Train one BrainVis stage; the same options as `brainvis train` (run `python training/train.py --help`).

    # one process (CPU or one GPU)
    python training/train.py time-pretrain --data data/eeg_imagenet --output runs/time --preset paper

    # several GPUs / CPU processes: accelerate starts one process per device
    accelerate launch --config_file training/accelerate_configs/multi_gpu.yaml \
        training/train.py time-pretrain --data data/eeg_imagenet --output runs/time
    accelerate launch --num_processes 2 --cpu training/train.py freq --data data/eeg_imagenet --output runs/freq

Stages: time-pretrain, time-finetune, freq, timefreq, align (see training/README.md).
"""

import sys

from brainvis_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
