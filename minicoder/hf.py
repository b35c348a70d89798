"""Load and save Hugging Face checkpoints: `LlamaForCausalLM` (DeepSeek-Coder v1) and
`DeepseekV2ForCausalLM` (DeepSeek-Coder-V2).

DeepSeek-Coder v1 is published as a `LlamaForCausalLM` directory, DeepSeek-Coder-V2 as a
`DeepseekV2ForCausalLM` one (model_type "deepseek_v2"): `config.json` plus weights in
`model.safetensors`, sharded `model-0000N-of-0000M.safetensors` with `model.safetensors.index.json`,
or the older `pytorch_model.bin` (and its sharded index). Our modules hold the same matrices under
other names (`HF_NAMES`, `HF_NAMES_MLA`, `HF_NAMES_MOE` below), so conversion is a renaming: no
transposes, no permutations. v1's q/k weights use the rotate-half RoPE pairing (rope.py's
`apply_rope`); V2's rope part pairs adjacent dimensions, which MLA applies as is
(`apply_rope_interleaved`). Experts are stored one tensor per expert and projection
(`mlp.experts.{e}.gate_proj.weight`), the layout of the released checkpoints and of transformers'
`save_pretrained`.

    model = from_hf("deepseek-coder-1.3b-base")           # -> Transformer
    model = from_hf("DeepSeek-Coder-V2-Lite-Base")        # -> Transformer with MLA and MoE
    to_hf(model, "out/")                                  # -> AutoModelForCausalLM.from_pretrained("out/")

Config fields map as: hidden_size -> d_model, intermediate_size -> d_ff, num_hidden_layers ->
n_layers, num_attention_heads -> n_heads, num_key_value_heads -> n_kv_heads,
max_position_embeddings -> max_seq_len, rms_norm_eps -> norm_eps, rope_theta and rope_scaling
(transformers 4.x, DeepSeek's own configs) or rope_parameters (5.x) -> rope_theta /
rope_scaling_type / _factor (YaRN's original_max_position_embeddings, beta_fast, beta_slow,
mscale, mscale_all_dim -> rope_original_max_seq_len, rope_beta_*, rope_mscale*),
tie_word_embeddings -> tie_embeddings. V2's MLA and MoE fields keep their names, except
num_experts_per_tok -> n_activated_experts, moe_intermediate_size -> moe_d_ff and aux_loss_alpha
-> balance_alpha1.

`from_hf` marks the model `trained_with_bos = True` (DeepSeek's tokenizer prepends BOS; a
tokenizer_config.json beside the weights with `"add_bos_token": false`, as `to_hf` writes for a
minicoder-trained model, says otherwise), which `generate` follows when its `bos` is None.

Command line: `minicoder export --hf DIR --checkpoint RUN` writes a trained run this way, with its tokenizer.

Left out: other architectures (Mistral sliding windows, biases), DeepSeek-V3 checkpoints (sigmoid
routing with a score-correction bias, multi-token prediction), quantised checkpoints, writing
sharded checkpoints, generation_config.json, and tokenizer_config.json beyond add_bos_token and
the BOS/EOS names. transformers' DeepseekV2 ignores `norm_topk_prob`, which DeepSeek's code (and
minicoder) applies: such a model exports, but transformers will not compute the same function.
"""

import copy
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from minicoder.config import ModelConfig
from minicoder.model import Transformer

# minicoder parameter name -> HF LlamaForCausalLM parameter name; {i} is the layer index.
HF_NAMES = {
    "embed.weight": "model.embed_tokens.weight",
    "layers.{i}.attn_norm.weight": "model.layers.{i}.input_layernorm.weight",
    "layers.{i}.attn.wq.weight": "model.layers.{i}.self_attn.q_proj.weight",
    "layers.{i}.attn.wk.weight": "model.layers.{i}.self_attn.k_proj.weight",
    "layers.{i}.attn.wv.weight": "model.layers.{i}.self_attn.v_proj.weight",
    "layers.{i}.attn.wo.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "layers.{i}.ffn_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "layers.{i}.ffn.w1.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "layers.{i}.ffn.w3.weight": "model.layers.{i}.mlp.up_proj.weight",
    "layers.{i}.ffn.w2.weight": "model.layers.{i}.mlp.down_proj.weight",
    "norm.weight": "model.norm.weight",
    "head.weight": "lm_head.weight",
}

