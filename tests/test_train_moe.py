"""Training and generating with DeepSeek-V2's architecture (MLA + DeepSeekMoE): balance losses in the objective
and the log, exact resume (the V3 routing bias included), DDP with experts that get no token, the latent cache.

Run: .venv/bin/pytest tests/test_train_moe.py -q
"""

import json

import pytest
import torch
from test_train import corpus, data, micro_train, one_process_and_two_ranks, tok  # noqa: F401 (fixtures)

from minicoder.config import ModelConfig
from minicoder.generate import generate_ids
from minicoder.model import Transformer
from minicoder.train import TrainConfig, load_checkpoint, train
from minicoder.train_config import TRAIN_PRESET_MODELS, TRAIN_PRESETS


def micro_moe(tok, **kw) -> ModelConfig:
    return ModelConfig(**{**dict(
        vocab_size=tok.vocab_size, n_layers=2, d_model=32, n_heads=4, d_ff=64, max_seq_len=32,
        kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8,
        n_routed_experts=6, n_shared_experts=1, n_activated_experts=2, moe_d_ff=24, first_k_dense_replace=1,
        balance_alpha1=0.01, balance_alpha2=0.01, balance_alpha3=0.01, n_devices=3, m_devices=2), **kw})


def read_metrics(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_balance_losses_enter_the_objective_and_the_log(tok, data, tmp_path):
    cfg = micro_train(tmp_path / "a", max_steps=3, log_interval=3, eval_interval=100)
    with_alpha = train(micro_moe(tok), cfg, data, tok, progress=False)
    without = train(micro_moe(tok, balance_alpha1=0.0, balance_alpha2=0.0, balance_alpha3=0.0),
                    micro_train(tmp_path / "b", max_steps=3, log_interval=3, eval_interval=100), data, tok, progress=False)
    # the logged loss is the LM loss alone: the first step's is equal, the weights then differ through the gate
    assert with_alpha["losses"][0] == without["losses"][0] and with_alpha["losses"][-1] != without["losses"][-1]
    a, b = (load_checkpoint(tmp_path / r).model for r in ("a", "b"))
    assert not torch.equal(a.layers[1].ffn.gate.weight, b.layers[1].ffn.gate.weight)
    line = [m for m in read_metrics(tmp_path / "a") if "loss" in m][-1]
    assert line["balance_loss"] > 0 and line["expert_loss"] > 0
    counts = torch.tensor(line["expert_counts"])  # (1 MoE layer, 6 experts), summed over the 3 steps
    assert counts.shape == (1, 6) and counts.sum().item() == 3 * cfg.batch_size * cfg.seq_len * 2
    assert line["load_max_over_mean"][0] == pytest.approx((counts.max() / counts.mean()).item())


def test_moe_resume_is_bitwise_including_the_routing_bias(tok, data, tmp_path):
    mc = micro_moe(tok, scoring_func="sigmoid", bias_update_speed=0.01, moe_impl="sorted", mla_impl="absorb")
    straight = train(mc, micro_train(tmp_path / "a"), data, tok, progress=False)
    first = train(mc, micro_train(tmp_path / "b"), data, tok, stop_after=3, progress=False)
    second = train(mc, micro_train(tmp_path / "b"), data, tok, resume=True, progress=False)
    assert first["losses"] + second["losses"] == straight["losses"]
    a, b = load_checkpoint(tmp_path / "a").model, load_checkpoint(tmp_path / "b").model
    bias = a.layers[1].ffn.gate.expert_bias
    assert bias.abs().sum() > 0 and torch.equal(bias, b.layers[1].ffn.gate.expert_bias)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_trained_moe_generates_with_the_latent_cache(tok, data, tmp_path):
    train(micro_moe(tok, mla_impl="absorb"), micro_train(tmp_path / "run", max_steps=3), data, tok, progress=False)
    model = load_checkpoint(tmp_path / "run").model
    naive = Transformer(ModelConfig.from_dict({**model.config.to_dict(), "mla_impl": "naive"})).eval()
    naive.load_state_dict(model.state_dict())
    prompt = tok.encode("def f(x):")
    assert generate_ids(model, prompt, 20) == generate_ids(naive, prompt, 20)


def test_tiny_moe_presets():
    assert TRAIN_PRESET_MODELS["tiny-moe"] == "tiny-moe" and "tiny-moe" in TRAIN_PRESETS
    cfg = ModelConfig.from_preset("tiny-moe")
    assert cfg.is_mla and cfg.is_moe and cfg.num_active_params() < cfg.num_params()
    assert TrainConfig.from_preset("tiny-moe").seq_len <= cfg.max_seq_len


@pytest.mark.slow
def test_moe_ddp_on_two_cpu_processes_matches_one_process(tok, data, tmp_path):
    # 6 experts, 2 per token, 32-token windows: some experts may get no token on a rank, which DDP must allow.
    one, ddp, _ = one_process_and_two_ranks(micro_moe(tok), tok, data, tmp_path)
    assert ddp == pytest.approx(one["losses"], abs=1e-5)


def test_yarn_stage_starts_from_the_plain_stage_weights(tok, data, tmp_path):
    # V2's long-context stages: the same weights, YaRN switched on and a longer context (section 3.1.4 of V2).
    stage1 = micro_moe(tok)
    train(stage1, micro_train(tmp_path / "s1", max_steps=3), data, tok, progress=False)
    yarn = ModelConfig.from_dict({**stage1.to_dict(), "max_seq_len": 64, "rope_scaling_type": "yarn",
                                  "rope_scaling_factor": 2.0, "rope_original_max_seq_len": 32,
                                  "rope_mscale": 0.707, "rope_mscale_all_dim": 0.707, "mla_impl": "absorb"})
    out = train(yarn, micro_train(tmp_path / "s2", max_steps=3, seq_len=64, init_from=str(tmp_path / "s1")),
                data, tok, progress=False)
    assert out["step"] == 3
    with pytest.raises(ValueError, match="kv_lora_rank: 16 in the checkpoint, 8 requested"):
        train(ModelConfig.from_dict({**yarn.to_dict(), "kv_lora_rank": 8}),
              micro_train(tmp_path / "s3", max_steps=3, seq_len=64, init_from=str(tmp_path / "s1")), data, tok,
              progress=False)


def test_metrics_report_model_flops_per_second(tok, data, tmp_path):
    from minicoder.scaling import flops_per_token
    mc = micro_moe(tok)
    cfg = micro_train(tmp_path / "run", max_steps=3, log_interval=1, eval_interval=100)
    train(mc, cfg, data, tok, progress=False)
    lines = [m for m in read_metrics(tmp_path / "run") if "loss" in m]
    assert len(lines) == 3
    for m in lines:  # 6N + attention per token (scaling.py) times the job's tokens per second; no MFU on a CPU
        assert m["flops_per_s"] == pytest.approx(m["tokens_per_s"] * flops_per_token(mc, cfg.seq_len))
        assert "mfu" not in m
