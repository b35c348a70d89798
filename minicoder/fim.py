"""Fill-in-the-middle (FIM): document-level FIM for training and the prompt for inference.

DeepSeek-Coder (2024), section 3, "Fill-in-the-Middle", following Bavarian et al. (2022, "Efficient
Training of Language Models to Fill in the Middle"): with probability `rate` (DeepSeek-Coder: 0.5) a
training document is cut at two character positions drawn uniformly and sorted, into prefix, middle
and suffix, and rearranged so that the model learns to write the middle after seeing both sides:

    PSM (what DeepSeek-Coder trains on):
        <｜fim▁begin｜>prefix<｜fim▁hole｜>suffix<｜fim▁end｜>middle
    SPM (Bavarian et al.'s "variant 2", appendix D, as in BigCode's Megatron-LM):
        <｜fim▁begin｜><｜fim▁hole｜>suffix<｜fim▁end｜>prefix middle

(The three DeepSeek tokens play Bavarian's <PRE>, <SUF> and <MID>.) In SPM the prefix and the middle
are contiguous, which lets a serving cache reuse the prefix's keys and values as the user types.
Either way the document follows as `<｜end▁of▁sentence｜>`: `apply_fim` returns the text *without* it,
and the tokenizing step appends `tok.eos_id` (to every document, transformed or not). Cutting at
characters, not bytes or tokens, keeps multi-byte characters whole.

Special-token strings inside documents: `apply_fim` leaves a document that already contains one of the
three FIM strings untransformed, so the pipeline can encode a sample with FIM specials allowed exactly
when `apply_fim` changed it, and a file that merely *mentions* `<｜fim▁hole｜>` (this one, say) is never
turned into control tokens. `encode_fim` builds the ids piece by piece instead, which does that
bookkeeping for you and also keeps SPM's prefix/middle seam (the pipeline should prefer it).

Which document. DeepSeek-Coder section 3.1 cuts each *code file*; minicoder's training samples are
whole repository components (several files in dependency order, minicoder.depsort), so
`encode_fim_files` decides per file: each file of a sample independently becomes a PSM segment with
probability `rate`, its path comment kept whole at the start of the prefix, so that every middle lies
within one file; the sample stays one document ending in EOS. A FIM'd file that is not the last
one is followed by the next file's plain text, so the model learns that a middle may end where the
next `# path` comment begins, not only at EOS. `encode_fim` is the one-file case.

At inference, `fim_prompt(prefix, suffix)` gives `<｜fim▁begin｜>prefix<｜fim▁hole｜>suffix<｜fim▁end｜>` and
the model generates the middle (encode it with `bos=True`, as DeepSeek's tokenizer adds BOS).

Left out: token-level and context-level FIM (cutting a packed training window instead of a document),
mixing PSM and SPM in one run (`spm_rate`), and truncating or padding samples to a fixed length.
"""

import random

import numpy as np

from minicoder.tokenizer import FIM_BEGIN, FIM_END, FIM_HOLE

MODES = ("psm", "spm")
FIM_TOKENS = (FIM_BEGIN, FIM_HOLE, FIM_END)


def _check_rng(rng) -> None:
    if not isinstance(rng, (random.Random, np.random.Generator)):
        raise TypeError(
            f"rng must be a random.Random or a numpy Generator, got {type(rng).__name__}; "
            "pass random.Random(seed) or np.random.default_rng(seed)"
        )


def _check_rate_mode(rate: float, mode: str) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"FIM rate must be a number in [0, 1], got {rate!r}; DeepSeek-Coder uses 0.5")
    if mode not in MODES:
        raise ValueError(f"unknown FIM mode {mode!r}; choose one of: {', '.join(MODES)}")


def _uniform(rng) -> float:
    return rng.random()  # both random.Random and np.random.Generator: a float in [0, 1)


def _randint(rng, high: int) -> int:
    """An integer in [0, high], inclusive."""
    return rng.randint(0, high) if isinstance(rng, random.Random) else int(rng.integers(0, high + 1))


def split_fim(text: str, rng, rate: float = 0.5) -> tuple[str, str, str] | None:
    """Draw whether to transform `text` and where to cut it: (prefix, middle, suffix), or None.

    Draws, in this order: one float u = `_uniform(rng)` (transform when u < rate), then, only when
    transforming, two cut points `_randint(rng, len(text))` in [0, len(text)] (characters, both ends
    included), sorted: lo <= hi, and the parts are text[:lo], text[lo:hi], text[hi:]. Any of the three
    may be empty. A text that contains a FIM token string (FIM_TOKENS) is never transformed (None), but
    u is drawn all the same, so the draws for the documents after it do not shift.

    >>> rng = random.Random(0)  # draws u = 0.844..., then the cuts 6 and 3
    >>> split_fim("abcdef", rng, rate=0.9)
    ('abc', 'def', '')
    >>> split_fim("abcdef", random.Random(0), rate=0.5) is None  # 0.844... >= 0.5: left whole
    True
    """
    _check_rng(rng)
    _check_rate_mode(rate, "psm")
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    # BEGIN ASSIGNMENT fim
    if not _uniform(rng) < rate or any(t in text for t in FIM_TOKENS):
        return None
    lo, hi = sorted((_randint(rng, len(text)), _randint(rng, len(text))))
    return text[:lo], text[lo:hi], text[hi:]
    # END ASSIGNMENT


