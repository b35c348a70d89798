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

CLI (`minicoder.cli` defines the flags): the prompt is echoed (for complete: prefix, the new middle,
suffix; `--no-echo` prints only the new text), new text is printed as each token comes (`stream_ids`,
`TextStream`, which holds back a UTF-8 character cut across tokens), and a line on stderr says why
it stopped: an end-of-text token, --max-new-tokens, or the end of the model's context.
    minicoder generate --checkpoint runs/tiny --prompt "def fib(n):"
    minicoder complete --hf deepseek-coder-1.3b-base --prefix "def f(x):\\n    " --suffix "\\n    return y"

Left out: batched decoding with padding, beam search, repetition penalties, speculative decoding.
"""

import codecs
import math
import sys
import time
from pathlib import Path

import torch

from minicoder.fim import fim_prompt
from minicoder.model import Transformer, make_cache
from minicoder.tokenizer import FIM_BEGIN, FIM_END, FIM_HOLE


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Set all but the k largest logits of each row to -inf: [1, 3, 2], k=2 -> [-inf, 3, 2].

    logits (..., V); k >= 1, and k >= V keeps everything. A logit equal to the k-th largest is kept
    too, so ties at the boundary can leave more than k (as HF's TopKLogitsWarper does). Returns a
    new tensor of the same shape and dtype; the input is not modified.

    >>> top_k_filter(torch.tensor([[1.0, 3.0, 2.0]]), 2).tolist()
    [[-inf, 3.0, 2.0]]
    >>> top_k_filter(torch.tensor([[5.0, 1.0, 5.0, 0.0]]), 1).tolist()  # a tie for first: both stay
    [[5.0, -inf, 5.0, -inf]]
    """
    # BEGIN ASSIGNMENT sampling
    kth = logits.topk(min(k, logits.shape[-1]), dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))  # (B, V)
    # END ASSIGNMENT


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability mass reaches p; -inf elsewhere.

    probs [0.1, 0.4, 0.3, 0.2], p=0.6 -> keeps 0.4 and 0.3 (mass 0.7); the 0.2 token would only be
    needed for p > 0.7. The most likely token is always kept.

    Rank the tokens of each row (..., V) by probability softmax(logits), highest first; among equal
    probabilities the lower id ranks first. Keep a token when the mass of the tokens ranked above it
    is still below p; so the kept set is the shortest prefix of the ranking whose mass reaches p (a
    prefix reaching exactly p is enough). The rest become -inf; the input is not modified.

    >>> logits = torch.tensor([0.1, 0.4, 0.3, 0.2]).log()
    >>> top_p_filter(logits, 0.6).isfinite().tolist()  # which tokens stay
    [False, True, True, False]
    >>> top_p_filter(torch.zeros(4), 0.5).tolist()  # four tokens of 0.25 tie: the lower ids first
    [0.0, 0.0, -inf, -inf]
    """
    # BEGIN ASSIGNMENT sampling
    sorted_logits, order = logits.sort(dim=-1, descending=True, stable=True)  # (B, V) each; ties: lower id first
    probs = sorted_logits.softmax(dim=-1)  # (B, V)
    mass_before = probs.cumsum(dim=-1) - probs  # (B, V) mass of the tokens ranked above
    drop_sorted = mass_before >= p  # the set had already reached p without this token
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # (B, V) back in vocabulary order
    return logits.masked_fill(drop, float("-inf"))  # (B, V)
    # END ASSIGNMENT


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """One next-token id per row of logits (B, V) -> (B,) int64.

    temperature 0 is greedy: the argmax of each row (top_k and top_p play no part, and nothing is
    drawn). Otherwise, in float32: divide the logits by the temperature, then apply
    `top_k_filter` if top_k is given, then `top_p_filter` if top_p is given and below 1, and draw
    one id per row from the softmax with torch.multinomial, passing `generator` so that a seeded
    generator makes the draw repeatable.

    >>> logits = torch.tensor([[0.0, 2.0, 1.0], [5.0, 0.0, 0.0]])
    >>> sample_next(logits, temperature=0).tolist()
    [1, 0]
    >>> sample_next(logits, temperature=1.0, top_k=1, generator=torch.Generator().manual_seed(0)).tolist()
    [1, 0]
    """
    # BEGIN ASSIGNMENT sampling
    if temperature == 0:
        return logits.argmax(dim=-1)  # (B,)
    logits = logits.float() / temperature  # (B, V)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    probs = logits.softmax(dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)  # (B,)
    # END ASSIGNMENT


def _check_sampling(max_new_tokens, temperature, top_k, top_p):
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if not (math.isfinite(temperature) and temperature >= 0):  # inf would sample uniformly, nan gives garbage
        raise ValueError(f"temperature must be a finite number >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 (or None for no top-k), got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (or None for no nucleus filtering), got {top_p}")


@torch.no_grad()
def stream_ids(model: Transformer, idx, max_new_tokens: int = 128, temperature: float = 0.0,
               top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
               stop_ids=None, vocab_size: int | None = None):
    """Yield the new ids one at a time as they are chosen; the generator returns why it stopped.

    The same ids as `generate_ids`. Its return value (StopIteration.value, or what `yield from`
    gives) is "stop" (the last id yielded was a stop id), "length" (max_new_tokens yielded) or
    "context" (the model's context, config.max_seq_len, is full). vocab_size, if given, samples
    only ids below it: a tokenizer may have fewer ids than the model's embedding (DeepSeek-Coder
    pads its 32,022 to 32,256), and an id it cannot decode must not come out.
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
        return "length"
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    stop = set(stop_ids or ())
    # v1: keys and values per layer; V2: MLA's latent (mla_impl "absorb") or its expanded keys/values
    cache = make_cache(model.config, batch_size=1, max_seq_len=min(context, n + max_new_tokens), device=device,
                       dtype=next(model.parameters()).dtype)
    logits = model(torch.tensor([prompt], device=device), cache, 0)[:, -1]  # prefill: (1, V)
    pos, count = n, 0
    while True:
        if vocab_size is not None:
            logits = logits[:, :vocab_size]  # (1, vocab_size)
        next_id = int(sample_next(logits, temperature, top_k, top_p, generator))
        count += 1
        yield next_id
        if next_id in stop:
            return "stop"
        if count == max_new_tokens:
            return "length"
        if pos == cache.max_seq_len:  # the cache is full: no room to feed next_id back
            return "context"
        logits = model(torch.tensor([[next_id]], device=device), cache, pos)[:, -1]  # (1, V)
        pos += 1


