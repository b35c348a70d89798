"""`minicoder prepare`: a directory of repositories -> filtered, ordered, deduplicated token shards.

DeepSeek-Coder section 2 ("Data Collection") in order, one step per module:

    walk      each top-level subdirectory of --corpus is one repository (files directly under the
              corpus root form one more, named "."); with no subdirectories the corpus is a single
              repository. Hidden directories (.git) are not entered; symlinks are never followed.
              For the standard library each package (email/, json/, ...) is a repository whose root
              is the package itself.
    filter    minicoder.filters: the StarCoder rules (plus binary, not UTF-8, empty, too large,
              auto-generated headers). Empty files (an empty __init__.py) stay in the dependency
              graph of the next step, then are left out of the samples.
    decontam  minicoder.decontam: files sharing a 10-gram with HumanEval, or holding one of its
              3-to-9-token texts verbatim, are dropped (section 2.4).
    order     minicoder.depsort: per repository, the dependency graph (Python imports of the
              repository's own package, `from email.utils import x` inside email/, included) and
              one sample per weakly connected component, files concatenated in dependency order
              under path comments (section 2.2)
    dedup     minicoder.dedup, at the repository level (section 2.3): one text per repository (its
              samples joined), MinHash + LSH at Jaccard >= 0.7; a repository is kept or dropped
              whole, each cluster keeping its first repository by name. manifest.json records
              which repository was dropped as a duplicate of which ("duplicate_repositories").
    split     train / validation by repository (by sample when there is only one repository),
              decided by a hash of the name, so it is the same on every machine
    FIM       minicoder.fim.encode_fim_files, per file (section 3.1): each file of a training
              sample independently becomes a PSM segment with probability --fim-rate (0.5), its
              path comment at the head of the prefix and its middle within the file; the sample
              stays one document. Each sample's generator is seeded by --seed and its name, so the
              result does not depend on the number of workers. Validation stays plain code.
    tokenize  every sample followed by EOS, into flat token shards

Where minicoder departs from the paper, and why:
- Ordering: the default `--order cycle-aware` never puts a file before a dependency outside its own
  cycle; the paper's Algorithm 1 as printed (`--order paper`) can (see minicoder.depsort). On a
  graph without cycles both give the same order.
- Decontamination is per file, before files are joined into samples: one stray file (doctest.py
  spells out "0 1 2 ... 9" like HumanEval/78) does not take its whole repository with it. The
  paper says it filters "files" too, but not at which stage.
- Document separation: samples are separated by EOS only, no BOS between them (as in GPT-2 and
  nanoGPT). The paper does not say how documents are separated when packed; DeepSeek-Coder's
  released tokenizer adds BOS at the start of every text it encodes, and whether its training
  data had one is not published. minicoder checkpoints never see BOS, so prompt them without.
- Repository-level dedup for every language: DeepSeek's maintainers say they deduplicate whole
  repositories only for the languages whose dependencies they parse (Python, Java, C#, C, C++)
  and single files for the others (deepseek-ai/DeepSeek-Coder#43).

The output directory is what `minicoder.data.TokenData.load` reads: `meta.json` (format
"minicoder-tokens-v1": dtype, and per split its shards, samples, files, tokens and source bytes),
the shards `train_000.bin`, `val_000.bin`, ... (uint16 when the vocabulary fits, else uint32), and
`manifest.json`, the account of the run (files seen and kept, drops by rule, repositories dropped
as duplicates, decontaminated files, FIM'd files and their share, tokenizer, seed). Everything is
written into a temporary directory beside --out, which is renamed into place at the end: a killed
run leaves no half output.

Worker processes (--workers) read, filter, decontaminate and order (a multiprocessing Pool over
repositories), then tokenize (a Pool over chunks of samples).

Left out: streaming corpora larger than memory (samples are held in memory between the steps) and
the model-based quality filter the paper mentions.
"""

import json
import os
import random
import shutil
import signal
import stat
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from .depsort import METHODS, concatenate_with_spans, order_repository
from .filters import FilterConfig, FilterReport, check

# Bumped whenever the same corpus and options give different samples or tokens, so that caches keyed
# on the options (minicoder.data.prepare_repo_tokens) can include it. 2: own-package imports, empty
# files in the graph, repository-level dedup, FIM per file, exact-match decontamination.
PIPELINE_VERSION = 2


