"""Sampling from a trained model: greedy, temperature, top-k, top-p, with a KV cache; and infilling.

Autoregressive decoding (Radford et al., 2019): run the prompt through the model once
("prefill", filling the KV cache), then repeatedly pick a next token from the last position's
distribution and feed only that token back, at its position, until a stop token (EOS, or EOT,
which DeepSeek-Coder's instruct models end a turn with) or the token budget.

Choosing the next token from logits z:
    temperature 0   greedy: argmax z
    temperature t   sample softmax(z / t); then optionally
    top-k           keep the k most likely tokens (Fan et al., 2018)
    top-p           keep the smallest set of most likely tokens whose mass reaches p
                    (nucleus sampling, Holtzman et al., 2020)
Filters apply in that order (temperature, top-k, top-p), as HF `transformers` does.

Fill-in-the-middle (DeepSeek-Coder section 3.1.2): `complete(model, tok, prefix, suffix)` prompts
with `<｜fim▁begin｜>prefix<｜fim▁hole｜>suffix<｜fim▁end｜>` (fim.py) and returns what the model
writes for the hole.

BOS: a prompt should start the way the model's training documents did. DeepSeek's released models
saw BOS first (their tokenizer prepends it); models trained by minicoder never saw BOS (documents
are separated by EOS only, data.py). `generate` and `complete` take `bos=None` to mean that
convention, read from the model (`prompt_bos`: `model.trained_with_bos`, which `from_hf` sets to
True and `load_checkpoint` to False), and the CLI applies the same rule; `--bos/--no-bos` or
`bos=True/False` override it.

CLI:
    minicoder generate --checkpoint runs/tiny --prompt "def fib(n):"
    minicoder complete --hf deepseek-coder-1.3b-base --prefix "def f(x):\\n    " --suffix "\\n    return y"

Left out: batched decoding with padding, beam search, repetition penalties, speculative decoding.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

from minicoder.fim import fim_prompt
from minicoder.model import KVCache, Transformer
from minicoder.tokenizer import FIM_BEGIN, FIM_END, FIM_HOLE


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Set all but the k largest logits of each row to -inf: [1, 3, 2], k=2 -> [-inf, 3, 2]."""
    kth = logits.topk(min(k, logits.shape[-1]), dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))  # (B, V)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability mass reaches p; -inf elsewhere.

    probs [0.1, 0.4, 0.3, 0.2], p=0.6 -> keeps 0.4 and 0.3 (mass 0.7); the 0.2 token would only be
    needed for p > 0.7. The most likely token is always kept.
    """
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V) each
    probs = sorted_logits.softmax(dim=-1)  # (B, V)
    mass_before = probs.cumsum(dim=-1) - probs  # (B, V) mass of the tokens ranked above
    drop_sorted = mass_before >= p  # the set had already reached p without this token
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # (B, V) back in vocabulary order
    return logits.masked_fill(drop, float("-inf"))  # (B, V)


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """One next-token id per row of logits (B, V) -> (B,)."""
    if temperature == 0:
        return logits.argmax(dim=-1)  # (B,)
    logits = logits.float() / temperature  # (B, V)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    probs = logits.softmax(dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)  # (B,)


def _check_sampling(max_new_tokens, temperature, top_k, top_p):
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 (or None for no top-k), got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (or None for no nucleus filtering), got {top_p}")


@torch.no_grad()
def generate_ids(model: Transformer, idx, max_new_tokens: int = 128, temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 stop_ids=None) -> list[int]:
    """Continue the prompt `idx` (a list of ids or a 1-D tensor); return the new ids.

    Generation ends after max_new_tokens, when the context (config.max_seq_len) is full, or at
    the first id in stop_ids, which is included as the last element of the result. temperature 0
    is greedy; seed makes sampling repeatable (None draws a fresh seed).
    """
    _check_sampling(max_new_tokens, temperature, top_k, top_p)
    prompt = [int(i) for i in idx]
    n, context = len(prompt), model.config.max_seq_len
    if n == 0:
        raise ValueError("the prompt is empty; give at least one token (e.g. BOS)")
    if n > context:
        raise ValueError(f"prompt is {n} tokens but the model's context is {context}; "
                         f"shorten it or use a model with a longer max_seq_len")
    if max_new_tokens == 0:
        return []
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    stop = set(stop_ids or ())
    cache = KVCache(model.config, batch_size=1, max_seq_len=min(context, n + max_new_tokens), device=device,
                    dtype=next(model.parameters()).dtype)
    logits = model(torch.tensor([prompt], device=device), cache, 0)[:, -1]  # prefill: (1, V)
    pos, out = n, []
    while True:
        next_id = int(sample_next(logits, temperature, top_k, top_p, generator))
        out.append(next_id)
        if next_id in stop or len(out) == max_new_tokens or pos == cache.max_seq_len:
            return out
        logits = model(torch.tensor([[next_id]], device=device), cache, pos)[:, -1]  # (1, V)
        pos += 1


def encode_prompt(tokenizer, prompt: str, bos: bool = True) -> list[int]:
    """Prompt ids; special-token strings in the prompt stay plain text."""
    return tokenizer.encode(prompt, bos=bos and tokenizer.bos_id is not None)


def encode_fim_prompt(tokenizer, prefix: str, suffix: str, bos: bool = True) -> list[int]:
    """Ids of fim_prompt(prefix, suffix); only the three FIM markers it places are special."""
    if None in (tokenizer.fim_begin_id, tokenizer.fim_hole_id, tokenizer.fim_end_id):
        raise ValueError("the tokenizer has no FIM tokens; use a DeepSeek-Coder tokenizer or train one "
                         "with the default special tokens")
    if any(m in prefix + suffix for m in (FIM_BEGIN, FIM_HOLE, FIM_END)):
        raise ValueError("prefix or suffix contains a FIM marker string; remove it, it would split the prompt")
    return tokenizer.encode(fim_prompt(prefix, suffix), allowed_special={FIM_BEGIN, FIM_HOLE, FIM_END},
                            bos=bos and tokenizer.bos_id is not None)


def prompt_bos(model: Transformer) -> bool:
    """The BOS convention of the model's training data: model.trained_with_bos, None counting as False.

    from_hf(...) -> True (DeepSeek's checkpoints); load_checkpoint(...) -> False (minicoder's runs);
    a model built in this process -> False (it is minicoder's to train, on EOS-separated documents).
    """
    return bool(getattr(model, "trained_with_bos", None))


def default_stop_ids(tokenizer) -> list[int]:
    """The tokenizer's EOS and EOT ids (those it has)."""
    return [i for i in (tokenizer.eos_id, tokenizer.eot_id) if i is not None]


def decode_completion(tokenizer, new_ids: list[int], stop_ids) -> str:
    """The text of generated ids, without the stop token that ended them."""
    if new_ids and new_ids[-1] in stop_ids:
        new_ids = new_ids[:-1]
    return tokenizer.decode(new_ids)


def generate(model: Transformer, tokenizer, prompt: str, max_new_tokens: int = 128, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
             stop_ids=None, bos: bool | None = None) -> str:
    """Complete `prompt` and return the new text (without the prompt and the stop token).

    stop_ids None stops at the tokenizer's EOS and EOT. bos True prepends BOS, False does not,
    None follows the model's training data (`prompt_bos`: yes for HF DeepSeek checkpoints, no for
    minicoder's, whose documents are separated by EOS only).
    """
    stop = default_stop_ids(tokenizer) if stop_ids is None else list(stop_ids)
    bos = prompt_bos(model) if bos is None else bos
    new = generate_ids(model, encode_prompt(tokenizer, prompt, bos), max_new_tokens, temperature, top_k, top_p,
                       seed, stop)
    return decode_completion(tokenizer, new, stop)


def complete(model: Transformer, tokenizer, prefix: str, suffix: str, max_new_tokens: int = 128,
             temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
             seed: int | None = None, stop_ids=None, bos: bool | None = None) -> str:
    """Fill in the middle between `prefix` and `suffix`; return the middle text (see generate, also for bos)."""
    stop = default_stop_ids(tokenizer) if stop_ids is None else list(stop_ids)
    bos = prompt_bos(model) if bos is None else bos
    new = generate_ids(model, encode_fim_prompt(tokenizer, prefix, suffix, bos), max_new_tokens, temperature,
                       top_k, top_p, seed, stop)
    return decode_completion(tokenizer, new, stop)


# ---------------------------------------------------------------------------- CLI

def register_cli(sub) -> None:
    for name, help_text in (("generate", "continue a prompt with a trained or HF model"),
                            ("complete", "fill in the middle between a prefix and a suffix")):
        p = sub.add_parser(name, help=help_text)
        src = p.add_mutually_exclusive_group(required=True)
        src.add_argument("--checkpoint", help="a `minicoder train` run or checkpoint directory (e.g. runs/tiny)")
        src.add_argument("--hf", help="a Hugging Face LlamaForCausalLM directory (e.g. deepseek-coder-1.3b-base)")
        if name == "generate":
            p.add_argument("--prompt", required=True, help="the text to continue")
        else:
            p.add_argument("--prefix", required=True, help="the code before the hole")
            p.add_argument("--suffix", required=True, help="the code after the hole")
        p.add_argument("--tokenizer", help="tokenizer.json to use instead of the one in the model directory")
        p.add_argument("--max-new-tokens", type=int, default=128, help="most tokens to generate (default 128)")
        p.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default); higher is more random")
        p.add_argument("--top-k", type=int, default=None, help="sample only among the k most likely tokens")
        p.add_argument("--top-p", type=float, default=None, help="sample only among the most likely tokens "
                       "whose probability mass reaches p (nucleus sampling)")
        p.add_argument("--seed", type=int, default=None, help="seed for sampling, for repeatable output")
        p.add_argument("--bos", action=argparse.BooleanOptionalAction, default=None,
                       help="prepend BOS (default: as the model's training data did: yes for --hf, "
                            "no for --checkpoint, whose documents are separated by EOS only)")
        p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available, else cpu)")
        p.set_defaults(func=_cli_run)


