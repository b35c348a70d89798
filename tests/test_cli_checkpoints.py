"""Checkpoints from the command line: --keep, file modes, the tokenizer hash, `info`, `export --hf`,
and `train`/`train-tiny` refusing a bad --out (or other bad flags) before any work starts.

Run: .venv/bin/pytest tests/test_cli_checkpoints.py -q

A micro model (2 layers, width 32) trains for 4 steps once per module on a few standard library
files with a 300-id tokenizer; the tests copy that run when they change it.
"""

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch

from minicoder.cli import main
from minicoder.config import ModelConfig
from minicoder.data import default_corpus_dir, prepare_tokens
from minicoder.tokenizer import Tokenizer
from minicoder.train import TrainConfig, load_checkpoint, save_checkpoint, train

FILES = ["bisect.py", "heapq.py", "colorsys.py", "keyword.py"]


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
def run(corpus, tok, tmp_path_factory) -> Path:
    """A finished 4-step run with checkpoints at steps 2 and 4."""
    out = tmp_path_factory.mktemp("run")
    data = prepare_tokens(tok, corpus, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    mc = ModelConfig(vocab_size=tok.vocab_size, n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, d_ff=64,
                     max_seq_len=32)
    cfg = TrainConfig(batch_size=2, seq_len=32, max_steps=4, lr=3e-3, warmup_steps=1, eval_interval=2, eval_iters=1,
                      checkpoint_interval=2, log_interval=1, out_dir=str(out))
    train(mc, cfg, data, tok, progress=False)
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def _error(capsys, command: str, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"minicoder {command}: error:") and "\n" not in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def _other_tokenizer_of_the_same_size(tok) -> Tokenizer:
    other = Tokenizer.train([(default_corpus_dir() / n).read_text() for n in ("this.py", "fnmatch.py")],
                            vocab_size=300)
    assert other.vocab_size == tok.vocab_size and other.merges != tok.merges
    return other


# -- --keep, and the advice to resume from an earlier checkpoint -------------------------


def _save(run_dir, model, tok, step, keep):
    opt = torch.optim.AdamW(model.parameters())
    return save_checkpoint(run_dir, model, opt, tok, {"step": step, "bos": False}, {"torch": torch.get_rng_state()},
                           keep=keep)


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_keep_n_keeps_the_n_newest_checkpoints(run, tok, tmp_path, keep):
    model = load_checkpoint(run).model
    for step in (1, 2, 3, 4, 5):
        _save(tmp_path, model, tok, step, keep)
    names = sorted(p.name for p in tmp_path.glob("ckpt*"))
    assert names == [f"ckpt-{s:06d}" for s in (1, 2, 3, 4, 5)][-keep:]
    assert (tmp_path / "latest").read_text().strip() == "ckpt-000005"


def test_a_run_keeps_two_by_default_and_advice_names_the_earlier_one(run, tmp_path):
    assert TrainConfig().keep_checkpoints == 2
    run = _copy(run, tmp_path)
    assert sorted(p.name for p in run.glob("ckpt*")) == ["ckpt-000002", "ckpt-000004"]
    weights = run / "ckpt-000004" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"resume from the earlier ckpt-000002: `echo ckpt-000002 > .*latest`"):
        load_checkpoint(run)
    (run / "latest").write_text("ckpt-000002\n")  # the advice, followed
    assert load_checkpoint(run).state["step"] == 2


def test_cli_keep_flag_reaches_the_run(corpus, tmp_path, capsys):
    out = tmp_path / "k"
    assert main(["train", "--corpus", str(corpus), "--vocab-size", "300", "--cache-dir", str(tmp_path / "c"),
                 "--out", str(out), "--max-steps", "3", "--warmup-steps", "1", "--checkpoint-interval", "1",
                 "--eval-interval", "3", "--eval-iters", "1", "--batch-size", "2", "--seq-len", "32", "--keep", "1",
                 "--no-progress", "--no-eval-full"]) == 0
    assert [p.name for p in out.glob("ckpt*")] == ["ckpt-000003"]
    assert json.loads((out / "ckpt-000003" / "trainer.json").read_text())["train_config"]["keep_checkpoints"] == 1
    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "x"), "--keep", "0"]) == 1
    _error(capsys, "train", "--keep")


