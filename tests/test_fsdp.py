"""Tests for `--parallel fsdp` (FSDP2 in minicoder/train.py): two CPU processes under torchrun (gloo)
train like one process with the same global batch, dense and MoE, and checkpoints move between the two.

Run: .venv/bin/pytest tests/test_fsdp.py -q        (about 35 s on 2 idle cores: four torchrun launches)

The oracle is the single-process run: 2 ranks x k micro-batches each == 1 process x 2k micro-batches
on the same windows; only the order of the float sums differs (FSDP averages the reduce-scattered
gradients, accumulation sums the halves), so the losses agree within 1e-5.
"""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, replace

import pytest
import torch
from test_train import corpus, data, micro_model, micro_train, tok  # noqa: F401 (fixtures)
from test_train_moe import micro_moe

from minicoder.cli import main as cli_main
from minicoder.train import TrainConfig, load_checkpoint, read_metrics, shard_model, train

_FSDP_SCRIPT = """
import json, os, sys
import torch
from minicoder.config import ModelConfig
from minicoder.data import TokenData
from minicoder.tokenizer import Tokenizer
from minicoder.cli import main as cli_main
from minicoder.train import TrainConfig, is_sharded, train
import minicoder.train as train_module

shard = train_module.shard_model
def spy(model, *args):  # records that train() sharded the model, and how
    shard(model, *args)
    if os.environ["RANK"] == "0":
        json.dump({"sharded": is_sharded(model), "wq": type(model.layers[0].attn.wq.weight).__name__},
                  open(sys.argv[1] + ".spy", "w"))
train_module.shard_model = spy

a = json.loads(open(sys.argv[1]).read())
summary = train(ModelConfig.from_dict(a["model"]), TrainConfig(**a["train"]), TokenData.load(a["data"]),
                Tokenizer.from_file(a["tokenizer"]), resume=a["resume"], progress=False)
if os.environ["RANK"] == "0":
    open(a["losses"], "w").write(json.dumps(summary["losses"]))
torch.distributed.destroy_process_group()
"""


def run_fsdp(tmp_path, name: str, mc, cfg: TrainConfig, data, resume: bool = False) -> list[float]:
    """Train (or resume) `cfg` with --parallel fsdp on two torchrun CPU processes; return rank 0's losses."""
    script = tmp_path / "fsdp.py"
    script.write_text(_FSDP_SCRIPT)
    args = tmp_path / f"{name}.json"
    args.write_text(json.dumps({"model": mc.to_dict(), "train": asdict(replace(cfg, parallel="fsdp")),
                                "data": str(data.path), "tokenizer": str(tmp_path / "tok.json"),
                                "resume": resume, "losses": str(tmp_path / f"{name}.losses")}))
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    str(script), str(args)], check=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert json.loads((tmp_path / f"{name}.json.spy").read_text()) == {"sharded": True, "wq": "DTensor"}
    return json.loads((tmp_path / f"{name}.losses").read_text())


def from_step(run, new_run, step: int):
    """A copy of run directory `run` whose `latest` names its checkpoint at `step`, to resume from there."""
    shutil.copytree(run, new_run)
    (new_run / "latest").write_text(f"ckpt-{step:06d}\n")
    return new_run


@pytest.fixture(scope="module")
def dense_runs(tok, data, tmp_path_factory):
    """The micro model for 5 steps of 2 micro-batches: in one process, and with FSDP on two (1 each)."""
    tmp = tmp_path_factory.mktemp("fsdp")
    tok.save(tmp / "tok.json")
    mc = micro_model(tok)
    one = train(mc, micro_train(tmp / "one", max_steps=5, grad_accum=2), data, tok, progress=False)
    losses = run_fsdp(tmp, "fsdp", mc, micro_train(tmp / "fsdp", max_steps=5, grad_accum=2), data)
    return tmp, mc, one["losses"], losses


@pytest.mark.slow
def test_fsdp_on_two_cpu_processes_matches_one_process(dense_runs):
    tmp, mc, one, fsdp = dense_runs
    assert len(fsdp) == 5 and fsdp == pytest.approx(one, abs=1e-5)
    single, sharded = load_checkpoint(tmp / "one"), load_checkpoint(tmp / "fsdp")
    assert sharded.state["world_size"] == 2 and sharded.train_config.parallel == "fsdp"
    # rank 0 gathered the whole model: the same names and shapes as one process writes, equal values
    a, b = single.model.state_dict(), sharded.model.state_dict()
    assert list(a) == list(b) and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


