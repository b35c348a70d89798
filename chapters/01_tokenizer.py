# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 1: The tokenizer
#
# A language model reads integers, not text. DeepSeek-Coder (paper section 3.2, "Tokenizer") turns text into
# integers with a **byte-level BPE** tokenizer, a vocabulary of 32,000 tokens trained with HuggingFace
# `tokenizers` on a subset of its code corpus, plus a handful of **special tokens** for fill-in-the-middle and chat. This
# chapter builds that tokenizer up from nothing, with `minicoder/tokenizer.py`:
#
# 1. **BPE by hand**: count adjacent pairs, merge the most frequent, repeat (Sennrich et al., 2016).
# 2. **Pre-tokenization**: DeepSeek-Coder's chain of regex splits, which decides what BPE may never merge.
# 3. **Training on real code**: this machine's Python standard library; what the first merges look like.
# 4. **Compression**: bytes per token of our small vocabulary against DeepSeek-Coder's real one.
# 5. **Token boundaries**, in colour.
# 6. **Special tokens**: FIM and chat, and why a file must not be able to inject them.
# 7. **The 13 single-character "added tokens"** of DeepSeek's vocabularies.
# 8. **Compression against vocabulary size**.
#
# Everything below imports from `minicoder`; the notebook adds display helpers and plots, not a second
# implementation. HF `tokenizers` appears only as an oracle, to check that we produce the very same ids.

# %%
import os, platform, sys
from pathlib import Path

# Import the minicoder beside this chapters/ folder: the checkout's, or a student package's (see the exercises).
if (Path.cwd().parent / "minicoder").is_dir():
    sys.path.insert(0, str(Path.cwd().parent))
import matplotlib, regex, tokenizers
import minicoder

print("minicoder ", minicoder.__version__, "from", os.path.relpath(Path(minicoder.__file__).parent))
print("python    ", sys.version.split()[0], platform.machine())
print("regex     ", regex.__version__)
print("tokenizers", tokenizers.__version__, "(oracle only)")
print("matplotlib", matplotlib.__version__)

# %%
import html
import sysconfig
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import HTML, display
from tokenizers import Tokenizer as HFTokenizer

from minicoder.tokenizer import (ASSISTANT, BOS, CHAINS, EOS, EOT, FIM_BEGIN, FIM_END, FIM_HOLE, PAD, USER,
                                 Tokenizer, bpe, bytes_to_unicode, get_pair_counts, merge, pre_tokenize_naive,
                                 split_isolated, train_merges)

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto's note that ipywidgets is missing
DEEPSEEK_CODER = "../data_samples/tokenizers/deepseek-coder/tokenizer.json"   # loaded in section 2

# %% [markdown]
# ## 1. BPE by hand
#
# Byte-level BPE starts from the 256 possible bytes: any text, in any language, is a sequence of ids 0..255
# (its UTF-8 bytes). Training then repeats one step: find the most frequent pair of adjacent ids and replace
# every occurrence of it by a new id. Here is the classic example, `aaabdaaabac`, three merges done by hand with
# the library's two helpers: `get_pair_counts(ids)` counts adjacent pairs, `merge(ids, pair, new_id)` replaces
# a pair left to right. When two pairs are equally frequent we take the pair of smaller ids, as the trainer does,
# so that training is deterministic.

# %%
text = "aaabdaaabac"
ids = list(text.encode("utf-8"))
vocab = {i: bytes([i]) for i in range(256)}     # id -> the bytes it stands for


def tokens(ids):
    return "|".join(vocab[i].decode("utf-8") for i in ids)


print(f"start   {tokens(ids):24s} {ids}")
learned = []                                     # the merged pairs, in order
for k in range(3):
    counts = get_pair_counts(ids)
    pair = min(counts, key=lambda p: (-counts[p], p))   # most frequent; ties -> smallest ids
    new_id = 256 + k
    vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
    ids = merge(ids, pair, new_id)
    learned.append(pair)
    print(f"merge {k + 1}: {pair} = {vocab[new_id].decode()!r} seen {counts[pair]}x -> id {new_id}")
    print(f"        {tokens(ids):24s} {ids}")

