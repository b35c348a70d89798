"""Checkpoints: what a run directory holds, how it is written atomically, and how it is read back.

A run directory (`out_dir`, e.g. runs/tiny) holds one directory per checkpoint, `ckpt-000300/`
(the same step saved twice: `ckpt-000300-2/`), and a one-line file `latest` naming the newest:

    tokenizer.json       the tokenizer the model was trained with (written first)
    model.safetensors    the weights
    optimizer.pt         AdamW's state
    rng.pt               the torch, CUDA and data-order generators' states (tensors)
    trainer.json         step, tokens, validation figures, the TrainConfig, the run's data flags,
                         Python's and numpy's RNG states, and `tokenizer_sha256` (the sha256 of
                         the tokenizer.json beside it)
    config.json          the ModelConfig

Writing (`save_checkpoint`): the files go into `ckpt.tmp-XXXX/`, each fsynced; the directory is
renamed to `ckpt-<step>/` and the run directory fsynced; only then does `latest` switch to it, by
writing `latest.tmp` and `os.replace`-ing it over `latest` (atomic on POSIX). A process killed at
any moment leaves `latest` naming a complete checkpoint; the next save removes a stray
`ckpt.tmp-*`. The `keep` newest checkpoints stay (`--keep`, default 2), so a damaged one can be
skipped for the one before it. Files get the modes the user's umask gives.

Reading (`load_checkpoint`): follows `latest`, checks config.json against an expected ModelConfig
if one is given, and refuses a tokenizer.json whose hash differs from the one recorded (a swapped
tokenizer would otherwise decode garbage, or fail mid-generation). A missing or damaged file is a
one-line error that names the earlier checkpoint to go back to.

Exact resume: `_rng_state` and `_restore_rng` carry every random stream a step draws from (torch's
CPU and CUDA generators, the data generator, Python's `random`, numpy's), so with the weights and
the optimizer restored (train.py's `train(resume=True)`), N steps straight and k steps + resume
to N give bitwise-equal losses on a CPU. `check_same_config` and `check_same_train_config` refuse
to continue a run under another model or training configuration.

The torch-free half lives in train_config.py, so that `minicoder info` and the CLI's checks run
without loading torch: finding a run's checkpoints (`find_checkpoint` follows `latest`,
`list_checkpoints`), `file_sha256`, `earlier_checkpoint_advice` and `checkpoint_info`.

Under DDP each rank holds the whole model and rank 0 saves it; under FSDP every rank first takes
part in gathering the full state dicts onto rank 0, which writes them in the same single-process
format, so any world size and either mode can resume any checkpoint.

Left out: distributed checkpoints (every rank saving its own shard, which models too big for one
process's memory need), asynchronous saving, and remote storage.
"""

import dataclasses
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from minicoder.config import ModelConfig
from minicoder.data import tokenizer_fingerprint
from minicoder.model import Transformer
from minicoder.train_config import (
    RUN_CONTROL,
    TrainConfig,
    _ckpt_key,
    earlier_checkpoint_advice,
    file_sha256,
    find_checkpoint,
    flag,
    list_checkpoints,
)

# -----------------------------------------------------------------------------
# Writing: files into ckpt.tmp-XXXX/, rename, then the `latest` pointer


class Checkpoint(NamedTuple):
    """What `load_checkpoint` returns; unpack it as `model, tokenizer, *_ = load_checkpoint(dir)`."""

    model: Transformer
    tokenizer: object  # minicoder.tokenizer.Tokenizer
    model_config: ModelConfig
    train_config: TrainConfig | None
    state: dict  # trainer.json
    path: Path


