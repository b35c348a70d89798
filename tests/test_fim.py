"""Fill-in-the-middle beyond the graded functions: apply_fim, restore_fim, encode_fim, the pipeline's
spans (minicoder.depsort) and argument errors.

Run: .venv/bin/pytest tests/test_fim.py -q
The `fim` assignment's graded tests (split_fim, format_fim, fim_ids, encode_fim_files) are in
tests/test_fim_graded.py; this file is not graded, so its tests may call any function.
"""

import random
import string
from pathlib import Path

import numpy as np
import pytest
from test_fim_graded import unfim_files  # the checking inverse, written once

from minicoder.depsort import concatenate_with_spans
from minicoder.fim import (
    FIM_TOKENS,
    apply_fim,
    encode_fim,
    encode_fim_files,
    fim_prompt,
    format_fim,
    restore_fim,
    split_fim,
)
from minicoder.tokenizer import EOS, FIM_BEGIN, FIM_END, FIM_HOLE, Tokenizer

ALPHABET = string.ascii_letters + string.digits + " \n\t()[]{}:=+-*/#'\"" + "éß中文😀\u2028"


def _random_doc(rng: random.Random, max_len: int = 200) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(max_len + 1)))


def _rngs(seed: int):
    return [random.Random(seed), np.random.default_rng(seed)]


@pytest.mark.parametrize("mode", ["psm", "spm"])
@pytest.mark.parametrize("rng_kind", [0, 1], ids=["random.Random", "numpy.Generator"])
def test_restore_random_documents(mode, rng_kind):
    doc_rng = random.Random(99)
    for seed in range(300):
        rng = _rngs(seed)[rng_kind]
        doc = _random_doc(doc_rng)
        sample = apply_fim(doc, rng, rate=0.5, mode=mode)
        assert restore_fim(sample) == doc
        if sample != doc:
            assert sample.startswith(FIM_BEGIN)
            assert all(sample.count(t) == 1 for t in FIM_TOKENS)
            if mode == "spm":
                assert sample.startswith(FIM_BEGIN + FIM_HOLE)


def test_layouts_by_hand():
    assert format_fim("a", "b", "c") == f"{FIM_BEGIN}a{FIM_HOLE}c{FIM_END}b"
    assert format_fim("a", "b", "c", mode="spm") == f"{FIM_BEGIN}{FIM_HOLE}c{FIM_END}ab"
    assert FIM_BEGIN == "<｜fim▁begin｜>" and FIM_HOLE == "<｜fim▁hole｜>" and FIM_END == "<｜fim▁end｜>"
    assert fim_prompt("def f(x):\n", "\n    return y\n") == (
        "<｜fim▁begin｜>def f(x):\n<｜fim▁hole｜>\n    return y\n<｜fim▁end｜>"
    )


def test_psm_sample_is_prompt_then_middle():
    """The training sample is exactly the inference prompt followed by the middle (and no EOS)."""
    rng_a, rng_b = random.Random(5), random.Random(5)
    for _ in range(50):
        doc = "def add(a, b):\n    return a + b\n"
        parts = split_fim(doc, rng_a, rate=1.0)
        sample = apply_fim(doc, rng_b, rate=1.0)
        prefix, middle, suffix = parts
        assert prefix + middle + suffix == doc
        assert sample == fim_prompt(prefix, suffix) + middle
        assert EOS not in sample




def test_rate_zero_and_one():
    rng = random.Random(0)
    docs = [_random_doc(rng) for _ in range(200)]
    assert all(apply_fim(d, rng, rate=0) == d for d in docs)
    assert all(apply_fim(d, rng, rate=1.0).startswith(FIM_BEGIN) for d in docs)


def test_empty_document():
    rng = random.Random(0)
    assert apply_fim("", rng, rate=1.0) == FIM_BEGIN + FIM_HOLE + FIM_END
    assert apply_fim("", rng, rate=1.0, mode="spm") == FIM_BEGIN + FIM_HOLE + FIM_END
    assert restore_fim(FIM_BEGIN + FIM_HOLE + FIM_END) == ""
    assert apply_fim("", rng, rate=0.0) == ""




