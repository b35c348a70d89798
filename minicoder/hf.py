"""Load and save Hugging Face `LlamaForCausalLM` checkpoints (the format DeepSeek-Coder ships in).

DeepSeek-Coder v1 is published as a `LlamaForCausalLM` directory: `config.json` plus weights in
`model.safetensors`, sharded `model-0000N-of-0000M.safetensors` with `model.safetensors.index.json`,
or the older `pytorch_model.bin` (and its sharded index). Our modules hold the same matrices under
other names (`HF_NAMES` below) and HF's q/k weights already use the rotate-half RoPE pairing
(see rope.py), so conversion is a renaming: no transposes, no permutations.

    model = from_hf("deepseek-coder-1.3b-base")           # -> Transformer
    to_hf(model, "out/")                                  # -> LlamaForCausalLM.from_pretrained("out/")

Config fields map as: hidden_size -> d_model, intermediate_size -> d_ff, num_hidden_layers ->
n_layers, num_attention_heads -> n_heads, num_key_value_heads -> n_kv_heads,
max_position_embeddings -> max_seq_len, rms_norm_eps -> norm_eps, rope_theta and rope_scaling
(transformers 4.x) or rope_parameters (5.x) -> rope_theta / rope_scaling_type / _factor,
tie_word_embeddings -> tie_embeddings.

`from_hf` marks the model `trained_with_bos = True` (DeepSeek's tokenizer prepends BOS; a
tokenizer_config.json beside the weights with `"add_bos_token": false`, as `to_hf` writes for a
minicoder-trained model, says otherwise), which `generate` follows when its `bos` is None.

Command line: `minicoder export --hf DIR --checkpoint RUN` writes a trained run this way, with its tokenizer.

Left out: other architectures (Mistral sliding windows, biases, YaRN), quantised checkpoints,
writing sharded checkpoints, generation_config.json, and tokenizer_config.json beyond add_bos_token
and the BOS/EOS names.
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

# Old transformers (< 4.35) also saved each layer's RoPE frequencies; we compute our own.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


def name_map(config: ModelConfig) -> dict[str, str]:
    """HF_NAMES expanded over the layers: {"layers.0.attn.wq.weight": "model.layers.0.self_attn.q_proj.weight", ...}.

    The output head is left out when it is tied to the embedding (HF then saves it once).
    """
    names = {}
    for ours, theirs in HF_NAMES.items():
        if ours == "head.weight" and config.tie_embeddings:
            continue
        for i in range(config.n_layers) if "{i}" in ours else [None]:
            names[ours.format(i=i)] = theirs.format(i=i)
    return names


def config_from_hf(hf: dict, attn_impl: str = "sdpa") -> ModelConfig:
    """ModelConfig from the dict in an HF config.json (transformers 4.x or 5.x layout)."""
    if hf.get("model_type") != "llama":
        raise ValueError(f"config.json has model_type {hf.get('model_type')!r}, but minicoder reads only "
                         f"LlamaForCausalLM checkpoints (model_type 'llama'), the format of DeepSeek-Coder v1")
    if hf.get("hidden_act", "silu") != "silu" or hf.get("attention_bias") or hf.get("mlp_bias"):
        raise ValueError("config.json asks for biases or an activation other than silu; minicoder's LLaMA has "
                         "neither (DeepSeek-Coder uses silu and no biases)")
    heads = hf["num_attention_heads"]
    if hf.get("head_dim") not in (None, hf["hidden_size"] // heads):
        raise ValueError(f"config.json has head_dim {hf['head_dim']} != hidden_size / num_attention_heads; "
                         f"minicoder derives head_dim from d_model and n_heads")
    # 4.x: rope_theta at the top and rope_scaling {"type" or "rope_type", "factor"};
    # 5.x: rope_parameters {"rope_type", "rope_theta", "factor"}.
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", "linear"):
        raise ValueError(f"config.json asks for RoPE scaling {rope_type!r}; minicoder reads 'default' and 'linear'")
    linear = rope_type == "linear"
    return ModelConfig(
        vocab_size=hf["vocab_size"],
        n_layers=hf["num_hidden_layers"],
        d_model=hf["hidden_size"],
        n_heads=heads,
        n_kv_heads=hf.get("num_key_value_heads") or heads,
        d_ff=hf["intermediate_size"],
        max_seq_len=hf["max_position_embeddings"],
        rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
        rope_scaling_type="linear" if linear else None,
        rope_scaling_factor=float(rope["factor"]) if linear else 1.0,
        norm_eps=hf.get("rms_norm_eps", 1e-6),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        attn_impl=attn_impl,
        init_std=hf.get("initializer_range", 0.02),
    )


def config_to_hf(config: ModelConfig, dtype: torch.dtype = torch.float32) -> dict:
    """The config.json that makes `LlamaForCausalLM` build the same model (4.x layout, read by 5.x too)."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.d_model,
        "intermediate_size": config.d_ff,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.n_kv_heads,
        "max_position_embeddings": config.max_seq_len,
        "rms_norm_eps": config.norm_eps,
        "rope_theta": config.rope_theta,
        "rope_scaling": (None if config.rope_scaling_type is None else
                         {"type": "linear", "rope_type": "linear", "factor": config.rope_scaling_factor}),
        "tie_word_embeddings": config.tie_embeddings,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "initializer_range": config.init_std,
        "torch_dtype": str(dtype).removeprefix("torch."),
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
            device: torch.device | str = "cpu") -> Transformer:
    """Load an HF LlamaForCausalLM directory as a Transformer (in eval mode).

    Args:
        directory: what `save_pretrained` wrote (config.json and weights).
        attn_impl: "naive" or "sdpa", see ModelConfig.
        dtype: cast the weights to this dtype; None keeps the checkpoint's (bfloat16 for DeepSeek).
        device: where the model lives.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} does not exist or is not a directory; pass the directory "
                                f"that save_pretrained wrote")
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{directory} has no config.json; is it a Hugging Face model directory?")
    config = config_from_hf(json.loads((directory / "config.json").read_text()), attn_impl)
    tensors = {k: v for k, v in _read_hf_tensors(directory).items() if not k.endswith(_IGNORED_SUFFIXES)}

    names = name_map(config)
    missing = sorted(set(names.values()) - set(tensors))
    if missing:
        raise ValueError(f"{directory} lacks {len(missing)} tensor(s) that its config.json implies, "
                         f"e.g. {missing[0]}; is num_hidden_layers right and the checkpoint complete?")
    unexpected = sorted(set(tensors) - set(names.values()))
    if unexpected:
        raise ValueError(f"{directory} has {len(unexpected)} tensor(s) that a LlamaForCausalLM with this "
                         f"config.json does not have, e.g. {unexpected[0]}; is it really a llama checkpoint?")

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
    """Write `model` as an HF LlamaForCausalLM directory: config.json + model.safetensors.

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

    from minicoder.train import load_checkpoint
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
