"""Command-line start-up: wall time of `minicoder --help` and of each subcommand's `--help`.

Run: .venv/bin/python benchmarks/cli.py            (about 30 s on 2 cores)
     .venv/bin/python benchmarks/cli.py --runs 3   (fewer runs, for a smoke test)

Writes benchmarks/results/cli-cpu.json with the machine named. Each figure is the wall time of a
fresh `minicoder ... --help` process (the console script, as a user types it), run `--runs` times;
the median and the minimum are recorded (the minimum is the least disturbed by other load on a
shared machine). For comparison it also times `python -c pass` and `python -c "import torch"`:
a parser that imported torch would cost at least the second. Target (issue 12): `minicoder --help`
under 0.5 s on this machine.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COMMANDS = [[], ["train"], ["generate"], ["complete"], ["prepare"], ["info"], ["export"], ["train-tiny"],
            ["tokenizer"], ["assignment"], ["dedup"], ["decontam"]]


def wall(argv: list[str], runs: int) -> dict:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4), "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="processes timed per command (default: 9)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "cli-cpu.json"),
                        help="where to write the results (default: benchmarks/results/cli-cpu.json)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be 1 or more")
    minicoder = str(BIN / "minicoder")
    results = {
        "benchmark": "cli",
        "machine": {"processor": platform.machine(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "load_average_at_start": list(os.getloadavg())},
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python_pass": wall([sys.executable, "-c", "pass"], args.runs),
        "python_import_torch": wall([sys.executable, "-c", "import torch"], max(1, args.runs // 3)),
        "help": {" ".join(["minicoder", *c, "--help"]): wall([minicoder, *c, "--help"], args.runs) for c in COMMANDS},
        "target_s": 0.5,
    }
    top = results["help"]["minicoder --help"]
    results["meets_target"] = top["median_s"] < results["target_s"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.out).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, args.out)
    for name, r in results["help"].items():
        print(f"{name:<36} median {r['median_s']:.3f} s, min {r['min_s']:.3f} s")
    print(f"python -c pass: median {results['python_pass']['median_s']:.3f} s; python -c 'import torch': "
          f"median {results['python_import_torch']['median_s']:.3f} s; load at start {results['machine']['load_average_at_start']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
