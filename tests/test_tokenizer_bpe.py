"""BPE core: the graded tests of the `tokenizer` assignment.

Run: .venv/bin/pytest tests/test_tokenizer_bpe.py -q
Grade a student copy: make grade ASSIGNMENT=tokenizer STUDENT=/path/to/copy

Every test here goes through a solution region of minicoder/tokenizer.py, so all of them fail on
the stubs (tests/test_assignments.py checks that). Oracles: the real DeepSeek vocabularies with
their 47 reference encodings, HF `tokenizers` (encode, pre-tokenizer, BpeTrainer), hand-worked
examples.
"""

import random
import sysconfig
import unicodedata
from pathlib import Path

import pytest
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, pre_tokenizers, trainers

from minicoder.tokenizer import (
    BOS,
    EOS,
    FIM_BEGIN,
    FIM_END,
    FIM_HOLE,
    Tokenizer,
    bpe,
    bytes_to_unicode,
    get_pair_counts,
    merge,
    train_merges,
    train_merges_naive,
)

DATA = Path(__file__).resolve().parents[1] / "data_samples"
VOCABS = {name: DATA / "tokenizers" / name / "tokenizer.json" for name in ["deepseek-coder", "deepseek-llm"]}
STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.fixture(scope="module", params=list(VOCABS))
def real(request):
    """(name, minicoder tokenizer, HF tokenizer) for each real vocabulary."""
    path = VOCABS[request.param]
    return request.param, Tokenizer.from_file(path), HFTokenizer.from_file(str(path))


@pytest.fixture(scope="module")
def coder():
    return Tokenizer.from_file(VOCABS["deepseek-coder"])


def stdlib_texts(max_bytes: int, start: int = 0) -> list[str]:
    files = sorted(p for p in STDLIB.rglob("*.py") if "site-packages" not in p.parts)
    out, n = [], 0
    for p in files[start:]:
        try:
            t = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        out.append(t)
        n += len(t.encode())
        if n >= max_bytes:
            break
    return out


# -- hand-worked helpers -------------------------------------------------------

def test_bytes_to_unicode_is_gpt2_table():
    table = bytes_to_unicode()
    assert table[ord("a")] == "a" and table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[0] == "Ā"
    assert len(set(table.values())) == 256
    # HF's ByteLevel alphabet is the same 256 characters.
    assert set(table.values()) == set(pre_tokenizers.ByteLevel.alphabet())


