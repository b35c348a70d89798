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
# # Chapter 3: Fill-in-the-middle
#
# A left-to-right model completes code from the cursor onwards, but an editor also has code *after* the cursor.
# DeepSeek-Coder (section 3, "Fill-in-the-Middle") trains on both tasks at once, following Bavarian et al. (2022,
# "Efficient Training of Language Models to Fill in the Middle"): with probability 0.5 a training document is cut
# at two random character positions into **prefix**, **middle** and **suffix**, and rearranged so that the middle
# comes last:
#
# ```
# PSM:  <｜fim▁begin｜>prefix<｜fim▁hole｜>suffix<｜fim▁end｜>middle<｜end▁of▁sentence｜>
# ```
#
# The model is trained on the whole sequence with the ordinary next-token loss, so it learns to write the middle
# after reading both sides. minicoder's training samples are whole repositories (chapter 2), so the pipeline cuts each
# *code file* of a sample on its own, as section 3.1 describes (section 6 below). At inference, the editor sends `<｜fim▁begin｜>prefix<｜fim▁hole｜>suffix<｜fim▁end｜>` and
# the model writes the middle. The code is `minicoder/fim.py`; this chapter shows what it produces and what the model
# sees.

# %%
import os, platform, sys
from pathlib import Path

# Import the minicoder beside this chapters/ folder (this checkout, or a student's copy), not another installed one.
if (Path.cwd().parent / "minicoder" / "__init__.py").is_file():
    sys.path.insert(0, str(Path.cwd().parent))
import matplotlib, numpy, torch
import minicoder

print("python    ", sys.version.split()[0], platform.machine())
print("numpy     ", numpy.__version__)
print("torch     ", torch.__version__)
print("matplotlib", matplotlib.__version__)
print("minicoder ", minicoder.__version__, "from", os.path.relpath(Path(minicoder.__file__).parent))

# %%
import gzip
import html
import json
import random
import sysconfig

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import HTML, display

from minicoder.fim import (FIM_TOKENS, apply_fim, encode_fim, encode_fim_files, fim_prompt, format_fim, restore_fim,
                           split_fim)
from minicoder.tokenizer import EOS, FIM_BEGIN, FIM_END, FIM_HOLE, Tokenizer

COLOURS = {"prefix": "#cfe2ff", "middle": "#ffd8a8", "suffix": "#c3f0c8", "special": "#dee2e6"}


def span(text, part):
    style = f"background:{COLOURS[part]};" + ("font-weight:bold;" if part == "special" else "")
    return f'<span style="{style}">{html.escape(text)}</span>'


def show(*pieces, title=""):
    # pieces: (text, part) pairs, shown in order in one coloured block
    body = "".join(span(t, p) for t, p in pieces)
    head = f"<b>{html.escape(title)}</b><br>" if title else ""
    display(HTML(f'{head}<pre style="line-height:1.4">{body}</pre>'))


display(HTML(" ".join(span(name, name) for name in ["prefix", "middle", "suffix"])
             + " " + span("<｜special｜>", "special")))

doc = '''def mean(xs):
    total = 0
    for x in xs:
        total += x
    return total / len(xs)
'''  # the running example
tok = Tokenizer.from_file("../data_samples/tokenizers/deepseek-coder/tokenizer.json")  # DeepSeek-Coder's vocabulary

# %% [markdown]
# ## 1. Cutting a document
#
# `split_fim(text, rng, rate)` first draws a float `u` and transforms the document only when `u < rate`; it then
# draws two cut points uniformly in `[0, len(text)]` (characters, not bytes) and sorts them. `rng` is a
# `random.Random` or a NumPy `Generator`, so a seed fixes every sample.

# %%
rng = random.Random(3)
prefix, middle, suffix = split_fim(doc, rng, rate=1.0)
show((prefix, "prefix"), (middle, "middle"), (suffix, "suffix"), title="the document, cut in three")
print(f"cut points: {len(prefix)} and {len(prefix) + len(middle)} of {len(doc)} characters")