@dataclass
class PrepareConfig:
    """Everything one `minicoder prepare` run depends on (it is recorded in manifest.json).

    Attributes:
        corpus: directory holding one subdirectory per repository.
        out: output directory; created, or replaced if it holds an earlier prepare output.
        tokenizer: path of a tokenizer.json (a minicoder/HF byte-level BPE with DeepSeek's specials).
        workers: worker processes; 1 runs everything in this process.
        seed: seeds the FIM draws.
        fim_rate: probability that a training file becomes a FIM segment (DeepSeek-Coder: 0.5).
        val_fraction: share of repositories held out for validation.
        dedup_threshold: MinHash Jaccard at or above which two repositories are near-duplicates.
        decontaminate: drop files that share a 10-gram with HumanEval (or hold one of its 3-to-9-token
            texts whole; see minicoder.decontam).
        order: "cycle-aware" or "paper" (see minicoder.depsort).
        exclude: directory names never entered (nor taken as repositories), besides hidden ones.
        shard_tokens: tokens per shard file.
        filters: the file filters' thresholds (including the size limit, checked before reading).
        progress: show progress bars.
    """

    corpus: str
    out: str
    tokenizer: str = ""
    workers: int = 2
    seed: int = 0
    fim_rate: float = 0.5
    val_fraction: float = 0.03
    dedup_threshold: float = 0.7
    decontaminate: bool = True
    order: str = "cycle-aware"
    exclude: tuple[str, ...] = ("__pycache__", "node_modules", "site-packages", "venv")
    shard_tokens: int = 100_000_000
    filters: FilterConfig = field(default_factory=FilterConfig)
    progress: bool = True

    def __post_init__(self):
        if not self.tokenizer:
            from .tokenizer import default_tokenizer_path

            self.tokenizer = str(default_tokenizer_path())
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {self.workers}")
        if not 0 <= self.fim_rate <= 1:
            raise ValueError(f"--fim-rate must be in [0, 1], got {self.fim_rate}; DeepSeek-Coder uses 0.5")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"--val-fraction must be in (0, 1), got {self.val_fraction}; try 0.03")
        if not 0 < self.dedup_threshold < 1:
            raise ValueError(f"--dedup-threshold must be strictly between 0 and 1, got {self.dedup_threshold}; try 0.7")
        if self.order not in METHODS:
            raise ValueError(f"--order must be one of {', '.join(METHODS)}, got {self.order!r}")
        if self.shard_tokens < 1:
            raise ValueError(f"--shard-tokens must be positive, got {self.shard_tokens}")


# -----------------------------------------------------------------------------
# Step 1 (workers): walk one repository, read and filter its files, order them into samples


def list_repositories(corpus: Path, exclude: tuple[str, ...] = ()) -> list[tuple[str, str, bool]]:
    """(name, directory, recursive) per repository of the corpus; see the module docstring.

    Raises a one-line error for a corpus that is missing, not a directory, or empty.
    """
    if not corpus.exists():
        raise FileNotFoundError(f"corpus {corpus} does not exist; pass --corpus DIR holding one subdirectory per repository")
    if not corpus.is_dir():
        raise NotADirectoryError(f"corpus {corpus} is not a directory; pass --corpus DIR holding one subdirectory per repository")
    entries = sorted(os.scandir(corpus), key=lambda e: e.name)
    if not entries:
        raise ValueError(f"corpus {corpus} is empty; put one subdirectory per repository in it")
    subdirs = [e for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
               and e.name not in exclude]
    if not subdirs:
        return [(corpus.name or "corpus", str(corpus), True)]
    repos = [(e.name, e.path, True) for e in subdirs]
    if any(not e.is_dir(follow_symlinks=False) for e in entries):  # (a symlinked directory counts here)
        repos.append((".", str(corpus), False))  # the loose files at the corpus root
    return repos