# -- file modes follow the umask ---------------------------------------------------------


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                         (0o002, 0o664, 0o775)])
def test_checkpoint_and_export_files_follow_the_umask(run, tok, tmp_path, umask, file_mode, dir_mode):
    model = load_checkpoint(run).model
    old = os.umask(umask)
    try:
        ckpt = _save(tmp_path / "r", model, tok, 1, 2)
        assert main(["export", "--hf", str(tmp_path / "hf"), "--checkpoint", str(run)]) == 0
    finally:
        os.umask(old)
    for directory in (ckpt, tmp_path / "hf"):
        assert stat.S_IMODE(directory.stat().st_mode) == dir_mode
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()}
        assert "model.safetensors" in modes and set(modes.values()) == {file_mode}, modes


# -- the tokenizer hash ------------------------------------------------------------------


def test_checkpoint_records_its_tokenizer_hash(run):
    ckpt = load_checkpoint(run).path
    state = json.loads((ckpt / "trainer.json").read_text())
    assert state["tokenizer_sha256"] == hashlib.sha256((ckpt / "tokenizer.json").read_bytes()).hexdigest()


def test_a_swapped_tokenizer_is_refused_in_one_line(run, tok, tmp_path, capsys):
    run = _copy(run, tmp_path)
    other = _other_tokenizer_of_the_same_size(tok)
    assert any(other.decode([i]) != tok.decode([i]) for i in range(256, 280))  # same size, other text
    other.save(tmp_path / "other.json")
    # --tokenizer naming another one of the same size
    for command, text in [("generate", ["--prompt", "def"]), ("complete", ["--prefix", "def", "--suffix", "x"])]:
        assert main([command, "--checkpoint", str(run), "--tokenizer", str(tmp_path / "other.json"), *text,
                     "--device", "cpu"]) == 1
        _error(capsys, command, "is not the tokenizer", "trained with")
    # a smaller one: refused up front, not mid-generation
    small = Tokenizer(dict(tok.vocab), tok.merges, special_tokens={})
    small.save(tmp_path / "small.json")
    assert main(["generate", "--checkpoint", str(run), "--tokenizer", str(tmp_path / "small.json"),
                 "--prompt", "def", "--device", "cpu"]) == 1
    _error(capsys, "generate", "is not the tokenizer")
    # the same tokenizer, formatted differently, passes
    (tmp_path / "same.json").write_text(json.dumps(json.loads((run / "ckpt-000004" / "tokenizer.json").read_text())))
    assert main(["generate", "--checkpoint", str(run), "--tokenizer", str(tmp_path / "same.json"), "--prompt", "def",
                 "--max-new-tokens", "2", "--device", "cpu"]) == 0
    capsys.readouterr()
    # the checkpoint's own tokenizer.json replaced: refused by load_checkpoint itself
    shutil.copy(tmp_path / "other.json", run / "ckpt-000004" / "tokenizer.json")
    with pytest.raises(ValueError, match="is not the tokenizer .* was trained with .*restore the checkpoint's own"):
        load_checkpoint(run)
    assert main(["generate", "--checkpoint", str(run), "--prompt", "def", "--device", "cpu"]) == 1
    _error(capsys, "generate", "is not the tokenizer")


# -- info and export ---------------------------------------------------------------------


