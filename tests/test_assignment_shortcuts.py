"""Shortcuts and typical slips in the transformer, training and sampling assignments fail the test meant
to catch them, and only that test.

Run: .venv/bin/pytest tests/test_assignment_shortcuts.py -q     (about 40 s: one grading run per case)

Each case makes a student package in which every other function of the assignment is given solved,
writes one function as a student who takes the shortcut would, grades that function alone, and
checks exactly which graded tests fail. The headline case: an `attention_naive` that calls torch's
`F.scaled_dot_product_attention` computes the right numbers, and must still fail (the point of the
exercise is writing the masked softmax out). Not a graded file: it tests the graders.
"""

import re

import pytest

from minicoder.assignments import ASSIGNMENTS, find_regions, grade, make_student_copy

TR, TRAIN, SAMP = "tests/test_transformer_graded.py", "tests/test_training_graded.py", "tests/test_sampling_graded.py"


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
