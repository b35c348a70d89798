"""`make train-tiny`: a tokenizer, the repository-level pipeline and a short training run, on a CPU.

The recipe on top of the library: it trains (or reuses from .cache/) a BPE tokenizer on the
standard library, prepares its tokens through `minicoder prepare` (cached), trains the `tiny`
presets for at most `--time-limit-s` seconds (evaluation included), then prints validation bits
per byte, a completion of `def fibonacci(n):`, a FIM example, and how many of 20 sampled
completions of PARSE_HEADERS parse (`parses`: header + the completion cut before its first blank
line or line starting in column 0, accepted by `ast.parse`).
Run again, it reuses a finished run and goes straight to the samples, resumes an unfinished one,
and starts over with `--retrain`.
"""

import ast
import json
import shutil
import time
from pathlib import Path

from minicoder.config import ModelConfig
from minicoder.data import prepare_repo_tokens, repo_tokenizer
from minicoder.train import TrainConfig, _read_json, find_checkpoint, load_checkpoint, train

# -----------------------------------------------------------------------------
# Judging samples: does a completed function parse?

# Twenty fixed function headers for `minicoder train-tiny`'s parse check.
PARSE_HEADERS = (
    "def add(a, b):", "def is_even(n):", "def factorial(n):", "def reverse_string(s):",
    "def read_lines(path):", "def flatten(items):", "def clamp(value, low, high):", "def mean(values):",
    "def count_words(text):", "def unique(seq):", "def merge_dicts(a, b):", "def is_palindrome(s):",
    "def chunks(seq, size):", "def parse_int(text, default=0):", "def gcd(a, b):", "def find_max(values):",
    "def to_snake_case(name):", "def join_path(*parts):", "def retry(func, attempts=3):", "def main(argv=None):",
)


def function_body(completion: str, complete: bool) -> str:
    """Cut a completion after a function header down to the function's body.

    The body ends before the first blank line or the first line that starts in column 0 (a new
    top-level statement), whichever comes first. If the sampler stopped for length (`complete`
    False) before either, the last line, which may be cut mid-token, is dropped.
    '\n    return a + b\n\nprint(1)' -> '\n    return a + b\n'.
    """
    lines = completion.split("\n")
    body = [lines[0]]  # the rest of the header's line (normally empty)
    for line in lines[1:]:
        if not line.strip() or not line[0].isspace():
            return "\n".join(body) + "\n"
        body.append(line)
    if not complete:
        body = body[:-1]
    return "\n".join(body).rstrip() + "\n"


def parses(header: str, completion: str, complete: bool) -> bool:
    """True if `header + function_body(completion)` is valid Python according to `ast.parse`."""
    try:
        ast.parse(header + function_body(completion, complete))
        return True
    except (SyntaxError, ValueError):
        return False



# -----------------------------------------------------------------------------
# Command line: `minicoder train-tiny`