# DeepSeek-V2's attention (MLA) and MLP names; {i} is the layer, {e} the expert.
HF_NAMES_MLA = {
    "layers.{i}.attn.wq.weight": "model.layers.{i}.self_attn.q_proj.weight",  # q_lora_rank None only
    "layers.{i}.attn.wq_a.weight": "model.layers.{i}.self_attn.q_a_proj.weight",  # these three with it
    "layers.{i}.attn.q_norm.weight": "model.layers.{i}.self_attn.q_a_layernorm.weight",
    "layers.{i}.attn.wq_b.weight": "model.layers.{i}.self_attn.q_b_proj.weight",
    "layers.{i}.attn.wkv_a.weight": "model.layers.{i}.self_attn.kv_a_proj_with_mqa.weight",
    "layers.{i}.attn.kv_norm.weight": "model.layers.{i}.self_attn.kv_a_layernorm.weight",
    "layers.{i}.attn.wkv_b.weight": "model.layers.{i}.self_attn.kv_b_proj.weight",
    "layers.{i}.attn.wo.weight": "model.layers.{i}.self_attn.o_proj.weight",
}
HF_NAMES_MOE = {
    "layers.{i}.ffn.gate.weight": "model.layers.{i}.mlp.gate.weight",
    "layers.{i}.ffn.experts.{e}.w1.weight": "model.layers.{i}.mlp.experts.{e}.gate_proj.weight",
    "layers.{i}.ffn.experts.{e}.w3.weight": "model.layers.{i}.mlp.experts.{e}.up_proj.weight",
    "layers.{i}.ffn.experts.{e}.w2.weight": "model.layers.{i}.mlp.experts.{e}.down_proj.weight",
    "layers.{i}.ffn.shared_experts.w1.weight": "model.layers.{i}.mlp.shared_experts.gate_proj.weight",
    "layers.{i}.ffn.shared_experts.w3.weight": "model.layers.{i}.mlp.shared_experts.up_proj.weight",
    "layers.{i}.ffn.shared_experts.w2.weight": "model.layers.{i}.mlp.shared_experts.down_proj.weight",
}

# Old transformers (< 4.35) also saved each layer's RoPE frequencies; we compute our own.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


def name_map(config: ModelConfig) -> dict[str, str]:
    """Every minicoder parameter name of this config -> its HF name:
    {"layers.0.attn.wq.weight": "model.layers.0.self_attn.q_proj.weight", ...}.

    v1 uses HF_NAMES; under MLA the attention rows come from HF_NAMES_MLA (wq, or wq_a, q_norm and
    wq_b when q_lora_rank is set), and MoE blocks take HF_NAMES_MOE expanded over the experts. The
    output head is left out when it is tied to the embedding (HF then saves it once).
    """
    per_layer = {k: v for k, v in HF_NAMES.items() if "{i}" in k}
    if config.is_mla:
        unused = ("wq_a", "q_norm", "wq_b") if config.q_lora_rank is None else ("wq",)
        per_layer = {k: v for k, v in per_layer.items() if ".attn." not in k}
        per_layer.update({k: v for k, v in HF_NAMES_MLA.items() if k.split(".")[3] not in unused})
    names = {}
    for i in range(config.n_layers):
        rows = dict(per_layer)
        if config.is_moe_layer(i):
            rows = {k: v for k, v in rows.items() if ".ffn." not in k}
            for k, v in HF_NAMES_MOE.items():
                if ".shared_experts." in k and not config.n_shared_experts:
                    continue
                for e in range(config.n_routed_experts) if "{e}" in k else [None]:
                    rows[k.replace("{e}", str(e))] = v.replace("{e}", str(e))
        names.update({k.format(i=i): v.format(i=i) for k, v in rows.items()})
    for ours, theirs in HF_NAMES.items():
        if "{i}" not in ours and not (ours == "head.weight" and config.tie_embeddings):
            names[ours] = theirs
    return names