# %% [markdown]
# ## 2. PSM and SPM
#
# **PSM** (prefix, suffix, middle) is what DeepSeek-Coder trains on. **SPM** puts the suffix first; we implement
# Bavarian et al.'s "variant 2" (their appendix D, also BigCode's Megatron-LM), in which prefix and middle stay
# contiguous, so an editor's cache of the prefix's keys and values stays valid while the user types:
#
# ```
# SPM:  <｜fim▁begin｜><｜fim▁hole｜>suffix<｜fim▁end｜>prefix middle
# ```
#
# In both, each FIM token appears exactly once. `apply_fim` returns the sample *without* the end-of-sentence
# token; the tokenizing step appends `tok.eos_id` to every document, transformed or not.

# %%
show((FIM_BEGIN, "special"), (prefix, "prefix"), (FIM_HOLE, "special"), (suffix, "suffix"),
     (FIM_END, "special"), (middle, "middle"), (EOS, "special"), title="PSM")
show((FIM_BEGIN, "special"), (FIM_HOLE, "special"), (suffix, "suffix"), (FIM_END, "special"),
     (prefix, "prefix"), (middle, "middle"), (EOS, "special"), title="SPM")

for mode in ("psm", "spm"):
    sample = format_fim(prefix, middle, suffix, mode)
    assert restore_fim(sample) == doc
    assert all(sample.count(t) == 1 for t in FIM_TOKENS)
print("restore_fim gives the document back in both modes")

# %% [markdown]
# ## 3. What the model sees
#
# With DeepSeek-Coder's real 32K vocabulary, the three FIM tokens are single ids (32016, 32015, 32017) and EOS is
# 32014. `encode_fim` encodes prefix, middle and suffix each on its own and inserts the ids between them, as
# BigCode's Megatron-LM does. Below, the tokens around each FIM token:

# %%
print(tok)
print({name: tok.special_tokens[name] for name in (FIM_BEGIN, FIM_HOLE, FIM_END, EOS)})

ids = encode_fim(tok, doc, random.Random(3), rate=1.0)
assert ids[:-1] == tok.encode(apply_fim(doc, random.Random(3), rate=1.0), allowed_special="all")

special = {tok.fim_begin_id, tok.fim_hole_id, tok.fim_end_id, tok.eos_id}
for k, i in enumerate(ids):
    if i in special:
        window = ids[max(0, k - 3): k + 4]
        print(f"position {k:3d}: " + "  ".join(f"{j}:{tok.decode([j])!r}" for j in window))
print(f"{len(ids)} tokens in all; the plain document is {len(tok.encode(doc))} tokens + EOS")

# %% [markdown]
# Special-token strings are only special when the caller allows them. A source file that merely *mentions*
# `<｜fim▁hole｜>` (as `minicoder/fim.py` does) must not inject a control token into training, so files are encoded
# with no specials allowed, and `apply_fim` leaves any document that contains a FIM string untransformed:

# %%
mention = f"HOLE = '{FIM_HOLE}'\n"
print("allowed_special='all' :", tok.encode(mention, allowed_special="all"))
print("allowed_special='none':", tok.encode(mention))
print("apply_fim at rate 1   :", apply_fim(mention, random.Random(0), rate=1.0) == mention)

# %% [markdown]
# In SPM the string puts prefix and middle side by side, so encoding the string would let BPE merge across the
# cut; `encode_fim` keeps the seam, which is also where the editor's text ends at inference:

# %%
differs = 0
for seed in range(200):
    string_ids = tok.encode(apply_fim(doc, random.Random(seed), rate=1.0, mode="spm"), allowed_special="all")
    differs += encode_fim(tok, doc, random.Random(seed), rate=1.0, mode="spm", eos=False) != string_ids
print(f"SPM: piecewise ids differ from encoding the string in {differs} of 200 samples")

