"""Fill-in-the-middle: the graded tests of the `fim` assignment, a group per function.

Run: .venv/bin/pytest tests/test_fim_graded.py -q
Grade a student package: .venv/bin/minicoder assignment grade fim --student DIR

`minicoder/assignments.py` maps each test here to the function it grades. No fixture calls an assigned
function, and a test of one function calls no other assigned function unless the reference does
(encode_fim_files calls split_fim and fim_ids). Oracles: the draws `split_fim`'s docstring specifies,
replayed here on a twin of the generator (so a solution that draws once too often, or in another
order, fails); the statistics those draws imply (a binomial FIM rate, cuts uniform over characters);
hand-written layouts; and HF `tokenizers` with DeepSeek-Coder's real vocabulary for the ids, which
cuts at special tokens before BPE, so PSM's ids are HF's encoding of the PSM string.
The rest of fim.py (apply_fim, restore_fim, encode_fim, errors) is tested in tests/test_fim.py.
"""

import functools
import math
import random
import string
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer as HFTokenizer

from minicoder.fim import encode_fim_files, fim_ids, format_fim, split_fim

FIM_BEGIN, FIM_HOLE, FIM_END = "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"  # written out: the oracle
VOCAB = Path(__file__).resolve().parents[1] / "data_samples" / "tokenizers" / "deepseek-coder" / "tokenizer.json"
ALPHABET = string.ascii_letters + string.digits + " \n\t()[]{}:=+-*/#'\"" + "éß中文😀\u2028"


def random_doc(rng: random.Random, max_len: int = 200) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(max_len + 1)))


def twins(kind: str, seed: int):
    """Two generators in the same state: one for the solution, one to replay the specified draws."""
    make = random.Random if kind == "random.Random" else np.random.default_rng
    return make(seed), make(seed)


def replay(rng, text: str, rate: float):
    """split_fim's specification, drawn from `rng`: u, then (only when transforming) two cuts."""
    u = rng.random()
    if not u < rate or any(t in text for t in (FIM_BEGIN, FIM_HOLE, FIM_END)):
        return None
    draw = (lambda: rng.randint(0, len(text))) if isinstance(rng, random.Random) else \
        (lambda: int(rng.integers(0, len(text) + 1)))
    lo, hi = sorted((draw(), draw()))
    return text[:lo], text[lo:hi], text[hi:]


@functools.cache
def hf_tok():
    """A tokenizer with the interface fim.py uses, backed by HF `tokenizers` and DeepSeek-Coder's real
    vocabulary (so these tests need nothing else of minicoder). Loaded inside tests, not in a fixture."""
    hf = HFTokenizer.from_file(str(VOCAB))

    class HF:
        fim_begin_id, fim_hole_id, fim_end_id = (hf.token_to_id(t) for t in (FIM_BEGIN, FIM_HOLE, FIM_END))
        eos_id = hf.token_to_id("<｜end▁of▁sentence｜>")

        @staticmethod
        def encode(text: str) -> list[int]:
            return hf.encode(text, add_special_tokens=False).ids

    assert (HF.fim_begin_id, HF.fim_hole_id, HF.fim_end_id, HF.eos_id) == (32016, 32015, 32017, 32014)
    return HF(), hf


# -- split_fim -------------------------------------------------------------------

@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("kind", ["random.Random", "numpy.Generator"])
def test_split_fim_replays_the_specified_draws(kind, rate):
    """One generator through 300 documents (some holding a FIM string): every result equals the
    replayed specification, and the two generators end in the same state (the same number of draws)."""
    docs_rng = random.Random(99)
    docs = [random_doc(docs_rng) for _ in range(300)]
    for k in range(0, 300, 25):  # never transformed, but u is still drawn
        docs[k] = docs[k][:10] + (FIM_BEGIN, FIM_HOLE, FIM_END)[k % 3] + docs[k][10:]
    docs[1] = ""
    ours, oracle = twins(kind, 2024)
    for k, doc in enumerate(docs):
        got = split_fim(doc, ours, rate)
        expected = replay(oracle, doc, rate)
        assert got == expected, f"document {k} (length {len(doc)}): got {got!r}, expected {expected!r}"
    assert ours.random() == oracle.random(), "split_fim drew a different number of random numbers"