def _rope_from_hf(hf: dict) -> dict:
    """ModelConfig's RoPE fields from config.json's rope_theta + rope_scaling (transformers 4.x and
    DeepSeek's own configs) or rope_parameters (5.x)."""
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    theta = float(rope.get("rope_theta", hf.get("rope_theta", 10000.0)))
    if rope_type == "default":
        return dict(rope_theta=theta)
    if rope_type == "linear":
        return dict(rope_theta=theta, rope_scaling_type="linear", rope_scaling_factor=float(rope["factor"]))
    if rope_type == "yarn" and hf.get("model_type") == "deepseek_v2":
        if "original_max_position_embeddings" not in rope:
            raise ValueError("config.json's YaRN block has no original_max_position_embeddings; add the "
                             "pre-training context (4096 for DeepSeek-V2)")
        return dict(rope_theta=theta, rope_scaling_type="yarn", rope_scaling_factor=float(rope["factor"]),
                    rope_original_max_seq_len=int(rope["original_max_position_embeddings"]),
                    rope_beta_fast=float(rope.get("beta_fast") or 32.0),
                    rope_beta_slow=float(rope.get("beta_slow") or 1.0),
                    rope_mscale=float(rope.get("mscale") or 1.0),
                    rope_mscale_all_dim=float(rope.get("mscale_all_dim") or 0.0))
    raise ValueError(f"config.json asks for RoPE scaling {rope_type!r}; minicoder reads 'default' and 'linear', "
                     f"and 'yarn' in deepseek_v2 checkpoints")


def _rope_to_hf(config: ModelConfig) -> dict | None:
    if config.rope_scaling_type is None:
        return None
    if config.rope_scaling_type == "linear":
        return {"type": "linear", "rope_type": "linear", "factor": config.rope_scaling_factor}
    return {"type": "yarn", "rope_type": "yarn", "factor": config.rope_scaling_factor,
            "original_max_position_embeddings": config.rope_original_max_seq_len,
            "beta_fast": config.rope_beta_fast, "beta_slow": config.rope_beta_slow,
            "mscale": config.rope_mscale, "mscale_all_dim": config.rope_mscale_all_dim}