def format_fim(prefix: str, middle: str, suffix: str, mode: str = "psm") -> str:
    """Lay out one FIM training sample in DeepSeek-Coder's format (no EOS; see the module docstring).

    PSM: FIM_BEGIN prefix FIM_HOLE suffix FIM_END middle
    SPM: FIM_BEGIN FIM_HOLE suffix FIM_END prefix middle

    >>> format_fim("a", "b", "c")
    '<｜fim▁begin｜>a<｜fim▁hole｜>c<｜fim▁end｜>b'
    >>> format_fim("a", "b", "c", "spm")
    '<｜fim▁begin｜><｜fim▁hole｜>c<｜fim▁end｜>ab'
    """
    _check_rate_mode(0.5, mode)
    # BEGIN ASSIGNMENT fim
    if mode == "psm":
        return f"{FIM_BEGIN}{prefix}{FIM_HOLE}{suffix}{FIM_END}{middle}"
    return f"{FIM_BEGIN}{FIM_HOLE}{suffix}{FIM_END}{prefix}{middle}"
    # END ASSIGNMENT


def apply_fim(text: str, rng, rate: float = 0.5, mode: str = "psm") -> str:
    """With probability `rate`, turn a document into a FIM sample; otherwise return it unchanged.

    Args:
        text: one document.
        rng: a `random.Random` or a `numpy.random.Generator`; the draws are described in `split_fim`,
            so a seeded rng gives the same samples every run.
        rate: probability of transforming, in [0, 1]. DeepSeek-Coder uses 0.5.
        mode: "psm" (DeepSeek-Coder) or "spm" (see the module docstring for both layouts).

    Returns the sample without EOS. The result differs from `text` exactly when it was transformed;
    encode it with allowed_special=set(FIM_TOKENS) then, and with no specials otherwise (`encode_fim`
    does both, and keeps the SPM seam).
    """
    _check_rate_mode(rate, mode)
    parts = split_fim(text, rng, rate)
    return text if parts is None else format_fim(*parts, mode=mode)


def restore_fim(sample: str) -> str:
    """Undo `apply_fim`: the original document prefix + middle + suffix, in either mode.

    A sample that does not start with <｜fim▁begin｜> is an untransformed document and comes back as is.
    Both layouts read as FIM_BEGIN x FIM_HOLE suffix FIM_END y with document = x + y + suffix
    (PSM: x = prefix, y = middle; SPM: x = "", y = prefix + middle).
    """
    if not sample.startswith(FIM_BEGIN):
        return sample
    head, hole, rest = sample[len(FIM_BEGIN) :].partition(FIM_HOLE)
    suffix, end, tail = rest.partition(FIM_END)
    if not hole or not end:
        raise ValueError("not a FIM sample: it starts with <｜fim▁begin｜> but lacks <｜fim▁hole｜> or <｜fim▁end｜>")
    return head + tail + suffix


def fim_prompt(prefix: str, suffix: str) -> str:
    """The inference prompt for infilling: <｜fim▁begin｜>prefix<｜fim▁hole｜>suffix<｜fim▁end｜>.

    The model's continuation is the middle. Encode with allowed_special="all" (or the FIM tokens) and
    bos=True, as DeepSeek-Coder's tokenizer prepends BOS.
    """
    return f"{FIM_BEGIN}{prefix}{FIM_HOLE}{suffix}{FIM_END}"


def encode_fim(tok, text: str, rng, rate: float = 0.5, mode: str = "psm", eos: bool = True) -> list[int]:
    """`apply_fim` then tokenize: the ids of one training sample (EOS appended by default).

    Prefix, middle and suffix are each encoded on their own, with no specials allowed, and the FIM
    ids are inserted between them (as BigCode's Megatron-LM does). So special-token strings inside
    the document stay plain text, and no BPE token straddles a cut, just as at inference, where the
    text before the hole ends where the user's text ends. In PSM this equals encoding the
    `apply_fim` string with the FIM tokens allowed (the tokenizer cuts at special tokens first); in
    SPM the string runs prefix and middle together, and the ids keep the seam the string loses.
    """
    ids, _ = encode_fim_files(tok, text, [(0, 0, len(text))], rng, rate, mode, eos)
    return ids