def read_repository(job: tuple) -> tuple[str, list[tuple[str, str, int, list]], FilterReport, list[dict]]:
    """Walk, read, filter, decontaminate and order one repository.

    job: (name, root, recursive, filter config, order method, excluded directory names,
    decontaminator or None). Returns (name, [(sample name, text, number of files, spans)], report,
    [decontaminated file]), spans as `depsort.concatenate_with_spans` gives them.

    Python imports of the repository's own package resolve to its files: `name` is passed to the
    ordering as the package name, so `from email.utils import x` inside the stdlib's email/ (taken
    as a repository root holding __init__.py) finds utils.py. Files dropped only for being empty
    (usually an empty __init__.py) stay in the dependency graph, where they make packages and
    `sys.path` roots (`lib/mypkg/__init__.py`) visible and may link files into one component; they
    are left out of the samples afterwards, without splitting the component.

    Symlinks (to files or directories) count as "symlink" and are never followed, so a link loop
    cannot trap the walk; sockets, FIFOs and devices count as "not_a_file"; a file over the size
    limit counts as "too_large" from its size alone, without being read.
    """
    name, root, recursive, cfg, order, exclude, decontaminator = job
    report, files, empty, contaminated = FilterReport(), {}, {}, []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        kept_dirs = []
        for d in sorted(dirnames):
            if d.startswith(".") or d in exclude:
                continue  # .git, .hg, __pycache__, ...: not the repository's source
            if os.path.islink(os.path.join(dirpath, d)):
                report.add("symlink: a symbolic link to a directory; not followed")
            elif recursive:
                kept_dirs.append(d)
        dirnames[:] = kept_dirs
        for filename in sorted(filenames):
            full = os.path.join(dirpath, filename)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            reason, raw = _read_file(full, rel, cfg)
            if reason is None:
                reason = check(rel, raw, cfg)[1]
            if reason is None and decontaminator is not None:
                found = decontaminator.check(raw.decode("utf-8"))
                if found:
                    reason = f"decontaminated: {found}"
                    contaminated.append({"file": f"{name}/{rel}", "reason": found})
            report.add(reason)
            if reason is None:
                files[rel] = raw.decode("utf-8")
            elif reason.startswith("empty:"):
                empty[rel] = raw.decode("utf-8")
    components = order_repository({**files, **empty}, method=order, package=name) if files else []
    components = [kept for c in components if (kept := [p for p in c if p not in empty])]
    samples = [(f"{name}#{i}", *_joined(files, c)) for i, c in enumerate(components)]
    return name, samples, report, contaminated


def _joined(files: dict[str, str], component: list[str]) -> tuple[str, int, list]:
    text, spans = concatenate_with_spans(files, component)
    return text, len(component), spans


