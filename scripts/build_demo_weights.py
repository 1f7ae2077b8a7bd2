"""Regenerate the demo weights shipped in ``src/brainvis_hf/demo_weights/`` (bit for bit).

    OMP_NUM_THREADS=1 python scripts/build_demo_weights.py --output /tmp/demo_weights --check

trains, on one CPU thread with fixed seeds, the demo's diffusion components (small VAE + UNet,
``train_demo_diffusion``) and its image classifier (``train_demo_image_classifier``) on the demo's
synthetic data set (seed 0), writes them with a ``manifest.json`` (SHA-256 of every weight file),
and with ``--check`` compares the hashes with the shipped manifest. ``--output
src/brainvis_hf/demo_weights`` replaces the shipped copies.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="folder to write diffusion/, image_classifier/, manifest.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="compare the SHA-256 of the new weights with the shipped manifest")
    args = parser.parse_args(argv)

    from brainvis_hf.training.demo_weights import DEMO_WEIGHTS_DIR, MANIFEST_NAME, build_demo_weights

    start = time.perf_counter()
    manifest = build_demo_weights(args.output, seed=args.seed, log=lambda m: print(m, flush=True))
    print(f"wrote {args.output} in {time.perf_counter() - start:.0f} s")
    if args.check:
        shipped = json.loads((DEMO_WEIGHTS_DIR / MANIFEST_NAME).read_text(encoding="utf-8"))["sha256"]
        different = sorted(k for k in set(shipped) | set(manifest["sha256"]) if shipped.get(k) != manifest["sha256"].get(k))
        if different:
            print(f"DIFFERENT from the shipped weights: {', '.join(different)}", file=sys.stderr)
            return 1
        print(f"identical to the shipped weights ({len(shipped)} files)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