def test_info_shows_step_tokens_figures_configs_and_tokenizer(run, tok, capsys):
    assert main(["info", str(run)]) == 0
    out = capsys.readouterr().out
    state = json.loads((run / "ckpt-000004" / "trainer.json").read_text())
    assert "step          4 of 4 (finished)" in out
    assert f"tokens        {state['tokens']:,}" in out
    assert f"val_bpb_full  {state['val_bpb_full']:.4f} bits/byte" in out and "(the whole validation split)" in out
    assert f"val_bpb       {state['val_bpb']:.4f} bits/byte" in out and "(sampled estimate)" in out
    assert "model config  vocab_size=" in out and "train config  batch_size=2" in out
    assert f"tokenizer     sha256 {state['tokenizer_sha256']}, {tok.vocab_size} ids" in out
    assert main(["info", str(run), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["step"] == 4 and info["kept"] == ["ckpt-000002", "ckpt-000004"] and info["tokenizer_matches"]
    assert info["val_bpb_full"] == state["val_bpb_full"] and info["model_config"]["d_model"] == 32
    assert main(["info", str(run / "nothing")]) == 1
    _error(capsys, "info", "no checkpoint at")


def test_export_loads_in_transformers_with_its_tokenizer(run, tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    assert main(["export", "--hf", str(tmp_path / "hf"), "--checkpoint", str(run)]) == 0
    assert "AutoModelForCausalLM" in capsys.readouterr().out
    ours = load_checkpoint(run)
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    text = "def f(a, x):  # é\n"
    ids = hf_tok(text)["input_ids"]
    assert ids == ours.tokenizer.encode(text)  # no BOS: the model never saw one (bos False in trainer.json)
    assert hf_tok.decode(ids) == text
    x = torch.tensor([ids])
    with torch.no_grad():
        torch.testing.assert_close(hf_model(x).logits, ours.model(x), atol=1e-5, rtol=1e-4)
    capsys.readouterr()  # transformers' loading bars
    # never overwrites; the flag is named
    assert main(["export", "--hf", str(tmp_path / "hf"), "--checkpoint", str(run)]) == 1
    _error(capsys, "export", "--hf", "not empty")
    (tmp_path / "file").write_text("x")
    assert main(["export", "--hf", str(tmp_path / "file"), "--checkpoint", str(run)]) == 1
    _error(capsys, "export", "--hf", "is a file")


# -- train and train-tiny check their flags before the work -------------------------------


def _no_work(monkeypatch):
    """Make any tokenizer or token work fail loudly: the checks must come before it."""
    import minicoder.data
    import minicoder.train

    def boom(*a, **k):
        raise AssertionError("work started before the flags were checked")

    for module in (minicoder.train, minicoder.data):
        for name in ("corpus_tokenizer", "prepare_tokens", "repo_tokenizer", "prepare_repo_tokens"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, boom)


@pytest.mark.parametrize("command", ["train", "train-tiny"])
def test_out_naming_a_file_is_refused_before_any_work(command, tmp_path, monkeypatch, capsys):
    _no_work(monkeypatch)
    (tmp_path / "taken").write_text("not a directory")
    for out in (tmp_path / "taken", tmp_path / "taken" / "sub"):
        assert main([command, "--out", str(out), "--no-progress"]) == 1
        _error(capsys, command, f"--out {out}")


@pytest.mark.parametrize("argv, needles", [
    (["--max-steps", "-1"], ["--max-steps"]),
    (["--lr", "nan"], ["--lr"]),
    (["--lr", "0"], ["--lr"]),
    (["--warmup-steps", "900", "--max-steps", "10"], ["--warmup-steps", "--max-steps"]),
    (["--time-limit-s", "nan"], ["--time-limit-s"]),
    (["--seq-len", "100000"], ["--seq-len"]),
    (["--device", "foo"], ["--device foo"]),
    (["--data", "/nonexistent/tokens", "--tokenizer", "x.json"], ["--data", "minicoder prepare"]),
])
def test_train_flag_errors_name_the_flag_before_any_work(argv, needles, tmp_path, monkeypatch, capsys):
    _no_work(monkeypatch)
    assert main(["train", "--out", str(tmp_path / "o"), *argv, "--no-progress"]) == 1
    err = _error(capsys, "train", *needles)
    assert "max_steps" not in err and "warmup_steps" not in err and "time_limit_s" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_train_device_cuda_without_a_gpu_fails_before_any_work(device, tmp_path, monkeypatch, capsys):
    _no_work(monkeypatch)
    assert main(["train", "--out", str(tmp_path / "o"), "--device", device]) == 1
    _error(capsys, "train", f"--device {device}", "no CUDA GPU")


def test_train_on_an_existing_run_without_resume_is_refused_before_any_work(run, tmp_path, monkeypatch, capsys):
    _no_work(monkeypatch)
    assert main(["train", "--out", str(run)]) == 1
    _error(capsys, "train", "already holds a checkpoint", "--resume")