# %% [markdown]
# Eleven bytes became five tokens. The second step was a tie (`aa`+`a` and `a`+`b` both occur twice), broken
# towards the smaller ids. (Section 3's `train_merges` does the same thing on a whole corpus.)
#
# To **encode** new text, `bpe` applies the learned merges by *rank*: among the adjacent pairs present, it merges
# the one learned first, and repeats until no learned pair is left.

# %%
merges = {pair: (rank, 256 + rank) for rank, pair in enumerate(learned)}   # (a, b) -> (rank, new id)
for word in ["aaab", "aaaaab", "abac", "dab"]:
    print(f"{word:8s} -> {tokens(bpe(list(word.encode()), merges))}")

# %% [markdown]
# ## 2. Pre-tokenization: what BPE may never merge
#
# Run BPE over raw text and it spends its vocabulary on tokens that straddle the end of one word and the start
# of the next (`e `, `s `, `f `), a different token for every way words happen to meet. So text is first cut into **pre-tokens**, and BPE works inside each piece. DeepSeek-Coder's
# `tokenizer.json` describes the cut as a chain of HF pre-tokenizers, each applied to every piece the previous one
# left ("Isolated": every match becomes a piece of its own, the text between matches stays as pieces too):

# %%
real = Tokenizer.from_file(DEEPSEEK_CODER)      # DeepSeek-Coder's real vocabulary
print(real)
for step in real.chain:
    print(step)
print("same as minicoder's CHAINS['deepseek-coder']:", real.chain == CHAINS["deepseek-coder"])

# %% [markdown]
# In order: newlines; a word with at most one whitespace character before it; a run of punctuation, likewise; a
# run of CJK characters; then every digit on its own. Watch a line of code go through the chain, one step at a
# time (`split_isolated` is the library's one-step cut; `pre_tokenize_naive(text, patterns)` loops it over the
# chain's compiled patterns):

# %%
line = "    total += price_2 * 1024  # 合计\n"
pieces = [line]
for label, step in zip(["newlines", "words", "punctuation", "CJK", "digits"], real.chain):
    pieces = [p for piece in pieces for p in split_isolated(piece, step.compile())]
    print(f"{label:11s} {pieces}")

assert pieces == pre_tokenize_naive(line, [step.compile() for step in real.chain]) == real.pre_tokenize(line)
print("\npre_tokenize_naive and the fast pre_tokenize agree:", real.pre_tokenize(line) == pieces)

# %% [markdown]
# Things to notice:
#
# - The word split takes **one** space with the word, so a 4-space indent becomes 3 spaces + `" total"`. Expect
#   BPE to learn runs of 3 and 7 spaces, not only 4 and 8.
# - `+=` survives as `" +="`: `+` and `=` are math *symbols* (Unicode Sm), not punctuation (P), so no step isolates
#   them; they stay in the leftover text between matches. `*` is punctuation (Po), so `" *"` is a match.
# - Every digit is its own piece, so `1024` is always four tokens, whatever the vocabulary. Numbers cost more,
#   but every number is spelled the same way (exercise 4 measures the price).
# - The CJK step cuts `" 合计"` into a space and the characters.
#
# `pre_tokenize` is a single regex that does the whole chain in one scan; `pre_tokenize_naive` is the readable
# chain. The test suite holds them equal (and equal to HF's pre-tokenizer) on every Unicode code point.
#
# GPT-2's chain is one regex: it keeps a run of digits together (with a space in front, like a word) and has no
# CJK step. A tokenizer with no merges at all is enough to see the difference:

# %%
bytes_only = {b: bytes([b]) for b in range(256)}
gpt2_cut = Tokenizer(bytes_only, {}, CHAINS["gpt2"])
print("deepseek-coder:", real.pre_tokenize(line))
print("gpt2:          ", gpt2_cut.pre_tokenize(line))