def _load_for_cli(args) -> tuple[Transformer, object]:
    from minicoder.tokenizer import Tokenizer

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.checkpoint:
        from minicoder.train import load_checkpoint

        model, tokenizer, *_ = load_checkpoint(args.checkpoint, device=device)
    else:
        from minicoder.hf import from_hf

        model = from_hf(args.hf, dtype=None if device != "cpu" else torch.float32, device=device)
        tokenizer = None
        if not args.tokenizer:
            path = Path(args.hf) / "tokenizer.json"
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found; pass --tokenizer path/to/tokenizer.json")
            tokenizer = Tokenizer.from_file(path)
    if args.tokenizer:
        tokenizer = Tokenizer.from_file(args.tokenizer)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} ids but the model only {model.config.vocab_size}; "
                         f"use the tokenizer the model was trained with")
    return model, tokenizer


def _cli_run(args) -> int:
    model, tokenizer = _load_for_cli(args)
    bos = args.bos if args.bos is not None else prompt_bos(model)
    if args.command == "generate":
        ids = encode_prompt(tokenizer, args.prompt, bos)
    else:
        ids = encode_fim_prompt(tokenizer, args.prefix, args.suffix, bos)
    stop = default_stop_ids(tokenizer)
    start = time.perf_counter()
    new = generate_ids(model, ids, args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed, stop)
    seconds = time.perf_counter() - start
    print(decode_completion(tokenizer, new, stop))
    print(f"[{len(ids)} prompt + {len(new)} new tokens in {seconds:.2f} s, "
          f"{len(new) / max(seconds, 1e-9):.1f} new tokens/s]", file=sys.stderr)
    return 0