def fim_ids(tok, prefix: str, middle: str, suffix: str, mode: str = "psm") -> list[int]:
    """`format_fim` in ids: the token ids of one FIM segment (no EOS).

    Each part is encoded on its own with `tok.encode` (no specials allowed, so a FIM string inside a
    part stays text), and `tok.fim_begin_id`, `tok.fim_hole_id`, `tok.fim_end_id` go between them in
    `format_fim`'s order. In SPM, prefix and middle stay two encodings: no BPE token crosses the seam.

    >>> class Bytes:  # a stand-in tokenizer: one id per byte; the FIM ids are 1, 2, 3
    ...     fim_begin_id, fim_hole_id, fim_end_id = 1, 2, 3
    ...     def encode(self, text): return list(text.encode())
    >>> fim_ids(Bytes(), "a", "b", "c")
    [1, 97, 2, 99, 3, 98]
    >>> fim_ids(Bytes(), "a", "b", "c", "spm")
    [1, 2, 99, 3, 97, 98]
    """
    _check_rate_mode(0.5, mode)
    # BEGIN ASSIGNMENT fim
    p, m, s = tok.encode(prefix), tok.encode(middle), tok.encode(suffix)
    if mode == "psm":
        return [tok.fim_begin_id, *p, tok.fim_hole_id, *s, tok.fim_end_id, *m]
    return [tok.fim_begin_id, tok.fim_hole_id, *s, tok.fim_end_id, *p, *m]
    # END ASSIGNMENT


def encode_fim_files(tok, text: str, spans: list[tuple[int, int, int]], rng, rate: float = 0.5,
                     mode: str = "psm", eos: bool = True) -> tuple[list[int], list[bool]]:
    r"""File-level FIM inside one multi-file sample: each file independently becomes a FIM segment
    with probability `rate`; the rest of the sample stays plain text. Returns (ids, FIM'd per file).

    spans: one (head_start, body_start, body_end) per file, in order and not overlapping:
    text[head_start:body_start] is the file's header (its path comment) and text[body_start:body_end]
    its code. Cuts fall only in the code, and the header is the fixed start of the prefix, so a
    middle never leaves its file and the model sees the path before the hole, as a user's prompt
    `# path\n<code before the cursor>` would show it. Text outside the spans (the blank line between
    files) stays plain. For one file (the draws per file are `split_fim`'s):

        "# a.py\nx = 1\ny = 2\n" with cuts 6, 12 of the body "x = 1\ny = 2\n" ->
        <｜fim▁begin｜># a.py\nx = 1\n<｜fim▁hole｜><｜fim▁end｜>y = 2\n

    encode_fim(tok, text, rng) is the one-span case [(0, 0, len(text))]. Plain runs between FIM
    segments are encoded whole, so a sample with no FIM'd file encodes exactly as `tok.encode(text)`.
    In full: walk the spans in order, calling `split_fim(body, rng, rate)` once per file; a file it
    cuts adds `tok.encode(the plain text since the last FIM segment, up to head_start)` and then
    `fim_ids(tok, header + prefix, middle, suffix, mode)`; at the end, the remaining plain text and EOS.

    >>> class Bytes:  # a stand-in tokenizer: one id per byte; EOS 0, FIM ids 1, 2, 3
    ...     eos_id, fim_begin_id, fim_hole_id, fim_end_id = 0, 1, 2, 3
    ...     def encode(self, text): return list(text.encode())
    >>> show = lambda ids: "".join({0: "<EOS>", 1: "<B>", 2: "<H>", 3: "<E>"}.get(i, chr(i)) for i in ids)
    >>> text = "# a.py\nx = 1\n\n# b.py\ny = 2\n"  # two files: headers at 0 and 14, bodies 7:13, 21:27
    >>> ids, fimmed = encode_fim_files(Bytes(), text, [(0, 7, 13), (14, 21, 27)], random.Random(7), rate=0.5)
    >>> fimmed  # a.py drew u = 0.32... < 0.5 and cuts 1, 3 of 'x = 1\n'; b.py drew u = 0.65...
    [True, False]
    >>> show(ids)
    '<B># a.py\nx<H> 1\n<E> =\n# b.py\ny = 2\n<EOS>'
    """
    _check_rate_mode(rate, mode)
    if None in (tok.fim_begin_id, tok.fim_hole_id, tok.fim_end_id) or (eos and tok.eos_id is None):
        raise ValueError("the tokenizer lacks DeepSeek-Coder's FIM or EOS tokens; train it with the default special tokens")
    previous_end = 0
    for span in spans:
        if not previous_end <= span[0] <= span[1] <= span[2] <= len(text):
            raise ValueError(f"span {tuple(span)} is out of order or outside the text "
                             f"(length {len(text)}); give (head_start, body_start, body_end) per file, in order")
        previous_end = span[2]
    # BEGIN ASSIGNMENT fim
    ids, plain_from, fimmed = [], 0, []
    for head_start, body_start, body_end in spans:
        parts = split_fim(text[body_start:body_end], rng, rate)
        fimmed.append(parts is not None)
        if parts is None:
            continue
        prefix, middle, suffix = parts
        ids += tok.encode(text[plain_from:head_start])
        ids += fim_ids(tok, text[head_start:body_start] + prefix, middle, suffix, mode)
        plain_from = body_end
    ids += tok.encode(text[plain_from:])
    return (ids + [tok.eos_id] if eos else ids), fimmed
    # END ASSIGNMENT