def generate_ids(model: Transformer, idx, max_new_tokens: int = 128, temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 stop_ids=None, vocab_size: int | None = None) -> list[int]:
    """Continue the prompt `idx` (a list of ids or a 1-D tensor); return the new ids.

    Generation ends after max_new_tokens, when the context (config.max_seq_len) is full, or at
    the first id in stop_ids, which is included as the last element of the result. temperature 0
    is greedy; seed makes sampling repeatable (None draws a fresh seed). `stream_ids` yields the
    same ids one by one and says which of the three ended them.
    """
    return list(stream_ids(model, idx, max_new_tokens, temperature, top_k, top_p, seed, stop_ids, vocab_size))


class TextStream:
    """Decode ids to text one token at a time, holding back a UTF-8 character cut across tokens.

    Byte-level BPE can split one character over two tokens ("é" = b"\\xc3" + b"\\xa9"), so
    decoding each token alone would print two U+FFFD. `push(id)` returns the text that is complete
    so far; `finish()` the rest (a character cut off for good becomes U+FFFD, as `decode` does).
    The pieces joined equal tokenizer.decode(ids).
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        return self.decoder.decode(self.tokenizer.decode_bytes([token_id]))

    def finish(self) -> str:
        return self.decoder.decode(b"", final=True)


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
                       seed, stop, tokenizer.vocab_size)
    return decode_completion(tokenizer, new, stop)


def complete(model: Transformer, tokenizer, prefix: str, suffix: str, max_new_tokens: int = 128,
             temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
             seed: int | None = None, stop_ids=None, bos: bool | None = None) -> str:
    """Fill in the middle between `prefix` and `suffix`; return the middle text (see generate, also for bos)."""
    stop = default_stop_ids(tokenizer) if stop_ids is None else list(stop_ids)
    bos = prompt_bos(model) if bos is None else bos
    new = generate_ids(model, encode_fim_prompt(tokenizer, prefix, suffix, bos), max_new_tokens, temperature,
                       top_k, top_p, seed, stop, tokenizer.vocab_size)
    return decode_completion(tokenizer, new, stop)


# ---------------------------------------------------------------------------- CLI

# The parser is in minicoder/cli.py, which loads this module only when the command runs.


def resolve_device(name: str | None) -> torch.device:
    """The device `--device` names, checked against this torch build; None: cuda if it sees a GPU, else cpu."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"--device {name}: not a device minicoder runs on; use cpu, cuda, cuda:N or mps")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: this torch build sees no CUDA GPU; use --device cpu (or leave it out)")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s), "
                         f"cuda:0 to cuda:{torch.cuda.device_count() - 1}; pick one of those")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name}: this torch build has no Apple MPS backend; use --device cpu "
                         "(or leave it out)")
    return torch.device(name)


