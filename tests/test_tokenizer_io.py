"""Tokenizer files, special tokens, errors and command line (not graded: code outside the assignment).

Run: .venv/bin/pytest tests/test_tokenizer_io.py -q
"""

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer as HFTokenizer

from minicoder import cli
from minicoder.tokenizer import CHAINS, FIM_BEGIN, FIM_END, FIM_HOLE, Tokenizer, read_corpus

DATA = Path(__file__).resolve().parents[1] / "data_samples"
CODER = DATA / "tokenizers" / "deepseek-coder" / "tokenizer.json"

CORPUS = {
    "a.py": "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n" * 20,
    "pkg/b.py": "import os\n\nclass Thing:\n    def __init__(self):\n        self.x = 12345\n" * 20,
}


@pytest.fixture(scope="module")
def coder():
    return Tokenizer.from_file(CODER)


def test_special_token_ids_by_name(coder):
    assert (coder.bos_id, coder.eos_id, coder.fim_hole_id, coder.fim_begin_id, coder.fim_end_id, coder.pad_id,
            coder.eot_id) == (32013, 32014, 32015, 32016, 32017, 32018, 32021)
    assert coder.vocab_size == 32256
    assert coder.encode("x", bos=True) == [32013, 87]


def test_special_tokens_only_when_allowed(coder):
    text = f"{FIM_BEGIN}def f():{FIM_HOLE}\n{FIM_END}"
    plain = coder.encode(text)
    assert not {32015, 32016, 32017} & set(plain)
    assert coder.decode(plain) == text
    allowed = coder.encode(text, allowed_special="all")
    assert allowed[0] == 32016 and allowed.count(32015) == 1 and allowed[-1] == 32017
    only_begin = coder.encode(text, allowed_special={FIM_BEGIN})
    assert only_begin[0] == 32016 and 32015 not in only_begin
    assert coder.decode(allowed) == text


def test_decode_partial_utf8_is_replaced(coder):
    ids = coder.encode("🦙")
    assert len(ids) > 1
    assert coder.decode_bytes(ids) == "🦙".encode()
    assert coder.decode(ids[:1]).endswith("\ufffd")


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    for name, text in CORPUS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    (root / "latin1.py").write_bytes("caf\xe9 = 1\n".encode("latin-1"))
    (root / "blob.py").write_bytes(b"\x00\x01\x02binary")
    (root / "notes.txt").write_text("not python", encoding="utf-8")
    for skipped in (".venv/lib/site.py", "__pycache__/a.py", "pkg/site-packages/dep.py"):
        (root / skipped).parent.mkdir(parents=True, exist_ok=True)
        (root / skipped).write_text("x = 1\n", encoding="utf-8")
    return root


def test_read_corpus_counts_skips(corpus):
    texts, stats = read_corpus(corpus)
    assert len(texts) == 2 and stats["files"] == 2
    assert stats["skipped_non_utf8"] == 1 and stats["skipped_binary"] == 1
    with pytest.raises(NotADirectoryError, match="corpus directory not found"):
        read_corpus(corpus / "missing")


def test_empty_corpus_and_small_vocab_errors():
    with pytest.raises(ValueError, match="training corpus is empty"):
        Tokenizer.train([], 1000)
    with pytest.raises(ValueError, match="training corpus is empty"):
        Tokenizer.train(["", ""], 1000)
    with pytest.raises(ValueError, match=r"smaller than 256 bytes \+ 9 special tokens = 265"):
        Tokenizer.train(["some text"], 264)
    with pytest.raises(ValueError, match="unknown pre-tokenizer chain 'bert'"):
        Tokenizer.train(["some text"], 300, chain="bert")


def test_gpt2_chain_trains_and_loads_in_hf(tmp_path):
    texts = list(CORPUS.values())
    tok = Tokenizer.train(texts, 300, chain="gpt2", special_tokens=[])
    assert tok.chain == CHAINS["gpt2"] and tok.bos_id is None
    tok.save(tmp_path / "t.json")
    hf = HFTokenizer.from_file(str(tmp_path / "t.json"))
    text = "x = 'it''s 12  fine'\n\n  y"
    assert hf.encode(text).ids == tok.encode(text)
    with pytest.raises(ValueError, match="no BOS token"):
        tok.encode("x", bos=True)


def test_trained_tokenizer_ids_and_specials():
    tok = Tokenizer.train(list(CORPUS.values()), 300)
    assert tok.vocab_size == 300
    assert tok.bos_id == 291 and tok.eot_id == 299  # 256 + 35 merges, then the 9 specials in order
    with pytest.raises(ValueError, match="unknown special tokens"):
        tok.encode("x", allowed_special={"<nope>"})
    with pytest.raises(TypeError, match="takes a str"):
        tok.encode(b"bytes")
    with pytest.raises(ValueError, match="id 300 is not in this vocabulary"):
        tok.decode([300])