# %% [markdown]
# ## 3. Training on real code
#
# Our corpus is this machine's Python standard library: top-level modules, three files in four for training (up
# to 800 kB) and the fourth for a held-out set (up to 250 kB) that the tokenizer never sees.
# `Tokenizer.train(texts, vocab_size)` pre-tokenizes every document, counts each distinct pre-token once and runs
# `train_merges`; `vocab_size` counts the 256 bytes, the merges and the 9 DeepSeek special tokens.
#
# `train_merges` does what section 1 did by hand, but counts each distinct word once (weighted by how often it
# occurs) and, after a merge, updates the counts of only the words that held the merged pair, instead of
# recounting everything. On section 1's example it finds the same three merges:

# %%
print(train_merges({b"aaabdaaabac": 1}, num_merges=3))

# %%
stdlib = Path(sysconfig.get_paths()["stdlib"])
modules = sorted(stdlib.glob("*.py"))


def read_up_to(paths, budget):
    texts, n = [], 0
    for p in paths:
        t = p.read_text(encoding="utf-8", errors="replace")
        if n + len(t.encode()) <= budget:
            texts.append(t)
            n += len(t.encode())
    return texts, n


train_texts, n_train = read_up_to([p for k, p in enumerate(modules) if k % 4 != 3], 800_000)
held_texts, n_held = read_up_to([p for k, p in enumerate(modules) if k % 4 == 3], 250_000)
held_out = "".join(held_texts)
print(f"train: {len(train_texts)} files, {n_train:,} bytes; held out: {len(held_texts)} files, {n_held:,} bytes")

t = time.perf_counter()
tok = Tokenizer.train(train_texts, vocab_size=4096)
print(f"trained {tok} in {time.perf_counter() - t:.1f} s")

# %% [markdown]
# The merges are learned in order; token `256 + k` is merge `k`. The first ones are the commonest byte pairs in
# Python. Read the list: indentation comes first (runs of spaces, including the runs of 3 and 7 that section 2
# predicted), then common English fragments and `self`:

# %%
first = [tok.vocab[256 + k].decode("utf-8", errors="replace") for k in range(60)]
for row in range(0, 60, 6):
    print("  ".join(f"{row + c:2d} {first[row + c]!r:18s}" for c in range(6)))

# %% [markdown]
# Where do Python's keywords land? A token's id tells its rank. (`def` at the start of a line has no space
# in front: the newline is its own piece, so the word's optional space is not there.)

# %%
bytes_to_id = {b: i for i, b in tok.vocab.items()}
for word in ["    ", "self", " self", "def", " def", " return", " import", " None", " if", "__init__", "    "*2]:
    i = bytes_to_id.get(word.encode())
    print(f"{word!r:12s}", f"merge #{i - 256}" if i is not None else "not one token: " + repr(
        [tok.decode([j]) for j in tok.encode(word)]))

# %% [markdown]
# ## 4. Compression: bytes per token
#
# The number that matters for a tokenizer is how much text each token carries: a model with a 16K-token context
# sees more code if tokens are longer, and each training token costs the same compute. We measure **bytes of
# UTF-8 per token** on the held-out files, for our 4K vocabulary and for DeepSeek-Coder's real 32K one. First,
# make sure minicoder reads DeepSeek's file correctly: on the held-out code its ids equal HF `tokenizers`' ids.

# %%
hf = HFTokenizer.from_file(DEEPSEEK_CODER)
real_ids = real.encode(held_out)
print("minicoder == HF tokenizers on the held-out code:", real_ids == hf.encode(held_out, add_special_tokens=False).ids)

ours_ids = tok.encode(held_out)
n_bytes = len(held_out.encode("utf-8"))
for name, t_, ids_ in [("minicoder, trained here", tok, ours_ids), ("DeepSeek-Coder", real, real_ids)]:
    print(f"{name:24s} vocab {t_.vocab_size:6,d}: {len(ids_):7,d} tokens, {n_bytes / len(ids_):.2f} bytes/token")
assert tok.decode(ours_ids) == held_out and real.decode(real_ids) == held_out

# %% [markdown]
# DeepSeek's vocabulary is much larger, but it was trained for 87 programming languages, English and Chinese;
# ours was trained on the very kind of code we test it on. Section 8 compares them size for size.
#
# ## 5. Token boundaries
#
# The same snippet through both tokenizers, each token on its own background (hover for its id). A token may hold
# part of a character: bytes that are not a whole UTF-8 character are shown in hex, in italics.

