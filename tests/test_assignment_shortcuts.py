"""Shortcuts and typical slips in the transformer, training, sampling, mla and moe assignments fail the test
meant to catch them, and only that test.

Run: .venv/bin/pytest tests/test_assignment_shortcuts.py -q     (about 40 s: one grading run per case)

Each case makes a student package in which every other function of the assignment is given solved,
writes one function as a student who takes the shortcut would, grades that function alone, and
checks exactly which graded tests fail. The headline case: an `attention_naive` that calls torch's
`F.scaled_dot_product_attention` computes the right numbers, and must still fail (the point of the
exercise is writing the masked softmax out); likewise an absorbed MLA that expands the cached latents into
per-head keys, and a sorted MoE dispatch that runs every expert on every token. Not a graded file: it tests
the graders.
"""

import re

import pytest

from minicoder.assignments import ASSIGNMENTS, find_regions, grade, make_student_copy

TR, TRAIN, SAMP = "tests/test_transformer_graded.py", "tests/test_training_graded.py", "tests/test_sampling_graded.py"
MLA, MOE, EXAMPLES = "tests/test_mla_graded.py", "tests/test_moe_graded.py", "tests/test_worked_examples.py"
# The right numbers by the naive route: per-head keys and values expanded from the latents the cache holds.
ABSORB_THAT_EXPANDS = """W = self.wkv_b.weight.view(self.n_heads, -1, self.kv_lora_rank)
W_UK, W_UV = W.split([self.qk_nope_head_dim, self.v_head_dim], dim=1)
if kv_cache is not None:
    c_kv, k_pe = kv_cache.update_latent(self.layer, start_pos, c_kv, k_pe)
k = torch.einsum("bsc,hnc->bhsn", c_kv, W_UK)
v = torch.einsum("bsc,hvc->bhsv", c_kv, W_UV)
scores = (q_nope @ k.transpose(-2, -1) + q_pe @ k_pe[:, None].transpose(-2, -1)) * self.softmax_scale
mask = causal_mask(q_nope.shape[2], c_kv.shape[1], start_pos, q_nope.device)
p = F.softmax(scores.masked_fill(~mask, float("-inf")).float(), dim=-1).to(q_nope.dtype)
return p @ v"""
# The right numbers by the masked route: every expert on every token, the pairs' gates as a dense matrix.
SORTED_THAT_RUNS_EVERY_EXPERT = """N, E = x.shape[0], len(self.experts)
dense = torch.zeros(N, E, dtype=weights.dtype).index_put((tokens, indices), weights, accumulate=True)
return self._forward_naive(x, dense, torch.arange(E).expand(N, E))"""


def reference_body(module: str, function: str, assignment: str) -> str:
    """The reference's solution region of `function`, dedented."""
    from minicoder.assignments import PACKAGE_DIR

    source = (PACKAGE_DIR / f"{module}.py").read_text(encoding="utf-8")
    r = next(r for r in find_regions(source, assignment) if r["function"] == function)
    return "\n".join(x[len(r["indent"]):] for x in source.splitlines()[r["begin"] + 1:r["end"]])


def fill_in(package, module: str, function: str, body: str) -> None:
    """Replace the stub of `function` in minicoder/<module>.py by `body`, as a student would."""
    path = package / "minicoder" / f"{module}.py"
    text = path.read_text(encoding="utf-8")
    stub = re.compile(rf'^(?P<indent>[ \t]*)raise NotImplementedError\("assignment [\w-]+: implement '
                      rf'{re.escape(function)} .*\n', re.M)
    m = stub.search(text)
    assert m, function
    lines = "".join(m["indent"] + line + "\n" for line in body.strip("\n").splitlines())
    path.write_text(text[:m.start()] + lines + text[m.end():], encoding="utf-8")


def sdpa_attention_forward() -> str:
    """Attention.forward that always takes torch's fused kernel, whatever attn_impl says."""
    body = reference_body("model", "Attention.forward", "transformer")
    return body.replace("attention_naive(q, k, v, mask)", "F.scaled_dot_product_attention(q, k, v, attn_mask=mask)")


CASES = {
    # name: (assignment, module, function, body, the graded tests that must fail, by name before any "[")
    "attention_naive_calls_sdpa": (
        "transformer", "model", "attention_naive", "return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)",
        {f"{TR}::test_attention_naive_equals_float64_and_sdpa"}),
    "apply_rope_naive_calls_apply_rope": (
        "transformer", "rope", "apply_rope_naive", "return apply_rope(x, cos, sin)",
        {f"{TR}::test_apply_rope_naive_equals_2x2_rotations"}),
    "naive_attention_forward_uses_sdpa": (
        "transformer", "model", "Attention.forward", None, {f"{TR}::test_attention_equals_float64_and_hf",
                                                            f"{TR}::test_attention_with_kv_cache_equals_full"}),
    "param_groups_ignore_requires_grad": (
        "training", "train", "param_groups",
        'decay = [p for p in model.parameters() if p.dim() >= 2]\n'
        'no_decay = [p for p in model.parameters() if p.dim() < 2]\n'
        'return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]',
        {f"{TRAIN}::test_param_groups_leave_frozen_parameters_out"}),
    "sample_next_ignores_the_generator": (
        "sampling", "generate", "sample_next", None, {f"{SAMP}::test_sample_next_is_repeatable_with_a_seed"}),
    "attend_absorb_expands_the_cached_latents": (
        "mla", "mla", "MLA._attend_absorb", ABSORB_THAT_EXPANDS,
        {f"{MLA}::test_attend_absorb_decodes_without_a_per_head_key_or_value"}),
    "attend_absorb_calls_attend_naive": (
        "mla", "mla", "MLA._attend_absorb", "return self._attend_naive(q_nope, q_pe, c_kv, k_pe, kv_cache, start_pos)",
        {f"{MLA}::test_attend_absorb_with_the_latent_cache_equals_float64",
         f"{MLA}::test_attend_absorb_decodes_without_a_per_head_key_or_value", f"{EXAMPLES}::test_worked_examples"}),
    "forward_sorted_runs_every_expert_on_every_token": (
        "moe", "moe", "MoE._forward_sorted", SORTED_THAT_RUNS_EVERY_EXPERT,
        {f"{MOE}::test_forward_sorted_runs_each_expert_once_on_its_own_tokens"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_shortcut_fails_the_test_meant_to_catch_it(tmp_path, case):
    assignment, module, function, body, must_fail = CASES[case]
    if case == "naive_attention_forward_uses_sdpa":
        body = sdpa_attention_forward()
    elif case == "sample_next_ignores_the_generator":
        body = reference_body("generate", "sample_next", "sampling").replace(", generator=generator", "")
        assert "generator" not in body
    part = f"{module}:{function}"
    keep = tuple(f.split(":", 1)[1] for f in ASSIGNMENTS[assignment].functions if f != part)
    make_student_copy(assignment, tmp_path, keep=keep)
    fill_in(tmp_path, module, function, body)
    lines = []
    result = grade(assignment, tmp_path, only=function, echo=lines.append)
    (row,) = result["rows"]
    failed = {r["nodeid"].split("[")[0] for r in result["records"] if r["outcome"] == "failed"}
    assert row["status"] == "failed" and failed == must_fail, "\n".join(lines)
    # only some parametrisations may fail (the sdpa branch of Attention.forward is right), never the whole row
    assert row["passed"] > 0, "\n".join(lines)