def test_documents_with_fim_strings_stay_untransformed():
    rng = random.Random(0)
    for token in FIM_TOKENS:
        doc = f"s = '{token}'\nprint(s)\n"
        assert apply_fim(doc, rng, rate=1.0) == doc
        assert restore_fim(doc) == doc


def test_rng_draws_are_reproducible():
    docs = [f"line {i}\n" * 3 for i in range(20)]
    for make in (random.Random, np.random.default_rng):
        a, b = make(7), make(7)
        assert [apply_fim(d, a) for d in docs] == [apply_fim(d, b) for d in docs]


VOCAB = Path(__file__).resolve().parents[1] / "data_samples" / "tokenizers" / "deepseek-coder" / "tokenizer.json"


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_file(VOCAB)


@pytest.mark.parametrize("mode", ["psm", "spm"])
def test_encode_fim_layout(tok, mode):
    """encode_fim encodes prefix, middle and suffix each on its own and inserts the FIM ids. In PSM
    that equals encoding the joined string with the FIM tokens allowed (the tokenizer cuts at special
    tokens first); in SPM the string joins prefix and middle, which the ids keep apart."""
    doc_rng = random.Random(4)
    differ = 0
    for seed in range(40):
        doc = _random_doc(doc_rng, 80)
        ids = encode_fim(tok, doc, random.Random(seed), rate=0.7, mode=mode)
        parts = split_fim(doc, random.Random(seed), rate=0.7)
        if parts is None:
            assert ids == tok.encode(doc) + [tok.eos_id]
            continue
        pre, mid, suf = (tok.encode(p) for p in parts)
        b, h, e = tok.fim_begin_id, tok.fim_hole_id, tok.fim_end_id
        expected = [b, *pre, h, *suf, e, *mid] if mode == "psm" else [b, h, *suf, e, *pre, *mid]
        assert ids == expected + [tok.eos_id]
        joined = tok.encode(apply_fim(doc, random.Random(seed), rate=0.7, mode=mode), allowed_special=set(FIM_TOKENS))
        if mode == "psm":
            assert ids[:-1] == joined
        differ += ids[:-1] != joined
    if mode == "spm":
        assert differ > 0  # BPE merges across the prefix/middle seam of the string
    assert encode_fim(tok, "x", random.Random(0), rate=1.0, eos=False)[-1] != tok.eos_id


def test_real_vocabulary_ids_match_hf(tok):
    """The PSM sample as DeepSeek-Coder's real vocabulary encodes it, checked against HF tokenizers."""
    hf = pytest.importorskip("tokenizers").Tokenizer.from_file(
        str(VOCAB))
    assert (tok.fim_begin_id, tok.fim_hole_id, tok.fim_end_id, tok.eos_id) == (32016, 32015, 32017, 32014)
    doc = "def area(r):\n    return 3.14159 * r * r\n"
    for seed in range(5):
        ids = encode_fim(tok, doc, random.Random(seed), rate=1.0)
        sample = apply_fim(doc, random.Random(seed), rate=1.0)
        assert ids[:-1] == hf.encode(sample, add_special_tokens=False).ids
        assert [i for i in ids if i >= 32000] == [32016, 32015, 32017, 32014]


def test_encode_fim_keeps_special_strings_as_text(tok):
    doc = f"# the hole token is {FIM_HOLE}\nx = 1\n"
    ids = encode_fim(tok, doc, random.Random(0), rate=1.0)
    assert ids == tok.encode(doc) + [tok.eos_id]
    assert tok.fim_hole_id not in ids


# -- file-level FIM inside a multi-file repository sample --


def _random_repo_sample(rng: random.Random, n_files: int) -> tuple[dict[str, str], str, list]:
    files = {f"pkg/m{i}.py": _random_doc(rng, 60) + "\n" for i in range(n_files)}
    return files, *concatenate_with_spans(files, list(files))


@pytest.mark.parametrize("mode", ["psm", "spm"])
def test_encode_fim_files_every_middle_lies_in_one_file(tok, mode):
    rng = random.Random(5)
    b, h, e = tok.fim_begin_id, tok.fim_hole_id, tok.fim_end_id
    seen = 0
    for seed in range(40):
        files, text, spans = _random_repo_sample(rng, rng.randint(1, 8))
        ids, fimmed = encode_fim_files(tok, text, spans, random.Random(seed), rate=0.5, mode=mode)
        assert ids[-1] == tok.eos_id and tok.eos_id not in ids[:-1]  # one document, one EOS
        assert len(fimmed) == len(files) and ids.count(b) == ids.count(h) == ids.count(e) == sum(fimmed)
        seen += sum(fimmed)
        if mode == "psm":
            plain, paths = unfim_files(tok.decode(ids[:-1]), files)
            assert plain == text
            assert paths == [p for p, f in zip(files, fimmed) if f]
    assert seen > 20