# %% [markdown]
# ## 4. The inference prompt
#
# `fim_prompt(prefix, suffix)` builds what an editor sends; DeepSeek's tokenizer prepends BOS. The HumanEval
# infilling sets the project ships (Bavarian et al.) are exactly such tasks: `prompt` is the prefix, `suffix` the
# suffix, and `canonical_solution` the middle the model should write.

# %%
with gzip.open("../data_samples/benchmarks/humaneval-infilling/HumanEval-SingleLineInfilling.jsonl.gz", "rt") as f:
    task = next(json.loads(line) for line in f if json.loads(line)["task_id"].startswith("SingleLineInfilling/HumanEval/2/"))
show((FIM_BEGIN, "special"), (task["prompt"], "prefix"), (FIM_HOLE, "special"), (task["suffix"], "suffix"),
     (FIM_END, "special"), title=task["task_id"] + ": the prompt")
show((task["canonical_solution"], "middle"), title="the middle the model should write")
prompt_ids = tok.encode(fim_prompt(task["prompt"], task["suffix"]), allowed_special="all", bos=True)
print(prompt_ids[:4], "...", prompt_ids[-4:], f"({len(prompt_ids)} tokens)")

# %% [markdown]
# ## 5. The FIM rate in practice
#
# At rate 0.5 the number of transformed documents out of n is Binomial(n, 0.5): its share has standard deviation
# sqrt(0.25 / n), so 150 files give 0.5 ± 0.04 and 20,000 draws 0.5 ± 0.0035. And because the two cut points are
# uniform and sorted, the middle's share of a document has density 2(1 - m): a third on average, often short,
# rarely most of the file. So about a sixth of the training characters are "middle" characters, predicted with
# context on both sides.

# %%
stdlib = Path(sysconfig.get_paths()["stdlib"])
docs = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(stdlib.glob("*.py"))[:150]]
rng = np.random.default_rng(0)

rates = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
observed = [np.mean([apply_fim(d, rng, rate=r) != d for d in docs]) for r in rates]

n_draws = 20_000
shares, chars_middle, chars_total, transformed = [], 0, 0, 0
for k in range(n_draws):
    d = docs[k % len(docs)]
    parts = split_fim(d, rng, rate=0.5)
    chars_total += len(d)
    if parts is not None:
        transformed += 1
        shares.append(len(parts[1]) / max(len(d), 1))
        chars_middle += len(parts[1])

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
ax1.plot(rates, observed, "o", label=f"{len(docs)} stdlib files")
sd = [np.sqrt(r * (1 - r) / len(docs)) for r in rates]
ax1.fill_between(rates, np.array(rates) - 2 * np.array(sd), np.array(rates) + 2 * np.array(sd), alpha=0.2, label="rate ± 2 sd")
ax1.set_xlabel("FIM rate"); ax1.set_ylabel("share transformed"); ax1.legend()
ax2.hist(shares, bins=25, density=True, alpha=0.7, label="observed")
m = np.linspace(0, 1, 50)
ax2.plot(m, 2 * (1 - m), label="2(1 - m)")
ax2.set_xlabel("middle / document length"); ax2.legend()
plt.tight_layout(); plt.show()
share, sd = transformed / n_draws, np.sqrt(0.25 / n_draws)
print(f"transformed at rate 0.5: {transformed:,} of {n_draws:,} draws = {share:.4f}; the standard deviation of that "
      f"share is {sd:.4f}, so it lies {(share - 0.5) / sd:+.1f} sd from 0.5 (within ±2 sd for 95% of seeds)")
print(f"mean middle share {np.mean(shares):.3f} (theory 1/3); middle characters / all characters "
      f"{chars_middle / chars_total:.3f} (theory about 1/6: half the files, a third of each)")