# %%
PALETTE = ["#ffe8a3", "#c9e7ff", "#d5f5d0", "#f9d0e0"]


def show_tokens(t, text, title, allowed_special="none"):
    ids = t.encode(text, allowed_special=allowed_special)
    spans = []
    for k, i in enumerate(ids):
        raw = t.decode_bytes([i])
        try:
            piece = html.escape(raw.decode("utf-8"))
        except UnicodeDecodeError:                      # part of a multi-byte character
            piece = "<i>" + " ".join(f"{b:02x}" for b in raw) + "</i>"
        spans.append(f'<span title="id {i}" style="background:{PALETTE[k % len(PALETTE)]}">{piece}</span>')
    head = f"<b>{html.escape(title)}</b>: {len(ids)} tokens for {len(text.encode())} bytes"
    display(HTML(f'{head}<pre style="line-height:1.5">{"".join(spans)}</pre>'))


snippet = '''class Stats:
    def mean(self, xs: list[float]) -> float:
        """Average of xs; 0.0 for an empty list."""
        if not xs:
            return 0.0
        return sum(xs) / len(xs)

print(Stats().mean([1.5, 2.25, 1024]))  # naïve 平均
'''
show_tokens(tok, snippet, "minicoder, 4K, trained on the standard library")
show_tokens(real, snippet, "DeepSeek-Coder, 32K")

# %% [markdown]
# Both spell `1024` digit by digit (the chain makes them). Our vocabulary has no tokens for `ï` or these CJK
# characters (too rare in its training files to earn a merge), so they fall apart into bytes; DeepSeek's has
# tokens for them.
#
# ## 6. Special tokens
#
# After the BPE tokens come the **special tokens**: control symbols that are never produced by BPE. DeepSeek-Coder
# has nine, in this order: begin and end of sentence, the three fill-in-the-middle tokens (chapter 3), a padding
# token and three for the instruct models' chat format (`<|EOT|>` ends an assistant's turn). `Tokenizer.train`
# appends the same nine after its merges, so a model trained here can use DeepSeek's formats unchanged; the
# real file also pads its vocabulary with placeholder tokens `[PAD...]` up to a round 32,256 ids.

# %%
names = [BOS, EOS, FIM_HOLE, FIM_BEGIN, FIM_END, PAD, USER, ASSISTANT, EOT]
print(f"{'':24s} {'minicoder 4K':>12s} {'DeepSeek-Coder':>15s}")
for name in names:
    print(f"{name:24s} {tok.special_tokens[name]:12d} {real.special_tokens[name]:15d}")
placeholders = [s for s in real.special_tokens if s.startswith("[PAD")]
print(f"\nDeepSeek's placeholders: {len(placeholders)}, {placeholders[0]} .. {placeholders[-1]}; vocab_size {real.vocab_size:,}")
print("named ids:", dict(bos=real.bos_id, eos=real.eos_id, fim_begin=real.fim_begin_id, fim_hole=real.fim_hole_id,
                          fim_end=real.fim_end_id, pad=real.pad_id, eot=real.eot_id))

# %% [markdown]
# A special token is only special when the caller says so. `encode(text)` treats special-token strings as
# ordinary text (`allowed_special="none"`, the default); `"all"` turns every one into its id; a set allows just
# those. Training data must always be encoded with `"none"`: a source file that merely *contains* the string
# `<｜fim▁hole｜>` (minicoder's own `fim.py` does) or `<|EOT|>` would otherwise inject a control token into the
# model's input, and a user could end an assistant's turn by typing it. Only the code that builds a prompt adds
# control tokens, on purpose:

# %%
prompt = f"{FIM_BEGIN}def area(r):\n    {FIM_HOLE}\n    return a{FIM_END}"
for allowed in ["none", "all", {FIM_BEGIN}]:
    ids = real.encode(prompt, allowed_special=allowed)
    specials = [i for i in ids if i in real.special_tokens.values()]
    print(f"allowed_special={allowed!r}: {len(ids):2d} tokens, control ids {specials}")
    assert real.decode(ids) == prompt          # the text survives either way; only the ids differ
