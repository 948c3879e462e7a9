"""Whole commands, cold and warm: what a user waits for, start-up and compilation included.

    python benchmarks/bench_commands.py [--repeats 3] [--data-dir ../shared/data] [--json out]

Each command runs in a fresh process. Cold: an empty compilation cache folder (a first run, or
``--no-cache``); warm: the folder a first run filled (every later run with the same shapes).
Commands, on real 64 px SMILEsmileD test faces (a neutral one, and the smiling test face
nearest to it: another person):

* ``animate.py --model smiles --input face.png --out face.gif`` (120 frames);
* ``animate.py --fit --input a.png --target b.png --out pair.gif``;
* ``animate.py --help`` and ``train.py --config smoke --steps 2`` for scale.

The table gives medians over ``--repeats`` runs, with the CPU (AVX2 or AVX-512, cores).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import cold_and_warm, cpu_name, write_json
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"


def faces(data_dir: Path, out: Path) -> tuple[Path, Path]:
    """A neutral test face and the smiling test face nearest to it, as 64 px grey PNGs."""
    from jwarp.data import load_smiles, nearest_pairs

    x0, x1 = nearest_pairs(*load_smiles(data_dir / "SMILEsmileD", "test"), 1)
    paths = out / "face.png", out / "target.png"
    for x, path in zip((x0, x1), paths):
        Image.fromarray((np.asarray(x[0, ..., 0]) * 255).round().astype(np.uint8)).save(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA))
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "commands.json"))
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="jwarp-bench-commands-") as tmp:
        tmp = Path(tmp)
        face, target = faces(Path(args.data_dir), tmp)
        commands = {
            "animate.py --help": [py, str(ROOT / "animate.py"), "--help"],
            "animate.py --model smiles, 64 px face -> GIF": [
                py, str(ROOT / "animate.py"), "--model", "smiles", "--input", str(face),
                "--out", str(tmp / "face.gif")],
            "animate.py --fit, 64 px pair -> GIF": [
                py, str(ROOT / "animate.py"), "--fit", "--input", str(face), "--target",
                str(target), "--out", str(tmp / "pair.gif")],
            "train.py --config smoke --steps 2": [
                py, str(ROOT / "train.py"), "--config", "smoke", "--steps", "2", "--workdir",
                str(tmp / "run"), "--no-resume"],
        }
        cpu = cpu_name()
        print(f"{cpu}; fresh process per run; medians of {args.repeats}")
        print(f"{'command':48s} {'cold s':>7s} {'warm s':>7s}  (warm min-max)")
        rows = []
        for name, cmd in commands.items():
            got = cold_and_warm(cmd, args.repeats, tmp)
            rows.append({"name": name, "cpu": cpu, **got})
            print(f"{name:48s} {got['cold_median_s']:7.2f} {got['warm_median_s']:7.2f}  "
                  f"({got['warm_min_s']:.2f}-{got['warm_max_s']:.2f})", flush=True)
    write_json(args.json, rows)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
