"""Training data for the default run: a directory of source files -> token files -> random windows.

The default corpus is the running interpreter's own Python standard library, found through
`sysconfig.get_paths()["stdlib"]`: real, varied code that is present on every machine, so
`make train-tiny` needs no download. `--corpus DIR` takes any directory of source files instead.

The pipeline, one function each:

1. `list_source_files(root, ext, exclude)`: every `*.py` (or `ext`) file under `root`, sorted by
   relative path, so files of one top-level package (`asyncio/...`, `email/...`) sit together.
   For the standard library we skip `site-packages` (not the stdlib), the `test`/`tests`
   packages and `idlelib` (test suites and a GUI app: long, repetitive, unlike the library code
   we want to complete), `pydoc_data` (one 750 kB string of documentation) and `encodings`
   (machine-generated codec tables). About 550 files, 9 MB on CPython 3.11.
2. `split_files(rels, val_fraction)`: train/validation split BY FILE, decided by a hash of the
   relative path: deterministic on every machine, and no file has windows on both sides.
3. `prepare_tokens(tokenizer, ...)`: reads each file as UTF-8 (files that are not valid UTF-8 are
   counted and skipped), encodes it, and appends EOS, so the model sees `file A<EOS>file B<EOS>`.
   EOS alone separating documents is minicoder's choice: the paper does not say how DeepSeek
   joined documents for pretraining (its released tokenizer prepends BOS to every encoding, and
   DeepSeek LLM's models start each document with BOS). Checkpoints trained here never saw BOS,
   so their prompts start with EOS, the way their documents do.
   Tokens go into one flat `train.bin` / `val.bin` (uint16 when the vocabulary fits, else
   uint32) beside a `meta.json` with the tokenizer's hash and the counts of files, tokens and
   source bytes per split. The result is cached under `.cache/tokens/<key>/`, where the key hashes
   the tokenizer, the options and the content of every file; running again reuses it, and a
   different tokenizer or a changed corpus makes a new key. Optionally (`fim_rate`, DeepSeek-Coder
   uses 0.5) training documents become fill-in-the-middle samples (`minicoder.fim.encode_fim`).
   `corpus_tokenizer` trains (or reuses) a BPE tokenizer on the training files.
4. `TokenData.load(dir)` / `get_batch(...)`: memory-maps the shards listed in `meta.json` (a list,
   so the repo-level pipeline's sharded output reads the same way) and draws random windows of
   `seq_len + 1` tokens with a seeded `torch.Generator`, so training is repeatable. Windows may
   cross a document boundary, as in GPT-2 and nanoGPT; the EOS between documents tells the
   model where one ends.

Bits per byte: a loss of L nats per token over a split of N tokens and B bytes of source is
`L * N / (ln 2 * B)` bits per byte, comparable across tokenizers (`bits_per_byte`).

`prepare_repo_tokens(...)` does the same through the repository-level pipeline of
`minicoder.prepare` (filters, dependency order, near-dedup, decontamination, FIM); `make
train-tiny` uses it. `prepare_tokens` keeps the plain per-file path for `minicoder train --corpus`.
"""

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from minicoder.corpus import CORPUS_EXCLUDE, STDLIB_EXCLUDE, default_corpus_dir, list_source_files  # noqa: F401 (re-exported)
from minicoder.fim import encode_fim

FORMAT = "minicoder-tokens-v1"
# The modules of `minicoder prepare`, whose source is hashed into prepare_repo_tokens' cache key.
PIPELINE_MODULES = ("prepare", "filters", "depsort", "dedup", "decontam", "fim", "tokenizer")


def package_of(rel: str) -> str:
    """Top-level package (module) of a relative path: 'email/mime/text.py' -> 'email', 'os.py' -> 'os'."""
    head = rel.split("/", 1)[0]
    return head if "/" in rel else head.rsplit(".", 1)[0]


def _unit_hash(rel: str) -> float:
    """A number in [0, 1) fixed by the path alone: the first 8 bytes of sha256(rel)."""
    return int.from_bytes(hashlib.sha256(rel.encode()).digest()[:8], "big") / 2**64


