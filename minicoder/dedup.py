"""Near-deduplication with MinHash and locality-sensitive hashing (LSH).

DeepSeek-Coder (2024), section 2.3, "Repo-Level Deduplication": near-duplicate code is removed before
training, at the level of whole repositories (a repository's files are concatenated into one text, then
near-duplicate texts are dropped), so that no file is ever cut out of a repository it belongs to. This
module works on any list of texts; `minicoder prepare` passes one text per repository (its ordered
samples joined) and keeps or drops repositories whole; the `minicoder dedup` command compares files. The recipe is the one BigCode used
for The Stack, which the paper does not spell out further:

    tokens    = re.findall(r"\\w+", text)                    identifiers, keywords, numbers; no punctuation
    shingles  = {" ".join(tokens[i:i+5])}                   the set of 5-grams of tokens
    x         = first 4 bytes of sha1(shingle), little-endian  a 32-bit base hash
    h_k(x)    = ((a_k * x + b_k) mod (2^61 - 1)) & (2^32 - 1)  k = 1..256, random a_k, b_k
    sig[k]    = min over shingles of h_k(x)
    P(sig_A[k] == sig_B[k]) = Jaccard(A, B)                   so the fraction of equal rows estimates it

LSH cuts the 256 rows into b bands of r rows and puts documents that agree on a whole band into the same
bucket; two documents with Jaccard s share at least one bucket with probability 1 - (1 - s^r)^b, an
S-curve that rises around the threshold. (b, r) minimises the area under that curve below the threshold
(false positives) plus the area above it it misses (false negatives), as datasketch's `_optimal_param`
does; like datasketch it searches b * r <= num_perm, which for threshold 0.7 and 256 rows gives
b=25, r=10 and leaves 6 rows unused in banding (they still count in verification).

Candidates that share a bucket are *verified*: they are joined only if their estimated Jaccard over all
num_perm rows is >= threshold (BigCode joins every bucket without checking). Joined documents form
clusters by union-find (transitive: A~B and B~C puts A, B, C together), and each cluster keeps its
first document (lowest index). A naive path (`method="naive"`) computes exact Jaccard for all pairs
instead; it is O(n^2) and exists to check the fast path.

The permutation keeps a_k, b_k < 2^32, so with x < 2^32 the product a_k * x + b_k < 2^64 is exact in
uint64 (BigCode's numpy code draws a_k up to 2^61 and silently wraps around 2^64).

Left out: the exact-hash deduplication that usually runs first (identical texts also come out here, as
clusters of Jaccard 1), lower-casing or normalising the text, and storing the index on disk.
"""

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

CODE_TOKEN = re.compile(r"\w+")  # runs of letters, digits and "_": BigCode's split on non-alphanumerics
MERSENNE_PRIME = (1 << 61) - 1
MAX_HASH = (1 << 32) - 1  # also the signature of a document with no tokens
METHODS = ("lsh", "naive")
_BATCH_SHINGLES = 4096  # shingles permuted per numpy batch: a (256, 4096) uint64 block is 8 MB


# -----------------------------------------------------------------------------
# Shingles and exact Jaccard


def shingles(text: str, ngram_size: int = 5) -> set[str]:
    """The set of `ngram_size`-grams of code tokens, each joined by one space.

    Tokens are the matches of CODE_TOKEN (runs of letters, digits and "_"). A text with fewer tokens
    than `ngram_size` gives one shingle of all its tokens; a text with no tokens gives the empty set.

    >>> sorted(shingles("x = f(a, b, c)", 3))
    ['a b c', 'f a b', 'x f a']
    >>> shingles("x = f(a)", 5), shingles("  () + -", 5)
    ({'x f a'}, set())
    """
    # BEGIN ASSIGNMENT dedup
    tokens = CODE_TOKEN.findall(text)
    if len(tokens) <= ngram_size:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i : i + ngram_size]) for i in range(len(tokens) - ngram_size + 1)}
    # END ASSIGNMENT


def _jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 1.0  # two token-less texts are the same (empty) document
    return len(a & b) / len(a | b)


def exact_jaccard(text_a: str, text_b: str, ngram_size: int = 5) -> float:
    """Jaccard similarity |A & B| / |A | B| of the two texts' shingle sets (1.0 for two token-less texts)."""
    _check_ngram_size(ngram_size)
    return _jaccard(shingles(text_a, ngram_size), shingles(text_b, ngram_size))