# %% [markdown]
# ## 6. FIM file by file inside a repository sample
#
# A sample of `minicoder prepare` is a whole component of a repository: several files in dependency order, each
# under its path comment (chapter 2). `encode_fim_files(tok, text, spans, rng, rate)` takes the sample and where
# each file lies in it (`depsort.concatenate_with_spans`) and draws for each file on its own: with probability
# `rate` that file becomes a PSM segment. The path comment is the fixed head of the prefix (the cuts fall in the
# file's code only), so the model sees which file it is filling, and every middle lies within one file. The rest
# of the sample stays plain text, and the whole sample still ends in one EOS. Below, the three-file chain of
# `data_samples/repos/python_nested` with every file drawn at rate 0.5 (this seed
# turns the first and the last file into FIM segments and leaves the middle one plain):

# %%
from minicoder.depsort import concatenate_with_spans, order_repository

nested_root = Path("..") / "data_samples" / "repos" / "python_nested"
nested = {p.relative_to(nested_root).as_posix(): p.read_text() for p in sorted(nested_root.rglob("*.py"))}
chain = [p for p in order_repository(nested)[1] if p.startswith("src/")]  # table.py, quantity.py, convert.py
text, spans = concatenate_with_spans(nested, chain)
ids, fimmed = encode_fim_files(tok, text, spans, random.Random(7), rate=0.5)
print("FIM'd:", dict(zip(chain, fimmed)))
decoded = tok.decode(ids)
pieces, rest = [], decoded
while FIM_BEGIN in rest:  # colour each FIM segment; plain text stays uncoloured
    before, _, rest = rest.partition(FIM_BEGIN)
    pre, _, rest = rest.partition(FIM_HOLE)
    suf, _, rest = rest.partition(FIM_END)
    whole = next(text[h:e] for h, b, e in spans if text[h:e].startswith(pre) and text[h:e].endswith(suf))
    mid = whole[len(pre):len(whole) - len(suf)]
    pieces += [(before, "plain"), (FIM_BEGIN, "special"), (pre, "prefix"), (FIM_HOLE, "special"), (suf, "suffix"),
               (FIM_END, "special"), (mid, "middle")]
    rest = rest[len(mid):]
COLOURS["plain"] = "#ffffff"
show(*pieces, (rest, "plain"), title="one repository sample, file-level FIM")

# %% [markdown]
# ## Exercises
#
# Each exercise names the sections it builds on and the functions of `minicoder/fim.py` they need; in a student
# copy of the assignment, the chapter's two set-up cells and those sections run as soon as these are written.
#
# 1. **The other SPM** (sections 1 and 2; needs `split_fim` and `format_fim`; `restore_fim` is given). Bavarian et
#    al.'s main SPM layout is `<SUF>suffix<PRE>prefix<MID>middle`. Write it with DeepSeek's three tokens, extend
#    `restore_fim` to undo it, and say why an editor's cache prefers variant 2.
# 2. **Line-level cuts** (section 5; needs `split_fim` and `format_fim`, which `apply_fim` calls). HumanEval's
#    single-line infilling hides one whole line. Write a `split_fim` variant that cuts only at line boundaries and
#    compare the histogram of middle shares with the one above.
# 3. **Context-level FIM** (section 6; needs `split_fim`, `fim_ids` and `encode_fim_files`). Here FIM is applied to
#    each file of a repository sample before packing. Sketch the version that cuts a packed 4,096-token training
#    window instead (what happens to the EOS tokens inside it?).
# 4. **The seam** (section 3; needs all four: `split_fim`, `format_fim`, `fim_ids` and `encode_fim_files`, which
#    `apply_fim` and `encode_fim` call).
#    Find a document and cut points for which PSM's ids differ from encoding the joined string with a tokenizer
#    that *does not* cut at special tokens first. What goes wrong?
# 5. **Rate** (section 5; needs `split_fim` and `format_fim`). Bavarian et al. report that FIM rates up
#    to 0.9 cost almost nothing in left-to-right perplexity. What fraction of training tokens are then predicted
#    with only left context? (Use the 2(1 - m) density.)