# tokenizer.json first: trainer.json records the sha256 of the bytes written.
CHECKPOINT_FILES = ("tokenizer.json", "model.safetensors", "optimizer.pt", "rng.pt", "trainer.json", "config.json")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_checkpoint(run_dir: Path, model: Transformer, optimizer, tokenizer, state: dict, rng: dict,
                    keep: int = 2, model_state: dict | None = None, optimizer_state: dict | None = None) -> Path:
    """Write a complete checkpoint for `state["step"]`, then point `run_dir/latest` at it.

    Order: files into ckpt.tmp-XXXX/ (each fsynced), rename to ckpt-<step>/, fsync the run
    directory, then replace `latest` atomically; only after that are checkpoints beyond the `keep`
    newest removed. `model_state` and `optimizer_state`, when given, are written instead of
    model.state_dict() and optimizer.state_dict(): under FSDP they are the full state dicts that
    every rank helped gather (train.py's `gather_full_state`), keyed as a single process keys them. trainer.json gets "tokenizer_sha256", the sha256 of the tokenizer.json written.
    Files and the directory get the modes the user's umask gives (safetensors and mkdtemp would
    make them private).
    MINICODER_TEST_CHECKPOINT_SLEEP_S (seconds) pauses after each file, so a test can kill us mid-save.
    """
    from safetensors.torch import save_file, save_model

    run_dir.mkdir(parents=True, exist_ok=True)
    pause = float(os.environ.get("MINICODER_TEST_CHECKPOINT_SLEEP_S", "0"))
    mask = _umask()
    tmp = Path(tempfile.mkdtemp(prefix="ckpt.tmp-", dir=run_dir))
    state = dict(state)
    writers = {
        "tokenizer.json": lambda p: tokenizer.save(p),
        "model.safetensors": lambda p: save_model(model, str(p)) if model_state is None else
        save_file({k: v.contiguous() for k, v in model_state.items()}, str(p), metadata={"format": "pt"}),
        "optimizer.pt": lambda p: torch.save(optimizer.state_dict() if optimizer_state is None else optimizer_state, p),
        "rng.pt": lambda p: torch.save(rng, p),
        "trainer.json": lambda p: _write_json(p, state),
        "config.json": lambda p: _write_json(p, model.config.to_dict()),
    }
    for name in CHECKPOINT_FILES:
        writers[name](tmp / name)
        if name == "tokenizer.json":
            state["tokenizer_sha256"] = file_sha256(tmp / name)
        os.chmod(tmp / name, 0o666 & ~mask)
        _fsync(tmp / name)
        if pause:
            time.sleep(pause)
    os.chmod(tmp, 0o777 & ~mask)
    _fsync(tmp)
    final = run_dir / f"ckpt-{state['step']:06d}"
    k = 1
    while final.exists():  # the same step saved twice (e.g. a run stopped right after a checkpoint)
        k += 1
        final = run_dir / f"ckpt-{state['step']:06d}-{k}"
    os.rename(tmp, final)
    _fsync(run_dir)
    pointer = run_dir / "latest.tmp"
    pointer.write_text(final.name + "\n")
    _fsync(pointer)
    os.replace(pointer, run_dir / "latest")  # the commit point
    _fsync(run_dir)
    # Keep `final` and the keep - 1 newest before it; later ones belong to a branch abandoned by
    # resuming from an earlier checkpoint.
    earlier = [c for c in list_checkpoints(run_dir) if _ckpt_key(c) < _ckpt_key(final)]
    for old in [c for c in list_checkpoints(run_dir) if c != final and c not in earlier[max(0, len(earlier) - (keep - 1)):]]:
        shutil.rmtree(old, ignore_errors=True)
    for old in run_dir.glob("ckpt.tmp-*"):
        shutil.rmtree(old, ignore_errors=True)
    return final


# -----------------------------------------------------------------------------
# Reading, and the checks before a run continues from a checkpoint


def _one_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _load_weights(model: Transformer, ckpt: Path) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    try:
        load_model(model, str(ckpt / "model.safetensors"), device=str(next(model.parameters()).device))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{ckpt / 'model.safetensors'} is corrupt or truncated ({_one_line(e)}); "
                         f"{earlier_checkpoint_advice(ckpt)}") from None
    except RuntimeError as e:
        raise ValueError(f"{ckpt / 'model.safetensors'} does not fit {ckpt / 'config.json'} ({_one_line(e)}); "
                         "the checkpoint is damaged, retrain it") from None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing; the checkpoint is incomplete, retrain or restore it") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); the checkpoint is damaged, retrain or restore it") from None


# What may differ between a stage-1 checkpoint and the 16K stage that starts from its weights.
STAGE_FIELDS = ("max_seq_len", "rope_theta", "rope_scaling_type", "rope_scaling_factor", "init_scheme", "init_std",
                "rope_original_max_seq_len", "rope_beta_fast", "rope_beta_slow", "rope_mscale", "rope_mscale_all_dim")
# Switches between paths that compute the same function from the same weights.
IMPL_FIELDS = ("attn_impl", "mla_impl", "moe_impl")


def check_same_config(ckpt: Path, saved: dict, expected: ModelConfig, ignore: tuple[str, ...] = IMPL_FIELDS,
                      fix: str = "use the same --preset/--model, or another --out to start a new run") -> None:
    """Raise if the checkpoint's model config differs from `expected` in a field not in `ignore`.

    attn_impl is ignored by default (both paths use the same weights); a field missing from an
    older config.json counts as its default.
    """
    want = expected.to_dict()
    defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    diff = [f"{k}: {saved.get(k, defaults.get(k))} in the checkpoint, {want[k]} requested"
            for k in want if k not in ignore and saved.get(k, defaults.get(k)) != want[k]]
    if diff:
        raise ValueError(f"checkpoint {ckpt} has another model configuration ({'; '.join(diff)}); {fix}")


def check_same_train_config(ckpt: Path, saved: dict, cfg: TrainConfig) -> None:
    """Raise if `cfg` changes the checkpoint's training configuration beyond the RUN_CONTROL fields.

    One line naming each flag: `--lr 1.0 conflicts with the checkpoint's lr=0.002; ...`.
    """
    old = TrainConfig.from_dict(saved)
    diff = [(f.name, getattr(cfg, f.name), getattr(old, f.name)) for f in dataclasses.fields(TrainConfig)
            if f.name not in RUN_CONTROL and getattr(cfg, f.name) != getattr(old, f.name)]
    if diff:
        given = " and ".join(f"{flag(n)} {new}" for n, new, _ in diff)
        recorded = ", ".join(f"{n}={old}" for n, _, old in diff)
        verb = "conflicts" if len(diff) == 1 else "conflict"
        raise ValueError(f"{given} {verb} with the checkpoint's {recorded} ({ckpt}); --resume continues the run "
                         "as it was configured: drop the flag(s), or pass another --out to start a new run")


