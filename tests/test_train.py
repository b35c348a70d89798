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

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minicoder.cli import main as cli_main
from minicoder.config import ModelConfig
from minicoder.data import default_corpus_dir, prepare_tokens
from minicoder.model import Transformer
from minicoder.tokenizer import Tokenizer
from minicoder.train import (
    TRAIN_PRESET_MODELS,
    TRAIN_PRESETS,
    TrainConfig,
    TrainingInterrupted,
    evaluate_split,
    load_checkpoint,
    lr_at,
    make_optimizer,
    param_groups,
    read_metrics,
    train,
)
from minicoder.train_tiny import PARSE_HEADERS

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
    assert set(steps[0]) == {"step", "tokens", "loss", "lr", "grad_norm", "tokens_per_s", "flops_per_s"}
    assert steps[-1]["tokens"] == 6 * 4 * 32 and steps[0]["lr"] == pytest.approx(1.5e-3)
    evals = [m for m in metrics if "val_loss" in m]
    assert [m["step"] for m in evals] == [3, 6]
    n, b = len(data.splits["val"]), data.splits["val"].n_bytes
    assert evals[-1]["val_bpb"] == pytest.approx(evals[-1]["val_loss"] * n / (math.log(2) * b), rel=1e-12)
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    ckpt = tmp_path / (tmp_path / "latest").read_text().strip()
    assert ckpt.name == "ckpt-000006" and sorted(p.name for p in ckpt.iterdir()) == sorted(
        ["model.safetensors", "optimizer.pt", "rng.pt", "trainer.json", "config.json", "tokenizer.json"])
    assert sorted(p.name for p in tmp_path.glob("ckpt*")) == ["ckpt-000003", "ckpt-000006"]  # --keep 2
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
    assert sorted(p.name for p in (tmp_path / "run").glob("ckpt*")) == ["ckpt-000003", "ckpt-000004"]  # --keep 2