def test_pair_counts_merge_bpe_examples():
    assert get_pair_counts([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert get_pair_counts([1, 2], {(1, 2): 1}, weight=3) == {(1, 2): 4}
    assert merge([1, 1, 1, 2], (1, 1), 9) == [9, 1, 2]
    assert merge([1, 2, 3, 1, 2], (1, 2), 7) == [7, 3, 7]
    merges = {(1, 2): (0, 5), (5, 3): (1, 6)}
    assert bpe([1, 2, 3, 1, 2], merges) == [6, 5]
    assert bpe([3, 1], merges) == [3, 1]
    # Lower rank wins even when the other pair comes first in the text.
    assert bpe([3, 4, 1, 2], {(3, 4): (1, 7), (4, 1): (0, 8)}) == [3, 8, 2]


def test_train_merges_by_hand():
    # "ab" occurs 1 + 2 = 3 times and "aa" 2 times; after ab -> 256, "aaab" is [a, a, 256] and no
    # pair occurs twice, so training stops early.
    assert train_merges({b"aaab": 1, b"ab": 2}, 5) == [(97, 98)]
    # "aa" 4 times ties "ab" 4 times: the smaller pair (97, 97) goes first -> "aaab" = [256, a, b];
    # then (97, 98) -> 257 (4 times); then (256, 257) twice.
    assert train_merges({b"aaab": 2, b"ab": 2}, 5) == [(97, 97), (97, 98), (256, 257)]
    # Tie between (97, 98) and (99, 100): the smaller pair of ids wins.
    assert train_merges({b"cd": 2, b"ab": 2}, 1) == [(97, 98)]


def test_fast_trainer_equals_plain_trainer():
    texts = stdlib_texts(150_000)
    fast = Tokenizer.train(texts, 256 + 9 + 400)
    plain = Tokenizer.train(texts, 256 + 9 + 400, naive=True)
    assert fast.merges == plain.merges and len(fast.merges) == 400


def test_train_merges_random_words_equal_plain():
    rng = random.Random(1234)
    for _ in range(5):
        words = {bytes(rng.choice(b"abcab ") for _ in range(rng.randint(1, 12))): rng.randint(1, 5)
                 for _ in range(60)}
        assert train_merges(words, 40) == train_merges_naive(words, 40)


# -- the real vocabularies -----------------------------------------------------

def read_vectors(name):
    folder = VOCABS[name].parent
    inputs = (folder / "vectors.inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    outputs = (folder / "vectors.out").read_text(encoding="utf-8").split("\n")
    return list(zip(inputs, [[int(x) for x in line.split()] for line in outputs]))


def test_reference_vectors(real):
    name, tok, _ = real
    vectors = read_vectors(name)
    assert len(vectors) == 47
    for text, expected in vectors:
        assert tok.encode(text, allowed_special="all") == expected, repr(text)


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


def test_matches_hf_on_data_samples(real):
    _, tok, hf = real
    files = [p for p in sorted(DATA.rglob("*")) if p.is_file() and p.suffix not in {".gz", ".json", ".out"}]
    checked = 0
    for p in files:
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        assert tok.encode(text, allowed_special="all") == hf.encode(text, add_special_tokens=False).ids, p
        checked += 1
    assert checked >= 10


@pytest.mark.slow
def test_matches_hf_on_stdlib(real):
    name, tok, hf = real
    texts = stdlib_texts(3_000_000 if name == "deepseek-coder" else 1_000_000, start=50)
    assert sum(len(t.encode()) for t in texts) >= 1_000_000
    for t in texts:
        assert tok.encode(t, allowed_special="all") == hf.encode(t, add_special_tokens=False).ids


def assigned_code_points():
    """Every code point Python's Unicode tables (and HF's engine) know as assigned, minus surrogates.

    The `regex` module ships newer Unicode tables than HF's Oniguruma, so code points assigned
    only recently are classified differently; real text almost never holds them."""
    return [chr(c) for c in range(0x110000)
            if unicodedata.category(chr(c)) not in ("Cn", "Cs")]


@pytest.mark.slow
def test_fast_pretokenizer_equals_chain_and_hf_on_every_code_point(coder):
    table = bytes_to_unicode()
    chars = assigned_code_points()
    # Every assigned code point between a letter and a space-letter: fast == chain.
    text = "".join(f"x{c} y" for c in chars)
    assert coder.pre_tokenize(text) == coder.pre_tokenize_naive(text)
    # In many contexts, and against HF: every code point except most of the 200K+ private-use
    # (Co) and other-letter (Lo) ones, which behave alike (one in 50 of those is kept).
    hf = HFTokenizer.from_file(str(VOCABS["deepseek-coder"])).pre_tokenizer
    varied = [c for i, c in enumerate(chars) if unicodedata.category(c) not in ("Co", "Lo") or i % 50 == 0]
    for template in ["x{} y", "{}{}", " {} ", "a{}1", "\u3000{}、", " 中{}文 ", "  {}\n", "\u3000{}中"]:
        text = "".join(template.format(c, c) for c in varied)
        naive = coder.pre_tokenize_naive(text)
        assert coder.pre_tokenize(text) == naive, template
        assert ["".join(table[b] for b in p.encode()) for p in naive] == \
            [p for p, _ in hf.pre_tokenize_str(text)], template


def test_fast_pretokenizer_random_soup(coder):
    rng = random.Random(7)
    chars = assigned_code_points()
    pieces = [" ", "  ", "\n", "\r\n", "a", "1", "!", "\t", "\u3000", "、", "〇", "中", " 中", "ࠀ", "x ", "é", "\u0301"]
    for _ in range(200):
        text = "".join(rng.choice(chars) if rng.random() < 0.4 else rng.choice(pieces) for _ in range(200))
        assert coder.pre_tokenize(text) == coder.pre_tokenize_naive(text)


ROUND_TRIP = [
    "", "hello world", "def f(x):\n\treturn x  # done\n", "emoji 🦙🤖👩‍👩‍👧 done", "中文和한국어와日本語",
    "e\u0301 combining a\u0308\u0304", "lone\rcarriage", "\r\n\r\n", " " * 37 + "x", "\t\t\t  \t", "x" * 5000,
    f"{BOS}{EOS}{FIM_BEGIN}{FIM_HOLE}{FIM_END}<|EOT|>", "Führer õ ÿ À", "\x00\x01\x7f\x85\xa0", "\u2028\u2029\ufeff",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🏳️‍🌈", "12345678901234567890", "½ ² Ⅻ ٣",
]


def test_round_trip(real):
    _, tok, _ = real
    rng = random.Random(42)
    chars = assigned_code_points()
    samples = ROUND_TRIP + ["".join(rng.choice(chars) for _ in range(rng.randint(1, 80))) for _ in range(200)]
    for s in samples:
        assert tok.decode(tok.encode(s)) == s, repr(s)
        assert tok.decode(tok.encode(s, allowed_special="all")) == s, repr(s)


def test_decode_partial_utf8_is_replaced(coder):
    ids = coder.encode("🦙")
    assert len(ids) > 1
    assert coder.decode_bytes(ids) == "🦙".encode()
    assert coder.decode(ids[:1]).endswith("\ufffd")


# -- training ------------------------------------------------------------------

def test_trained_tokenizer_loads_in_hf_and_agrees(tmp_path):
    train = stdlib_texts(400_000)
    held_out = stdlib_texts(300_000, start=400)
    tok = Tokenizer.train(train, 1024)
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    hf = HFTokenizer.from_file(str(path))
    assert hf.get_vocab_size() == tok.vocab_size == 1024
    for t in held_out + ROUND_TRIP:
        assert tok.encode(t, allowed_special="all") == hf.encode(t, add_special_tokens=False).ids
    assert tok.encode("x", bos=True) == hf.encode("x").ids
    again = Tokenizer.from_file(path)
    assert again.merges == tok.merges and again.special_tokens == tok.special_tokens
    assert again.encode(held_out[0]) == tok.encode(held_out[0])


def test_training_is_deterministic():
    texts = stdlib_texts(100_000)
    assert Tokenizer.train(texts, 600).merges == Tokenizer.train(list(reversed(texts)), 600).merges


@pytest.mark.slow
def test_compression_within_2_percent_of_hf_bpe_trainer(tmp_path):
    """Bytes per token on held-out code vs HF BpeTrainer, same vocabulary size and split chain."""
    train = stdlib_texts(1_500_000)
    held_out = stdlib_texts(500_000, start=700)
    vocab = 4096
    ours = Tokenizer.train(train, vocab)
    # HF with the same chain: load our saved file's pre-tokenizer into a fresh BPE model.
    ours.save(tmp_path / "ours.json")
    hf = HFTokenizer.from_file(str(tmp_path / "ours.json"))
    fresh = HFTokenizer(models.BPE())
    fresh.pre_tokenizer = hf.pre_tokenizer
    fresh.decoder = hf.decoder
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=list(ours.special_tokens), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    fresh.train_from_iterator(train, trainer)
    n_bytes = sum(len(t.encode()) for t in held_out)
    ours_bpt = n_bytes / sum(len(ours.encode(t)) for t in held_out)
    hf_bpt = n_bytes / sum(len(fresh.encode(t, add_special_tokens=False).ids) for t in held_out)
    assert abs(ours_bpt - hf_bpt) / hf_bpt <= 0.02, (ours_bpt, hf_bpt)
