"""`make train-tiny`, timed: the whole command's wall time, its phases and its figures, as JSON.

Run: .venv/bin/python benchmarks/train_tiny.py [--cold]      (or `make bench-train-tiny`)

Runs `minicoder train-tiny --retrain` in a subprocess (a fresh tokenizer and token cache with
--cold, so the tokenizer and the repository-level pipeline are timed too, as on a fresh clone) and
writes benchmarks/results/train-tiny-cpu.json: the wall time measured here, the phases the command
measured itself (report.json), full-split validation bits per byte, the parse count, and the
machine. The README's train-tiny figures come from this file.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cold", action="store_true", help="use an empty cache, as a fresh clone does (default: .cache)")
    p.add_argument("--out", default=str(REPO / "runs" / "tiny"), help="run directory (default: runs/tiny)")
    p.add_argument("--results", default=str(REPO / "benchmarks/results/train-tiny-cpu.json"),
                   help="where the JSON goes")
    args = p.parse_args()
    cache = Path(tempfile.mkdtemp(prefix="minicoder-cache-")) if args.cold else REPO / ".cache"
    cmd = [str(Path(sys.executable).parent / "minicoder"), "train-tiny", "--retrain", "--no-progress",
           "--out", args.out, "--cache-dir", str(cache)]
    env = dict(os.environ)
    load_before = os.getloadavg()
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr[-4000:])
    if args.cold:
        shutil.rmtree(cache, ignore_errors=True)
    if proc.returncode != 0:
        print(f"train-tiny failed with exit code {proc.returncode}", file=sys.stderr)
        return proc.returncode
    report = json.loads((Path(args.out) / "report.json").read_text())
    import torch

    result = {
        "command": " ".join(["minicoder", *cmd[1:]]), "cold_cache": args.cold, "wall_s": wall, **report,
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "load_avg_before": load_before,
                    "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")},
    }
    Path(args.results).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wall {wall:.0f} s; full-split validation {report['val_bpb_full']:.3f} bits/byte; "
          f"{report['parse_ok']}/{report['parse_total']} parse -> {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