def tokenizer_mismatch(ckpt: Path, state: dict, tokenizer_path: Path) -> str | None:
    """Why `tokenizer_path` is not the tokenizer the checkpoint's model was trained with, or None.

    The reference is trainer.json's "tokenizer_sha256" (checkpoints written before it was recorded:
    the hash of their own tokenizer.json). A file matches if its bytes hash the same, or if
    re-saving it does (the same tokenizer, formatted differently).
    """
    want = state.get("tokenizer_sha256") or file_sha256(ckpt / "tokenizer.json")
    if file_sha256(tokenizer_path) == want:
        return None
    from minicoder.tokenizer import Tokenizer

    tok = Tokenizer.from_file(tokenizer_path)
    if tokenizer_fingerprint(tok) == want:
        return None
    return (f"{tokenizer_path} (sha256 {file_sha256(tokenizer_path)[:12]}, {tok.vocab_size} ids) is not the "
            f"tokenizer {ckpt} was trained with (sha256 {want[:12]})")


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                    expect_config: ModelConfig | None = None, attn_impl: str | None = None,
                    tokenizer: str | Path | None = None) -> Checkpoint:
    """Load a checkpoint directory, or the latest one of a run directory.

    Args:
        path: `runs/tiny` (follows its `latest` file) or `runs/tiny/ckpt-000300`.
        device: where to put the model.
        expect_config: if given, a checkpoint of another model shape is refused with a clear error.
        attn_impl: override the saved attention path ("naive" or "sdpa"); the weights are the same.
        tokenizer: a tokenizer.json to use instead of the checkpoint's own; like the checkpoint's
            own, it is refused (ValueError) unless it is the one the model was trained with
            (trainer.json's "tokenizer_sha256").

    Returns a `Checkpoint` (model in eval mode, tokenizer, model_config, train_config, state, path).
    """
    from minicoder.tokenizer import Tokenizer

    path = Path(path)
    ckpt = find_checkpoint(path)
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint at {path} (no model.safetensors, no 'latest' file); "
                                "train one with `minicoder train --out DIR`, or check the path")
    saved = _read_json(ckpt / "config.json")
    if expect_config is not None:
        check_same_config(ckpt, saved, expect_config)
    if attn_impl is not None:
        saved["attn_impl"] = attn_impl
    try:
        model_config = ModelConfig.from_dict(saved)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{ckpt / 'config.json'} is not a valid ModelConfig ({_one_line(e)})") from None
    state = _read_json(ckpt / "trainer.json")
    if not (ckpt / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{ckpt / 'tokenizer.json'} is missing; the checkpoint is incomplete")
    tokenizer_path = Path(tokenizer) if tokenizer is not None else ckpt / "tokenizer.json"
    if not tokenizer_path.is_file():
        raise FileNotFoundError(f"tokenizer {tokenizer_path} not found; check the path, or leave it out to use "
                                "the checkpoint's own")
    why = tokenizer_mismatch(ckpt, state, tokenizer_path)
    if why:
        fix = ("restore the checkpoint's own tokenizer.json" if tokenizer is None else
               f"leave the tokenizer out to use the checkpoint's own ({ckpt / 'tokenizer.json'})")
        raise ValueError(f"{why}; {fix}")
    tokenizer = Tokenizer.from_file(tokenizer_path)
    model = Transformer(model_config).to(device)
    _load_weights(model, ckpt)
    model.trained_with_bos = bool(state.get("bos", False))  # minicoder's documents: EOS-separated, no BOS
    model.eval()
    train_config = TrainConfig.from_dict(state["train_config"]) if "train_config" in state else None
    return Checkpoint(model, tokenizer, model_config, train_config, state, ckpt)


# -----------------------------------------------------------------------------
# RNG states, for exact resume


def _rng_state(data_gen: torch.Generator) -> tuple[dict, dict]:
    """RNG states: tensors for rng.pt, plain lists for trainer.json."""
    tensors = {"torch": torch.get_rng_state(), "data": data_gen.get_state()}
    if torch.cuda.is_available():
        tensors["cuda"] = torch.cuda.get_rng_state_all()
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    plain = {"python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
             "numpy": [kind, keys.tolist(), pos, has_gauss, gauss]}
    return tensors, plain


def _restore_rng(ckpt: Path, state: dict, data_gen: torch.Generator) -> None:
    try:
        tensors = torch.load(ckpt / "rng.pt", weights_only=True)
    except Exception as e:
        raise ValueError(f"{ckpt / 'rng.pt'} is corrupt ({_one_line(e)}); {earlier_checkpoint_advice(ckpt)}") from None
    torch.set_rng_state(tensors["torch"])
    data_gen.set_state(tensors["data"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(tensors["cuda"])
    version, keys, gauss = state["rng"]["python"]
    random.setstate((version, tuple(keys), gauss))
    kind, keys, pos, has_gauss, cached = state["rng"]["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