def register_cli(sub) -> None:
    t = sub.add_parser("train-tiny", help="the `make train-tiny` flow: tokenizer, tokens, <=10 min of training, samples")
    t.add_argument("--out", default="runs/tiny", help="run directory (default: runs/tiny)")
    t.add_argument("--cache-dir", default=".cache", help="where the tokenizer and tokens are cached (default: .cache)")
    t.add_argument("--time-limit-s", type=float, default=600.0,
                   help="wall-clock budget of the training loop, evaluations included (default: 600)")
    t.add_argument("--max-steps", type=int, default=None, help="optimizer steps (default: the tiny preset's)")
    t.add_argument("--retrain", action="store_true", help="delete the run in --out and train again from scratch")
    t.add_argument("--seed", type=int, default=1337, help="seed of training and of the samples (default: 1337)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.set_defaults(func=_cli_train_tiny)


def sample_report(model, tokenizer, seed: int = 1337, max_new_tokens: int = 96) -> dict:
    """Completions of `def fibonacci(n):`, one FIM example, and the parse check on PARSE_HEADERS.

    Our training data separates documents with EOS and has no BOS, so each prompt starts with EOS
    (the start of a document, as the model saw it). Sampling: temperature 0.6, top-k 50, top-p
    0.95, seeded (header i uses seed + i).
    """
    from minicoder.generate import decode_completion, default_stop_ids, encode_fim_prompt, generate_ids

    stop = default_stop_ids(tokenizer)
    kw = {"temperature": 0.6, "top_k": 50, "top_p": 0.95, "stop_ids": stop}

    def sample(ids: list[int], n: int, seed: int) -> tuple[str, bool]:
        new = generate_ids(model, [tokenizer.eos_id, *ids], n, seed=seed, **kw)
        return decode_completion(tokenizer, new, stop), bool(new) and new[-1] in stop

    fib, _ = sample(tokenizer.encode("def fibonacci(n):"), max_new_tokens, seed)
    prefix, suffix = "def is_even(n):\n    return ", "\n\n\ndef is_odd(n):\n    return not is_even(n)\n"
    middle, _ = sample(encode_fim_prompt(tokenizer, prefix, suffix, bos=False), 24, seed)
    results = []
    for i, header in enumerate(PARSE_HEADERS):
        text, done = sample(tokenizer.encode(header), max_new_tokens, seed + i)
        results.append({"header": header, "completion": text, "parses": parses(header, text, done)})
    return {"fibonacci": fib, "fim": {"prefix": prefix, "suffix": suffix, "middle": middle},
            "parse_ok": sum(r["parses"] for r in results), "parse_total": len(results), "parse_results": results}


def _cli_train_tiny(args) -> int:
    t0 = time.monotonic()
    progress = not args.no_progress
    print(f"[1/4] tokenizer: BPE, 4096 ids, on the standard library's training repositories (cache: {args.cache_dir})")
    tok = repo_tokenizer(None, ".py", 4096, val_fraction=0.1, cache_dir=args.cache_dir, progress=progress)
    print(f"      ready after {time.monotonic() - t0:.0f} s")
    print("[2/4] tokens: the repo-level pipeline (minicoder prepare) on the standard library: filters, "
          "dependency order, dedup, decontamination, FIM rate 0.5 (cached too)")
    data = prepare_repo_tokens(tok, None, cache_dir=args.cache_dir, fim_rate=0.5, seed=args.seed, progress=progress)
    sp = data.meta["splits"]
    print(f"      {data.meta.get('corpus', 'stdlib')}: train {sp['train']['tokens']:,} tokens, "
          f"val {sp['val']['tokens']:,} tokens ({data.path / 'manifest.json'}); "
          f"ready after {time.monotonic() - t0:.0f} s")
    model_config = ModelConfig.from_preset("tiny", vocab_size=tok.vocab_size)
    overrides = {"out_dir": args.out, "time_limit_s": args.time_limit_s, "seed": args.seed}
    if args.max_steps:
        overrides["max_steps"] = args.max_steps
    cfg = TrainConfig.from_preset("tiny", **overrides)
    run = Path(args.out)
    if args.retrain and find_checkpoint(run) is not None:
        for old in run.iterdir():
            if old.name.startswith("ckpt") or old.name in ("latest", "metrics.jsonl", "loss.png", "samples.json"):
                shutil.rmtree(old) if old.is_dir() else old.unlink()
    existing = find_checkpoint(run)
    state = _read_json(existing / "trainer.json") if existing else None
    if state and state.get("finished"):
        print(f"[3/4] training: {existing} is a finished run (step {state['step']}); reusing it (--retrain to redo)")
    else:
        what = f"resuming {existing}" if existing else f"{model_config.num_params() / 1e6:.1f}M parameters"
        print(f"[3/4] training the tiny preset ({what}), at most {cfg.max_steps} steps "
              f"and {cfg.time_limit_s:.0f} s")
        train(model_config, cfg, data, tok, resume=existing is not None, progress=progress)
    model, tok, _, _, state, path = load_checkpoint(run)
    print(f"      validation: {state['val_bpb']:.4f} bits per byte ({state['val_loss']:.4f} nats/token) at step "
          f"{state['step']}, {state['tokens']:,} tokens; loss plot {run / 'loss.png'}")
    print("[4/4] samples (temperature 0.6, top-k 50, top-p 0.95, seeded)")
    report = sample_report(model, tok, seed=args.seed)
    print("----- def fibonacci(n):" + report["fibonacci"] + "\n-----")
    fim = report["fim"]
    print(f"----- FIM: prefix {fim['prefix']!r}, suffix {fim['suffix']!r}\n      middle: {fim['middle']!r}")
    print(f"----- function headers whose completion parses with ast.parse: "
          f"{report['parse_ok']}/{report['parse_total']}")
    (run / "samples.json").write_text(json.dumps(report, indent=1))
    print(f"done in {time.monotonic() - t0:.0f} s; samples in {run / 'samples.json'}")
    return 0