def test_split_fim_by_hand():
    # random.Random(0) draws u = 0.844..., then randint(0, 6) = 6 and randint(0, 6) = 3: cuts 3, 6
    assert split_fim("abcdef", random.Random(0), rate=0.9) == ("abc", "def", "")
    assert split_fim("abcdef", random.Random(0), rate=0.8) is None
    assert split_fim("", random.Random(0), rate=1.0) == ("", "", "")
    assert split_fim(f"x{FIM_HOLE}y", random.Random(0), rate=1.0) is None


@pytest.mark.parametrize("rate, kind", [(0.5, "random.Random"), (0.1, "numpy.Generator"), (0.9, "numpy.Generator")])
def test_split_fim_rate_is_binomial(rate, kind):
    rng, _ = twins(kind, 3)
    n = 4000
    transformed = sum(split_fim(f"x = {i}\n", rng, rate) is not None for i in range(n))
    # Binomial(n, rate); allow 4 standard deviations
    assert abs(transformed - n * rate) < 4 * math.sqrt(n * rate * (1 - rate)), transformed


def test_split_fim_cuts_are_two_sorted_uniform_character_positions():
    """Cut points are uniform over characters: with 50 one-byte then 50 four-byte characters, half
    of the cuts land in the first half (cutting bytes would put 20% there). Two sorted uniform cuts
    make the middle a third of the document on average (Bavarian et al.)."""
    doc = "a" * 50 + "😀" * 50
    rng = np.random.default_rng(11)
    first_half, middle_share, n = 0, 0.0, 3000
    for _ in range(n):
        prefix, middle, suffix = split_fim(doc, rng, rate=1.0)
        assert prefix + middle + suffix == doc
        first_half += len(prefix) < 50
        middle_share += len(middle) / len(doc)
    # P(min of two uniform cuts < 50 of 101 positions) = 1 - (51/101)^2 = 0.745
    assert abs(first_half / n - (1 - (51 / 101) ** 2)) < 0.03
    assert abs(middle_share / n - 1 / 3) < 0.02


def test_split_fim_reaches_every_cut_including_the_ends():
    doc = "中文é"  # 3 characters, 8 bytes in UTF-8: 4 cut positions
    rng = random.Random(1)
    seen = {tuple(map(len, split_fim(doc, rng, rate=1.0)[:2])) for _ in range(500)}
    assert seen == {(lo, hi - lo) for lo in range(4) for hi in range(lo, 4)}


# -- format_fim ------------------------------------------------------------------

@pytest.mark.parametrize("parts, mode, expected", [
    (("a", "b", "c"), "psm", f"{FIM_BEGIN}a{FIM_HOLE}c{FIM_END}b"),
    (("a", "b", "c"), "spm", f"{FIM_BEGIN}{FIM_HOLE}c{FIM_END}ab"),
    (("def f(x):\n", "    y = x\n", "    return y\n"), "psm",
     "<｜fim▁begin｜>def f(x):\n<｜fim▁hole｜>    return y\n<｜fim▁end｜>    y = x\n"),
    (("def f(x):\n", "    y = x\n", "    return y\n"), "spm",
     "<｜fim▁begin｜><｜fim▁hole｜>    return y\n<｜fim▁end｜>def f(x):\n    y = x\n"),
    (("", "", ""), "psm", FIM_BEGIN + FIM_HOLE + FIM_END),
    (("", "", ""), "spm", FIM_BEGIN + FIM_HOLE + FIM_END),
    (("p", "", "s"), "psm", f"{FIM_BEGIN}p{FIM_HOLE}s{FIM_END}"),
    (("", "m", ""), "spm", f"{FIM_BEGIN}{FIM_HOLE}{FIM_END}m"),
], ids=["psm", "spm", "psm-code", "spm-code", "psm-empty", "spm-empty", "psm-no-middle", "spm-only-middle"])
def test_format_fim(parts, mode, expected):
    assert format_fim(*parts, mode=mode) == expected
    if mode == "psm":
        assert format_fim(*parts) == expected  # PSM is the default