def test_missing_checkpoint_is_one_clear_line(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at .*nowhere .*train one with `minicoder train"):
        load_checkpoint(tmp_path / "nowhere")


def test_truncated_weights_are_reported(tok, data, tmp_path):
    train(micro_model(tok), micro_train(tmp_path, max_steps=2, warmup_steps=1, eval_interval=2), data, tok, progress=False)
    weights = tmp_path / "ckpt-000002" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"model\.safetensors is corrupt or truncated \(.*\); no earlier checkpoint "
                                         r"is kept in .*; retrain") as e:
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
    assert cli_main(["train", *common, "--out", str(tmp_path / "other"), "--model", "nonexistent", *tiny]) == 1
    assert "unknown model preset 'nonexistent' (--model)" in capsys.readouterr().err


_DDP_SCRIPT = """
import json, os, sys
from minicoder.config import ModelConfig
from minicoder.data import TokenData
from minicoder.tokenizer import Tokenizer
from minicoder.train import TrainConfig, train
import torch.nn.parallel as parallel

class SpyDDP(parallel.DistributedDataParallel):  # records how train() wraps the model
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if os.environ["RANK"] == "0":
            open(sys.argv[6], "w").write(json.dumps({"broadcast_buffers": self.broadcast_buffers}))

parallel.DistributedDataParallel = SpyDDP
mc, cfg = ModelConfig.from_dict(json.loads(sys.argv[3])), TrainConfig(**json.loads(sys.argv[4]))
summary = train(mc, cfg, TokenData.load(sys.argv[1]), Tokenizer.from_file(sys.argv[2]), progress=False)
if os.environ["RANK"] == "0":
    open(sys.argv[5], "w").write(json.dumps(summary["losses"]))
"""


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_matches_one_process(tok, data, tmp_path):
    # torchrun, gloo backend: 2 ranks x 1 micro-batch each == 1 process x 2 micro-batches (same windows);
    # only the order of the float sums differs (DDP averages gradients, accumulation sums halves).
    one, ddp, spy = one_process_and_two_ranks(micro_model(tok), tok, data, tmp_path)
    assert ddp == pytest.approx(one["losses"], abs=1e-5)
    assert load_checkpoint(tmp_path / "ddp").state["world_size"] == 2
    # the RoPE tables are buffers, equal on every rank by construction: DDP must not re-send them each step
    assert spy == {"broadcast_buffers": False}


def one_process_and_two_ranks(mc, tok, data, tmp_path) -> tuple[dict, list[float], dict]:
    """3 steps of 2 micro-batches in one process, and the same under torchrun with 2 gloo ranks (run dir
    tmp_path / "ddp"): one process's summary, the ranks' losses, and how train() wrapped the model."""
    one = train(mc, micro_train(tmp_path / "one", max_steps=3, grad_accum=2), data, tok, progress=False)
    cfg = micro_train(tmp_path / "ddp", max_steps=3, grad_accum=2)
    tok.save(tmp_path / "tok.json")
    script = tmp_path / "ddp.py"
    script.write_text(_DDP_SCRIPT)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    str(script), str(data.path), str(tmp_path / "tok.json"), json.dumps(mc.to_dict()),
                    json.dumps(asdict(cfg)), str(tmp_path / "losses.json"), str(tmp_path / "ddp.json")],
                   check=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return one, json.loads((tmp_path / "losses.json").read_text()), json.loads((tmp_path / "ddp.json").read_text())


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


# -- DeepSeek's stages: presets against the paper ---------------------------------


@pytest.mark.parametrize("size, windows, lr", [("1.3b", 1024, 5.3e-4), ("6.7b", 2304, 4.2e-4), ("33b", 3840, 3.5e-4)])
def test_stage_presets_match_the_paper(size, windows, lr):
    # Table 2 (batch in windows, peak lr), section 3.4 (2,000 warm-up steps, 1.8T tokens of 4K windows),
    # section 3.6 (16K stage: base 100,000, linear x4, batch 512, 1,000 steps at the final rate).
    stage1 = TrainConfig.from_preset(f"deepseek-coder-{size}")
    assert stage1.batch_size * stage1.grad_accum == windows and stage1.seq_len == 4096
    assert (stage1.lr, stage1.warmup_steps, stage1.decay_at, stage1.decay_factor) == (lr, 2000, (0.8, 0.9), 0.316)
    assert stage1.max_steps * stage1.tokens_per_step == pytest.approx(1.8e12, rel=0.005)
    model1 = ModelConfig.from_preset(TRAIN_PRESET_MODELS[f"deepseek-coder-{size}"])
    assert TRAIN_PRESET_MODELS[f"deepseek-coder-{size}"] == f"deepseek-coder-{size}-stage1"
    assert (model1.max_seq_len, model1.rope_theta, model1.rope_scaling_type) == (4096, 10000.0, None)
    assert (model1.init_scheme, model1.init_std) == ("deepseek", 0.006)

    long = TrainConfig.from_preset(f"deepseek-coder-{size}-long")
    assert long.batch_size * long.grad_accum == 512 and long.seq_len == 16384 and long.max_steps == 1000
    assert long.warmup_steps == 0 and long.decay_at == ()
    assert long.lr == pytest.approx(lr * 0.316**2) and lr_at(0, long) == lr_at(999, long) == long.lr
    assert long.lr == pytest.approx(lr_at(stage1.max_steps - 1, stage1))  # stage 1's final rate
    assert long.init_from == stage1.out_dir == f"runs/train-deepseek-coder-{size}"
    model2 = ModelConfig.from_preset(TRAIN_PRESET_MODELS[f"deepseek-coder-{size}-long"])
    assert model2 == ModelConfig.from_preset(f"deepseek-coder-{size}")  # the released model
    assert (model2.max_seq_len, model2.rope_theta, model2.rope_scaling_type, model2.rope_scaling_factor) == \
        (16384, 100000.0, "linear", 4.0)


def test_tiny_preset_and_train_presets_are_complete():
    assert set(TRAIN_PRESET_MODELS) == set(TRAIN_PRESETS)
    assert TRAIN_PRESET_MODELS["tiny"] == "tiny" and TrainConfig.from_preset("tiny").out_dir == "runs/tiny"


def test_model_that_disagrees_with_the_preset_is_refused(capsys):
    assert cli_main(["train", "--preset", "deepseek-coder-1.3b", "--model", "deepseek-coder-6.7b"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("minicoder train: error: --model deepseek-coder-6.7b disagrees with --preset deepseek-coder-1.3b, "
                   "whose recipe trains deepseek-coder-1.3b-stage1; drop --model, or use --preset "
                   "deepseek-coder-6.7b-long, which trains it")
    assert cli_main(["train", "--preset", "tiny", "--model", "deepseek-coder-1.3b-stage1"]) == 1
    assert "use --preset deepseek-coder-1.3b, which trains it" in capsys.readouterr().err


def test_init_from_starts_the_16k_stage_from_stage_1_weights(tok, data, tmp_path):
    stage1 = micro_model(tok, rope_theta=10000.0, init_scheme="deepseek", init_std=0.006)
    train(stage1, micro_train(tmp_path / "s1", max_steps=2, warmup_steps=1, eval_interval=2), data, tok, progress=False)
    long = micro_model(tok, max_seq_len=64, rope_theta=100000.0, rope_scaling_type="linear", rope_scaling_factor=4.0)
    summary = train(long, micro_train(tmp_path / "s2", max_steps=0, init_from=str(tmp_path / "s1")), data, tok,
                    progress=False)
    assert summary["step"] == 0 and summary["finished"]
    a, b = load_checkpoint(tmp_path / "s1").model, load_checkpoint(tmp_path / "s2")
    assert b.model_config.rope_theta == 100000.0
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.model.state_dict().values()))
    with pytest.raises(ValueError, match=r"d_model: 32 in the checkpoint, 64 requested\); --init-from must name"):
        train(micro_model(tok, d_model=64), micro_train(tmp_path / "s3", init_from=str(tmp_path / "s1")), data, tok,
              progress=False)
    with pytest.raises(FileNotFoundError, match="holds no checkpoint; train that stage first"):
        train(long, micro_train(tmp_path / "s4", init_from=str(tmp_path / "nothing")), data, tok, progress=False)


# -- the exact validation figure ------------------------------------------------------


def _reference_full_split(model, tokens, T) -> tuple[float, int, int]:
    """Every window on its own, in float64: (total nats, predicted tokens, windows)."""
    m64 = Transformer(model.config).double().eval()
    m64.load_state_dict(model.state_dict())
    ids = torch.from_numpy(np.asarray(tokens.window(0, len(tokens))).astype(np.int64))
    total, count, windows = 0.0, 0, 0
    with torch.no_grad():
        for s in range(0, len(ids) - 1, T):
            w = ids[s:s + T + 1]
            logits = m64(w[None, :-1])[0]  # (t, V) float64
            total += F.cross_entropy(logits, w[1:], reduction="sum").item()
            count, windows = count + len(w) - 1, windows + 1
    return total, count, windows


def test_evaluate_split_scores_every_token_once(tok, data):
    torch.manual_seed(0)
    model = Transformer(micro_model(tok))
    tokens = data.splits["val"]
    n, T = len(tokens), 29  # 29 leaves a short last window
    assert (n - 1) % T
    total, count, windows = _reference_full_split(model, tokens, T)
    assert count == n - 1 and windows == math.ceil((n - 1) / T)
    got = evaluate_split(model, data, "val", seq_len=T, batch_size=3)
    assert got["tokens"] == n - 1 and got["windows"] == windows and got["bytes"] == tokens.n_bytes
    assert got["loss"] == pytest.approx(total / (n - 1), rel=1e-6)  # float32 model vs float64 reference
    assert got["bpb"] == pytest.approx(total / (math.log(2) * tokens.n_bytes), rel=1e-6)
    one = evaluate_split(model, data, "val", seq_len=T, batch_size=1)  # batching changes nothing but rounding
    assert one["loss"] == pytest.approx(got["loss"], rel=1e-6)
    assert model.training  # put back as it was
    assert evaluate_split(model, data, "val")["windows"] == math.ceil((n - 1) / model.config.max_seq_len)


def test_max_steps_zero_evaluates_and_checkpoints_the_initial_weights(tok, data, tmp_path):
    with pytest.raises(ValueError, match="--max-steps must be an integer >= 0, got -1"):
        TrainConfig(max_steps=-1)
    assert TrainConfig.from_preset("tiny", max_steps=0).max_steps == 0  # the preset's warm-up is moot then
    summary = train(micro_model(tok), micro_train(tmp_path, max_steps=0), data, tok, progress=False)
    assert summary["step"] == 0 and summary["losses"] == [] and summary["finished"]
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.path.name == "ckpt-000000"
    assert summary["val_bpb_full"] == pytest.approx(evaluate_split(ckpt.model, data, "val", 32, 4)["bpb"], rel=1e-12)
    torch.manual_seed(micro_train(tmp_path).seed)
    fresh = Transformer(micro_model(tok))
    assert all(torch.equal(p, q) for p, q in zip(fresh.state_dict().values(), ckpt.model.state_dict().values()))


# -- stopping, Ctrl-C and resuming: the same run, the same metrics.jsonl -----------------


def _metrics_without_wall_clock(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in m.items() if k not in ("tokens_per_s", "flops_per_s", "mfu")} for m in read_metrics(run_dir / "metrics.jsonl")]


def _resume_cfg(out_dir, **kw) -> TrainConfig:
    # log every 3 steps, evaluate every 4: a stop at step 5 falls inside both intervals
    return micro_train(out_dir, **{**dict(max_steps=8, log_interval=3, eval_interval=4, checkpoint_interval=4), **kw})


@pytest.mark.slow
def test_ctrl_c_saves_and_resume_continues_bitwise(tok, data, tmp_path, capsys, monkeypatch):
    mc = micro_model(tok)
    straight = train(mc, _resume_cfg(tmp_path / "straight"), data, tok, progress=False)
    expected = _metrics_without_wall_clock(tmp_path / "straight")
    assert [m["step"] for m in expected if "loss" in m] == [3, 6, 8]

    # 1. a real Ctrl-C (SIGINT to this process) during step 5: the step finishes, then a checkpoint
    def ctrl_c_at_5(step):
        if step == 5:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted) as e:  # a KeyboardInterrupt: callers stop, as Ctrl-C asks
        train(mc, _resume_cfg(tmp_path / "sigint"), data, tok, progress=False, on_step=ctrl_c_at_5)
    first = e.value.summary
    assert first["stopped"] == "interrupted" and first["step"] == 5 and first["val_bpb_full"] is None
    err = capsys.readouterr().err
    assert "Ctrl-C" in err and f"minicoder train --out {tmp_path / 'sigint'} --resume" in err
    assert load_checkpoint(tmp_path / "sigint").state["step"] == 5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler put back

    # 2. KeyboardInterrupt raised inside step 6 (the 6th batch drawn): the step is undone, step 5 is saved
    calls, real_get_batch = [0], data.get_batch

    def interrupting_get_batch(split, *args):
        calls[0] += split == "train"
        if calls[0] == 6:
            raise KeyboardInterrupt
        return real_get_batch(split, *args)

    monkeypatch.setattr(data, "get_batch", interrupting_get_batch)
    with pytest.raises(TrainingInterrupted) as e:
        train(mc, _resume_cfg(tmp_path / "raised"), data, tok, progress=False, resume_command="make train-tiny")
    monkeypatch.undo()
    raised = e.value.summary
    assert "continue with:\n    make train-tiny\n" in capsys.readouterr().err  # a recipe names its own command
    assert raised["stopped"] == "interrupted" and raised["step"] == 5

    # 3. stop_after at step 5 (what a time limit does): it evaluates there, a line the resumed run must drop
    stopped = train(mc, _resume_cfg(tmp_path / "stop"), data, tok, stop_after=5, progress=False)
    assert stopped["stopped"] == "stop_after" and stopped["val_bpb_full"] is not None

    for name, before in [("sigint", first), ("raised", raised), ("stop", stopped)]:
        after = train(mc, _resume_cfg(tmp_path / name), data, tok, resume=True, progress=False)
        assert before["losses"] + after["losses"] == straight["losses"], name  # bitwise
        assert _metrics_without_wall_clock(tmp_path / name) == expected, name
        assert after["val_bpb_full"] == straight["val_bpb_full"], name


def test_resume_refuses_a_changed_configuration(tok, data, tmp_path):
    mc = micro_model(tok)
    train(mc, micro_train(tmp_path, max_steps=4), data, tok, stop_after=2, progress=False)
    with pytest.raises(ValueError) as e:
        train(mc, micro_train(tmp_path, max_steps=4, lr=1.0, batch_size=8), data, tok, resume=True, progress=False)
    assert str(e.value).startswith("--batch-size 8 and --lr 1.0 conflict with the checkpoint's batch_size=4, lr=0.003")
    assert "\n" not in str(e.value)
    # run control may change: a time limit, the device, compile, the full evaluation
    summary = train(mc, micro_train(tmp_path, max_steps=4, time_limit_s=60.0, device="cpu", eval_full=False), data,
                    tok, resume=True, progress=False)
    assert summary["step"] == 4 and summary["val_bpb_full"] is None


@pytest.mark.slow
def test_cli_resume_restores_the_run_and_defaults_do_not_collide(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cache = ["--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    flags = ["--corpus", str(corpus), "--vocab-size", "300", "--batch-size", "2", "--seq-len", "16", "--max-steps",
             "4", "--warmup-steps", "1", "--eval-iters", "1", "--lr", "0.002", "--log-interval", "1"]
    assert cli_main(["train", *flags, *cache, "--stop-after", "2"]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "runs" / "train-tiny"  # not runs/tiny, which `make train-tiny` owns
    assert not (tmp_path / "runs" / "tiny").exists() and load_checkpoint(run).state["step"] == 2
    assert "stopped (stop_after) at step 2 of 4; continue with: minicoder train --out runs/train-tiny --resume" in out
    # conflicting flags: one line naming each
    assert cli_main(["train", "--resume", "--lr", "1", *cache]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("minicoder train: error: --lr 1.0 conflicts with the checkpoint's lr=0.002") and "\n" not in err
    assert cli_main(["train", "--resume", "--vocab-size", "400", "--fim-rate", "0", *cache]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("minicoder train: error: --fim-rate 0.0 and --vocab-size 400 conflict with the "
                          "checkpoint's fim_rate=0.5, vocab_size=300") and "\n" not in err
    # --resume alone: the corpus, the tokenizer, the model and the recipe come from the checkpoint
    assert cli_main(["train", "--resume", "--time-limit-s", "300", *cache]) == 0
    out = capsys.readouterr().out
    state = load_checkpoint(run).state
    assert state["step"] == 4 and state["finished"] and state["train_config"]["lr"] == 0.002
    assert state["train_config"]["time_limit_s"] == 300 and f"(full split, {state['val_tokens_full']:,} tokens)" in out
    assert state["run_args"]["corpus"] == str(corpus.resolve()) and state["run_args"]["model"] == "tiny"
    # --max-steps 0 means zero steps
    assert cli_main(["train", *flags[:4], "--max-steps", "0", "--out", "zero", *cache]) == 0
    assert load_checkpoint(tmp_path / "zero").state["step"] == 0


def test_checkpoint_records_bos_convention_and_full_figure(tok, data, tmp_path):
    summary = train(micro_model(tok), micro_train(tmp_path, max_steps=2, warmup_steps=1, eval_interval=2), data, tok,
                    progress=False)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.state["bos"] is False and ckpt.model.trained_with_bos is False  # EOS-separated documents
    assert ckpt.state["val_bpb_full"] == summary["val_bpb_full"]
    assert summary["val_bpb_full"] == evaluate_split(ckpt.model, data, "val", 32, 4)["bpb"]
    evals = [m for m in read_metrics(tmp_path / "metrics.jsonl") if "val_loss" in m]
    assert evals and all(m["val_sampled_windows"] == 2 * 4 for m in evals)  # labelled: eval_iters x batch_size


@pytest.mark.slow
def test_ctrl_c_in_the_command_line_saves_and_says_how_to_resume(corpus, tmp_path):
    run = tmp_path / "run"
    common = ["--corpus", str(corpus), "--vocab-size", "300", "--cache-dir", str(tmp_path / "cache"), "--out", str(run),
              "--no-progress"]
    flags = ["--batch-size", "2", "--seq-len", "16", "--max-steps", "100000", "--log-interval", "1", "--eval-iters", "1",
             "--checkpoint-interval", "100000", "--eval-interval", "100000"]
    proc = subprocess.Popen([sys.executable, "-m", "minicoder.cli", "train", *common, *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(read_metrics(run / "metrics.jsonl")) < 3:  # a few steps done, no checkpoint yet
            assert proc.poll() is None and time.monotonic() < deadline, "the run never got going"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    step = load_checkpoint(run).state["step"]
    assert step >= 3 and f"minicoder train --out {run} --resume" in err and "Traceback" not in err
    assert cli_main(["train", "--resume", *common, "--stop-after", str(step + 2)]) == 0
    assert load_checkpoint(run).state["step"] == step + 2