def config_from_hf(hf: dict, attn_impl: str = "sdpa", mla_impl: str = "absorb") -> ModelConfig:
    """ModelConfig from the dict in an HF config.json (llama or deepseek_v2; transformers 4.x or 5.x layout)."""
    model_type = hf.get("model_type")
    if model_type not in ("llama", "deepseek_v2"):
        raise ValueError(f"config.json has model_type {model_type!r}, but minicoder reads only LlamaForCausalLM "
                         f"(model_type 'llama', DeepSeek-Coder v1) and DeepseekV2ForCausalLM ('deepseek_v2', "
                         f"DeepSeek-Coder-V2) checkpoints")
    if hf.get("hidden_act", "silu") != "silu" or hf.get("attention_bias") or hf.get("mlp_bias"):
        raise ValueError("config.json asks for biases or an activation other than silu; minicoder's models have "
                         "neither (DeepSeek-Coder uses silu and no biases)")
    heads = hf["num_attention_heads"]
    common = dict(
        vocab_size=hf["vocab_size"], n_layers=hf["num_hidden_layers"], d_model=hf["hidden_size"], n_heads=heads,
        d_ff=hf["intermediate_size"], max_seq_len=hf["max_position_embeddings"],
        norm_eps=hf.get("rms_norm_eps", 1e-6), tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        attn_impl=attn_impl, init_std=hf.get("initializer_range", 0.02), **_rope_from_hf(hf),
    )
    if model_type == "llama":
        if hf.get("head_dim") not in (None, hf["hidden_size"] // heads):
            raise ValueError(f"config.json has head_dim {hf['head_dim']} != hidden_size / num_attention_heads; "
                             f"minicoder derives head_dim from d_model and n_heads")
        return ModelConfig(**common, n_kv_heads=hf.get("num_key_value_heads") or heads)
    if hf.get("moe_layer_freq", 1) != 1:
        raise ValueError(f"config.json has moe_layer_freq {hf['moe_layer_freq']}; minicoder puts MoE in every "
                         f"block from first_k_dense_replace on, as DeepSeek-V2 (moe_layer_freq 1) does")
    if hf.get("scoring_func", "softmax") != "softmax" or \
            (hf.get("topk_method") or "greedy") not in ("greedy", "group_limited_greedy"):
        raise ValueError(f"config.json routes with scoring_func {hf.get('scoring_func')!r} and topk_method "
                         f"{hf.get('topk_method')!r}; DeepSeek-V2 checkpoints use softmax with greedy or "
                         f"group_limited_greedy (DeepSeek-V3 checkpoints are not read)")
    moe = {}
    if hf.get("n_routed_experts"):
        moe = dict(
            n_routed_experts=hf["n_routed_experts"], n_shared_experts=hf.get("n_shared_experts") or 0,
            n_activated_experts=hf["num_experts_per_tok"], moe_d_ff=hf["moe_intermediate_size"],
            first_k_dense_replace=hf.get("first_k_dense_replace", 0),
            topk_method=hf.get("topk_method") or "greedy", n_group=hf.get("n_group") or 1,
            topk_group=hf.get("topk_group") or 1, routed_scaling_factor=float(hf.get("routed_scaling_factor") or 1.0),
            norm_topk_prob=bool(hf.get("norm_topk_prob", False)), balance_alpha1=float(hf.get("aux_loss_alpha") or 0.0),
        )
    return ModelConfig(
        **common, n_kv_heads=heads, mla_impl=mla_impl, kv_lora_rank=hf["kv_lora_rank"], q_lora_rank=hf.get("q_lora_rank"),
        qk_nope_head_dim=hf["qk_nope_head_dim"], qk_rope_head_dim=hf["qk_rope_head_dim"],
        v_head_dim=hf["v_head_dim"], **moe,
    )


def config_to_hf(config: ModelConfig, dtype: torch.dtype = torch.float32) -> dict:
    """The config.json that makes transformers build the same model: LlamaForCausalLM for v1,
    DeepseekV2ForCausalLM under MLA (4.x layout, as DeepSeek's own configs; 5.x reads it too)."""
    out = {
        "vocab_size": config.vocab_size,
        "hidden_size": config.d_model,
        "intermediate_size": config.d_ff,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.n_kv_heads,
        "max_position_embeddings": config.max_seq_len,
        "rms_norm_eps": config.norm_eps,
        "rope_theta": config.rope_theta,
        "rope_scaling": _rope_to_hf(config),
        "tie_word_embeddings": config.tie_embeddings,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "initializer_range": config.init_std,
        "torch_dtype": str(dtype).removeprefix("torch."),
    }
    if not config.is_mla:
        if config.is_moe:
            raise ValueError("an MoE model with v1 attention (n_routed_experts > 0, kv_lora_rank None) has no HF "
                             "format minicoder writes; set kv_lora_rank for DeepseekV2ForCausalLM")
        if config.rope_scaling_type == "yarn":
            raise ValueError("a llama config.json cannot carry minicoder's DeepSeek-style YaRN; export with "
                             "rope_scaling_type None or 'linear'")
        return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", **out}
    if config.scoring_func != "softmax" or config.bias_update_speed:
        raise ValueError("DeepseekV2ForCausalLM routes with softmax scores and no bias; train with "
                         "scoring_func='softmax' and bias_update_speed=0 to export to the V2 format")
    moe = {"n_routed_experts": None, "num_experts_per_tok": None}
    if config.is_moe:
        moe = {
            "n_routed_experts": config.n_routed_experts, "n_shared_experts": config.n_shared_experts,
            "num_experts_per_tok": config.n_activated_experts, "moe_intermediate_size": config.moe_d_ff,
            "first_k_dense_replace": config.first_k_dense_replace, "moe_layer_freq": 1,
            "topk_method": config.topk_method, "n_group": config.n_group, "topk_group": config.topk_group,
            "routed_scaling_factor": config.routed_scaling_factor, "norm_topk_prob": config.norm_topk_prob,
            "scoring_func": "softmax", "aux_loss_alpha": config.balance_alpha1, "seq_aux": True,
        }
    else:  # MLA with dense MLPs everywhere: every block is "dense-replaced"
        moe = {"n_routed_experts": 1, "num_experts_per_tok": 1, "first_k_dense_replace": config.n_layers,
               "n_shared_experts": 0, "moe_intermediate_size": 1}
    return {
        "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2", **out,
        "num_key_value_heads": config.n_heads,
        "q_lora_rank": config.q_lora_rank, "kv_lora_rank": config.kv_lora_rank,
        "qk_nope_head_dim": config.qk_nope_head_dim, "qk_rope_head_dim": config.qk_rope_head_dim,
        "v_head_dim": config.v_head_dim, **moe,
    }


def _read_hf_tensors(directory: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint, by HF name, from whichever weight files the directory has."""
    for index_name, load in (("model.safetensors.index.json", load_file), ("pytorch_model.bin.index.json", _load_bin)):
        if (directory / index_name).is_file():
            weight_map = json.loads((directory / index_name).read_text())["weight_map"]
            tensors = {}
            for shard in sorted(set(weight_map.values())):
                tensors.update(load(directory / shard))
            return tensors
    if (directory / "model.safetensors").is_file():
        return load_file(directory / "model.safetensors")
    if (directory / "pytorch_model.bin").is_file():
        return _load_bin(directory / "pytorch_model.bin")
    raise FileNotFoundError(f"{directory} has no model.safetensors, model.safetensors.index.json or "
                            f"pytorch_model.bin; is it a complete save_pretrained directory?")


def _load_bin(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def from_hf(directory: str | os.PathLike, attn_impl: str = "sdpa", dtype: torch.dtype | None = None,
            device: torch.device | str = "cpu", mla_impl: str = "absorb") -> Transformer:
    """Load an HF LlamaForCausalLM or DeepseekV2ForCausalLM directory as a Transformer (in eval mode).

    Args:
        directory: what `save_pretrained` wrote (config.json and weights).
        attn_impl: "naive" or "sdpa", see ModelConfig.
        mla_impl: for a V2 checkpoint, "absorb" (the latent cache: what inference wants) or "naive".
        dtype: cast the weights to this dtype; None keeps the checkpoint's (bfloat16 for DeepSeek).
        device: where the model lives.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} does not exist or is not a directory; pass the directory "
                                f"that save_pretrained wrote")
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{directory} has no config.json; is it a Hugging Face model directory?")
    config = config_from_hf(json.loads((directory / "config.json").read_text()), attn_impl, mla_impl)
    tensors = {k: v for k, v in _read_hf_tensors(directory).items() if not k.endswith(_IGNORED_SUFFIXES)}

    names = name_map(config)
    missing = sorted(set(names.values()) - set(tensors))
    if missing:
        raise ValueError(f"{directory} lacks {len(missing)} tensor(s) that its config.json implies, "
                         f"e.g. {missing[0]}; is the checkpoint complete (every shard, every expert) and does "
                         f"config.json (num_hidden_layers, n_routed_experts) describe it?")
    unexpected = sorted(set(tensors) - set(names.values()))
    if unexpected:
        arch = "DeepseekV2ForCausalLM" if config.is_mla else "LlamaForCausalLM"
        raise ValueError(f"{directory} has {len(unexpected)} tensor(s) that a {arch} with this "
                         f"config.json does not have, e.g. {unexpected[0]}; is it really a {arch} checkpoint?")

    with torch.device("meta"):  # shapes only: the weights come from the checkpoint, not from init
        model = Transformer(config)
    expected = model.state_dict()
    state = {}
    for ours, theirs in names.items():
        if tensors[theirs].shape != expected[ours].shape:
            raise ValueError(f"{theirs} has shape {tuple(tensors[theirs].shape)} but config.json implies "
                             f"{tuple(expected[ours].shape)}; the config and the weights disagree")
        state[ours] = tensors[theirs]
    if config.tie_embeddings:
        state["head.weight"] = state["embed.weight"]
    model.load_state_dict(state, strict=True, assign=True)
    if config.tie_embeddings:  # assign=True replaced the shared Parameter; share it again
        model.head.weight = model.embed.weight
    model.init_rope_tables()
    # DeepSeek's tokenizer prepends BOS to every document (tokenizer_config.json: add_bos_token).
    tok_config = directory / "tokenizer_config.json"
    model.trained_with_bos = (bool(json.loads(tok_config.read_text()).get("add_bos_token", True))
                              if tok_config.is_file() else True)
    return model.to(device=device, dtype=dtype).eval()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def to_hf(model: Transformer, directory: str | os.PathLike, tokenizer=None) -> Path:
    """Write `model` as an HF LlamaForCausalLM (v1) or DeepseekV2ForCausalLM (MLA) directory:
    config.json + model.safetensors.

    Each file is written under a temporary name and renamed into place, so a crash never leaves a
    half-written file; config.json goes last, so its presence means the weights are complete.
    Files get the modes the user's umask gives (safetensors alone would make the weights private).
    With a minicoder `tokenizer`, also writes tokenizer.json, its BOS/EOS ids into config.json, and a
    tokenizer_config.json whose `add_bos_token` records the model's BOS convention (`prompt_bos`);
    tokenizer.json's post-processor follows the same convention, so `AutoTokenizer` prepends BOS
    exactly when the model was trained with it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    mask = _umask()
    config = model.config
    state = model.state_dict()
    tensors = {theirs: state[ours].detach().cpu().contiguous() for ours, theirs in name_map(config).items()}
    dtype = state["embed.weight"].dtype
    hf_config = config_to_hf(config, dtype)

    def put(name: str, write) -> None:
        tmp = directory / f".{name}.tmp"
        write(tmp)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, directory / name)

    if tokenizer is not None:
        bos = bool(getattr(model, "trained_with_bos", False))
        hf_config.update(bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id)
        hf_tokenizer = copy.copy(tokenizer)
        hf_tokenizer.add_bos_post_processor = bos
        put("tokenizer.json", lambda p: hf_tokenizer.save(str(p)))
        names = {i: name for name, i in tokenizer.special_tokens.items()}
        tok_config = {"add_bos_token": bos, "add_eos_token": False,
                      **{f"{k}_token": names[i] for k, i in (("bos", tokenizer.bos_id), ("eos", tokenizer.eos_id))
                         if i in names}}
        put("tokenizer_config.json", lambda p: p.write_text(json.dumps(tok_config) + "\n"))
    put("model.safetensors", lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
    put("config.json", lambda p: p.write_text(json.dumps(hf_config, indent=2) + "\n"))
    return directory


def _cli_export(args) -> int:
    """`minicoder export --hf DIR --checkpoint RUN`: a checkpoint as a transformers-loadable directory.

    DIR must not exist or be empty (export never overwrites); it is written beside itself under a
    temporary name and renamed into place when complete.
    """
    import shutil
    import tempfile

    from minicoder.checkpoint import load_checkpoint
    from minicoder.train_config import check_out_dir

    out = check_out_dir(args.hf, "--hf")
    if out.is_dir() and any(out.iterdir()):
        raise ValueError(f"--hf {out} already exists and is not empty; name a new directory (export never overwrites)")
    model, tokenizer, _, _, state, ckpt = load_checkpoint(args.checkpoint)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        to_hf(model, tmp, tokenizer)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private
        if out.is_dir():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{ckpt} (step {state.get('step')}) -> {out}: config.json, model.safetensors, tokenizer.json, "
          f"tokenizer_config.json; transformers.AutoModelForCausalLM.from_pretrained({str(out)!r}) loads it")
    return 0