# -- fim_ids ---------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["psm", "spm"])
def test_fim_ids_equal_hf(mode):
    """PSM: HF's encoding of the PSM string (HF cuts at special tokens first). SPM: the parts encoded
    on their own; the joined SPM string would merge across the prefix/middle seam, the ids must not."""
    tok, hf = hf_tok()
    doc_rng = random.Random(4)
    seam_merges = 0
    for _ in range(40):
        doc = random_doc(doc_rng, 80)
        lo, hi = sorted((doc_rng.randint(0, len(doc)), doc_rng.randint(0, len(doc))))
        prefix, middle, suffix = doc[:lo], doc[lo:hi], doc[hi:]
        got = fim_ids(tok, prefix, middle, suffix, mode)
        p, m, s = (hf.encode(x, add_special_tokens=False).ids for x in (prefix, middle, suffix))
        if mode == "psm":
            assert got == [32016, *p, 32015, *s, 32017, *m]
            joined = f"{FIM_BEGIN}{prefix}{FIM_HOLE}{suffix}{FIM_END}{middle}"
            assert got == hf.encode(joined, add_special_tokens=False).ids
        else:
            assert got == [32016, 32015, *s, 32017, *p, *m]
            joined = f"{FIM_BEGIN}{FIM_HOLE}{suffix}{FIM_END}{prefix}{middle}"
            seam_merges += got != hf.encode(joined, add_special_tokens=False).ids
    if mode == "spm":
        assert seam_merges > 0  # the seam is real: these tests would see a joined encoding
    assert fim_ids(tok, "a", "b", "c") == fim_ids(tok, "a", "b", "c", "psm")  # PSM is the default


def test_fim_ids_keep_special_strings_as_text():
    """A FIM string inside a part is text (tok.encode allows no specials): its own ids, not 32015."""
    bytes_tok = type("Bytes", (), {"fim_begin_id": 1, "fim_hole_id": 2, "fim_end_id": 3,
                                   "encode": staticmethod(lambda text: list(text.encode()))})()
    assert fim_ids(bytes_tok, "ab", "", FIM_HOLE) == [1, 97, 98, 2, *FIM_HOLE.encode(), 3]
    assert fim_ids(bytes_tok, "", "x", "", "spm") == [1, 2, 3, 120]


# -- encode_fim_files ------------------------------------------------------------

def random_sample(rng: random.Random, n_files: int) -> tuple[dict[str, str], str, list[tuple[int, int, int]]]:
    """A repository sample as minicoder.depsort lays it out ('# path' line, code, a blank line between
    files), built here by hand with its (head_start, body_start, body_end) spans."""
    files = {f"pkg/m{i}.py": random_doc(rng, 60) + "\n" for i in range(n_files)}
    text, spans = "", []
    for k, (path, body) in enumerate(files.items()):
        head = f"# {path}\n"
        spans.append((len(text), len(text) + len(head), len(text) + len(head) + len(body)))
        text += head + body + ("\n" if k < n_files - 1 else "")
    return files, text, spans


def expected_ids(tok, text, spans, rng, rate, mode, eos=True):
    """The specification, with the draws replayed and every piece encoded by HF."""
    ids, plain_from, fimmed = [], 0, []
    for head_start, body_start, body_end in spans:
        parts = replay(rng, text[body_start:body_end], rate)
        fimmed.append(parts is not None)
        if parts:
            prefix, middle, suffix = parts
            p, m, s = (tok.encode(x) for x in (text[head_start:body_start] + prefix, middle, suffix))
            ids += tok.encode(text[plain_from:head_start])
            ids += [tok.fim_begin_id, *p, tok.fim_hole_id, *s, tok.fim_end_id, *m] if mode == "psm" else \
                [tok.fim_begin_id, tok.fim_hole_id, *s, tok.fim_end_id, *p, *m]
            plain_from = body_end
    ids += tok.encode(text[plain_from:])
    return ids + ([tok.eos_id] if eos else []), fimmed


@pytest.mark.parametrize("mode", ["psm", "spm"])
def test_encode_fim_files_equals_the_specification(mode):
    tok, _ = hf_tok()
    rng = random.Random(5)
    fimmed_files = 0
    for seed in range(40):
        _, text, spans = random_sample(rng, rng.randint(1, 6))
        ours, oracle = twins("random.Random", seed)
        got = encode_fim_files(tok, text, spans, ours, rate=0.5, mode=mode)
        expected = expected_ids(tok, text, spans, oracle, 0.5, mode)
        assert got == expected, f"sample {seed}: files FIM'd {got[1]}, expected {expected[1]}"
        fimmed_files += sum(expected[1])
    assert fimmed_files > 20
    _, text, spans = random_sample(rng, 3)
    got = encode_fim_files(tok, text, spans, random.Random(1), rate=1.0, mode=mode, eos=False)
    assert got == expected_ids(tok, text, spans, random.Random(1), 1.0, mode, eos=False)
    assert got[0][-1] != tok.eos_id


