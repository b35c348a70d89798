"""Tests for minicoder/train.py: schedule, AdamW groups, exact resume, atomic checkpoints, errors, CLI.

Run: .venv/bin/pytest tests/test_train.py -q

Everything trains a micro model (2 layers, width 32) for a few steps on a handful of standard
library files with a 300-id tokenizer, so each run takes a second or two on a CPU.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from minicoder.cli import main as cli_main
from minicoder.config import ModelConfig
from minicoder.data import default_corpus_dir, prepare_tokens
from minicoder.model import Transformer
from minicoder.tokenizer import Tokenizer
from minicoder.train import (
    TrainConfig,
    load_checkpoint,
    lr_at,
    make_optimizer,
    param_groups,
    read_metrics,
    train,
)
from minicoder.train_tiny import PARSE_HEADERS, function_body, parses

FILES = ["bisect.py", "heapq.py", "colorsys.py", "keyword.py", "fnmatch.py", "this.py"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    for name in FILES:
        (root / name).write_bytes((default_corpus_dir() / name).read_bytes())
    return root


@pytest.fixture(scope="module")
def tok(corpus) -> Tokenizer:
    return Tokenizer.train([p.read_text() for p in sorted(corpus.glob("*.py"))], vocab_size=300)


@pytest.fixture(scope="module")
def data(corpus, tok, tmp_path_factory):
    return prepare_tokens(tok, corpus, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


def micro_model(tok, **kw) -> ModelConfig:
    return ModelConfig(**{**dict(vocab_size=tok.vocab_size, n_layers=2, d_model=32, n_heads=4, n_kv_heads=2,
                                 d_ff=64, max_seq_len=32), **kw})


def micro_train(out_dir, **kw) -> TrainConfig:
    return TrainConfig(**{**dict(batch_size=4, seq_len=32, max_steps=6, lr=3e-3, warmup_steps=2, eval_interval=3,
                                 eval_iters=2, checkpoint_interval=3, log_interval=1, out_dir=str(out_dir)), **kw})


# -- schedule and optimizer ---------------------------------------------------


def test_lr_schedule_at_its_boundaries():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, max_steps=100)
    expected = {0: 0.1, 4: 0.5, 9: 1.0, 10: 1.0, 50: 1.0, 79: 1.0, 80: 0.316, 89: 0.316,
                90: 0.316**2, 99: 0.316**2}
    for step, lr in expected.items():
        assert lr_at(step, cfg) == pytest.approx(lr, rel=1e-12), step
    # DeepSeek's full-scale shape: 2000 warm-up steps; 80% and 90% of 10,000 steps
    big = TrainConfig(lr=4.2e-4, warmup_steps=2000, max_steps=10_000)
    assert lr_at(1999, big) == pytest.approx(4.2e-4) and lr_at(999, big) == pytest.approx(2.1e-4)
    assert lr_at(7999, big) == 4.2e-4 and lr_at(8000, big) == pytest.approx(4.2e-4 * 0.316)
    assert lr_at(9000, big) == pytest.approx(4.2e-4 * 0.316 * 0.316)  # ~10% of the peak
    assert lr_at(0, TrainConfig(lr=1.0, warmup_steps=0, max_steps=10)) == 1.0


def test_adamw_decays_matrices_only(tok):
    model = Transformer(micro_model(tok))
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decay_names = sorted(names[id(p)] for p in decay["params"])
    no_decay_names = sorted(names[id(p)] for p in no_decay["params"])
    assert "embed.weight" in decay_names and "head.weight" in decay_names and "layers.0.attn.wq.weight" in decay_names
    assert no_decay_names == sorted(n for n in names.values() if n.endswith("norm.weight"))  # RMSNorm gains
    assert len(decay_names) + len(no_decay_names) == len(names)
    opt = make_optimizer(model, TrainConfig(), torch.device("cpu"))
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert opt.defaults["betas"] == (0.9, 0.95)


def test_train_config_errors_say_what_to_change():
    with pytest.raises(ValueError, match="unknown training preset 'huge'; choose one of: tiny"):
        TrainConfig.from_preset("huge")
    with pytest.raises(ValueError, match="raise --max-steps"):
        TrainConfig(max_steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="increasing shares"):
        TrainConfig(decay_at=(0.9, 0.8))
    with pytest.raises(ValueError, match="unknown dtype"):
        TrainConfig(dtype="fp8")
    assert TrainConfig.from_preset("tiny", max_steps=70).max_steps == 70


# -- the loop -------------------------------------------------------------------


@pytest.mark.slow
def test_resume_gives_bitwise_equal_losses(tok, data, tmp_path):
    mc = micro_model(tok)
    straight = train(mc, micro_train(tmp_path / "a"), data, tok, progress=False)
    first = train(mc, micro_train(tmp_path / "b"), data, tok, stop_after=3, progress=False)
    assert first["step"] == 3 and first["stopped"] == "stop_after" and not first["finished"]
    second = train(mc, micro_train(tmp_path / "b"), data, tok, resume=True, progress=False)
    assert len(straight["losses"]) == 6
    assert first["losses"] + second["losses"] == straight["losses"]  # bitwise: float == float
    assert straight["losses"][-1] < straight["losses"][0]
    a, b = load_checkpoint(tmp_path / "a").model, load_checkpoint(tmp_path / "b").model
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert second["val_bpb"] == straight["val_bpb"]


def test_metrics_log_plot_and_checkpoint_contents(tok, data, tmp_path):
    summary = train(micro_model(tok), micro_train(tmp_path), data, tok, progress=False)
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    steps = [m for m in metrics if "loss" in m]
    assert [m["step"] for m in steps] == [1, 2, 3, 4, 5, 6]
    assert set(steps[0]) == {"step", "tokens", "loss", "lr", "grad_norm", "tokens_per_s"}
    assert steps[-1]["tokens"] == 6 * 4 * 32 and steps[0]["lr"] == pytest.approx(1.5e-3)
    evals = [m for m in metrics if "val_loss" in m]
    assert [m["step"] for m in evals] == [3, 6]
    n, b = len(data.splits["val"]), data.splits["val"].n_bytes
    assert evals[-1]["val_bpb"] == pytest.approx(evals[-1]["val_loss"] * n / (math.log(2) * b), rel=1e-12)
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    ckpt = tmp_path / (tmp_path / "latest").read_text().strip()
    assert ckpt.name == "ckpt-000006" and sorted(p.name for p in ckpt.iterdir()) == sorted(
        ["model.safetensors", "optimizer.pt", "rng.pt", "trainer.json", "config.json", "tokenizer.json"])
    assert [p.name for p in tmp_path.glob("ckpt*")] == ["ckpt-000006"]  # the step-3 checkpoint was replaced
    state = json.loads((ckpt / "trainer.json").read_text())
    assert state["step"] == 6 and state["finished"] and state["val_bpb"] == summary["val_bpb"]
    loaded = load_checkpoint(tmp_path)
    assert loaded.tokenizer.encode("def f(x):") == tok.encode("def f(x):")
    assert loaded.model_config == micro_model(tok) and loaded.train_config == micro_train(tmp_path)


def test_time_limit_stops_cleanly_with_a_checkpoint(tok, data, tmp_path):
    cfg = micro_train(tmp_path, max_steps=100_000, time_limit_s=2.0, checkpoint_interval=1000)
    t = time.monotonic()
    summary = train(micro_model(tok), cfg, data, tok, progress=False)
    assert time.monotonic() - t < 2.0 + 1.0  # the limit holds (with a second of slack for a loaded machine)
    assert summary["stopped"] == "time_limit" and not summary["finished"] and summary["step"] > 0
    assert load_checkpoint(tmp_path).state["step"] == summary["step"]


def test_gradient_accumulation_matches_one_big_batch(tok, data, tmp_path):
    # 2 micro-batches of 2 windows == 1 batch of 4 windows (same windows, same order); float sums differ slightly
    one = train(micro_model(tok), micro_train(tmp_path / "a", max_steps=3, batch_size=4), data, tok, progress=False)
    two = train(micro_model(tok), micro_train(tmp_path / "b", max_steps=3, batch_size=2, grad_accum=2), data, tok,
                progress=False)
    assert two["losses"] == pytest.approx(one["losses"], abs=1e-5)


# -- checkpoints: atomicity and clear errors -------------------------------------

_RESUME_SCRIPT = """
import json, sys
from minicoder.config import ModelConfig
from minicoder.data import TokenData
from minicoder.tokenizer import Tokenizer
from minicoder.train import TrainConfig, train
mc, cfg = ModelConfig.from_dict(json.loads(sys.argv[3])), TrainConfig(**json.loads(sys.argv[4]))
train(mc, cfg, TokenData.load(sys.argv[1]), Tokenizer.from_file(sys.argv[2]), resume=True, progress=False)
"""


@pytest.mark.slow
def test_sigkill_while_saving_keeps_previous_checkpoint(tok, data, tmp_path):
    mc, cfg = micro_model(tok), micro_train(tmp_path / "run", max_steps=4)
    train(mc, cfg, data, tok, stop_after=2, progress=False)
    before = {k: v.clone() for k, v in load_checkpoint(tmp_path / "run").model.state_dict().items()}
    tok.save(tmp_path / "tok.json")
    env = {**os.environ, "MINICODER_TEST_CHECKPOINT_SLEEP_S": "30"}
    proc = subprocess.Popen([sys.executable, "-c", _RESUME_SCRIPT, str(data.path), str(tmp_path / "tok.json"),
                             json.dumps(mc.to_dict()), json.dumps(asdict(cfg))], env=env)
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "run").glob("ckpt.tmp-*/model.safetensors")):  # mid-save of step 4
            assert proc.poll() is None and time.monotonic() < deadline, "the resumed run never started saving"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt.state["step"] == 2 and ckpt.path.name == "ckpt-000002"
    assert all(torch.equal(before[k], v) for k, v in ckpt.model.state_dict().items())
    # the half-written directory is ignored, and the next save cleans it up
    summary = train(mc, cfg, data, tok, resume=True, progress=False)
    assert summary["step"] == 4
    assert sorted(p.name for p in (tmp_path / "run").glob("ckpt*")) == ["ckpt-000004"]


def test_missing_checkpoint_is_one_clear_line(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at .*nowhere .*train one with `minicoder train"):
        load_checkpoint(tmp_path / "nowhere")


def test_truncated_weights_are_reported(tok, data, tmp_path):
    train(micro_model(tok), micro_train(tmp_path, max_steps=2, warmup_steps=1, eval_interval=2), data, tok, progress=False)
    weights = tmp_path / "ckpt-000002" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"model\.safetensors is corrupt or truncated \(.*\); delete this") as e:
        load_checkpoint(tmp_path)
    assert "\n" not in str(e.value)


def test_checkpoint_of_another_config_is_refused(tok, data, tmp_path):
    train(micro_model(tok), micro_train(tmp_path, max_steps=2, warmup_steps=1, eval_interval=2), data, tok, progress=False)
    other = micro_model(tok, d_model=64)
    with pytest.raises(ValueError, match=r"has another model configuration \(d_model: 32 in the checkpoint, 64 requested\)"):
        load_checkpoint(tmp_path, expect_config=other)
    with pytest.raises(ValueError, match="another model configuration"):
        train(other, micro_train(tmp_path, max_steps=4), data, tok, resume=True, progress=False)
    # attn_impl is not part of the shape: the same weights load under either path
    assert load_checkpoint(tmp_path, expect_config=micro_model(tok, attn_impl="naive"), attn_impl="naive")


def test_existing_run_needs_resume_and_resume_needs_a_run(tok, data, tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no checkpoint; drop --resume"):
        train(micro_model(tok), micro_train(tmp_path), data, tok, resume=True, progress=False)
    train(micro_model(tok), micro_train(tmp_path, max_steps=2, warmup_steps=1, eval_interval=2), data, tok, progress=False)
    with pytest.raises(ValueError, match="already holds a checkpoint .*pass --resume"):
        train(micro_model(tok), micro_train(tmp_path, max_steps=2, warmup_steps=1), data, tok, progress=False)


# -- the parse check and the command line ----------------------------------------


def test_function_body_and_parse_check():
    assert function_body("\n    return a + b\n\nprint(1)\n", True) == "\n    return a + b\n"
    assert function_body("\n    x = 1\n\n    return x\n", True) == "\n    x = 1\n"  # a blank line ends it
    assert function_body("\n    x = 1\n    return x", True) == "\n    x = 1\n    return x\n"
    assert function_body("\n    return a +", True) == "\n    return a +\n"
    assert function_body("\n    x = 1\n    return a +", False) == "\n    x = 1\n"  # cut for length
    assert parses("def add(a, b):", "\n    return a + b\n\nclass Broken(:\n", True)
    assert not parses("def add(a, b):", "\n    return a +", True)
    assert parses("def add(a, b):", "\n    x = a\n    return x + (b", False)  # the cut line is dropped
    assert not parses("def add(a, b):", "\nreturn a\n", True)  # empty body
    assert len(PARSE_HEADERS) == 20 and all(h.startswith("def ") and h.endswith(":") for h in PARSE_HEADERS)


@pytest.mark.slow
def test_cli_trains_and_errors_are_one_line(corpus, tmp_path, capsys):
    common = ["--corpus", str(corpus), "--vocab-size", "300", "--cache-dir", str(tmp_path / "cache"),
              "--out", str(tmp_path / "run"), "--no-progress"]
    tiny = ["--batch-size", "2", "--seq-len", "16", "--max-steps", "2", "--warmup-steps", "1", "--eval-iters", "1"]
    assert cli_main(["train", *common, *tiny]) == 0
    assert "validation" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "run").state["step"] == 2
    assert cli_main(["train", *common, *tiny]) == 1  # a run exists and --resume is missing
    err = capsys.readouterr().err.strip()
    assert err.startswith("minicoder train: error:") and "pass --resume" in err and "\n" not in err
    assert cli_main(["train", *common, "--model", "nonexistent", *tiny]) == 1
    assert "unknown preset 'nonexistent'" in capsys.readouterr().err


_DDP_SCRIPT = """
import json, os, sys
from minicoder.config import ModelConfig
from minicoder.data import TokenData
from minicoder.tokenizer import Tokenizer
from minicoder.train import TrainConfig, train
mc, cfg = ModelConfig.from_dict(json.loads(sys.argv[3])), TrainConfig(**json.loads(sys.argv[4]))
summary = train(mc, cfg, TokenData.load(sys.argv[1]), Tokenizer.from_file(sys.argv[2]), progress=False)
if os.environ["RANK"] == "0":
    open(sys.argv[5], "w").write(json.dumps(summary["losses"]))