print()
show_tokens(real, prompt, 'allowed_special="none"')
show_tokens(real, prompt, 'allowed_special="all"', allowed_special="all")
print("bos=True prepends", real.encode("x", bos=True)[:1], "=", real.decode(real.encode("x", bos=True)[:1]))

# %% [markdown]
# ## 7. The 13 single-character "added tokens"
#
# A byte-level vocabulary needs a token for each of the 256 bytes. DeepSeek's files lack BPE tokens for exactly
# 13 bytes: `C0`, `C1` and `F5`..`FF`, the bytes that never occur in valid UTF-8 (a trainer that only sees real
# text never meets them). The files add them back as **added tokens**, written the way `tokenizer.json` writes
# bytes: through GPT-2's byte-to-unicode table, in which byte `FC` is the character `ü`.

# %%
to_byte = {c: b for b, c in bytes_to_unicode().items()}
for ch, i in sorted(real.added_tokens.items(), key=lambda kv: to_byte[kv[0]]):
    print(f"byte {to_byte[ch]:02X}  written {ch!r}  id {i}")

# %% [markdown]
# HF matches added tokens in the *text*, before any byte-level step. So the character `ü` (U+00FC) in a
# string becomes id 32009, although BPE has its own token for its UTF-8 bytes `C3 BC`. minicoder does the same,
# for id-for-id parity, and decodes an added token to its character, so round trips still hold. (The
# decoding is where it could go wrong: read as the byte `FC` it would be invalid UTF-8.)

# %%
for word in ["Führer", "schön", "garçon"]:
    ids = real.encode(word)
    print(f"{word:8s} encode {ids!s:24s} HF {hf.encode(word, add_special_tokens=False).ids!s:24s} "
          f"pure BPE {real.encode_ordinary(word)!s:24s} decode {real.decode(ids)!r}")


# %% [markdown]
# `ç` is not one of the 13, so `garçon` is the same with or without added tokens.
#
# ## 8. Compression against vocabulary size
#
# How much does each extra token of vocabulary buy? Training is greedy: merge `k` is chosen the same way whether
# we ask for 1,000 merges or 8,000. So one training run gives every smaller vocabulary too, by keeping its first
# `n` merges. We check that on the 4K tokenizer of section 3, and do the same with DeepSeek-Coder's ranked merges,
# which gives "DeepSeek's vocabulary, cut to `n` merges".

# %%
def first_merges(t, n):
    """The tokenizer `t` with only its `n` lowest-ranked merges (and all its single bytes)."""
    merges = {pair: (rank, new) for pair, (rank, new) in t.merges.items() if rank < n}
    keep = {i for i, b in t.vocab.items() if len(b) == 1} | {new for _, new in merges.values()}
    return Tokenizer({i: t.vocab[i] for i in keep}, merges, t.chain, added_tokens=t.added_tokens)


t = time.perf_counter()
big = Tokenizer.train(train_texts, vocab_size=8192 + 9)
print(f"trained {big} in {time.perf_counter() - t:.1f} s")
print("first merges of the 8K run == the 4K run:", first_merges(big, len(tok.merges)).merges == tok.merges)

sizes = [256, 300, 500, 1000, 2000, 4000, 8000]          # bytes + merges, special tokens left out
curves = {"minicoder, trained on the standard library": big, "DeepSeek-Coder's first merges": real}
bpt = {name: [n_bytes / len(first_merges(t_, s - 256).encode(held_out)) for s in sizes] for name, t_ in curves.items()}
bpt_full = n_bytes / len(real_ids)
for s, *row in zip(sizes, *bpt.values()):
    print(f"{s:5d} tokens: " + "   ".join(f"{v:.2f}" for v in row))
print(f"DeepSeek-Coder, all {len(real.merges):,} merges: {bpt_full:.2f} bytes/token")
ours, theirs = bpt.values()
print("trained here beats DeepSeek's first merges at every size above 256:", all(a > b for a, b in zip(ours[1:], theirs[1:])))
print("gain per doubling, 500 -> 8000 (trained here):", [round(b - a, 2) for a, b in zip(ours[2:], ours[3:])])

# %%
fig, ax = plt.subplots(figsize=(7.5, 4))
for name, ys in bpt.items():
    ax.plot(sizes, ys, "o-", label=name)