def test_encode_fim_files_rates_zero_and_one_and_one_span(tok):
    files, text, spans = _random_repo_sample(random.Random(7), 5)
    ids, fimmed = encode_fim_files(tok, text, spans, random.Random(0), rate=0.0)
    assert ids == tok.encode(text) + [tok.eos_id] and fimmed == [False] * 5
    ids, fimmed = encode_fim_files(tok, text, spans, random.Random(0), rate=1.0, eos=False)
    assert fimmed == [True] * 5 and ids.count(tok.fim_begin_id) == 5 and ids[-1] != tok.eos_id
    assert unfim_files(tok.decode(ids), files)[0] == text
    doc = "def area(r):\n    return 3.14159 * r * r\n"
    for seed in range(5):  # one span over the whole text is document-level FIM
        assert encode_fim_files(tok, doc, [(0, 0, len(doc))], random.Random(seed))[0] == encode_fim(tok, doc, random.Random(seed))
    with pytest.raises(ValueError, match="out of order or outside the text"):
        encode_fim_files(tok, text, spans[::-1], random.Random(0))
    with pytest.raises(ValueError, match="out of order or outside the text"):  # overlapping spans
        encode_fim_files(tok, text, [spans[0], (spans[0][2] - 1, *spans[1][1:])], random.Random(0))


@pytest.mark.parametrize("rate", [-0.1, 1.5, "0.5", None, True])
def test_bad_rate(rate):
    with pytest.raises(ValueError, match=r"FIM rate must be a number in \[0, 1\]"):
        apply_fim("x", random.Random(0), rate=rate)


def test_bad_mode_rng_and_sample():
    with pytest.raises(ValueError, match="unknown FIM mode 'pms'; choose one of: psm, spm"):
        apply_fim("x", random.Random(0), mode="pms")
    with pytest.raises(ValueError, match="unknown FIM mode"):
        format_fim("a", "b", "c", mode="SPM")
    with pytest.raises(TypeError, match="rng must be a random.Random or a numpy Generator"):
        apply_fim("x", 42)
    with pytest.raises(TypeError, match="text must be a str"):
        apply_fim(b"x", random.Random(0))
    with pytest.raises(ValueError, match="not a FIM sample"):
        restore_fim(FIM_BEGIN + "prefix only")


# -- the grader: a split_fim that draws the cuts before deciding fails the test of its draws --

@pytest.mark.slow
def test_split_fim_drawing_the_cuts_first_fails(tmp_path):
    """Drawing both cuts and then u gives the right distribution (the statistical tests pass) but not
    the specified draws, so the pipeline's seeded samples would change: the replay test catches it."""
    from test_assignment_shortcuts import fill_in

    from minicoder.assignments import ASSIGNMENTS, grade, make_student_copy

    keep = tuple(f.split(":", 1)[1] for f in ASSIGNMENTS["fim"].functions if f != "fim:split_fim")
    make_student_copy("fim", tmp_path, keep=keep)
    fill_in(tmp_path, "fim", "split_fim",
            "lo, hi = sorted((_randint(rng, len(text)), _randint(rng, len(text))))\n"
            "if not _uniform(rng) < rate or any(t in text for t in FIM_TOKENS):\n"
            "    return None\n"
            "return text[:lo], text[lo:hi], text[hi:]")
    lines = []
    result = grade("fim", tmp_path, only="split_fim", echo=lines.append)
    (row,) = result["rows"]
    failed = {r["nodeid"].split("[")[0] for r in result["records"] if r["outcome"] == "failed"}
    assert row["status"] == "failed" and "tests/test_fim_graded.py::test_split_fim_replays_the_specified_draws" in failed, \
        "\n".join(lines)
    assert not any("rate_is_binomial" in f or "uniform_character" in f for f in failed), "\n".join(lines)