def _read_file(full: str, rel: str, cfg: FilterConfig) -> tuple[str | None, bytes | None]:
    """(reason to skip, None) or (None, the file's bytes)."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return "bad_filename: the file name is not valid UTF-8", None
    try:
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            return "symlink: a symbolic link; not followed", None
        if not stat.S_ISREG(st.st_mode):
            return "not_a_file: a socket, FIFO or device", None
        if st.st_size > cfg.max_bytes:
            return f"too_large: {st.st_size} bytes > {cfg.max_bytes}", None
        with open(full, "rb") as f:
            return None, f.read(cfg.max_bytes + 1)  # a file that grew since lstat is still caught
    except OSError as e:
        return f"unreadable: {e.strerror}", None


# -----------------------------------------------------------------------------
# Step 3 (workers): FIM and tokenize a chunk of samples


def encode_chunk(job: tuple) -> list[tuple[str, np.ndarray, int]]:
    """[(sample name, token ids ending in EOS, number of files made FIM)] for a chunk of samples.

    Chunk items are (name, text, split, spans). FIM is per file (`fim.encode_fim_files`), each
    sample's draws seeded by the run's seed and the sample's name.
    """
    chunk, tok, fim_rate, seed, dtype = job
    from .fim import encode_fim_files

    out = []
    for name, text, split, spans in chunk:
        if split == "train" and fim_rate > 0:
            ids, fimmed = encode_fim_files(tok, text, spans, random.Random(f"{seed}:{name}"), fim_rate, "psm")
            out.append((name, np.asarray(ids, dtype=dtype), sum(fimmed)))
        else:  # plain text never yields a FIM id: specials are not allowed in `encode`
            out.append((name, np.asarray(tok.encode(text) + [tok.eos_id], dtype=dtype), 0))
    return out


def _chunks(items: list, sizes: list[int], n_chunks: int) -> list[list]:
    """Cut `items` into about n_chunks runs of similar total size, keeping their order."""
    target = max(sum(sizes) / max(n_chunks, 1), 1)
    chunks, current, filled = [], [], 0
    for item, size in zip(items, sizes):
        current.append(item)
        filled += size
        if filled >= target:
            chunks.append(current)
            current, filled = [], 0
    return chunks + ([current] if current else [])


class ShardWriter:
    """Appends token arrays to one split's shard files, `shard_tokens` tokens per file."""

    def __init__(self, directory: Path, split: str, dtype: np.dtype, shard_tokens: int):
        self.directory, self.split, self.dtype, self.shard_tokens = directory, split, dtype, shard_tokens
        self.names: list[str] = []
        self.pending: list[np.ndarray] = []
        self.n_pending = 0
        self.tokens = 0

    def add(self, ids: np.ndarray) -> None:
        self.pending.append(ids)
        self.n_pending += len(ids)
        self.tokens += len(ids)
        while self.n_pending >= self.shard_tokens:
            flat = np.concatenate(self.pending)
            self._write(flat[: self.shard_tokens])
            rest = flat[self.shard_tokens :]
            self.pending, self.n_pending = ([rest] if len(rest) else []), len(rest)

    def close(self) -> list[str]:
        if self.pending:
            self._write(np.concatenate(self.pending))
            self.pending, self.n_pending = [], 0
        return self.names

    def _write(self, ids: np.ndarray) -> None:
        name = f"{self.split}_{len(self.names):03d}.bin"
        with open(self.directory / name, "wb") as f:
            f.write(ids.astype(self.dtype, copy=False).tobytes())
            f.flush()
            os.fsync(f.fileno())
        self.names.append(name)


# -----------------------------------------------------------------------------
# The pipeline


def _check_out(out: Path) -> None:
    """Refuse to replace a directory that holds something other than an earlier prepare output."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; pass a directory path")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise ValueError(f"--out {out} exists and is not an earlier `minicoder prepare` output; "
                         "pass a new or empty directory")


def _split(samples: list[tuple], val_fraction: float) -> dict[str, str]:
    """{sample name: "train" | "val"}: by repository, or by sample if there is one repository.

    samples: tuples whose first item is the sample name "<repository>#<i>" (the rest is not read).
    """
    from .data import split_files

    names = [s[0] for s in samples]
    repos = sorted({name.rsplit("#", 1)[0] for name in names})
    by_repo = len(repos) >= 2
    units = repos if by_repo else sorted(names)
    if len(units) < 2:
        raise ValueError(f"only {len(samples)} sample(s) survived filtering, decontamination and dedup; "
                         "the train/validation split needs at least 2: add repositories to the corpus")
    val = set(split_files(units, val_fraction)["val"])
    return {name: "val" if (name.rsplit("#", 1)[0] if by_repo else name) in val else "train"
            for name in names}


def _repository_duplicates(samples: list[tuple], threshold: float) -> dict[str, str]:
    """{dropped repository: the repository it near-duplicates} (DeepSeek-Coder section 2.3).

    One text per repository, its samples joined in order; MinHash + LSH clusters them and each
    cluster keeps its first repository (by name), so repositories are kept or dropped whole and
    no single file is ever removed from a repository.
    """
    from .dedup import near_duplicate_clusters

    texts: dict[str, list[str]] = {}
    for s in samples:
        texts.setdefault(s[0].rsplit("#", 1)[0], []).append(s[1])
    names = sorted(texts)
    if len(names) < 2:
        return {}
    clusters = near_duplicate_clusters(["\n".join(texts[n]) for n in names], threshold)
    return {names[i]: names[c[0]] for c in clusters for i in c[1:]}


def _ignore_sigint() -> None:
    # Ctrl-C reaches every process of the terminal's group; only the parent handles it (it stops
    # the pool), so the workers do not each print a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _map(fn, jobs: list, workers: int):
    """Results of fn over jobs, in order: in a Pool of `workers` processes, or here when 1."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(fn, jobs)
        return
    with Pool(min(workers, len(jobs)), initializer=_ignore_sigint) as pool:  # leaving it terminates the workers
        try:
            yield from pool.imap(fn, jobs)
        except KeyboardInterrupt:
            _stop_feeding(pool)
            raise