# -----------------------------------------------------------------------------
# MinHash signatures


def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 1 << 32, size=num_perm, dtype=np.uint64)  # (num_perm,)
    b = rng.integers(0, 1 << 32, size=num_perm, dtype=np.uint64)  # (num_perm,)
    return a, b


def _base_hashes(shingle_set: set[str]) -> np.ndarray:
    """32-bit base hash of each shingle: the first 4 bytes of its sha1, little-endian, as BigCode and
    datasketch do. Returns (S,) uint64."""
    sha1 = hashlib.sha1
    digests = b"".join([sha1(s.encode("utf-8")).digest()[:4] for s in shingle_set])
    return np.frombuffer(digests, dtype="<u4").astype(np.uint64)  # (S,)


def universal_hash(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """h_k(x) = ((a_k * x + b_k) mod (2^61 - 1)) & (2^32 - 1) for every shingle and permutation.

    x: (S,) base hashes < 2^32; a, b: (num_perm,) < 2^32; returns (num_perm, S) uint64, with shingles
    along the contiguous axis (the per-document `reduceat` below is ~10x slower along axis 0 of the
    transpose). a * x + b < 2^64 is exact in uint64. numpy's 64-bit `%` is slow, so the mod uses
    2^61 = 1 (mod p) instead:
    y mod p = (y & p) + (y >> 61), less p if that is still >= p; and as p = 2^61 - 1, subtracting p
    only adds 1 to the low 32 bits that are kept. About 2x faster than `% MERSENNE_PRIME`, same values.

    >>> x = np.array([0, 1, 2**32 - 1], dtype=np.uint64)
    >>> a, b = np.array([1, 2**30], dtype=np.uint64), np.array([5, 2**30 - 1], dtype=np.uint64)
    >>> universal_hash(x, a, b)  # row k: ((a_k * x + b_k) mod (2^61 - 1)) & (2^32 - 1)
    array([[         5,          6,          4],
           [1073741823, 2147483647,          1]], dtype=uint64)
    """
    # BEGIN ASSIGNMENT dedup
    p = np.uint64(MERSENNE_PRIME)
    y = a[:, None] * x[None, :]  # (num_perm, S)
    y += b[:, None]
    high = y >> np.uint64(61)
    y &= p
    y += high  # y mod p, or y mod p + p when that is still >= p
    y += y >= p
    y &= np.uint64(MAX_HASH)
    return y
    # END ASSIGNMENT


def minhash_signature_naive(text: str, num_perm: int = 256, seed: int = 1, ngram_size: int = 5) -> np.ndarray:
    """MinHash signature of one text, one shingle and one permutation at a time in Python integers.

    The module docstring's recipe, literally: for each shingle of `shingles(text, ngram_size)`, its base
    hash x (the first 4 bytes of sha1 of its UTF-8, little-endian); for each k of the permutations
    (a_k, b_k) = `_permutations(num_perm, seed)`, h_k(x) = ((a_k * x + b_k) mod (2^61 - 1)) & (2^32 - 1);
    sig[k] is the minimum over shingles, MAX_HASH when there is none. Returns (num_perm,) uint32.
    O(num_perm * shingles) Python operations: the obviously correct path `minhash_signatures` must equal.

    >>> minhash_signature_naive("x = f(a, b, c)", num_perm=4, ngram_size=3)
    array([ 766951152, 1362639904, 1574279344, 1292491160], dtype=uint32)
    >>> minhash_signature_naive("", num_perm=2).tolist() == [MAX_HASH, MAX_HASH]
    True
    """
    _check_num_perm(num_perm)
    _check_ngram_size(ngram_size)
    # BEGIN ASSIGNMENT dedup
    a, b = (v.tolist() for v in _permutations(num_perm, seed))  # Python ints: no overflow to think about
    sig = [MAX_HASH] * num_perm
    for shingle in shingles(text, ngram_size):
        x = int.from_bytes(hashlib.sha1(shingle.encode("utf-8")).digest()[:4], "little")
        for k in range(num_perm):
            sig[k] = min(sig[k], ((a[k] * x + b[k]) % MERSENNE_PRIME) & MAX_HASH)
    return np.array(sig, dtype=np.uint32)
    # END ASSIGNMENT


def minhash_signatures(
    texts: Iterable[str], num_perm: int = 256, seed: int = 1, ngram_size: int = 5
) -> np.ndarray:
    """MinHash signatures of many texts at once, shape (n, num_perm), dtype uint32.

    Row i equals `minhash_signature_naive(texts[i], num_perm, seed, ngram_size)` (a text with no tokens:
    all MAX_HASH), but no Python loop runs per shingle and permutation: the base hashes of a text's
    shingles (`_base_hashes`, one sha1 each) are permuted by `universal_hash`, num_perm at a time, in
    numpy. The reference batches the shingles of many documents into one call (about 4,096 shingles,
    _BATCH_SHINGLES) and takes each document's minimum with `np.minimum.reduceat`, so the cost is
    linear in the total number of shingles and numpy's per-call overhead is paid per batch, not per
    text. The grader times it against a pure-Python pass over the same shingles.

    >>> sig = minhash_signatures(["x = f(a, b, c)", "", "x = f(a, b, c)"], num_perm=4, ngram_size=3)
    >>> sig
    array([[ 766951152, 1362639904, 1574279344, 1292491160],
           [4294967295, 4294967295, 4294967295, 4294967295],
           [ 766951152, 1362639904, 1574279344, 1292491160]], dtype=uint32)
    """
    _check_num_perm(num_perm)
    _check_ngram_size(ngram_size)
    # BEGIN ASSIGNMENT dedup
    a, b = _permutations(num_perm, seed)
    texts = list(texts)
    sig = np.full((len(texts), num_perm), MAX_HASH, dtype=np.uint32)  # (n, num_perm)

    def flush(rows: list[int], hashes: list[np.ndarray]) -> None:
        x = np.concatenate(hashes)  # (S,) all shingles of the batch
        starts = np.cumsum([0] + [len(h) for h in hashes[:-1]])  # (D,) first shingle of each document
        sig[rows] = np.minimum.reduceat(universal_hash(x, a, b), starts, axis=1).T  # (D, num_perm)

    rows, hashes, pending = [], [], 0
    for i, text in enumerate(texts):
        x = _base_hashes(shingles(text, ngram_size))
        if len(x) == 0:
            continue  # no tokens: keeps the all-MAX_HASH signature
        rows.append(i)
        hashes.append(x)
        pending += len(x)
        if pending >= _BATCH_SHINGLES:
            flush(rows, hashes)
            rows, hashes, pending = [], [], 0
    if rows:
        flush(rows, hashes)
    return sig
    # END ASSIGNMENT


def minhash_signature(text: str, num_perm: int = 256, seed: int = 1, ngram_size: int = 5) -> np.ndarray:
    """MinHash signature of one text, shape (num_perm,), dtype uint32 (see the module docstring)."""
    return minhash_signatures([text], num_perm=num_perm, seed=seed, ngram_size=ngram_size)[0]


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Estimated Jaccard similarity: the fraction of signature rows on which the two agree."""
    sig_a, sig_b = np.asarray(sig_a), np.asarray(sig_b)
    if sig_a.shape != sig_b.shape or sig_a.ndim != 1:
        raise ValueError(
            f"signatures must be 1-D and of equal length, got shapes {sig_a.shape} and {sig_b.shape}; "
            "make both with the same num_perm"
        )
    return float(np.mean(sig_a == sig_b))


# -----------------------------------------------------------------------------
# LSH parameters: bands b and rows per band r


def _simpson(y: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Composite Simpson's rule over the last axis; y is sampled at np.linspace(lo, hi, odd count)."""
    h = (hi - lo) / (y.shape[-1] - 1)
    return h / 3 * (y[..., 0] + y[..., -1] + 4 * y[..., 1:-1:2].sum(-1) + 2 * y[..., 2:-1:2].sum(-1))


def optimal_bands_rows(
    threshold: float, num_perm: int = 256, false_positive_weight: float = 0.5, points: int = 2001
) -> tuple[int, int]:
    """The (b, r) with b * r <= num_perm that minimises the weighted false positive + negative areas.

    P(candidate | Jaccard s) = 1 - (1 - s^r)^b. False positive area: its integral over s in [0, t];
    false negative area: the integral of 1 - P over [t, 1]. The error is false_positive_weight * fp +
    (1 - false_positive_weight) * fn. Candidates run b = 1, 2, ..., num_perm and, for each b, r = 1 ..
    num_perm // b (datasketch's `_optimal_param` order); the first with the smallest error wins. The
    reference integrates every (b, r) at once by Simpson's rule (`_simpson`) on `points` samples.

    >>> optimal_bands_rows(0.7, 256)
    (25, 10)
    >>> optimal_bands_rows(0.5, 128)
    (25, 5)
    """
    _check_threshold(threshold)
    _check_num_perm(num_perm)
    # BEGIN ASSIGNMENT dedup
    pairs = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)])  # (K, 2)
    b = pairs[:, 0:1].astype(np.float64)  # (K, 1)
    r = pairs[:, 1:2].astype(np.float64)  # (K, 1)
    s_lo = np.linspace(0.0, threshold, points)[None, :]  # (1, points)
    s_hi = np.linspace(threshold, 1.0, points)[None, :]  # (1, points)
    fp = _simpson(1 - (1 - s_lo**r) ** b, 0.0, threshold)  # (K,)
    fn = _simpson((1 - s_hi**r) ** b, threshold, 1.0)  # (K,)
    error = false_positive_weight * fp + (1 - false_positive_weight) * fn  # (K,)
    best = int(np.argmin(error))  # the first minimum, in datasketch's search order
    return int(pairs[best, 0]), int(pairs[best, 1])
    # END ASSIGNMENT