def unfim_files(sample: str, files: dict[str, str]) -> tuple[str, list[str]]:
    """Undo file-level FIM in a decoded PSM sample, checking on the way that each FIM segment is one
    whole file: its path comment opens the prefix, and prefix + middle + suffix is exactly that file
    (path comment and code), so the middle lies inside it. Returns (the plain sample, the FIM'd paths)."""
    out, fimmed, rest = [], [], sample
    while FIM_BEGIN in rest:
        before, _, rest = rest.partition(FIM_BEGIN)
        prefix, _, rest = rest.partition(FIM_HOLE)
        suffix, _, rest = rest.partition(FIM_END)
        path = prefix.split("\n", 1)[0].removeprefix("# ")
        whole = f"# {path}\n{files[path]}"
        assert whole.startswith(prefix) and whole.endswith(suffix) and len(prefix) + len(suffix) <= len(whole)
        middle = whole[len(prefix) : len(whole) - len(suffix)]
        assert rest.startswith(middle), f"the middle of {path} does not end inside {path}"
        out += [before, whole]
        rest = rest[len(middle) :]
        fimmed.append(path)
    return "".join(out) + rest, fimmed


def test_encode_fim_files_every_middle_lies_in_one_file():
    """Decoded by HF, each FIM segment is one whole file with its path first; undone, the sample is
    the original text; one EOS, at the end."""
    tok, hf = hf_tok()
    rng = random.Random(6)
    for seed in range(30):
        files, text, spans = random_sample(rng, rng.randint(1, 8))
        ids, fimmed = encode_fim_files(tok, text, spans, random.Random(seed), rate=0.5)
        assert ids[-1] == tok.eos_id and tok.eos_id not in ids[:-1]
        assert len(fimmed) == len(files) and ids.count(tok.fim_begin_id) == sum(fimmed)
        plain, paths = unfim_files(hf.decode(ids[:-1], skip_special_tokens=False), files)
        assert plain == text and paths == [p for p, f in zip(files, fimmed) if f]


def test_encode_fim_files_share_of_files_is_the_rate():
    """Each file is drawn on its own: over 2,000 files in 250 samples, the FIM share is binomial."""
    bytes_tok = type("Bytes", (), {"fim_begin_id": 1, "fim_hole_id": 2, "fim_end_id": 3, "eos_id": 0,
                                   "encode": staticmethod(lambda text: list(text.encode()))})()
    rng = random.Random(7)
    n = k = 0
    for seed in range(250):
        _, text, spans = random_sample(rng, 8)
        _, fimmed = encode_fim_files(bytes_tok, text, spans, random.Random(seed), rate=0.5)
        n, k = n + len(fimmed), k + sum(fimmed)
    assert n == 2000 and abs(k - n * 0.5) < 4 * math.sqrt(n * 0.25), k


def test_encode_fim_files_rates_zero_and_one_and_one_span():
    tok, _ = hf_tok()
    files, text, spans = random_sample(random.Random(8), 5)
    ids, fimmed = encode_fim_files(tok, text, spans, random.Random(0), rate=0.0)
    assert ids == tok.encode(text) + [tok.eos_id] and fimmed == [False] * 5  # plain text is encoded whole
    ids, fimmed = encode_fim_files(tok, text, spans, random.Random(0), rate=1.0, eos=False)
    assert fimmed == [True] * 5 and ids.count(tok.fim_begin_id) == 5 and ids[-1] != tok.eos_id
    doc = "def area(r):\n    return 3.14159 * r * r\n"
    for seed in range(5):  # one span over the whole text is document-level FIM
        ids, _ = encode_fim_files(tok, doc, [(0, 0, len(doc))], random.Random(seed), rate=1.0)
        assert ids == expected_ids(tok, doc, [(0, 0, len(doc))], random.Random(seed), 1.0, "psm")[0]
        assert [i for i in ids if i >= 32000] == [32016, 32015, 32017, 32014]
