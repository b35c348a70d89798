"""Tests for minicoder/data.py: corpus listing, split by file, cached token files, batches, bits per byte.

Run: .venv/bin/pytest tests/test_data.py -q

Most tests use a byte-level stand-in tokenizer (token = byte, EOS = 256), so every token count
can be worked out by hand; one test runs the real minicoder Tokenizer.
"""

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from minicoder.data import (
    STDLIB_EXCLUDE,
    TokenData,
    TokenFile,
    bits_per_byte,
    default_corpus_dir,
    get_batch,
    list_source_files,
    package_of,
    prepare_tokens,
    split_files,
)


class ByteTokenizer:
    """Token i = byte i, EOS = 256. `tag` changes the saved file, i.e. makes a 'different' tokenizer."""

    eos_id = 256
    vocab_size = 257

    def __init__(self, tag: str = "a"):
        self.tag = tag
        self.calls = 0

    def encode(self, text: str) -> list[int]:
        self.calls += 1
        return list(text.encode("utf-8"))

    def save(self, path) -> None:
        Path(path).write_text(json.dumps({"bytes": True, "tag": self.tag}))


def make_corpus(root: Path) -> dict[str, bytes]:
    files = {
        "a.py": b"def a():\n    return 1\n",
        "b.py": b"x = 'caf\xc3\xa9'\n",  # UTF-8, 2 bytes for the e-acute
        "pkg/__init__.py": b"",
        "pkg/c.py": b"import os\n" * 5,
        "pkg/d.py": b"print('d')\n",
        "pkg/sub/e.py": b"class E:\n    pass\n",
        "notes.txt": b"not python\n",
        "__pycache__/a.cpython-311.py": b"junk\n",
        ".hidden/f.py": b"hidden\n",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_list_source_files_filters_and_sorts(tmp_path):
    make_corpus(tmp_path)
    assert list_source_files(tmp_path) == ["a.py", "b.py", "pkg/__init__.py", "pkg/c.py", "pkg/d.py", "pkg/sub/e.py"]
    assert list_source_files(tmp_path, ext=".txt") == ["notes.txt"]
    assert package_of("email/mime/text.py") == "email" and package_of("os.py") == "os"


def test_stdlib_listing_skips_tests_and_site_packages():
    rels = list_source_files(default_corpus_dir(), ".py", STDLIB_EXCLUDE)
    assert len(rels) > 200
    parts = {p for r in rels for p in r.split("/")[:-1]}
    assert not parts & {"site-packages", "test", "tests", "idlelib", "pydoc_data", "encodings", "__pycache__"}
    assert "os.py" in rels and "json/decoder.py" in rels


def test_split_by_file_is_deterministic_and_disjoint():
    rels = list_source_files(default_corpus_dir(), ".py", STDLIB_EXCLUDE)
    split = split_files(rels, 0.03)
    shuffled = rels[:]
    random.Random(0).shuffle(shuffled)
    again = split_files(shuffled, 0.03)
    assert sorted(again["train"]) == split["train"] and sorted(again["val"]) == split["val"]
    assert not set(split["train"]) & set(split["val"])
    assert sorted(split["train"] + split["val"]) == rels
    assert 0.01 < len(split["val"]) / len(rels) < 0.06
    # a file's side depends on its own path only: dropping other files does not move it
    sub = split_files(rels[::2], 0.03)
    assert set(sub["val"]) == set(split["val"]) & set(rels[::2])


def test_split_small_corpus_gets_one_val_file_and_rejects_bad_fraction():
    split = split_files(["a.py", "b.py", "c.py"], 0.001)
    assert len(split["val"]) == 1 and len(split["train"]) == 2
    with pytest.raises(ValueError, match="val_fraction must be in"):
        split_files(["a.py", "b.py"], 1.5)
    with pytest.raises(ValueError, match="at least 2 source files"):
        split_files(["a.py"], 0.5)


def test_prepare_writes_eos_separated_tokens_and_counts(tmp_path):
    files = make_corpus(tmp_path / "corpus")
    data = prepare_tokens(ByteTokenizer(), tmp_path / "corpus", cache_dir=tmp_path / "cache", progress=False)
    meta = data.meta
    for name in ("train", "val"):
        paths = meta["splits"][name]["paths"]
        expected = [t for rel in paths for t in list(files[rel]) + [256]]
        assert np.array_equal(np.fromfile(data.path / f"{name}.bin", dtype=np.uint16), expected)
        assert len(data.splits[name]) == meta["splits"][name]["tokens"] == len(expected)
        assert data.splits[name].n_bytes == sum(len(files[r]) for r in paths)
    assert meta["splits"]["train"]["files"] + meta["splits"]["val"]["files"] == 6
    assert meta["dtype"] == "uint16" and meta["eos_id"] == 256 and meta["skipped_non_utf8"] == []
    assert meta["packages"]["pkg"] == {"files": 4, "bytes": 50 + 11 + 18}


def test_cache_is_reused_and_invalidated(tmp_path):
    make_corpus(tmp_path / "corpus")
    kw = {"cache_dir": tmp_path / "cache", "progress": False}
    tok = ByteTokenizer()
    first = prepare_tokens(tok, tmp_path / "corpus", **kw)
    calls, mtime = tok.calls, (first.path / "train.bin").stat().st_mtime_ns
    again = prepare_tokens(tok, tmp_path / "corpus", **kw)
    assert again.path == first.path and tok.calls == calls  # nothing re-encoded
    assert (first.path / "train.bin").stat().st_mtime_ns == mtime
    other_tok = prepare_tokens(ByteTokenizer("b"), tmp_path / "corpus", **kw)
    assert other_tok.path != first.path
    (tmp_path / "corpus" / "a.py").write_bytes(b"def a():\n    return 2\n")  # same size, new content
    edited = prepare_tokens(tok, tmp_path / "corpus", **kw)
    assert edited.path not in (first.path, other_tok.path)
    assert not list((tmp_path / "cache" / "tokens").glob("*.tmp-*"))


def test_non_utf8_files_are_skipped_and_counted(tmp_path):
    make_corpus(tmp_path / "corpus")
    (tmp_path / "corpus" / "latin1.py").write_bytes(b"s = 'caf\xe9'\n")
    data = prepare_tokens(ByteTokenizer(), tmp_path / "corpus", cache_dir=tmp_path / "cache", progress=False)
    assert data.meta["skipped_non_utf8"] == ["latin1.py"]
    assert all("latin1.py" not in s["paths"] for s in data.meta["splits"].values())


def test_bits_per_byte_by_hand(tmp_path):
    # 4 tokens over 8 bytes at 1 bit (ln 2 nats) per token: 4 bits / 8 bytes.
    assert bits_per_byte(math.log(2), 4, 8) == pytest.approx(0.5, abs=1e-15)
    # byte tokenizer + a model uniform over 256 symbols: 8 bits per token; every file adds one EOS token,
    # so a split of 3 files and 30 bytes holds 33 tokens -> 8 * 33 / 30 = 8.8 bits per byte.
    assert bits_per_byte(math.log(256), 33, 30) == pytest.approx(8.8, abs=1e-12)
    files = make_corpus(tmp_path / "corpus")
    data = prepare_tokens(ByteTokenizer(), tmp_path / "corpus", cache_dir=tmp_path / "cache", progress=False)
    paths = data.meta["splits"]["train"]["paths"]
    n_bytes = sum(len(files[r]) for r in paths)
    assert data.bits_per_byte("train", math.log(256)) == pytest.approx(8 * (n_bytes + len(paths)) / n_bytes, abs=1e-12)


def test_get_batch_is_seeded_and_shifted(tmp_path):
    make_corpus(tmp_path / "corpus")
    data = prepare_tokens(ByteTokenizer(), tmp_path / "corpus", cache_dir=tmp_path / "cache", progress=False)
    stream = np.fromfile(data.path / "train.bin", dtype=np.uint16).astype(np.int64)
    x1, y1 = data.get_batch("train", 4, 8, torch.Generator().manual_seed(7))
    x2, y2 = data.get_batch("train", 4, 8, torch.Generator().manual_seed(7))
    assert x1.shape == y1.shape == (4, 8) and x1.dtype == torch.int64
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert torch.equal(x1[:, 1:], y1[:, :-1])
    for row_x, row_y in zip(x1.numpy(), y1.numpy()):  # every row is a window of the stream
        starts = [s for s in range(len(stream) - 8) if np.array_equal(stream[s:s + 8], row_x)]
        assert any(np.array_equal(stream[s + 1:s + 9], row_y) for s in starts)
    with pytest.raises(ValueError, match="lower --seq-len"):
        data.get_batch("val", 1, 10_000, torch.Generator().manual_seed(0))


def test_token_file_reads_windows_across_shards(tmp_path):
    a, b, c = np.arange(0, 5), np.arange(5, 7), np.arange(7, 20)
    for name, arr in zip("abc", (a, b, c)):
        arr.astype(np.uint16).tofile(tmp_path / f"{name}.bin")
    tf = TokenFile([tmp_path / f"{n}.bin" for n in "abc"], np.dtype(np.uint16), n_bytes=20)
    assert len(tf) == 20
    for start, length in [(0, 20), (3, 5), (5, 2), (4, 9), (19, 1)]:
        assert np.array_equal(tf.window(start, length), np.arange(start, start + length))
    x, y = get_batch(tf, 3, 6, torch.Generator().manual_seed(1))
    assert torch.equal(y, x + 1)  # the stream counts up, so every target is its input + 1


def test_errors_are_one_line(tmp_path):
    with pytest.raises(NotADirectoryError, match="pass --corpus DIR"):
        prepare_tokens(ByteTokenizer(), tmp_path / "missing", cache_dir=tmp_path, progress=False)
    make_corpus(tmp_path / "corpus")
    with pytest.raises(ValueError, match="pass --ext"):
        prepare_tokens(ByteTokenizer(), tmp_path / "corpus", ext=".rs", cache_dir=tmp_path, progress=False)
    with pytest.raises(FileNotFoundError, match="make the tokens first with `minicoder prepare"):
        TokenData.load(tmp_path / "nothing")


@pytest.fixture(scope="module")
def small_bpe():
    from minicoder.tokenizer import Tokenizer

    texts = [(default_corpus_dir() / n).read_text() for n in ("bisect.py", "colorsys.py", "keyword.py")]
    return Tokenizer.train(texts, vocab_size=300)


def test_fim_rate_transforms_training_documents_only(tmp_path, small_bpe):
    tok = small_bpe
    make_corpus(tmp_path / "corpus")
    kw = {"cache_dir": tmp_path / "cache", "progress": False}
    plain = prepare_tokens(tok, tmp_path / "corpus", **kw)
    fim = prepare_tokens(tok, tmp_path / "corpus", fim_rate=1.0, **kw)
    again = prepare_tokens(tok, tmp_path / "corpus", fim_rate=1.0, fim_seed=0, **kw)
    other_seed = prepare_tokens(tok, tmp_path / "corpus", fim_rate=1.0, fim_seed=1, **kw)
    assert len({plain.path, fim.path, other_seed.path}) == 3 and again.path == fim.path
    train_ids = np.fromfile(fim.path / "train.bin", dtype=np.uint16).tolist()
    n_docs = fim.meta["splits"]["train"]["files"]
    assert train_ids.count(tok.fim_begin_id) == train_ids.count(tok.fim_end_id) == n_docs  # rate 1: every one
    assert train_ids.count(tok.eos_id) == n_docs
    # every document becomes FIM_BEGIN prefix FIM_HOLE suffix FIM_END middle EOS, and restores to the file
    from minicoder.fim import restore_fim

    docs, start = [], 0
    for i, t in enumerate(train_ids):
        if t == tok.eos_id:
            docs.append(tok.decode(train_ids[start:i]))
            start = i + 1
    files = make_corpus(tmp_path / "again")
    originals = [files[r].decode() for r in fim.meta["splits"]["train"]["paths"]]
    assert [restore_fim(d) for d in docs] == originals
    # validation stays plain left-to-right code
    assert np.array_equal(np.fromfile(fim.path / "val.bin", dtype=np.uint16),
                          np.fromfile(plain.path / "val.bin", dtype=np.uint16))


def test_corpus_tokenizer_is_trained_once_and_cached(tmp_path):
    from minicoder.data import corpus_tokenizer

    make_corpus(tmp_path / "corpus")
    tok = corpus_tokenizer(tmp_path / "corpus", vocab_size=270, cache_dir=tmp_path / "cache", progress=False)
    (cached,) = (tmp_path / "cache" / "tokenizers").glob("corpus-*-v270.json")
    mtime = cached.stat().st_mtime_ns
    again = corpus_tokenizer(tmp_path / "corpus", vocab_size=270, cache_dir=tmp_path / "cache", progress=False)
    assert cached.stat().st_mtime_ns == mtime and again.vocab_size == tok.vocab_size == 270
    assert again.encode("def a():\n    return 1\n") == tok.encode("def a():\n    return 1\n")
    assert again.eos_id is not None and again.fim_begin_id is not None


def test_token_dir_from_another_producer_loads_with_a_stable_key(tmp_path):
    # the layout `minicoder prepare` writes: several shards per split, no cache key in meta.json
    np.arange(0, 10, dtype=np.uint16).tofile(tmp_path / "train_000.bin")
    np.arange(10, 30, dtype=np.uint16).tofile(tmp_path / "train_001.bin")
    np.arange(0, 12, dtype=np.uint16).tofile(tmp_path / "val_000.bin")
    meta = {"format": "minicoder-tokens-v1", "dtype": "uint16", "tokenizer_sha256": "abc",
            "splits": {"train": {"shards": ["train_000.bin", "train_001.bin"], "tokens": 30, "bytes": 90},
                       "val": {"shards": ["val_000.bin"], "tokens": 12, "bytes": 40}}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    data = TokenData.load(tmp_path)
    assert len(data.splits["train"]) == 30 and data.splits["val"].n_bytes == 40
    assert np.array_equal(data.splits["train"].window(8, 4), [8, 9, 10, 11])
    assert data.key == TokenData.load(tmp_path).key and len(data.key) == 64
    meta["splits"]["val"]["bytes"] = 41
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    assert TokenData.load(tmp_path).key != data.key


def test_prepare_repo_tokens_caches_and_invalidates(tmp_path, monkeypatch):
    """The repo-level pipeline behind `make train-tiny`: cached by content, rebuilt when a file changes."""
    from minicoder import data as data_mod
    from minicoder import prepare as prepare_mod
    from minicoder.tokenizer import Tokenizer

    corpus = tmp_path / "corpus"
    for repo in ("alpha", "beta", "gamma"):
        (corpus / repo).mkdir(parents=True)
        (corpus / repo / "util.py").write_text(f"def helper_{repo}(x):\n    return x * 2\n" * 5)
        (corpus / repo / "main.py").write_text(f"from util import helper_{repo}\n\nprint(helper_{repo}(21))\n" * 5)
    tok = Tokenizer.train([p.read_text() for p in corpus.rglob("*.py")], 300)
    calls = []
    real_prepare = prepare_mod.prepare
    monkeypatch.setattr(prepare_mod, "prepare", lambda cfg: calls.append(cfg) or real_prepare(cfg))
    first = data_mod.prepare_repo_tokens(tok, corpus, cache_dir=tmp_path / "cache", val_fraction=0.3,
                                         workers=1, progress=False)
    assert len(calls) == 1 and first.meta["splits"]["val"]["tokens"] > 0
    assert int(first.splits["train"].window(0, len(first.splits["train"])).max()) < tok.vocab_size
    again = data_mod.prepare_repo_tokens(tok, corpus, cache_dir=tmp_path / "cache", val_fraction=0.3,
                                         workers=1, progress=False)
    assert len(calls) == 1 and again.path == first.path
    (corpus / "beta" / "util.py").write_text("def changed():\n    return 1\n" * 5)
    changed = data_mod.prepare_repo_tokens(tok, corpus, cache_dir=tmp_path / "cache", val_fraction=0.3,
                                           workers=1, progress=False)
    assert len(calls) == 2 and changed.path != first.path


def test_train_tiny_tokenizer_and_training_windows_see_no_validation_byte(tmp_path, monkeypatch):
    """`make train-tiny`'s tokenizer learns from the training repositories only, and the training
    shards hold no byte of a validation repository (issue: a by-file tokenizer had seen 99.3% of them)."""
    from minicoder import data as data_mod
    from minicoder.tokenizer import Tokenizer

    corpus = tmp_path / "corpus"
    repos = [f"repo{i:02d}" for i in range(12)]
    for repo in repos:  # the stdlib's layout: a package per repository, plus loose top-level modules
        (corpus / repo / "sub").mkdir(parents=True)
        (corpus / repo / "__init__.py").write_text("")
        (corpus / repo / "core.py").write_text(f"MARK_{repo} = 1\n\ndef f_{repo}(x):\n    return x + 1\n" * 3)
        (corpus / repo / "sub" / "deep.py").write_text(f"from {repo}.core import f_{repo}\nDEEP_{repo} = 2\n" * 3)
    (corpus / "loose.py").write_text("MARK_loose = 3\n" * 3)
    split = data_mod.repo_split(corpus, 0.3)
    assert split["val"] and set(split["val"]).isdisjoint(split["train"])
    assert sorted(split["train"] + split["val"]) == sorted(repos + ["."])

    seen = []
    real_train = Tokenizer.train
    monkeypatch.setattr(Tokenizer, "train", staticmethod(lambda texts, *a, **k: seen.extend(texts) or real_train(texts, *a, **k)))
    tok = data_mod.repo_tokenizer(corpus, vocab_size=300, val_fraction=0.3, cache_dir=tmp_path / "cache", progress=False)
    seen_text = "".join(seen)
    marks = {r: (f"MARK_{r}" if r != "." else "MARK_loose") for r in split["train"] + split["val"]}
    for repo in split["val"]:
        assert marks[repo] not in seen_text and f"DEEP_{repo}" not in seen_text
    for repo in split["train"]:
        assert marks[repo] in seen_text

    data = data_mod.prepare_repo_tokens(tok, corpus, cache_dir=tmp_path / "cache", val_fraction=0.3,
                                        fim_rate=0.5, workers=1, progress=False)
    val_repos = {name.rsplit("#", 1)[0] for name in data.meta["splits"]["val"]["samples"]}
    assert val_repos == set(split["val"])
    train_text = tok.decode(data.splits["train"].window(0, len(data.splits["train"])).tolist())
    val_text = tok.decode(data.splits["val"].window(0, len(data.splits["val"])).tolist())
    for repo in split["val"]:
        assert marks[repo] not in train_text and marks[repo] in val_text
    assert all(f"f_{repo}" in train_text for repo in split["train"] if repo != ".")


def test_stdlib_tokenizer_files_exclude_every_validation_repository():
    """On the real default corpus: no file under a held-out package reaches the tokenizer."""
    from minicoder.data import STDLIB_EXCLUDE, repo_split, tokenizer_training_files

    split = repo_split(None, 0.1)
    root, rels = tokenizer_training_files(None, ".py", 0.1)
    assert split["val"] and rels
    held_out = set(split["val"]) - {"."}
    assert not any(rel.split("/", 1)[0] in held_out for rel in rels)
    if "." in split["val"]:
        assert all("/" in rel for rel in rels)
    for repo in held_out:  # every held-out package does have Python files that were kept out
        assert list_source_files(root / repo, ".py", STDLIB_EXCLUDE)