# -----------------------------------------------------------------------------
# LSH banding


def lsh_buckets(sig: np.ndarray, bands: int, rows: int) -> list[list[int]]:
    """LSH banding: the groups of documents whose signatures agree on a whole band.

    sig is (n, num_perm) with bands * rows <= num_perm; band k is columns k*rows .. (k+1)*rows - 1
    (the columns after bands * rows are not used). For each band in turn, the documents with the same
    values on all of its columns share a bucket. Returns every bucket of two or more documents: band by
    band, and within a band ordered by first member; each bucket lists its indices in ascending order.
    Every pair inside a bucket is a candidate pair; the buckets, not the pairs, are returned, because a
    bucket of k copies holds k(k-1)/2 pairs. The reference turns each document's band into one bytes
    key (a numpy void view of the (n, rows) block) and groups keys with a dict.

    >>> sig = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [0, 2, 3, 4], [1, 2, 3, 4]], dtype=np.uint32)
    >>> lsh_buckets(sig, bands=2, rows=2)  # band 0 = columns 0-1, band 1 = columns 2-3
    [[0, 1, 3], [0, 2, 3]]
    >>> lsh_buckets(sig, bands=1, rows=3)
    [[0, 3]]
    """
    if bands * rows > sig.shape[1]:
        raise ValueError(f"bands * rows = {bands * rows} exceeds the signature's {sig.shape[1]} rows")
    # BEGIN ASSIGNMENT dedup
    sig = np.ascontiguousarray(sig, dtype=np.uint32)
    found = []
    for band in range(bands):
        # each document's r rows of this band as one bytes key: (n, r) uint32 -> n keys of 4r bytes
        block = np.ascontiguousarray(sig[:, band * rows : (band + 1) * rows])  # (n, r)
        keys = block.view(np.dtype((np.void, 4 * rows))).ravel().tolist()  # n bytes objects
        buckets: dict[bytes, list[int]] = defaultdict(list)
        for i, key in enumerate(keys):
            buckets[key].append(i)
        found += [members for members in buckets.values() if len(members) > 1]
    return found
    # END ASSIGNMENT


