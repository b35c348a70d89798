"""Byte-level BPE, as DeepSeek-Coder's tokenizer does it, in one file.

DeepSeek-Coder (Guo et al., 2024, section 3.2) uses a 32,000-token byte-level BPE trained with
HF `tokenizers`, then adds special tokens for fill-in-the-middle and chat. Three steps turn text
into ids:

1. Special tokens. Text is first cut at special-token strings (`<｜fim▁begin｜>`, ...), but only
   those the caller allows (`allowed_special`); otherwise they are plain text, so a user's file
   cannot inject control tokens. (The real vocabularies also add 13 single characters such as
   `ü` as "added tokens", which HF always matches; we do the same, for id-for-id parity.)
2. Pre-tokenization: a chain of regex splits, each applied to every piece the previous one left
   ("Isolated": a match becomes its own piece). DeepSeek-Coder's chain isolates `[\\r\\n]`, then
   `\\s?\\p{L}+` (words), `\\s?\\p{P}+` (punctuation), a CJK range, then each digit. BPE never merges
   across pieces.
3. BPE on each piece's UTF-8 bytes: start from one token per byte and repeatedly apply the merge
   with the lowest rank (the earliest learned) until none applies.

Training (`Tokenizer.train`) learns the merges: count every distinct pre-token once (weighted by
its frequency), then repeatedly merge the most frequent adjacent pair. Ties go to the pair with
the smallest ids (the pair of oldest tokens), so training is deterministic. Pair counts are
updated incrementally (only words that contain the merged pair are touched) and the best pair
comes from a heap with lazy deletion, which is what makes a 32K vocabulary feasible in Python.

Files are HF `tokenizer.json`, both ways. Token strings in that format use GPT-2's byte-to-unicode
table, so every byte is a printable character.

Left out: other models' types (WordPiece, Unigram), normalizers, BPE dropout, byte-fallback,
`add_prefix_space`, and HF's offsets/attention masks.
"""

import heapq
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import regex

# DeepSeek-Coder's special tokens, by their real names ("｜" is U+FF5C, "▁" is U+2581).
BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
FIM_HOLE = "<｜fim▁hole｜>"
FIM_BEGIN = "<｜fim▁begin｜>"
FIM_END = "<｜fim▁end｜>"
PAD = "<pad>"
USER = "<|User|>"
ASSISTANT = "<|Assistant|>"
EOT = "<|EOT|>"
# In DeepSeek-Coder's order (ids 32013..32021 in the real vocabulary).
DEEPSEEK_CODER_SPECIAL_TOKENS = (BOS, EOS, FIM_HOLE, FIM_BEGIN, FIM_END, PAD, USER, ASSISTANT, EOT)

_CJK = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


# -----------------------------------------------------------------------------
# Bytes <-> printable characters (GPT-2's table, used by every byte-level BPE file)

def bytes_to_unicode() -> dict[int, str]:
    """Map each byte 0..255 to a printable character (GPT-2's table).

    The printable bytes `!`..`~`, `¡`..`¬` and `®`..`ÿ` map to themselves; the other 68 (control
    characters, space, DEL, NBSP, soft hyphen, ...) map to chr(256), chr(257), ... in byte order.

    >>> table = bytes_to_unicode()
    >>> table[ord("a")], table[ord(" ")], table[0], table[ord("\\n")], len(set(table.values()))
    ('a', 'Ġ', 'Ā', 'Ċ', 256)
    """
    # BEGIN ASSIGNMENT tokenizer
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table = {}
    n = 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + n)
            n += 1
    return table
    # END ASSIGNMENT


# -----------------------------------------------------------------------------
# Pre-tokenization: a chain of splits

@dataclass(frozen=True)
class Split:
    """Isolate every match of `pattern` (HF syntax) as its own piece; the text between matches
    stays as pieces too: split_isolated("ab12", Split(r"\\p{N}").compile()) -> ["ab", "1", "2"]."""

    pattern: str

    def compile(self):
        # HF's engine (Oniguruma, Ruby syntax) treats `^`/`$` as line anchors, hence MULTILINE.
        # Its `\s`, `\p{L}`, `\p{P}`, `\p{N}` match what the `regex` module's do (tested on every
        # code point), except for code points that only the `regex` module's newer Unicode assigns.
        return regex.compile(self.pattern, regex.MULTILINE)


@dataclass(frozen=True)
class Digits:
    """HF's Digits pre-tokenizer: isolate numeric characters (Unicode N*: Rust's `is_numeric`),
    each on its own if `individual`, else as runs: with Digits(True), "x12" -> ["x", "1", "2"]."""

    individual: bool = True

    def compile(self):
        return regex.compile(r"\p{N}" if self.individual else r"\p{N}+")