def _check_cli_args(args) -> None:
    """The sampling flags, checked before any model is loaded; each error names its flag."""
    if args.max_new_tokens < 0:
        raise ValueError(f"--max-new-tokens must be 0 or more, got {args.max_new_tokens}")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise ValueError(f"--temperature {args.temperature}: must be a finite number >= 0 (0 is greedy; "
                         "1 samples the model's own distribution)")
    if args.top_k is not None and args.top_k < 1:
        raise ValueError(f"--top-k must be 1 or more, got {args.top_k}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise ValueError(f"--top-p must be in (0, 1], got {args.top_p}")


def _load_for_cli(args, device: torch.device) -> tuple[Transformer, object]:
    from minicoder.tokenizer import Tokenizer

    if args.checkpoint:
        from minicoder.checkpoint import load_checkpoint

        # Refuses a --tokenizer other than the one the model was trained with.
        model, tokenizer, *_ = load_checkpoint(args.checkpoint, device=device, tokenizer=args.tokenizer)
        return model.with_mla_impl("absorb"), tokenizer  # an MLA model decodes from its latent cache
    from minicoder.hf import from_hf

    model = from_hf(args.hf, dtype=None if device.type != "cpu" else torch.float32, device=device)
    path = Path(args.tokenizer) if args.tokenizer else Path(args.hf) / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; pass --tokenizer path/to/tokenizer.json" if not args.tokenizer
                                else f"--tokenizer {path} not found; check the path")
    tokenizer = Tokenizer.from_file(path)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} ids but the model only {model.config.vocab_size}; "
                         f"use the tokenizer the model was trained with (--tokenizer)")
    return model, tokenizer


def _cli_run(args) -> int:
    """`minicoder generate` / `complete`: echo the prompt, stream the new text, say why it stopped."""
    _check_cli_args(args)
    device = resolve_device(args.device)
    model, tokenizer = _load_for_cli(args, device)
    bos = args.bos if args.bos is not None else prompt_bos(model)
    if args.command == "generate":
        ids, before, after, what = encode_prompt(tokenizer, args.prompt, bos), args.prompt, "", "--prompt"
    else:
        ids = encode_fim_prompt(tokenizer, args.prefix, args.suffix, bos)
        before, after, what = args.prefix, args.suffix, "--prefix and --suffix"
    context = model.config.max_seq_len
    if len(ids) > context:
        raise ValueError(f"{what} make{'s' if what == '--prompt' else ''} {len(ids)} tokens but the model's "
                         f"context is {context}; shorten {what}")
    stop = set(default_stop_ids(tokenizer))
    out = sys.stdout
    if args.echo:
        out.write(before)
        out.flush()
    text = TextStream(tokenizer)
    stream = stream_ids(model, ids, args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed,
                        stop, tokenizer.vocab_size)
    start, new = time.perf_counter(), 0
    while True:
        try:
            token = next(stream)
        except StopIteration as end:
            reason = end.value
            break
        new += 1
        if token not in stop:
            out.write(text.push(token))
            out.flush()
    seconds = time.perf_counter() - start
    out.write(text.finish() + (after if args.echo else "") + "\n")
    out.flush()
    why = {"stop": "at the end-of-text token", "length": f"after --max-new-tokens {args.max_new_tokens}",
           "context": f"at the end of the model's context of {context} tokens, not at an end of text: the text "
                      f"is cut there (a shorter {what} leaves more room)"}[reason]
    print(f"[{len(ids)} prompt + {new} new tokens in {seconds:.2f} s, {new / max(seconds, 1e-9):.1f} new tokens/s; "
          f"stopped {why}]", file=sys.stderr)
    return 0