def _stop_feeding(pool) -> None:
    """Let the pool's task thread end before `Pool.terminate` (on leaving the `with`) waits for it.

    terminate() can hang for good: its task thread may be blocked writing a job larger than the
    pipe's buffer (a chunk of samples, the decontamination index), and once the workers are killed
    nobody reads it. Told to stop (TERMINATE, which it checks before each job), the thread finishes
    that write (the workers, which ignore Ctrl-C, read it), sends the workers their stop marks and ends.
    """
    import multiprocessing.pool

    pool._task_handler._state = multiprocessing.pool.TERMINATE
    pool._task_handler.join(timeout=60)


def prepare(cfg: PrepareConfig) -> dict:
    """Run the whole pipeline; return the manifest (also written to cfg.out/manifest.json)."""
    from tqdm import tqdm

    from .data import FORMAT, token_dtype, tokenizer_fingerprint
    from .decontam import Decontaminator
    from .tokenizer import Tokenizer

    corpus, out = Path(cfg.corpus), Path(cfg.out)
    repos = list_repositories(corpus, cfg.exclude)
    _check_out(out)
    if not Path(cfg.tokenizer).is_file():
        raise FileNotFoundError(f"tokenizer {cfg.tokenizer} not found; pass --tokenizer PATH to a tokenizer.json")
    tok = Tokenizer.from_file(cfg.tokenizer)
    if tok.eos_id is None or (cfg.fim_rate > 0 and None in (tok.fim_begin_id, tok.fim_hole_id, tok.fim_end_id)):
        raise ValueError(f"tokenizer {cfg.tokenizer} lacks EOS or the FIM tokens; use one with DeepSeek-Coder's "
                         "special tokens, or --fim-rate 0")

    # 1. walk, filter, decontaminate, order (a worker per repository)
    report, samples, empty_repos, contaminated = FilterReport(), [], [], []
    decontaminator = Decontaminator.from_humaneval() if cfg.decontaminate else None
    jobs = [(name, root, recursive, cfg.filters, cfg.order, cfg.exclude, decontaminator)
            for name, root, recursive in repos]
    bar = tqdm(total=len(jobs), unit="repo", desc="reading", disable=not cfg.progress)
    for name, repo_samples, repo_report, repo_contaminated in _map(read_repository, jobs, cfg.workers):
        report += repo_report
        samples += repo_samples
        contaminated += repo_contaminated
        if repo_report.seen == 0:
            empty_repos.append(name)
        bar.update(1)
    bar.close()
    if report.seen == 0:
        raise ValueError(f"corpus {corpus} holds no files (only empty or hidden directories); "
                         "put one subdirectory of source files per repository in it")
    n_ordered = len(samples)

    # 2. near-deduplicate whole repositories; each cluster keeps its first
    duplicate_of = _repository_duplicates(samples, cfg.dedup_threshold)
    duplicates = [s[0] for s in samples if s[0].rsplit("#", 1)[0] in duplicate_of]
    samples = [s for s in samples if s[0].rsplit("#", 1)[0] not in duplicate_of]

    # 3. split, FIM and tokenize (a worker per chunk of samples)
    split_of = _split(samples, cfg.val_fraction)
    dtype = token_dtype(tok.vocab_size)
    order = sorted(range(len(samples)), key=lambda i: split_of[samples[i][0]] == "val")  # train first
    items = [(samples[i][0], samples[i][1], split_of[samples[i][0]], samples[i][3]) for i in order]
    sizes = [len(item[1]) for item in items]
    jobs = [(chunk, tok, cfg.fim_rate, cfg.seed, dtype)
            for chunk in _chunks(items, sizes, 4 * cfg.workers)]

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the output is an ordinary directory
    try:
        writers = {s: ShardWriter(tmp, s, dtype, cfg.shard_tokens) for s in ("train", "val")}
        info = {s: {"samples": [], "files": 0, "bytes": 0} for s in writers}
        texts = {name: (text, n_files) for name, text, n_files, _ in samples}
        fim_samples = fim_files = 0
        bar = tqdm(total=sum(sizes), unit="B", unit_scale=True, desc="tokenizing", disable=not cfg.progress)
        for result in _map(encode_chunk, jobs, cfg.workers):
            for name, ids, fim in result:
                text, n_files = texts[name]
                bar.update(len(text))
                split = split_of[name]
                writers[split].add(ids)
                info[split]["samples"].append(name)
                info[split]["files"] += n_files
                info[split]["bytes"] += len(text.encode("utf-8"))
                fim_samples += fim > 0
                fim_files += fim
        bar.close()
        splits = {s: {"shards": w.close(), "tokens": w.tokens, **info[s]} for s, w in writers.items()}

        meta = {"format": FORMAT, "tokenizer_sha256": tokenizer_fingerprint(tok), "vocab_size": tok.vocab_size,
                "eos_id": tok.eos_id, "separator": "eos after each sample", "dtype": dtype.name,
                "corpus": str(corpus), "fim": {"rate": cfg.fim_rate, "seed": cfg.seed, "mode": "psm",
                                               "unit": "file", "splits": ["train"]},
                "splits": splits}
        manifest = {
            "corpus": str(corpus),
            "repositories": len(repos),
            "empty_repositories": empty_repos,
            **report.to_dict(),
            "repository_samples": n_ordered,
            "duplicates_removed": len(duplicate_of),
            "duplicate_repositories": duplicate_of,
            "duplicate_samples": duplicates,
            "decontaminated": len(contaminated),
            "decontaminated_files": contaminated,
            "samples": {s: len(splits[s]["samples"]) for s in splits},
            "tokens": {s: splits[s]["tokens"] for s in splits},
            "fim_files": fim_files,
            "fim_samples": fim_samples,
            "fim_share": fim_files / max(splits["train"]["files"], 1),
            "tokenizer": str(cfg.tokenizer),
            "tokenizer_sha256": meta["tokenizer_sha256"],
            "seed": cfg.seed,
            "pipeline_version": PIPELINE_VERSION,
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()
                       if k not in ("corpus", "out", "progress")},
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        _replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished `tmp` to `out`, setting aside (then deleting) an earlier output there."""
    old = None
    if out.is_dir() and any(out.iterdir()):
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    elif out.is_dir():
        out.rmdir()
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# -----------------------------------------------------------------------------
# Command line: minicoder prepare


# The parser is in minicoder/cli.py, which loads this module only when the command runs.


def _cli_prepare(args) -> int:
    cfg = PrepareConfig(corpus=args.corpus, out=args.out, tokenizer=args.tokenizer or "", workers=args.workers,
                        seed=args.seed, fim_rate=args.fim_rate, val_fraction=args.val_fraction,
                        dedup_threshold=args.dedup_threshold, decontaminate=not args.no_decontaminate,
                        order=args.order, exclude=tuple(args.exclude), shard_tokens=args.shard_tokens,
                        filters=FilterConfig(max_bytes=args.max_file_bytes), progress=not args.quiet)
    try:
        m = prepare(cfg)
    except KeyboardInterrupt:  # the workers ignore Ctrl-C; leaving the Pool stopped them
        from tqdm import tqdm

        for bar in list(getattr(tqdm, "_instances", ())):  # end the progress line before the message
            bar.close()
        print(f"minicoder prepare: interrupted; {cfg.out} is as it was (the output is renamed into place "
              "only when complete)", file=sys.stderr)
        return 130
    drops = ", ".join(f"{k} {v}" for k, v in m["drops"].items()) or "none"
    print(f"{m['repositories']} repositories, {m['files_seen']} files, {m['files_kept']} kept (dropped: {drops})")
    print(f"{m['repository_samples']} samples, {m['duplicates_removed']} near-duplicate repositories dropped, "
          f"{m['decontaminated']} files decontaminated; train {m['samples']['train']} samples / "
          f"{m['tokens']['train']:,} tokens ({m['fim_share']:.0%} of files FIM), val {m['samples']['val']} / "
          f"{m['tokens']['val']:,} -> {cfg.out}")
    return 0