# Named chains. A chain is a tuple of steps, applied in order.
CHAINS = {
    # DeepSeek-Coder v1 (1.3B/6.7B/33B).
    "deepseek-coder": (Split("[\r\n]"), Split(r"\s?\p{L}+"), Split(r"\s?\p{P}+"), Split(_CJK), Digits(True)),
    # GPT-2's single regex: a simple option for experiments.
    "gpt2": (Split(GPT2_PATTERN),),
}
# DeepSeek-LLM (and Coder-V2) spells out its letter and punctuation classes; read it from its file.

# The fast path: DeepSeek-Coder's whole chain as ONE regex, scanned once. Each step of the chain
# splits every piece the previous step made, so the CJK step (whose range U+0800..U+4E00 also holds
# U+3000 and the other Unicode spaces) cuts inside words: "ab中" -> "ab", "中", and " 中" -> " ",
# "中", but "\u3000中" stays whole. The alternatives, in order: a newline; a word or punctuation run
# of non-CJK characters with an optional non-CJK space before it; the same for CJK characters with
# an optional CJK-range space; a space left alone before a letter or punctuation of the other kind;
# one digit; a run of other CJK-range characters; anything else, up to where another alternative
# could start. tests/test_tokenizer_bpe.py holds it equal to the chain (and both to HF) on every
# assigned code point.
_CJK_CLASS = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]"
_SP = r"[^\S\r\n]"  # whitespace other than \r and \n, which the first alternative takes
_SPN, _SPC = rf"(?:(?!{_CJK_CLASS}){_SP})", rf"(?:(?={_CJK_CLASS}){_SP})"
_LN, _LC = rf"(?:(?!{_CJK_CLASS})\p{{L}})", rf"(?:(?={_CJK_CLASS})\p{{L}})"
_PN, _PC = rf"(?:(?!{_CJK_CLASS})\p{{P}})", rf"(?:(?={_CJK_CLASS})\p{{P}})"
FAST_PATTERNS = {
    CHAINS["deepseek-coder"]: "|".join([
        r"[\r\n]",
        rf"{_SPN}?{_LN}+", rf"{_SPN}?{_PN}+",
        rf"{_SPC}?{_LC}+", rf"{_SPC}?{_PC}+",
        rf"{_SP}(?=[\p{{L}}\p{{P}}])",
        r"\p{N}",
        rf"(?:(?={_CJK_CLASS})(?!{_SP}[\p{{L}}\p{{P}}])[^\p{{L}}\p{{P}}\p{{N}}])+",
        rf"(?:(?![\r\n]|{_SP}?[\p{{L}}\p{{P}}]|\p{{N}}|{_CJK_CLASS}).)+",
    ]),
}


def split_isolated(text: str, compiled) -> list[str]:
    r"""Cut `text` so that every match of `compiled` (a compiled regex) is its own piece; the text
    between matches (and before the first, after the last) stays as pieces too. Empty matches and
    empty pieces are dropped, so "".join(pieces) == text.

    >>> split_isolated("ab, cd", regex.compile(r"\s?\p{L}+"))
    ['ab', ',', ' cd']
    >>> split_isolated("x = 12", regex.compile(r"\p{N}"))
    ['x = ', '1', '2']
    >>> split_isolated("", regex.compile("a"))
    []
    """
    # BEGIN ASSIGNMENT tokenizer
    pieces, start = [], 0
    for m in compiled.finditer(text):
        if m.start() == m.end():
            continue
        if m.start() > start:
            pieces.append(text[start:m.start()])
        pieces.append(m.group())
        start = m.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces
    # END ASSIGNMENT


def pre_tokenize_naive(text: str, patterns: list) -> list[str]:
    """Apply a chain of splits one step at a time: `split_isolated` with the first compiled
    pattern cuts `text`, the second cuts every piece the first left, and so on. This is the
    readable reference for the one-regex fast path (`Tokenizer.pre_tokenize`).

    >>> deepseek = [step.compile() for step in CHAINS["deepseek-coder"]]
    >>> pre_tokenize_naive("x, y = f(12)", deepseek)
    ['x', ',', ' y', ' =', ' f', '(', '1', '2', ')']
    >>> pre_tokenize_naive("x = 12", deepseek)   # '=' is a symbol (Sm), not punctuation
    ['x', ' = ', '1', '2']
    """
    # BEGIN ASSIGNMENT tokenizer
    pieces = [text] if text else []
    for compiled in patterns:
        pieces = [p for piece in pieces for p in split_isolated(piece, compiled)]
    return pieces
    # END ASSIGNMENT


# -----------------------------------------------------------------------------
# BPE helpers