@pytest.mark.slow
def test_fsdp_optimizer_state_is_keyed_as_in_one_process(dense_runs):
    tmp, *_ = dense_runs
    one, fsdp = (torch.load(tmp / run / "ckpt-000003" / "optimizer.pt", weights_only=True) for run in ("one", "fsdp"))
    assert one["param_groups"] == fsdp["param_groups"]  # ids 0, 1, ... in the same groups, same hyperparameters
    assert sorted(one["state"]) == sorted(fsdp["state"])
    for i, moments in one["state"].items():
        assert set(moments) == set(fsdp["state"][i]) == {"step", "exp_avg", "exp_avg_sq"}
        for k, v in moments.items():
            assert type(fsdp["state"][i][k]) is torch.Tensor and fsdp["state"][i][k].shape == v.shape
            assert torch.allclose(fsdp["state"][i][k], v, atol=1e-6, rtol=1e-4)


@pytest.mark.slow
def test_checkpoints_move_between_fsdp_and_one_process(dense_runs, data, tok):
    tmp, mc, one, _ = dense_runs
    # written by 2 FSDP ranks at step 3, continued by one plain process
    cfg = micro_train(from_step(tmp / "fsdp", tmp / "fsdp-then-one", 3), max_steps=5, grad_accum=2)
    resumed = train(mc, cfg, data, tok, resume=True, progress=False)
    assert resumed["losses"] == pytest.approx(one[3:], abs=1e-5)
    # written by one process at step 3, continued by 2 FSDP ranks
    cfg = micro_train(from_step(tmp / "one", tmp / "one-then-fsdp", 3), max_steps=5, grad_accum=2)
    assert run_fsdp(tmp, "resumed", mc, cfg, data, resume=True) == pytest.approx(one[3:], abs=1e-5)


@pytest.mark.slow
def test_moe_fsdp_with_accumulation_matches_one_process(tok, data, tmp_path):
    # 12 experts, 2 per token, micro-batches of 8 tokens: in most steps some expert gets no token on a
    # rank, yet every rank must reduce-scatter the same gradients. 4 micro-batches: 2 per rank, the
    # first without gradient sync. The V3 routing bias moves with the all-reduced loads.
    mc = micro_moe(tok, n_routed_experts=12, scoring_func="sigmoid", bias_update_speed=0.01)
    tok.save(tmp_path / "tok.json")
    cfg = dict(max_steps=5, grad_accum=4, batch_size=1, seq_len=8, eval_iters=3)  # 3: rank 1 pads its evaluation
    one = train(mc, micro_train(tmp_path / "one", **cfg), data, tok, progress=False)
    idle = [m["expert_counts"][0].count(0) for m in read_metrics(tmp_path / "one" / "metrics.jsonl") if "loss" in m]
    assert len(idle) == 5 and sum(idle) > 0  # experts with no token in a whole step, so on both ranks
    fsdp = run_fsdp(tmp_path, "moe", mc, micro_train(tmp_path / "fsdp", **cfg), data)
    assert fsdp == pytest.approx(one["losses"], abs=1e-5)
    sharded = load_checkpoint(tmp_path / "fsdp").state
    assert sharded["val_loss"] == pytest.approx(one["val_loss"], abs=1e-5)
    assert sharded["val_loss_full"] == pytest.approx(one["val_loss_full"], abs=1e-5)
    a, b = (load_checkpoint(tmp_path / run).model.layers[1].ffn.gate.expert_bias for run in ("one", "fsdp"))
    assert a.abs().sum() > 0 and torch.allclose(a, b, atol=1e-6)
    # AdamW skipped the experts no rank used, as one process does (they have no gradient there)
    one_state, fsdp_state = (torch.load(tmp_path / run / "ckpt-000005" / "optimizer.pt", weights_only=True)["state"]
                             for run in ("one", "fsdp"))
    assert sorted(one_state) == sorted(fsdp_state)
    assert all(torch.equal(one_state[i]["step"], fsdp_state[i]["step"]) for i in one_state)


def test_parallel_is_validated_and_may_change_on_resume(tok, data, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"^--parallel zero3: unknown mode; choose ddp .* or fsdp"):
        TrainConfig(parallel="zero3")
    assert cli_main(["train", "--parallel", "zero3", "--out", str(tmp_path / "cli")]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("choose ddp (replicate the model, "
                                                                      "all-reduce the gradients) or fsdp (shard it, FSDP2)")
    # one process: --parallel fsdp trains unsharded, and the run resumes under ddp
    mc = micro_model(tok)
    straight = train(mc, micro_train(tmp_path / "a", max_steps=4), data, tok, progress=False)
    first = train(mc, micro_train(tmp_path / "b", max_steps=4, parallel="fsdp"), data, tok, stop_after=2,
                  progress=False)
    second = train(mc, micro_train(tmp_path / "b", max_steps=4), data, tok, resume=True, progress=False)
    assert first["losses"] + second["losses"] == straight["losses"]


def test_fsdp_without_fully_shard_is_a_one_line_error(monkeypatch):
    import torch.distributed.fsdp as fsdp

    monkeypatch.delattr(fsdp, "fully_shard")
    with pytest.raises(ValueError, match=r"^--parallel fsdp needs FSDP2 .*; upgrade torch, or use --parallel ddp$"):
        shard_model(torch.nn.Module(), torch.device("cpu"), torch.float32, 2)
