"""Which kernels each platform's program holds: the run's programs lowered with ``jax.export`` for
CPU, TPU and CUDA on this machine (nothing compiled or run), op counts per platform and program.

    python experiments/benchmarks/export_check.py --json results/accelerator/export.json

SDEKC's paper configuration on all of USPS (9,298 16x16 images), in float32 and in bf16
(``RunConfig(precision="bf16")``). Expected: TPU and CUDA modules use ``stablehlo.convolution``
for every convolution and none of the gather formulation's strided slices, the CPU module the
reverse; ``eigh`` lowers to each platform's kernel (LAPACK, TPU ``Eigh``, cuSOLVER) and the while
loops lower everywhere; under bf16 the convolutions take bfloat16 operands.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_json  # noqa: E402
from sdekc_jax.config import RunConfig  # noqa: E402
from sdekc_jax.lowering import lower, op_counts  # noqa: E402

PLATFORMS = ("cpu", "tpu", "cuda")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=9298, help="number of images (USPS: 9298)")
    ap.add_argument("--json", help="write the counts to this JSON file")
    args = ap.parse_args(argv)
    rows = {"n": args.n, "image_shape": [16, 16, 1], "programs": {}}
    print("| precision | program | platform | convolutions (bf16) | strided slices | while | dot_general | custom calls |")
    print("|---|---|---|---|---|---|---|---|")
    for precision in ("float32", "bf16"):
        cfg = RunConfig(n_clusters=10, image_shape=(16, 16, 1), precision=precision)
        t = time.perf_counter()
        texts = lower(cfg, args.n, PLATFORMS)
        seconds = time.perf_counter() - t
        for prog, by_platform in texts.items():
            for p, text in by_platform.items():
                c = op_counts(text)
                rows["programs"].setdefault(precision, {}).setdefault(prog, {})[p] = c
                print(f"| {precision} | {prog} | {p} | {c['convolution']} ({c['convolution_bf16']}) | "
                      f"{c['strided_slice']} | {c['while']} | {c['dot_general']} | "
                      f"{', '.join(f'{k} x{v}' for k, v in c['custom_calls'].items()) or '–'} |")
        rows.setdefault("lowering_seconds", {})[precision] = seconds
    write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