def write_json(path, data):
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["model"].update(type="WordPiece"), "holds a WordPiece model"),
    (lambda d: d["model"].pop("merges"), "no model.vocab or model.merges"),
    (lambda d: d.update(normalizer={"type": "NFC"}), "normalizer 'NFC' is not supported"),
    (lambda d: d.update(pre_tokenizer={"type": "Whitespace"}), "pre-tokenizer 'Whitespace' is not supported"),
    (lambda d: d.update(pre_tokenizer=None), "has no pre_tokenizer"),
    (lambda d: d["pre_tokenizer"]["pretokenizers"][0].update(behavior="Removed"), "Split behaviour 'Removed'"),
    (lambda d: d["model"].update(byte_fallback=True), "byte_fallback"),
    (lambda d: d["model"]["merges"].append(["zzzq", "qqqz"]), "uses a token missing from the vocab"),
])
def test_bad_tokenizer_files(tmp_path, mutate, message):
    data = json.loads(CODER.read_text(encoding="utf-8"))
    mutate(data)
    with pytest.raises(ValueError, match=message):
        Tokenizer.from_file(write_json(tmp_path / "t.json", data))


def test_truncated_missing_and_non_json_files(tmp_path):
    raw = CODER.read_bytes()
    (tmp_path / "cut.json").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="is not valid JSON .* truncated"):
        Tokenizer.from_file(tmp_path / "cut.json")
    with pytest.raises(FileNotFoundError, match="tokenizer file not found"):
        Tokenizer.from_file(tmp_path / "none.json")
    with pytest.raises(ValueError, match="no 'model' object"):
        Tokenizer.from_file(write_json(tmp_path / "list.json", [1, 2]))


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    tok = Tokenizer.train(list(CORPUS.values()), 300)
    tok.save(tmp_path / "out" / "tokenizer.json")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["tokenizer.json"]


def test_cli_train_encode_decode(corpus, tmp_path, capsys):
    out = tmp_path / "tok.json"
    assert cli.main(["tokenizer", "train", "--corpus", str(corpus), "--vocab-size", "300", "--out", str(out)]) == 0
    captured = capsys.readouterr().out
    assert "read 2 files" in captured and "skipped 1 non-UTF-8 and 1 binary" in captured
    assert cli.main(["tokenizer", "encode", "--tokenizer", str(out), "def add"]) == 0
    ids = capsys.readouterr().out.split()
    assert cli.main(["tokenizer", "decode", "--tokenizer", str(out), " ".join(ids)]) == 0
    assert capsys.readouterr().out == "def add"
    # The shipped DeepSeek-Coder vocabulary is the default.
    assert cli.main(["tokenizer", "encode", "--allow-special", "<｜fim▁begin｜>x"]) == 0
    assert capsys.readouterr().out.split() == ["32016", "87"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["tokenizer", "train", "--corpus", str(empty), "--vocab-size", "300",
                     "--out", str(tmp_path / "x.json")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no .py files with UTF-8 text" in err[0]
    assert cli.main(["tokenizer", "decode", "1 two"]) == 1
    assert "integer ids" in capsys.readouterr().err


def train_args(corpus, out, *extra, vocab="300"):
    return ["tokenizer", "train", "--corpus", str(corpus), "--vocab-size", vocab, "--out", str(out), *extra]


def test_cli_train_out_is_checked_before_training(corpus, tmp_path, capsys):
    out = tmp_path / "tok.json"
    out.write_text("precious", encoding="utf-8")
    assert cli.main(train_args(corpus, out)) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0] and "already exists" in err[0] and "--force" in err[0]
    assert "read " not in captured.out  # refused before reading the corpus
    assert out.read_text(encoding="utf-8") == "precious"
    assert cli.main(train_args(corpus, out, "--force")) == 0
    assert Tokenizer.from_file(out).vocab_size == 300
    capsys.readouterr()
    for bad, message in [(tmp_path / "missing" / "tok.json", "does not exist"), (tmp_path, "is a directory")]:
        assert cli.main(train_args(corpus, bad)) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--out" in err[0] and message in err[0], err
    assert not (tmp_path / "missing").exists()
    assert cli.main(train_args(tmp_path / "nope", tmp_path / "t2.json")) == 1
    assert "--corpus" in capsys.readouterr().err
    assert cli.main(train_args(corpus, tmp_path / "t3.json", vocab="100")) == 1
    err = capsys.readouterr().err
    assert "--vocab-size 100" in err and "265" in err


def test_cli_train_says_when_the_corpus_gives_fewer_ids(corpus, tmp_path, capsys):
    out = tmp_path / "tok.json"
    assert cli.main(train_args(corpus, out, vocab="10000000")) == 0
    err = capsys.readouterr().err
    size = Tokenizer.from_file(out).vocab_size
    assert size < 1000
    warning = [line for line in err.splitlines() if "warning" in line]
    assert len(warning) == 1 and "--vocab-size 10000000" in warning[0] and f"{size} ids" in warning[0], err
    # No warning when the corpus supports the size asked for.
    assert cli.main(train_args(corpus, tmp_path / "small.json")) == 0
    assert "warning" not in capsys.readouterr().err