def get_pair_counts(ids: list[int], counts: dict | None = None, weight: int = 1) -> dict:
    """Count adjacent pairs of `ids`, adding `weight` for each; add into `counts` if given (and
    return it), else into a new dict.

    >>> get_pair_counts([1, 2, 3, 1, 2])
    {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    >>> get_pair_counts([1, 2], {(1, 2): 1, (5, 6): 1}, weight=3)
    {(1, 2): 4, (5, 6): 1}
    >>> get_pair_counts([7])
    {}
    """
    # BEGIN ASSIGNMENT tokenizer
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts
    # END ASSIGNMENT


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Return a new list with every occurrence of `pair` replaced by `new_id`, scanning left to
    right (so of overlapping occurrences the left one wins).

    >>> merge([1, 2, 3, 1, 2], (1, 2), 7)
    [7, 3, 7]
    >>> merge([1, 1, 1, 2], (1, 1), 9)
    [9, 1, 2]
    """
    # BEGIN ASSIGNMENT tokenizer
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out
    # END ASSIGNMENT


def bpe(ids: list[int], merges: dict[tuple[int, int], tuple[int, int]]) -> list[int]:
    """Apply merges to one pre-token by rank: repeatedly merge (everywhere) the adjacent pair with
    the lowest rank, until no adjacent pair has a merge. `merges` maps (a, b) -> (rank, new_id).

    >>> merges = {(1, 2): (0, 5), (5, 3): (1, 6)}
    >>> bpe([1, 2, 3, 1, 2], merges)   # [1, 2, 3, 1, 2] -> [5, 3, 5] -> [6, 5]
    [6, 5]
    >>> bpe([3, 4, 1, 2], {(3, 4): (1, 7), (4, 1): (0, 8)})   # the lower rank wins, wherever it is
    [3, 8, 2]
    """
    # BEGIN ASSIGNMENT tokenizer
    while len(ids) >= 2:
        best = None
        for pair in zip(ids, ids[1:]):
            m = merges.get(pair)
            if m is not None and (best is None or m[0] < best[0]):
                best, best_pair = m, pair
        if best is None:
            break
        ids = merge(ids, best_pair, best[1])
    return ids
    # END ASSIGNMENT


def train_merges(word_counts: dict[bytes, int], num_merges: int, first_id: int = 256,
                 progress: bool = False) -> list[tuple[int, int]]:
    """Learn `num_merges` merges from pre-token counts; merge k creates token id `first_id + k`.

    Each word starts as its bytes (ids 0..255) and counts `word_counts[word]` times. Each step
    merges the most frequent adjacent pair everywhere; ties go to the smallest pair of ids. Stops
    early when no pair occurs at least twice. Returns the merged pairs in order. Must give the same
    result as `train_merges_naive`, but update the pair counts incrementally (only the words that
    contain the merged pair change) instead of recounting the whole corpus after each merge.

    "ab" occurs 1 + 2 = 3 times, "aa" twice: (97, 98) becomes 256. Then "aaab" is [97, 97, 256]
    and no pair occurs twice, so training stops after one merge:

    >>> train_merges({b"aaab": 1, b"ab": 2}, 5)
    [(97, 98)]

    A tie: "aa" and "ab" both occur 4 times; (97, 97) is the smaller pair, so it goes first:

    >>> train_merges({b"aaab": 2, b"ab": 2}, 5)
    [(97, 97), (97, 98), (256, 257)]
    """
    # BEGIN ASSIGNMENT tokenizer
    words = [list(w) for w in word_counts]
    freqs = list(word_counts.values())
    pair_counts: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], set[int]] = {}  # pair -> indices of words that (may) contain it
    for i, w in enumerate(words):
        for pair in zip(w, w[1:]):
            pair_counts[pair] = pair_counts.get(pair, 0) + freqs[i]
            where.setdefault(pair, set()).add(i)
    # Max-heap by count, then smallest pair: entries (-count, pair). Stale entries are skipped.
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    bar = _progress(num_merges, "merges", progress)
    while len(merges) < num_merges and heap:
        neg, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count != -neg:  # stale: the count changed since this entry was pushed
            if count > 0:
                heapq.heappush(heap, (-count, pair))
            continue
        if count < 2:
            break
        new_id = first_id + len(merges)
        merges.append(pair)
        delta: dict[tuple[int, int], int] = {}
        for i in where.pop(pair):
            w = words[i]
            if len(w) < 2:
                continue
            new_w = merge(w, pair, new_id)
            if len(new_w) == len(w):
                continue  # the pair left this word in an earlier merge
            f = freqs[i]
            for p in zip(w, w[1:]):
                delta[p] = delta.get(p, 0) - f
            for p in zip(new_w, new_w[1:]):
                delta[p] = delta.get(p, 0) + f
                if new_id in p:
                    where.setdefault(p, set()).add(i)
            words[i] = new_w
        for p, d in delta.items():
            if d == 0:
                continue
            c = pair_counts.get(p, 0) + d
            if c > 0:
                pair_counts[p] = c
                if d > 0:
                    heapq.heappush(heap, (-c, p))
            else:
                pair_counts.pop(p, None)
        pair_counts.pop(pair, None)
        bar.update(1)
    bar.close()
    return merges
    # END ASSIGNMENT


def train_merges_naive(word_counts: dict[bytes, int], num_merges: int, first_id: int = 256) -> list[tuple[int, int]]:
    """The plain trainer: recount every pair of every word after each merge. Same result as
    `train_merges` (same tie rule, same early stop when no pair occurs twice), far slower; the
    reference the fast trainer is tested against.

    >>> train_merges_naive({b"aaab": 2, b"ab": 2}, 5)
    [(97, 97), (97, 98), (256, 257)]
    >>> train_merges_naive({b"cd": 2, b"ab": 2}, 1)   # a tie: the smaller pair of ids wins
    [(97, 98)]
    """
    # BEGIN ASSIGNMENT tokenizer
    words = [list(w) for w in word_counts]
    freqs = list(word_counts.values())
    merges = []
    while len(merges) < num_merges:
        counts: dict = {}
        for w, f in zip(words, freqs):
            get_pair_counts(w, counts, f)
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        if counts[pair] < 2:
            break
        new_id = first_id + len(merges)
        merges.append(pair)
        words = [merge(w, pair, new_id) for w in words]
    return merges
    # END ASSIGNMENT


def _progress(total, unit, enabled):
    from tqdm import tqdm  # plain tqdm: tqdm.auto warns in notebooks without ipywidgets

    return tqdm(total=total, unit=f" {unit}", disable=not enabled, dynamic_ncols=True)


# -----------------------------------------------------------------------------
# The tokenizer

class Tokenizer:
    """A byte-level BPE tokenizer: merges, a pre-tokenizer chain, and special tokens.

    Build one with `Tokenizer.train(...)` or `Tokenizer.from_file("tokenizer.json")`.

    Attributes:
        vocab: id -> bytes for every BPE token (specials decode from `special_tokens`).
        merges: (a, b) -> (rank, new_id).
        chain: the pre-tokenizer steps.
        special_tokens: control tokens (str -> id), matched in text only when allowed.
        added_tokens: single-character added tokens (str -> id), always matched, as HF does.
    """

    def __init__(self, vocab: dict[int, bytes], merges: dict[tuple[int, int], tuple[int, int]],
                 chain: tuple = CHAINS["deepseek-coder"], special_tokens: dict[str, int] | None = None,
                 added_tokens: dict[str, int] | None = None, add_bos_post_processor: bool = True,
                 fast: bool = True):
        self.vocab = dict(vocab)
        self.merges = dict(merges)
        self.chain = tuple(chain)
        self.special_tokens = dict(special_tokens or {})
        self.added_tokens = dict(added_tokens or {})
        self.add_bos_post_processor = add_bos_post_processor
        byte_table = bytes_to_unicode()
        self._byte_to_id = self._find_byte_ids(byte_table)
        self._compiled_chain = [step.compile() for step in self.chain]
        # fast=False keeps the readable chain of splits; fast=True uses one regex where we have one.
        fast_pattern = FAST_PATTERNS.get(self.chain) if fast else None
        self._fast_re = regex.compile(fast_pattern, regex.DOTALL) if fast_pattern else None
        self._id_to_special = {i: s for s, i in {**self.special_tokens, **self.added_tokens}.items()}
        self._cache: dict[str, tuple[int, ...]] = {}
        self._special_res: dict[frozenset, object] = {}

    def _find_byte_ids(self, byte_table) -> list[int]:
        single = {v: i for i, v in self.vocab.items() if len(v) == 1}
        # DeepSeek's vocabularies have no BPE tokens for the 13 bytes that never occur in UTF-8
        # (C0, C1, F5..FF); their files add them back as single-character added tokens.
        for b in range(256):
            if bytes([b]) not in single and byte_table[b] in self.added_tokens:
                single[bytes([b])] = self.added_tokens[byte_table[b]]
        missing = [b for b in range(256) if bytes([b]) not in single]
        if missing:
            raise ValueError(f"vocabulary lacks single-byte tokens for {len(missing)} bytes (e.g. {missing[0]}); "
                             f"a byte-level BPE vocabulary needs all 256")
        return [single[bytes([b])] for b in range(256)]

    # -- sizes and named ids --------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids (max id + 1), specials included: 32,256 for DeepSeek-Coder."""
        return max([*self.vocab, *self.special_tokens.values(), *self.added_tokens.values()]) + 1

    def _special_id(self, name: str) -> int | None:
        return self.special_tokens.get(name)

    bos_id = property(lambda self: self._special_id(BOS))
    eos_id = property(lambda self: self._special_id(EOS))
    eot_id = property(lambda self: self._special_id(EOT))
    pad_id = property(lambda self: self._special_id(PAD))
    fim_begin_id = property(lambda self: self._special_id(FIM_BEGIN))
    fim_hole_id = property(lambda self: self._special_id(FIM_HOLE))
    fim_end_id = property(lambda self: self._special_id(FIM_END))

    # -- encoding -------------------------------------------------------------

    def pre_tokenize(self, text: str) -> list[str]:
        """Cut text into pre-tokens with one regex where the chain has one (DeepSeek-Coder's does):
        "x, y = 12" -> ["x", ",", " y", " = ", "1", "2"]."""
        if self._fast_re is not None:
            return self._fast_re.findall(text)
        return self.pre_tokenize_naive(text)

    def pre_tokenize_naive(self, text: str) -> list[str]:
        """Apply the chain of splits one step at a time (the reference for the fast path)."""
        return pre_tokenize_naive(text, self._compiled_chain)  # the module-level function

    def _encode_chunk(self, chunk: str) -> tuple[int, ...]:
        ids = self._cache.get(chunk)
        if ids is None:
            ids = tuple(bpe([self._byte_to_id[b] for b in chunk.encode("utf-8")], self.merges))
            if len(self._cache) >= 200_000:  # bound memory on huge inputs
                self._cache.clear()
            self._cache[chunk] = ids
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode text with no special or added tokens recognised (pure BPE)."""
        out: list[int] = []
        for chunk in self.pre_tokenize(text):
            out.extend(self._encode_chunk(chunk))
        return out

    def _special_regex(self, allowed: frozenset):
        r = self._special_res.get(allowed)
        if r is None:
            strings = sorted({*self.added_tokens, *allowed}, key=len, reverse=True)  # longest first
            r = regex.compile("|".join(regex.escape(s) for s in strings)) if strings else None
            self._special_res[allowed] = r
        return r

    def encode(self, text: str, allowed_special="none", bos: bool = False) -> list[int]:
        """Encode `text` to ids.

        Args:
            allowed_special: "none" (special-token strings are ordinary text), "all", or a set of
                special-token strings to recognise.
            bos: prepend the BOS id (what HF's `encode` does by default for DeepSeek files).
        """
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}; decode bytes first")
        if allowed_special == "all":
            allowed = frozenset(self.special_tokens)
        elif allowed_special == "none" or not allowed_special:
            allowed = frozenset()
        else:
            allowed = frozenset(allowed_special)
            unknown = allowed - set(self.special_tokens)
            if unknown:
                raise ValueError(f"allowed_special names unknown special tokens {sorted(unknown)}; "
                                 f"known: {sorted(self.special_tokens)}")
        out: list[int] = []
        if bos:
            if self.bos_id is None:
                raise ValueError("this tokenizer has no BOS token; call encode(..., bos=False)")
            out.append(self.bos_id)
        r = self._special_regex(allowed)
        if r is None:
            out.extend(self.encode_ordinary(text))
            return out
        start = 0
        for m in r.finditer(text):
            if m.start() > start:
                out.extend(self.encode_ordinary(text[start:m.start()]))
            s = m.group()
            out.append(self.special_tokens[s] if s in allowed else self.added_tokens[s])
            start = m.end()
        if start < len(text):
            out.extend(self.encode_ordinary(text[start:]))
        return out

    # -- decoding -------------------------------------------------------------

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Concatenate the tokens' bytes. Special and added tokens give their UTF-8 text."""
        parts = []
        for i in ids:
            b = self.vocab.get(i)
            if b is None:
                s = self._id_to_special.get(i)
                if s is None:
                    raise ValueError(f"id {i} is not in this vocabulary (size {self.vocab_size})")
                b = s.encode("utf-8")
            parts.append(b)
        return b"".join(parts)

    def decode(self, ids: Iterable[int]) -> str:
        """Decode to text; bytes that are not valid UTF-8 (a cut-off character) become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # -- training -------------------------------------------------------------

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int,
              special_tokens: Iterable[str] = DEEPSEEK_CODER_SPECIAL_TOKENS,
              chain: str | tuple = "deepseek-coder", progress: bool = False,
              naive: bool = False) -> "Tokenizer":
        """Train a byte-level BPE tokenizer.

        Args:
            texts: training documents (str). Special-token strings in them are not counted.
            vocab_size: total ids: 256 bytes + merges + special tokens.
            special_tokens: appended after the BPE tokens, in this order.
            chain: a name from CHAINS ("deepseek-coder", "gpt2") or a tuple of steps.
            progress: show progress bars.
            naive: use the plain trainer that recounts all pairs after every merge (slow).
        """
        special_tokens = list(dict.fromkeys(special_tokens))
        if isinstance(chain, str):
            if chain not in CHAINS:
                raise ValueError(f"unknown pre-tokenizer chain {chain!r}; choose one of: {', '.join(CHAINS)}")
            chain = CHAINS[chain]
        num_merges = vocab_size - 256 - len(special_tokens)
        if num_merges < 0:
            raise ValueError(f"vocab_size {vocab_size} is smaller than 256 bytes + {len(special_tokens)} "
                             f"special tokens = {256 + len(special_tokens)}; raise it")
        # Count each distinct pre-token once (this is most of the memory and a good part of the time).
        proto = cls({b: bytes([b]) for b in range(256)}, {}, chain, {})
        skip = regex.compile("|".join(regex.escape(s) for s in sorted(special_tokens, key=len, reverse=True))) \
            if special_tokens else None
        counts: Counter = Counter()
        n_docs = 0
        for text in _progress_iter(texts, "docs", progress):
            n_docs += 1
            for part in (skip.split(text) if skip else [text]):
                counts.update(proto.pre_tokenize(part))
        if not counts:
            raise ValueError(f"training corpus is empty ({n_docs} documents, no text); give it some text")
        word_counts: Counter = Counter()
        for chunk, c in counts.items():
            word_counts[chunk.encode("utf-8")] += c
        if naive:
            pairs = train_merges_naive(word_counts, num_merges, first_id=256)
        else:
            pairs = train_merges(word_counts, num_merges, first_id=256, progress=progress)
        vocab = {b: bytes([b]) for b in range(256)}
        merges = {}
        for k, (a, b) in enumerate(pairs):
            vocab[256 + k] = vocab[a] + vocab[b]
            merges[(a, b)] = (k, 256 + k)
        next_id = 256 + len(pairs)
        specials = {s: next_id + i for i, s in enumerate(special_tokens)}
        return cls(vocab, merges, chain, specials)

    # -- HF tokenizer.json ----------------------------------------------------

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "Tokenizer":
        """Load an HF byte-level BPE `tokenizer.json` (Split/Digits/ByteLevel pre-tokenizers)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not valid JSON ({e.__class__.__name__} at {getattr(e, 'pos', '?')}); "
                             f"is the file truncated?") from None
        if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
            raise ValueError(f"{path} has no 'model' object; is it an HF tokenizer.json?")
        model = data["model"]
        mtype = model.get("type", "BPE" if "merges" in model else None)
        if mtype != "BPE":
            raise ValueError(f"{path} holds a {mtype} model; minicoder reads byte-level BPE tokenizer.json files only")
        for key, ok in [("continuing_subword_prefix", None), ("end_of_word_suffix", None)]:
            if model.get(key) not in (ok, ""):
                raise ValueError(f"{path}: BPE option {key}={model.get(key)!r} is not supported (byte-level BPE uses none)")
        if model.get("byte_fallback"):
            raise ValueError(f"{path}: byte_fallback BPE (SentencePiece-style) is not supported; "
                             f"minicoder reads byte-level BPE files")
        if data.get("normalizer") is not None:
            raise ValueError(f"{path}: normalizer {data['normalizer'].get('type')!r} is not supported; "
                             f"byte-level BPE files use none")
        if "vocab" not in model or "merges" not in model:
            raise ValueError(f"{path} has no model.vocab or model.merges; is this a BPE tokenizer?")
        chain = _chain_from_json(data.get("pre_tokenizer"), path)
        special, added = {}, {}
        for t in data.get("added_tokens", []):
            content, i = t["content"], t["id"]
            # Multi-character added tokens are control tokens (gated by allowed_special); single
            # characters are vocabulary patches that HF matches everywhere.
            (added if len(content) == 1 and not t.get("special") else special)[content] = i
        added_ids = {*special.values(), *added.values()}
        char_to_byte = {c: b for b, c in bytes_to_unicode().items()}
        vocab: dict[int, bytes] = {}
        for tok, i in model["vocab"].items():
            if i in added_ids:
                continue
            try:
                vocab[i] = bytes(char_to_byte[c] for c in tok)
            except KeyError:
                raise ValueError(f"{path}: token {tok!r} is not in byte-level form; "
                                 f"is this a byte-level BPE file?") from None
        tok_to_id = model["vocab"]
        merges = {}
        for rank, m in enumerate(model["merges"]):
            a, b = m.split(" ", 1) if isinstance(m, str) else m
            try:
                merges[(tok_to_id[a], tok_to_id[b])] = (rank, tok_to_id[a + b])
            except KeyError:
                raise ValueError(f"{path}: merge #{rank} {a!r} + {b!r} uses a token missing from the vocab") from None
        post = data.get("post_processor") or {}
        return cls(vocab, merges, chain, special, added, add_bos_post_processor=bool(post))

    def save(self, path: str | os.PathLike) -> None:
        """Write an HF `tokenizer.json` (atomically) that `tokenizers.Tokenizer.from_file` loads."""
        table = bytes_to_unicode()

        def to_str(b: bytes) -> str:
            return "".join(table[x] for x in b)

        id_to_str = {i: to_str(b) for i, b in self.vocab.items()}
        merges = sorted(self.merges.items(), key=lambda kv: kv[1][0])
        added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": False, "special": True} for s, i in self.special_tokens.items()]
        added += [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                   "normalized": True, "special": False} for s, i in self.added_tokens.items()]
        added.sort(key=lambda t: t["id"])
        steps = [({"type": "Split", "pattern": {"Regex": s.pattern}, "behavior": "Isolated", "invert": False}
                  if isinstance(s, Split) else {"type": "Digits", "individual_digits": s.individual})
                 for s in self.chain]
        steps.append({"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False})
        post = None
        if self.bos_id is not None and self.add_bos_post_processor:
            post = {"type": "TemplateProcessing",
                    "single": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                    "pair": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                             {"SpecialToken": {"id": BOS, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                    "special_tokens": {BOS: {"id": BOS, "ids": [self.bos_id], "tokens": [BOS]}}}
        data = {
            "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": None, "pre_tokenizer": {"type": "Sequence", "pretokenizers": steps},
            "post_processor": post,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": {id_to_str[i]: i for i in sorted(id_to_str)},
                      "merges": [[id_to_str[a], id_to_str[b]] for (a, b), _ in merges]},
        }
        atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1))

    def __repr__(self) -> str:
        return (f"Tokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"special_tokens={len(self.special_tokens)}, chain={len(self.chain)} steps)")


def _progress_iter(it, unit, enabled):
    from tqdm import tqdm

    return tqdm(it, unit=f" {unit}", disable=not enabled, dynamic_ncols=True)


def _chain_from_json(pre: dict | None, path) -> tuple:
    """Read an HF pre_tokenizer object into chain steps (Split/Digits, ending in ByteLevel)."""
    if pre is None:
        raise ValueError(f"{path} has no pre_tokenizer; byte-level BPE files end their chain with ByteLevel")
    items = pre["pretokenizers"] if pre.get("type") == "Sequence" else [pre]
    steps: list = []
    saw_byte_level = False
    for p in items:
        kind = p.get("type")
        if kind == "Split":
            if p.get("behavior") != "Isolated" or p.get("invert"):
                raise ValueError(f"{path}: Split behaviour {p.get('behavior')!r} (invert={p.get('invert')}) "
                                 f"is not supported; minicoder implements 'Isolated'")
            pat = p["pattern"]
            steps.append(Split(pat["Regex"] if "Regex" in pat else regex.escape(pat["String"])))
        elif kind == "Digits":
            steps.append(Digits(bool(p.get("individual_digits", False))))
        elif kind == "ByteLevel":
            if p.get("add_prefix_space"):
                raise ValueError(f"{path}: ByteLevel add_prefix_space=true is not supported")
            if p.get("use_regex", True):
                steps.append(Split(GPT2_PATTERN))
            saw_byte_level = True
        else:
            raise ValueError(f"{path}: pre-tokenizer {kind!r} is not supported (Split, Digits, ByteLevel are)")
    if not saw_byte_level:
        raise ValueError(f"{path}: the pre-tokenizer has no ByteLevel step; this is not a byte-level BPE file")
    return tuple(steps)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -----------------------------------------------------------------------------
# Corpus reading and the command line

def read_corpus(root: str | os.PathLike, exts: tuple[str, ...] = (".py",)) -> tuple[list[str], dict]:
    """Read every file under `root` with one of `exts` (empty: any) as UTF-8; skip (and count) the rest.

    Hidden directories and those in `minicoder.corpus.CORPUS_EXCLUDE` (`__pycache__`, `.venv`,
    `site-packages`, ...) are not entered. Returns (texts, stats) with stats {"files": n,
    "skipped_non_utf8": n, "skipped_binary": n, "bytes": n}.
    """
    from minicoder.corpus import CORPUS_EXCLUDE, list_source_files  # the walk every corpus reader shares

    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"corpus directory not found: {root}")
    texts, stats = [], {"files": 0, "skipped_non_utf8": 0, "skipped_binary": 0, "bytes": 0}
    rels = sorted({rel for ext in (exts or ("",)) for rel in list_source_files(root, ext, CORPUS_EXCLUDE)})
    for rel in rels:
        raw = (root / rel).read_bytes()
        if b"\x00" in raw:
            stats["skipped_binary"] += 1
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            stats["skipped_non_utf8"] += 1
            continue
        texts.append(text)
        stats["files"] += 1
        stats["bytes"] += len(raw)
    return texts, stats