def split_files(rels: list[str], val_fraction: float) -> dict[str, list[str]]:
    """Split files into {"train": [...], "val": [...]} by a hash of each relative path.

    A file goes to validation when its hash is below `val_fraction`. If none does (a small
    corpus), the single file with the smallest hash does, so both splits are non-empty.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}; try 0.03")
    if len(rels) < 2:
        raise ValueError(f"need at least 2 source files to split train/validation by file, found {len(rels)}")
    val = [r for r in rels if _unit_hash(r) < val_fraction] or [min(rels, key=_unit_hash)]
    val_set = set(val)
    if len(val_set) == len(rels):
        val_set = {min(rels, key=_unit_hash)}
    return {"train": [r for r in rels if r not in val_set], "val": [r for r in rels if r in val_set]}


def bits_per_byte(loss_nats: float, n_tokens: int, n_bytes: int) -> float:
    """Mean loss in nats per token -> bits per byte of source: L * N / (ln 2 * B).

    L nats per token over N tokens is L * N nats in all, L * N / ln 2 bits; spread over the B bytes
    of source those tokens encode. Comparable across tokenizers, unlike the loss per token.

    >>> bits_per_byte(math.log(2), n_tokens=4, n_bytes=8)  # 1 bit per token, 2 bytes per token
    0.5
    >>> round(bits_per_byte(1.0, n_tokens=1000, n_bytes=3500), 4)
    0.4122
    """
    # BEGIN ASSIGNMENT training
    return loss_nats * n_tokens / (math.log(2) * n_bytes)
    # END ASSIGNMENT


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the tokenizer's saved tokenizer.json: equal files, equal tokenization."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokenizer.json"
        tokenizer.save(path)
        return hashlib.sha256(path.read_bytes()).hexdigest()


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


class TokenFile:
    """One split: a list of flat token shards, read through memory maps as one long stream."""

    def __init__(self, paths: list[Path], dtype: np.dtype, n_bytes: int):
        self.shards = [np.memmap(p, dtype=dtype, mode="r") for p in paths]
        self.offsets = np.cumsum([0] + [len(s) for s in self.shards])  # shard i starts at offsets[i]
        self.n_bytes = n_bytes

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def window(self, start: int, length: int) -> np.ndarray:
        """Tokens [start, start + length) of the stream, which may span shards."""
        pieces, pos, end = [], start, start + length
        i = int(np.searchsorted(self.offsets, start, side="right")) - 1
        while pos < end:
            lo = pos - int(self.offsets[i])
            hi = min(end, int(self.offsets[i + 1])) - int(self.offsets[i])
            pieces.append(self.shards[i][lo:hi])
            pos += hi - lo
            i += 1
        return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]


def get_batch(tokens: TokenFile, batch_size: int, seq_len: int, generator: torch.Generator):
    """Draw `batch_size` random windows; return inputs x and next-token targets y, both (B, T) int64."""
    if len(tokens) <= seq_len:
        raise ValueError(f"split has {len(tokens)} tokens, not more than seq_len={seq_len}; "
                         "lower --seq-len or use a larger corpus / --val-fraction")
    starts = torch.randint(0, len(tokens) - seq_len, (batch_size,), generator=generator)  # (B,)
    rows = np.stack([tokens.window(int(s), seq_len + 1) for s in starts]).astype(np.int64)  # (B, T+1)
    rows = torch.from_numpy(rows)
    return rows[:, :-1], rows[:, 1:]  # (B, T), (B, T)


@dataclass
class TokenData:
    """A prepared token directory: `meta.json` plus the shards it lists for each split."""

    path: Path
    meta: dict
    splits: dict[str, TokenFile]

    @classmethod
    def load(cls, path: str | Path) -> "TokenData":
        path = Path(path)
        meta_path = path / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path} not found; make the tokens first with "
                                    "`minicoder prepare --corpus DIR --out DIR` (or let `minicoder train --corpus` do it)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path} has format {meta.get('format')!r}, expected {FORMAT!r}; delete it to rebuild")
        dtype = np.dtype(meta["dtype"])
        splits = {
            name: TokenFile([path / s for s in info["shards"]], dtype, info["bytes"])
            for name, info in meta["splits"].items()
        }
        return cls(path, meta, splits)

    @property
    def key(self) -> str:
        """Identifies these tokens: the cache key, or a hash of the split records for other producers."""
        return self.meta.get("key") or hashlib.sha256(
            json.dumps([self.meta.get("tokenizer_sha256"), self.meta["splits"]], sort_keys=True).encode()).hexdigest()

    def get_batch(self, split: str, batch_size: int, seq_len: int, generator: torch.Generator):
        return get_batch(self.splits[split], batch_size, seq_len, generator)

    def bits_per_byte(self, split: str, loss_nats: float) -> float:
        return bits_per_byte(loss_nats, len(self.splits[split]), self.splits[split].n_bytes)


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def collect_files(corpus: str | Path | None, ext: str, exclude: tuple[str, ...] | None) -> tuple[Path, dict[str, bytes]]:
    """Read every `ext` file of a corpus (None: the standard library) as bytes: (root, {rel: bytes})."""
    root = Path(corpus) if corpus is not None else default_corpus_dir()
    if not root.is_dir():
        raise NotADirectoryError(f"corpus {root} is not a directory; pass --corpus DIR holding source files")
    if exclude is None:
        exclude = STDLIB_EXCLUDE if corpus is None else CORPUS_EXCLUDE
    rels = list_source_files(root, ext, exclude)
    if not rels:
        raise ValueError(f"no *{ext} files under {root}; pass --ext to collect another kind of file")
    return root, {rel: (root / rel).read_bytes() for rel in rels}


def _decode_utf8(raw: dict[str, bytes]) -> tuple[dict[str, str], list[str]]:
    texts, skipped = {}, []
    for rel, data in raw.items():
        try:
            texts[rel] = data.decode("utf-8")
        except UnicodeDecodeError:
            skipped.append(rel)
    return texts, skipped


def corpus_tokenizer(corpus: str | Path | None = None, ext: str = ".py", vocab_size: int = 4096,
                     val_fraction: float = 0.03, cache_dir: str | Path = ".cache", progress: bool = True):
    """Train a byte-level BPE tokenizer on a corpus's training split, or reuse the cached one.

    Only training files are seen, so validation bits per byte stay honest. The result is cached
    as `cache_dir/tokenizers/<corpus>-<hash>-v<vocab_size>.json`, keyed by the training files'
    content. Returns a minicoder `Tokenizer` with DeepSeek-Coder's special tokens.
    """
    from minicoder.tokenizer import Tokenizer

    root, raw = collect_files(corpus, ext, None)
    texts, _ = _decode_utf8(raw)
    train_rels = split_files(sorted(texts), val_fraction)["train"]
    h = hashlib.sha256(json.dumps([ext, vocab_size]).encode())
    for rel in train_rels:
        h.update(f"\0{rel}\0{len(raw[rel])}\0".encode())
        h.update(raw[rel])
    path = Path(cache_dir) / "tokenizers" / f"{root.name or 'corpus'}-{h.hexdigest()[:16]}-v{vocab_size}.json"
    if path.is_file():
        return Tokenizer.from_file(path)
    tok = Tokenizer.train([texts[r] for r in train_rels], vocab_size, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(path)  # Tokenizer.save writes atomically
    return tok


def repo_split(corpus: str | Path | None = None, val_fraction: float = 0.1) -> dict[str, list[str]]:
    """{"train": [...], "val": [...]} repository names, as `minicoder prepare` will split them.

    Repositories are `prepare.list_repositories` of the corpus (for the standard library: each
    top-level package, plus "." for the loose top-level modules), split by `split_files` on their
    names, the rule `prepare` applies to the repositories that survive its filters.
    """
    from minicoder.prepare import list_repositories

    root = Path(corpus) if corpus is not None else default_corpus_dir()
    exclude = STDLIB_EXCLUDE if corpus is None else CORPUS_EXCLUDE
    names = [name for name, _, _ in list_repositories(root, exclude)]
    return split_files(sorted(names), val_fraction)


def tokenizer_training_files(corpus: str | Path | None = None, ext: str = ".py",
                             val_fraction: float = 0.1) -> tuple[Path, list[str]]:
    """(root, relative paths) of the `ext` files of the training repositories of `repo_split`."""
    from minicoder.prepare import list_repositories

    root = Path(corpus) if corpus is not None else default_corpus_dir()
    exclude = STDLIB_EXCLUDE if corpus is None else CORPUS_EXCLUDE
    train = set(repo_split(corpus, val_fraction)["train"])
    rels = []
    for name, directory, recursive in list_repositories(root, exclude):
        if name not in train:
            continue
        prefix = Path(directory).relative_to(root).as_posix()
        if recursive:
            found = list_source_files(directory, ext, exclude)
        else:  # the loose files at the corpus root
            found = sorted(e.name for e in os.scandir(directory) if e.is_file(follow_symlinks=False)
                           and e.name.endswith(ext))
        rels += [r if prefix == "." else f"{prefix}/{r}" for r in found]
    return root, sorted(rels)


def repo_tokenizer(corpus: str | Path | None = None, ext: str = ".py", vocab_size: int = 4096,
                   val_fraction: float = 0.1, cache_dir: str | Path = ".cache", progress: bool = True):
    """A BPE tokenizer trained on the TRAINING repositories only (cached), for `prepare_repo_tokens`.

    The repository-level pipeline holds out whole repositories for validation; a tokenizer that
    had seen them would compress the held-out code better than it should and flatter validation
    bits per byte (it did: a tokenizer trained on 97% of the files, split by file, had seen 99.3%
    of the validation bytes and encoded them in 3.7% fewer tokens). `prepare_repo_tokens` checks
    afterwards that the validation split it got is exactly the one held out here.
    """
    from minicoder.tokenizer import Tokenizer

    root, rels = tokenizer_training_files(corpus, ext, val_fraction)
    if not rels:
        raise ValueError(f"the training repositories of {root} hold no *{ext} files; pass --ext or another corpus")
    raw = {rel: (root / rel).read_bytes() for rel in rels}
    texts, _ = _decode_utf8(raw)
    h = hashlib.sha256(json.dumps(["repo", ext, vocab_size, val_fraction]).encode())
    for rel in sorted(texts):
        h.update(f"\0{rel}\0{len(raw[rel])}\0".encode())
        h.update(raw[rel])
    path = Path(cache_dir) / "tokenizers" / f"{root.name or 'corpus'}-repos-{h.hexdigest()[:16]}-v{vocab_size}.json"
    if path.is_file():
        return Tokenizer.from_file(path)
    tok = Tokenizer.train([texts[r] for r in sorted(texts)], vocab_size, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(path)  # Tokenizer.save writes atomically
    return tok


def prepare_repo_tokens(tokenizer, corpus: str | Path | None = None, cache_dir: str | Path = ".cache",
                        val_fraction: float = 0.1, fim_rate: float = 0.5, seed: int = 0, workers: int = 2,
                        progress: bool = True) -> TokenData:
    """Token files from the repository-level pipeline (`minicoder prepare`), cached; return them.

    What `make train-tiny` uses: StarCoder's filters, files in dependency order per repository,
    near-dedup, decontamination and FIM, then the same token format as `prepare_tokens`. For the
    standard library each top-level package is a repository and the loose top-level modules are
    one more; validation holds out whole repositories (`val_fraction` of them, at least one).
    The cache key hashes the tokenizer, the options, the pipeline's source code (PIPELINE_MODULES)
    and every corpus file's path, size and mtime.
    """
    from minicoder.prepare import PrepareConfig, prepare

    root = Path(corpus) if corpus is not None else default_corpus_dir()
    exclude = STDLIB_EXCLUDE if corpus is None else CORPUS_EXCLUDE
    if not root.is_dir():
        raise NotADirectoryError(f"corpus directory not found: {root}")
    tok_hash = tokenizer_fingerprint(tokenizer)
    h = hashlib.sha256(json.dumps(["repo", FORMAT, tok_hash, val_fraction, fim_rate, seed, list(exclude)]).encode())
    for module in PIPELINE_MODULES:  # a changed pipeline makes other tokens: its code is part of the key
        h.update((Path(__file__).parent / f"{module}.py").read_bytes())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in exclude and not d.startswith("."))
        for name in sorted(filenames):
            st = os.stat(os.path.join(dirpath, name), follow_symlinks=False)
            h.update(f"\0{os.path.relpath(os.path.join(dirpath, name), root)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    key = h.hexdigest()[:16]
    out = Path(cache_dir) / "repo-tokens" / f"{root.name or 'corpus'}-{key}"
    if (out / "meta.json").is_file() and (out / "manifest.json").is_file():
        return TokenData.load(out)
    tok_path = Path(cache_dir) / "repo-tokens" / f"tokenizer-{tok_hash[:16]}.json"
    if not tok_path.is_file():
        tokenizer.save(tok_path)
    prepare(PrepareConfig(corpus=str(root), out=str(out), tokenizer=str(tok_path), workers=workers, seed=seed,
                          fim_rate=fim_rate, val_fraction=val_fraction, exclude=tuple(exclude), progress=progress))
    data = TokenData.load(out)
    val_repos = {name.rsplit("#", 1)[0] for name in data.meta["splits"]["val"]["samples"]}
    unexpected = val_repos - set(repo_split(corpus, val_fraction)["val"])
    if unexpected:  # prepare's split fell back to a repository outside repo_split's (too few survived)
        raise ValueError(f"validation holds {sorted(unexpected)}, which repo_tokenizer trained on; "
                         "raise --val-fraction or use a larger corpus")
    return data


def prepare_tokens(
    tokenizer,
    corpus: str | Path | None = None,
    ext: str = ".py",
    val_fraction: float = 0.03,
    cache_dir: str | Path = ".cache",
    exclude: tuple[str, ...] | None = None,
    fim_rate: float = 0.0,
    fim_seed: int = 0,
    progress: bool = True,
) -> TokenData:
    """Tokenize a corpus (default: the standard library) into cached token files; return them.

    Args:
        tokenizer: a minicoder `Tokenizer` (needs `encode`, `eos_id`, `vocab_size`, `save`).
        corpus: directory of source files; None means the running Python's standard library.
        ext: file name ending to collect.
        val_fraction: share of files (by path hash) held out for validation.
        cache_dir: where `tokens/<key>/` is written and looked up.
        exclude: directory names to skip; None means STDLIB_EXCLUDE for the standard library
            and CORPUS_EXCLUDE for any other corpus.
        fim_rate: share of TRAINING documents turned into fill-in-the-middle samples (PSM,
            `minicoder.fim.encode_fim`); DeepSeek-Coder uses 0.5. Validation documents stay plain,
            so validation bits per byte measure ordinary left-to-right code.
        fim_seed: seeds the per-document FIM draws (each document's generator is seeded by
            `fim_seed` and its path, so the draws do not depend on file order).
        progress: show a tqdm bar while encoding.
    """
    if exclude is None:
        exclude = STDLIB_EXCLUDE if corpus is None else CORPUS_EXCLUDE
    root, raw = collect_files(corpus, ext, exclude)
    rels = sorted(raw)
    if tokenizer.eos_id is None:
        raise ValueError("the tokenizer has no EOS token, which separates documents; train it with the special tokens")

    tok_hash = tokenizer_fingerprint(tokenizer)
    h = hashlib.sha256(json.dumps([FORMAT, tok_hash, ext, val_fraction, list(exclude), fim_rate, fim_seed]).encode())
    for rel in rels:
        h.update(f"\0{rel}\0{len(raw[rel])}\0".encode())
        h.update(raw[rel])
    key = h.hexdigest()
    out = Path(cache_dir) / "tokens" / f"{root.name or 'corpus'}-{key[:16]}"
    if (out / "meta.json").is_file():
        return TokenData.load(out)

    texts, skipped = _decode_utf8(raw)
    splits = split_files(sorted(texts), val_fraction)
    dtype = token_dtype(tokenizer.vocab_size)
    packages: dict[str, dict] = {}
    for rel in texts:
        p = packages.setdefault(package_of(rel), {"files": 0, "bytes": 0})
        p["files"] += 1
        p["bytes"] += len(raw[rel])

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=out.parent))
    try:
        meta = {"format": FORMAT, "key": key, "tokenizer_sha256": tok_hash, "vocab_size": tokenizer.vocab_size,
                "eos_id": tokenizer.eos_id, "separator": "eos after each document", "dtype": dtype.name,
                "corpus": str(root), "ext": ext, "val_fraction": val_fraction, "exclude": list(exclude),
                "fim": {"rate": fim_rate, "seed": fim_seed, "mode": "psm", "splits": ["train"]},
                "splits": {}, "skipped_non_utf8": skipped, "packages": packages}
        from tqdm import tqdm

        bar = tqdm(total=sum(len(raw[r]) for r in texts), unit="B", unit_scale=True,
                   desc="tokenizing", disable=not progress)
        for name in ("train", "val"):
            ids: list[int] = []
            for rel in splits[name]:
                if name == "train" and fim_rate > 0:
                    ids.extend(encode_fim(tokenizer, texts[rel], random.Random(f"{fim_seed}:{rel}"), fim_rate))
                else:
                    ids.extend(tokenizer.encode(texts[rel]))
                    ids.append(tokenizer.eos_id)
                bar.update(len(raw[rel]))
            _fsync_write(tmp / f"{name}.bin", np.asarray(ids, dtype=dtype).tobytes())
            meta["splits"][name] = {"shards": [f"{name}.bin"], "files": len(splits[name]), "tokens": len(ids),
                                    "bytes": sum(len(raw[r]) for r in splits[name]), "paths": splits[name]}
        bar.close()
        _fsync_write(tmp / "meta.json", json.dumps(meta, indent=1).encode())
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        try:
            os.replace(tmp, out)  # atomic: a killed run leaves a *.tmp-* directory, never a half cache
        except OSError:
            if not (out / "meta.json").is_file():  # else another process finished the same key first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return TokenData.load(out)
