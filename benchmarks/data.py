"""Data-pipeline benchmark: `minicoder prepare` throughput on the standard library, and dedup scaling.

Run: .venv/bin/python benchmarks/data.py          (or `make bench-data`)

Measures, on this machine:
  pipeline    MB/s of source through the whole `minicoder prepare` pipeline (read, filter, order,
              dedup, decontaminate, FIM, tokenize) on the Python standard library (the training
              corpus of minicoder.data; --stdlib-all for all of it), with 2 workers
  parts       MB/s of each of minicoder's own steps on the same files, in one process: MinHash
              signatures, near-duplicate clusters, decontamination, apply_fim
  dedup       seconds (wall and CPU) for near_duplicate_clusters on 10k and 100k synthetic documents
              with planted near-duplicates; LSH bucketing makes it linear, so the ratio should be
              near 10 (<= 15)

and writes benchmarks/results/data-cpu.json with the machine named. Timings on a shared machine are
noisy; the JSON records the CPU count so numbers from different machines are not compared blindly.
"""

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from minicoder.data import STDLIB_EXCLUDE, default_corpus_dir, list_source_files  # noqa: E402
from minicoder.decontam import Decontaminator, decontaminate  # noqa: E402
from minicoder.dedup import minhash_signatures, near_duplicate_clusters  # noqa: E402
from minicoder.fim import apply_fim  # noqa: E402


def machine() -> dict:
    import torch

    return {
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],  # others' jobs make timings noisy
    }


def synthetic_corpus(n: int, dup_fraction: float = 0.2, tokens: int = 60, seed: int = 0):
    """n code-like documents of `tokens` identifiers; dup_fraction of them are near-duplicates of an
    earlier document with one identifier changed (Jaccard of 5-gram sets about 0.84). Returns
    (texts, planted) with planted[i] = the index copied, or -1."""
    rng = random.Random(seed)
    glue = [" = ", "(", ")", ", ", ".", "\n    ", " + ", "[", "]", ": "]
    docs, planted = [], []
    for i in range(n):
        if i > 0 and rng.random() < dup_fraction:
            src = rng.randrange(i)
            doc = list(docs[src])
            k = rng.randrange(tokens)
            doc[k] = (f"name{rng.randrange(10**6)}", doc[k][1])
            planted.append(src)
        else:
            doc = [(f"name{rng.randrange(10**6)}", rng.choice(glue)) for _ in range(tokens)]
            planted.append(-1)
        docs.append(doc)
    return ["".join(name + g for name, g in doc) for doc in docs], planted


def bench_dedup(sizes: list[int]) -> dict:
    """Wall and CPU seconds of near_duplicate_clusters. CPU time (this process only) is the fairer
    scaling measure on a machine shared with other jobs, which stretch wall time unevenly."""
    out = {}
    for n in sizes:
        texts, planted = synthetic_corpus(n)
        w0, c0 = time.perf_counter(), time.process_time()
        minhash_signatures(texts)
        sig_wall, sig_cpu = time.perf_counter() - w0, time.process_time() - c0
        w0, c0 = time.perf_counter(), time.process_time()
        clusters = near_duplicate_clusters(texts, 0.7)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        cluster_of = {i: c[0] for c in clusters for i in c}
        found = sum(1 for i, src in enumerate(planted) if src >= 0 and cluster_of.get(i, -1) == cluster_of.get(src, -2))
        out[str(n)] = {
            "wall_seconds": round(wall, 2),
            "cpu_seconds": round(cpu, 2),
            "signatures_wall_seconds": round(sig_wall, 2),
            "signatures_cpu_seconds": round(sig_cpu, 2),
            "planted_duplicates": sum(src >= 0 for src in planted),
            "planted_found": found,
            "clusters": len(clusters),
        }
        print(f"dedup {n:>7} docs: {wall:6.1f} s wall, {cpu:6.1f} s CPU (signatures alone {sig_cpu:.1f} s CPU), "
              f"found {found}/{out[str(n)]['planted_duplicates']} planted near-duplicates")
    if len(sizes) == 2:
        small, big = out[str(sizes[0])], out[str(sizes[1])]
        out["size_ratio"] = sizes[1] / sizes[0]
        out["wall_ratio"] = round(big["wall_seconds"] / small["wall_seconds"], 2)
        out["cpu_ratio"] = round(big["cpu_seconds"] / small["cpu_seconds"], 2)
        print(f"dedup time ratio for {sizes[1] // sizes[0]}x the documents: {out['cpu_ratio']:.1f} CPU, "
              f"{out['wall_ratio']:.1f} wall")
    return out