def register_cli(sub) -> None:
    p = sub.add_parser("tokenizer", help="train a BPE tokenizer, or encode/decode with one")
    tsub = p.add_subparsers(dest="tokenizer_command", metavar="ACTION", required=True)

    tr = tsub.add_parser("train", help="train a byte-level BPE tokenizer on a directory of source files")
    tr.add_argument("--corpus", required=True, help="directory of source files to train on (read recursively)")
    tr.add_argument("--vocab-size", type=int, required=True,
                    help="total vocabulary: 256 bytes + merges + the 9 DeepSeek-Coder special tokens")
    tr.add_argument("--out", required=True, help="path of the tokenizer.json to write (its directory must exist)")
    tr.add_argument("--force", action="store_true", help="overwrite --out if it already exists")
    tr.add_argument("--ext", action="append", default=None,
                    help="file extension to include (repeatable; default: .py); 'all' for every file")
    tr.add_argument("--chain", default="deepseek-coder", choices=sorted(CHAINS),
                    help="pre-tokenizer chain (default: deepseek-coder)")
    tr.set_defaults(func=_cli_train)

    for name, helptext in [("encode", "print the ids of some text"), ("decode", "print the text of some ids")]:
        q = tsub.add_parser(name, help=helptext)
        q.add_argument("--tokenizer", default=None,
                       help="tokenizer.json to use (default: the shipped DeepSeek-Coder vocabulary)")
        q.add_argument("text", nargs="?", default=None,
                       help="text to encode, or space/comma-separated ids to decode (default: read stdin)")
        if name == "encode":
            q.add_argument("--allow-special", action="store_true", help="recognise special-token strings in the text")
            q.add_argument("--bos", action="store_true", help="prepend the BOS id")
            q.add_argument("--show", action="store_true", help="print each token next to its id")
        q.set_defaults(func=_cli_encode if name == "encode" else _cli_decode)


