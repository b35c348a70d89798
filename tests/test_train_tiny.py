"""Tests for minicoder/train_tiny.py, the `make train-tiny` recipe.

Run: .venv/bin/pytest tests/test_train_tiny.py -q

The end-to-end test runs the real command on the real default corpus (this Python's standard
library) with `--max-steps 0`: the tokenizer, the repository-level pipeline, the full-split
evaluation and the samples, everything but the training steps.
"""

import json

import pytest

from minicoder.cli import main as cli_main
from minicoder.config import ModelConfig
from minicoder.train import TrainConfig
from minicoder.train_tiny import PARSE_HEADERS, function_body, parses, plan_steps


def test_plan_steps_keeps_the_preset_when_it_fits_and_shrinks_it_when_not():
    model_config = ModelConfig.from_preset("tiny", vocab_size=300, n_layers=1, d_model=32, n_heads=2,
                                           n_kv_heads=1, d_ff=64, max_seq_len=32)
    cfg = TrainConfig.from_preset("tiny", batch_size=2, seq_len=32, max_steps=50, warmup_steps=5)
    steps, per_step = plan_steps(model_config, cfg, seconds=3600.0)
    assert steps == 50 and 0 < per_step < 10
    steps, per_step = plan_steps(model_config, cfg, seconds=10 * per_step)
    assert 1 <= steps < 50
    # the slack: a machine up to 15% too slow keeps the preset's steps (and the time limit guards it)
    steps, _ = plan_steps(model_config, cfg, seconds=50 * per_step / 1.1, slack=10.0)
    assert steps == 50


def test_function_body_ends_where_python_ends_a_top_level_def():
    assert function_body("\n    return a + b\n\nprint(1)\n", True) == "\n    return a + b\n"
    # a blank line inside the body (between statements, or in a docstring) belongs to it
    assert function_body("\n    x = 1\n\n    return x\n", True) == "\n    x = 1\n\n    return x\n"
    doc = '\n    """One line.\n\n    More.\n    """\n    return 1\n\nclass C:\n'
    assert function_body(doc, True) == doc[:doc.index("\n\nclass")] + "\n"
    assert parses("def f():", doc, True) and not parses("def f():", doc, True, rule="blank-line")
    assert function_body("\n    x = 1\n    return x", True) == "\n    x = 1\n    return x\n"
    assert function_body("\n    return a +", True) == "\n    return a +\n"
    assert function_body("\n    x = 1\n    return a +", False) == "\n    x = 1\n"  # cut for length
    assert parses("def add(a, b):", "\n    return a + b\n\nclass Broken(:\n", True)
    assert not parses("def add(a, b):", "\n    return a +", True)
    assert parses("def add(a, b):", "\n    x = a\n    return x + (b", False)  # the cut line is dropped
    assert not parses("def add(a, b):", "\nreturn a\n", True)  # empty body
    assert len(PARSE_HEADERS) == 20 and all(h.startswith("def ") and h.endswith(":") for h in PARSE_HEADERS)


def test_the_blank_line_rule_is_the_old_judge_and_rules_are_checked():
    assert function_body("\n    x = 1\n\n    return x\n", True, rule="blank-line") == "\n    x = 1\n"
    assert function_body("\n    return a + b\n\nprint(1)\n", True, rule="blank-line") == "\n    return a + b\n"
    with pytest.raises(ValueError, match="unknown rule"):
        function_body("\n    pass\n", True, rule="dedent")


@pytest.mark.slow
def test_train_tiny_with_zero_steps_scores_the_whole_validation_split(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli_main(["train-tiny", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--max-steps", "0",
                     "--no-progress"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["step"] == 0 and report["tokens"] == 0  # --max-steps 0 means zero, not "the preset's"
    trainer = json.loads((out / (out / "latest").read_text().strip() / "trainer.json").read_text())
    # every validation token but the first is scored once; an untrained model is near uniform over 4,096+ ids
    assert report["val_tokens_scored"] == trainer["val_tokens_full"] > 100_000
    assert 3.0 < report["val_bpb_full"] < 5.0
    assert f"{report['val_bpb_full']:.3f} bits per byte" in printed
    assert set(report["timings"]) == {"tokenizer_s", "tokens_s", "training_s", "evaluation_s", "samples_s", "total_s"}
    assert report["parse_total"] == 20