def bench_parts(texts: list[str]) -> dict:
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    out = {"files": len(texts), "megabytes": round(mb, 2)}
    steps = {
        "minhash_signatures": lambda: minhash_signatures(texts),
        "near_duplicate_clusters": lambda: near_duplicate_clusters(texts, 0.7),
        "decontaminate (incl. building the index)": lambda: decontaminate(texts, Decontaminator.from_humaneval()),
        "apply_fim": lambda: [apply_fim(t, rng) for t in texts],
    }
    rng = random.Random(0)
    for name, step in steps.items():
        t0 = time.perf_counter()
        step()
        seconds = time.perf_counter() - t0
        out[name] = {"seconds": round(seconds, 2), "mb_per_s": round(mb / seconds, 2)}
        print(f"{name:42s} {seconds:6.2f} s  {mb / seconds:8.2f} MB/s")
    return out


def bench_pipeline(workers: int, everything: bool) -> dict:
    """The whole `minicoder prepare` on the standard library, through its Python entry point.

    Its dedup compares repositories (one text each), its FIM is drawn per file ("fim_share" is the
    share of training files made FIM). Throughput is the bytes of the samples it writes (the kept
    files, concatenated per repository)
    over the wall time of the whole run, reading and filtering the dropped files included."""
    from minicoder import prepare

    corpus = default_corpus_dir()
    with tempfile.TemporaryDirectory() as tmp:
        kwargs = {} if everything else {"exclude": STDLIB_EXCLUDE}
        cfg = prepare.PrepareConfig(corpus=str(corpus), out=str(Path(tmp) / "out"), workers=workers,
                                    progress=False, **kwargs)
        t0 = time.perf_counter()
        manifest = prepare.prepare(cfg)
        seconds = time.perf_counter() - t0
        meta = json.loads((Path(tmp) / "out" / "meta.json").read_text())
    mb = sum(split["bytes"] for split in meta["splits"].values()) / 1e6
    print(f"prepare on {corpus} ({'everything' if everything else 'training corpus'}) with {workers} workers: "
          f"{seconds:.1f} s, {mb:.1f} MB of samples, {mb / seconds:.2f} MB/s")
    keep = ("repositories", "files_seen", "files_kept", "drops", "repository_samples", "duplicates_removed",
            "duplicate_repositories", "decontaminated", "samples", "tokens", "fim_files", "fim_share")
    return {"corpus": str(corpus), "exclude": list(cfg.exclude), "workers": workers,
            "seconds": round(seconds, 2), "sample_megabytes": round(mb, 2), "mb_per_s": round(mb / seconds, 3),
            **{k: manifest[k] for k in keep}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated synthetic corpus sizes for dedup")
    ap.add_argument("--workers", type=int, default=2, help="worker processes for the prepare pipeline")
    ap.add_argument("--skip-pipeline", action="store_true", help="skip the whole-pipeline run")
    ap.add_argument("--stdlib-all", action="store_true",
                    help="run the pipeline on the whole standard library, tests included (default: the "
                         "548-file training corpus of minicoder.data, without tests, idlelib, encodings)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "data-cpu.json"), help="JSON to write")
    args = ap.parse_args(argv)

    result = {"benchmark": "data", "machine": machine(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    root = default_corpus_dir()
    texts = [(root / rel).read_text(encoding="utf-8", errors="replace")
             for rel in list_source_files(root, ".py", STDLIB_EXCLUDE)]
    print(f"standard library training corpus: {len(texts)} files")
    result["parts_on_stdlib"] = bench_parts(texts)
    result["dedup_synthetic"] = bench_dedup([int(s) for s in args.sizes.split(",")])
    if not args.skip_pipeline:
        result["pipeline_stdlib"] = bench_pipeline(args.workers, args.stdlib_all)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