def default_tokenizer_path() -> Path:
    return Path(__file__).resolve().parent.parent / "data_samples" / "tokenizers" / "deepseek-coder" / "tokenizer.json"


def _cli_train(args) -> int:
    # Everything a user can get wrong is checked before the corpus is read and the merges learned.
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; give the path of a file, e.g. {out / 'tokenizer.json'}")
    if out.exists() and not args.force:
        raise ValueError(f"--out {out} already exists; pass --force to overwrite it, or choose another --out")
    if not out.parent.is_dir():
        raise ValueError(f"--out {out}: directory {out.parent} does not exist; create it first")
    minimum = 256 + len(DEEPSEEK_CODER_SPECIAL_TOKENS)
    if args.vocab_size < minimum:
        raise ValueError(f"--vocab-size {args.vocab_size} is smaller than 256 bytes + "
                         f"{len(DEEPSEEK_CODER_SPECIAL_TOKENS)} special tokens = {minimum}; raise it")
    if not Path(args.corpus).is_dir():
        raise ValueError(f"--corpus {args.corpus} is not a directory")
    exts = () if args.ext and "all" in args.ext else tuple(args.ext or [".py"])
    texts, stats = read_corpus(args.corpus, exts)
    print(f"read {stats['files']} files ({stats['bytes'] / 1e6:.1f} MB); skipped {stats['skipped_non_utf8']} "
          f"non-UTF-8 and {stats['skipped_binary']} binary files")
    if not texts:
        raise ValueError(f"no {'/'.join(exts) or ''} files with UTF-8 text under {args.corpus}; "
                         f"check --corpus and --ext")
    tok = Tokenizer.train(texts, args.vocab_size, chain=args.chain, progress=True)
    if tok.vocab_size < args.vocab_size:
        # Training stops when no pair occurs twice: the corpus cannot support more merges.
        print(f"minicoder tokenizer: warning: --vocab-size {args.vocab_size} asked for "
              f"{args.vocab_size - minimum} merges, but no pair occurs twice after {len(tok.merges)}; "
              f"the tokenizer has {tok.vocab_size} ids. Give a larger --corpus for more.", file=sys.stderr)
    tok.save(args.out)
    print(f"wrote {args.out}: {tok}")
    return 0


def _read_arg_or_stdin(text):
    return sys.stdin.read() if text is None else text


def _cli_encode(args) -> int:
    tok = Tokenizer.from_file(args.tokenizer or default_tokenizer_path())
    text = _read_arg_or_stdin(args.text)
    ids = tok.encode(text, allowed_special="all" if args.allow_special else "none", bos=args.bos)
    if args.show:
        for i in ids:
            print(f"{i}\t{tok.decode_bytes([i])!r}")
    else:
        print(" ".join(map(str, ids)))
    return 0


def _cli_decode(args) -> int:
    tok = Tokenizer.from_file(args.tokenizer or default_tokenizer_path())
    raw = _read_arg_or_stdin(args.text).replace(",", " ").split()
    try:
        ids = [int(x) for x in raw]
    except ValueError:
        raise ValueError("decode takes integer ids separated by spaces or commas") from None
    print(tok.decode(ids), end="")
    return 0