ax.plot([256 + len(real.merges)], [bpt_full], "*", ms=14, color="C1", label="DeepSeek-Coder, full 32K")
ax.set_xscale("log", base=2)
ticks = [256, 500, 1000, 2000, 4000, 8000, 256 + len(real.merges)]
ax.set_xticks(ticks, [f"{x:,}" for x in ticks]); ax.minorticks_off()
ax.set_xlabel("BPE vocabulary (256 bytes + merges)")
ax.set_ylabel("bytes per token (held-out code)")
ax.set_title(f"compression on {n_bytes:,} bytes of held-out standard library")
ax.grid(alpha=0.3); ax.legend()
plt.tight_layout(); plt.show()

# %% [markdown]
# The gains shrink: each doubling of the vocabulary buys less compression than the one before (the gains are
# printed above), while the embedding table and the output head grow in proportion to the vocabulary. A vocabulary trained on the code it is tested on beats DeepSeek's general-purpose merges size for
# size (the check below says whether it does at every size here); DeepSeek pays for its broader coverage (other
# languages, prose, Chinese) with a larger vocabulary.
#
# ## Exercises
#
# These follow the course assignment **`tokenizer`** (`minicoder assignment list` shows its functions and
# their graded tests). Make your take-home package and work in it:
#
# ```
# make student ASSIGNMENT=tokenizer OUT=~/bpe     # the package with the solutions removed, its tests, data, this chapter
# cd ~/bpe && make setup                          # then read ASSIGNMENT.md
# make test FN=merge                              # one function's tests (and its docstring examples)
# make grade                                      # every function: tests passed, status, a score
# make chapter                                    # this notebook, running on your package
# ```
#
# In the package, every function below raises `NotImplementedError`; its docstring (with worked examples, which
# are graded too) is the specification. The notebook's first cell imports the `minicoder` beside its `chapters/`
# folder, so in your package it runs your code; each exercise needs only its own functions.
#
# 1. **The BPE core** (section 1). Implement `get_pair_counts`, `merge` and `bpe` (apply merges by rank), then
#    run section 1: the same three merges, and the same encodings.
# 2. **Pre-tokenization** (section 2). Implement `bytes_to_unicode` (GPT-2's table, which `tokenizer.json` files
#    use; why must every byte map to a *printable* character?), `split_isolated` and
#    `pre_tokenize_naive(text, patterns)`, then run section 2. The graded tests compare your chain with the fast
#    regex and with HF's pre-tokenizer on every Unicode code point; which code points did you get wrong first,
#    and why?
# 3. **Training** (sections 3 to 8). Implement `train_merges_naive` (recount every pair after each merge), then
#    `train_merges`, which updates only the words that contain the merged pair and picks the best pair from a
#    heap. Both must give the same merges, ties included, and `train_merges` is timed: recounting everything
#    after each merge fails its test. Time both on section 3's corpus at 1,000 merges.
#
# Extensions (not graded):
#
# 4. **Digits.** Train the same 4K vocabulary with `chain="gpt2"` (numbers stay whole) and compare bytes per token
#    on the held-out code and on numbers-heavy code (a file of test vectors or a table of constants). Which chain
#    compresses better? Why might DeepSeek still split every digit? (Think of `1024 + 1` and how a model learns
#    arithmetic when `1024` is one token in one place and `10|24` in another.)
# 5. **No pre-tokenization.** Train with only the newline split, `chain=(CHAINS["deepseek-coder"][0],)`, and look
#    at the first 60 merges and the compression. What do tokens that cross word boundaries cost the model?
# 6. **Added tokens.** Remove the 13 added tokens (`Tokenizer(real.vocab, real.merges, real.chain,
#    real.special_tokens)`): what error do you get, and why? Which ids change on `"Führer"` if they are kept
#    but matched only as bytes, never in text?
# 7. **The price of a vocabulary.** For `deepseek-coder-1.3b` (`d_model` 2048, untied embeddings), how many
#    parameters does each 1,000 tokens of vocabulary cost? Using the curve above, what fraction of a 16K context
#    does doubling the vocabulary from 4K to 8K free up?
