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
from minicoder.train import TrainConfig, fit_steps_to_time, lr_at
from minicoder.train_tiny import PARSE_HEADERS, function_body, parses


def test_fit_steps_to_time_shortens_only_while_the_first_drop_is_ahead():
    cfg = TrainConfig.from_preset("tiny", max_steps=3000, warmup_steps=40)
    # the docstring's example: 100 steps in 60 s, 300 s left -> 450 more fit in 90% of it
    assert fit_steps_to_time(cfg, 100, 100, 60.0, 300.0, 3000).max_steps == 550
    assert fit_steps_to_time(cfg, 100, 100, 60.0, 300.0, 3000, margin=1.0).max_steps == 600
    assert fit_steps_to_time(cfg, 100, 100, 5.0, 300.0, 3000) is cfg  # fast enough: unchanged
    late = fit_steps_to_time(cfg, 2400, 2400, 2400.0, 10.0, 3000)  # at the first drop (80% of 3000): too late
    assert late is cfg
    # a pace that fits almost nothing still keeps the first drop ahead of the current step
    short = fit_steps_to_time(cfg, 200, 200, 200.0, 1.0, 3000)
    assert short.max_steps == 251 and round(0.8 * short.max_steps) > 200
    assert lr_at(199, short) == lr_at(199, cfg)  # the schedule so far is unchanged
    # the pace picks up again: the plan grows back, never past the steps first planned
    assert fit_steps_to_time(short, 200, 200, 20.0, 100.0, 3000).max_steps == 1100
    assert fit_steps_to_time(short, 200, 200, 2.0, 100.0, 3000).max_steps == 3000
    assert fit_steps_to_time(cfg, 0, 0, 0.0, 100.0, 3000) is cfg  # no pace measured yet


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    """A 300-id tokenizer and the token files of six small stdlib modules."""
    from minicoder.data import default_corpus_dir, prepare_tokens
    from minicoder.tokenizer import Tokenizer

    root = tmp_path_factory.mktemp("corpus")
    for name in ("bisect.py", "heapq.py", "colorsys.py", "keyword.py", "fnmatch.py", "this.py"):
        (root / name).write_bytes((default_corpus_dir() / name).read_bytes())
    tokenizer = Tokenizer.train([p.read_text() for p in sorted(root.glob("*.py"))], vocab_size=300)
    data = prepare_tokens(tokenizer, root, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    return {"tok": tokenizer, "data": data}


def test_a_time_limited_run_fits_its_whole_schedule(tok, tmp_path):
    """With fit_to_time_limit a run planned far too long is shortened so that its learning rate drops
    (without it, the limit would stop it at the peak rate); normally it ends at the shortened max_steps."""
    from minicoder.train import train

    model_config = ModelConfig.from_preset("tiny", vocab_size=tok["tok"].vocab_size, n_layers=1, d_model=32, n_heads=2,
                                           n_kv_heads=1, d_ff=64, max_seq_len=32)
    cfg = TrainConfig.from_preset("tiny", batch_size=2, seq_len=32, max_steps=100_000, warmup_steps=5,
                                  eval_interval=50, eval_iters=1, checkpoint_interval=10_000, log_interval=5,
                                  time_limit_s=8.0, fit_to_time_limit=True, out_dir=str(tmp_path / "run"))
    summary = train(model_config, cfg, tok["data"], tok["tok"], progress=False)
    state = json.loads((tmp_path / "run" / (tmp_path / "run" / "latest").read_text().strip()
                        / "trainer.json").read_text())
    planned = state["train_config"]["max_steps"]
    assert planned < 100_000, "the run was never shortened"
    assert summary["step"] > round(0.8 * planned), (summary["stopped"], summary["step"], planned)  # past the first drop
    assert summary["stopped"] in (None, "time_limit")
    assert planned > 5 and state["val_bpb_full"] is not None


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
