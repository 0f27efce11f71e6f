"""What serving mirrored logits (`export --flip-tta`) costs: a bundle and the same checkpoint
exported with `--flip-tta`, one photo at a time through `Engine.predict` as the service calls
it, interleaved rounds, photos per second and the ratio, on this machine.

    python bench/bench_flip_tta.py --plain BUNDLE --mirrored BUNDLE [--threads 1] [--seconds 3]

Both bundles must hold the same graph (one checkpoint, exported twice); the photo is random
noise at the bundle's input size, since the cost does not depend on what it shows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_inference_ort import interleaved  # noqa: E402
from bench.machine import describe  # noqa: E402
from bench.timing import per_second  # noqa: E402
from inspection.engine import Engine  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plain", type=Path, required=True, help="a bundle exported as usual")
    parser.add_argument("--mirrored", type=Path, required=True, help="the same, with --flip-tta")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0, help="per round and bundle")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    engines = {"plain": Engine.load(args.plain, threads=args.threads),
               "mirrored": Engine.load(args.mirrored, threads=args.threads)}
    if not engines["mirrored"].mirrored or engines["plain"].mirrored:
        print(f"{args.mirrored} must be exported with --flip-tta and {args.plain} without",
              file=sys.stderr)
        return 2
    side = engines["plain"].input_size
    photo = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    rates = interleaved({name: (lambda e=engine: per_second(lambda: e.predict([photo]), 1,
                                                            args.seconds))
                         for name, engine in engines.items()}, args.rounds)
    print(f"{side} px, {args.threads} thread(s), batch 1, median of {args.rounds} interleaved rounds")
    print("| bundle | photos/s | ms/photo | x plain |\n|---|---|---|---|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.1f} | {1000 / rate:.2f} | {rates['plain'] / rate:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