# -----------------------------------------------------------------------------
# Clusters


class _UnionFind:
    """Disjoint sets over 0..n-1 whose root is always the set's lowest index."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]  # path halving
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def _join_bucket(members: list[int], sig: np.ndarray, threshold: float, uf: _UnionFind) -> None:
    """Verify and join the documents of one LSH bucket.

    Each member is compared with one representative ("head") of every cluster met so far in this
    bucket, not with every member, so a bucket of k copies costs k comparisons rather than k^2 / 2.
    """
    heads: list[int] = []
    for j in members:
        joined = False
        for i in heads:
            if uf.find(i) == uf.find(j) or estimate_jaccard(sig[i], sig[j]) >= threshold:
                uf.union(i, j)
                joined = True
        if not joined:
            heads.append(j)


def near_duplicate_clusters(
    texts: Iterable[str],
    threshold: float = 0.7,
    *,
    method: str = "lsh",
    num_perm: int = 256,
    ngram_size: int = 5,
    seed: int = 1,
) -> list[list[int]]:
    """Clusters of near-duplicate texts, as lists of indices into `texts`.

    Only clusters of two or more texts are returned (a text with no near-duplicate appears in none);
    each cluster is sorted, and clusters are sorted by their first index.

    Args:
        texts: the documents (one per repository for repository-level deduplication).
        threshold: Jaccard similarity of shingle sets at or above which two texts are near-duplicates,
            strictly between 0 and 1.
        method: "lsh" (MinHash, banding, verification by estimated Jaccard; linear time) or "naive"
            (exact Jaccard of every pair; quadratic, for checking).
        num_perm: MinHash rows ("lsh" only).
        ngram_size: tokens per shingle.
        seed: seed of the MinHash permutations ("lsh" only).
    """
    _check_threshold(threshold)
    _check_ngram_size(ngram_size)
    if method not in METHODS:
        raise ValueError(f"unknown dedup method {method!r}; choose one of: {', '.join(METHODS)}")
    texts = list(texts)
    n = len(texts)
    uf = _UnionFind(n)
    if method == "naive":
        sets = [shingles(t, ngram_size) for t in texts]
        for i in range(n):
            for j in range(i + 1, n):
                if _jaccard(sets[i], sets[j]) >= threshold:
                    uf.union(i, j)
    else:
        sig = minhash_signatures(texts, num_perm=num_perm, seed=seed, ngram_size=ngram_size)  # (n, num_perm)
        bands, rows = optimal_bands_rows(threshold, num_perm)
        for members in lsh_buckets(sig, bands, rows):
            _join_bucket(members, sig, threshold, uf)
    clusters: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        clusters[uf.find(i)].append(i)
    return sorted((c for c in clusters.values() if len(c) > 1), key=lambda c: c[0])


def deduplicate(texts: Iterable[str], threshold: float = 0.7, **kwargs) -> tuple[list[int], list[int]]:
    """Keep the first text of every near-duplicate cluster: returns (kept_indices, removed_indices).

    Both lists are sorted; together they cover range(len(texts)). kwargs go to near_duplicate_clusters.
    """
    texts = list(texts)
    clusters = near_duplicate_clusters(texts, threshold, **kwargs)
    removed = sorted(i for cluster in clusters for i in cluster[1:])
    dropped = set(removed)
    kept = [i for i in range(len(texts)) if i not in dropped]
    return kept, removed


# -----------------------------------------------------------------------------
# Argument checks


def _check_threshold(threshold: float) -> None:
    if not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be a number strictly between 0 and 1, got {threshold!r}; try 0.7")


def _check_num_perm(num_perm: int) -> None:
    if not isinstance(num_perm, int) or num_perm < 2:
        raise ValueError(f"num_perm must be an integer >= 2, got {num_perm!r}; BigCode uses 256")


def _check_ngram_size(ngram_size: int) -> None:
    if not isinstance(ngram_size, int) or ngram_size < 1:
        raise ValueError(f"ngram_size must be an integer >= 1, got {ngram_size!r}; BigCode uses 5")


# -----------------------------------------------------------------------------
# Command line: minicoder dedup


# The parser is in minicoder/cli.py, which loads this module only when the command runs.


def _cli_dedup(args) -> int:
    from pathlib import Path

    from minicoder.corpus import CORPUS_EXCLUDE, list_source_files

    root = Path(args.root)
    if not root.is_dir():
        raise NotADirectoryError(f"not a directory: {root}")
    rels = list_source_files(root, args.ext, CORPUS_EXCLUDE)
    texts = [(root / rel).read_text(encoding="utf-8", errors="replace") for rel in rels]
    clusters = near_duplicate_clusters(texts, args.threshold, method=args.method)
    if not args.quiet:
        for c in clusters:
            print(f"keep {rels[c[0]]}, drop " + ", ".join(rels[i] for i in c[1:]))
    removed = sum(len(c) - 1 for c in clusters)
    print(f"{len(rels)} {args.ext} files under {root}: {len(clusters)} near-duplicate clusters, "
          f"{removed} files to drop at Jaccard >= {args.threshold}")
    return 0