"""


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_matches_one_process(tok, data, tmp_path):
    # torchrun, gloo backend: 2 ranks x 1 micro-batch each == 1 process x 2 micro-batches (same windows);
    # only the order of the float sums differs (DDP averages gradients, accumulation sums halves).
    mc = micro_model(tok)
    one = train(mc, micro_train(tmp_path / "one", max_steps=3, grad_accum=2), data, tok, progress=False)
    cfg = micro_train(tmp_path / "ddp", max_steps=3, grad_accum=2)
    tok.save(tmp_path / "tok.json")
    script = tmp_path / "ddp.py"
    script.write_text(_DDP_SCRIPT)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    str(script), str(data.path), str(tmp_path / "tok.json"), json.dumps(mc.to_dict()),
                    json.dumps(asdict(cfg)), str(tmp_path / "losses.json")],
                   check=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert json.loads((tmp_path / "losses.json").read_text()) == pytest.approx(one["losses"], abs=1e-5)
    assert load_checkpoint(tmp_path / "ddp").state["world_size"] == 2


def test_sample_report_runs_the_parse_check_on_twenty_headers(tok, data, tmp_path):
    from minicoder.train_tiny import sample_report

    mc = micro_model(tok, max_seq_len=128)  # the FIM prompt is ~60 tokens with this 300-id tokenizer
    train(mc, micro_train(tmp_path, max_steps=2, warmup_steps=1, eval_interval=2), data, tok, progress=False)
    model, tokenizer, *_ = load_checkpoint(tmp_path)
    report = sample_report(model, tokenizer, seed=3, max_new_tokens=6)
    again = sample_report(model, tokenizer, seed=3, max_new_tokens=6)
    assert report == again  # seeded
    assert report["parse_total"] == 20 and report["parse_ok"] == sum(r["parses"] for r in report["parse_results"])
    assert [r["header"] for r in report["parse_results"]] == list(PARSE_HEADERS)
    assert isinstance(report["fibonacci"], str) and isinstance(report["fim"]["middle"], str)
