"""`make train-tiny`: a tokenizer, the repository-level pipeline and a short training run, on a CPU.

The recipe on top of the library: it trains (or reuses from .cache/) a BPE tokenizer on the
standard library, prepares its tokens through `minicoder prepare` (cached), trains the `tiny`
presets (`--preset tiny-moe`, `make train-tiny-moe`: the same data and budget with DeepSeek-V2's
architecture, MLA and DeepSeekMoE, whose balance losses and expert loads go into metrics.jsonl
and the loss plot) within `--budget-s` seconds for the whole command, then prints validation bits per byte
over the whole held-out split, a completion of `def fibonacci(n):`, a FIM example, and how many of
20 sampled completions of PARSE_HEADERS parse (`parses`: header + the completion cut where the
function ends, before its first non-blank line in column 0, accepted by `ast.parse`).
Run again, it reuses a finished run and goes straight to the samples, resumes an unfinished one,
and starts over with `--retrain`.
"""

import ast
import dataclasses
import json
import math
import shutil
import time
from pathlib import Path

from minicoder.config import ModelConfig
from minicoder.train_config import TrainConfig, check_out_dir, find_checkpoint

# minicoder.data and minicoder.train load torch: the functions below import them when they run, so
# `minicoder --help` stays fast.

BUDGET_S = 600.0  # the whole command, from a fresh clone whose .venv exists
# Kept back from the training loop for what follows it: loading the checkpoint and the samples
# (the final full-split evaluation is reserved inside train()'s own time limit).
RESERVE_S = 30.0
VOCAB_SIZE = 4096
VAL_FRACTION = 0.1  # of the repositories (the standard library's top-level packages)
TINY_PRESETS = ("tiny", "tiny-moe")  # ModelConfig and TrainConfig presets of the same names

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


BODY_RULES = ("indent", "blank-line")


def function_body(completion: str, complete: bool, rule: str = "indent") -> str:
    """Cut a completion after a function header down to the function's body.

    rule "indent" (the judge): the body ends before the first non-blank line that starts in column 0,
    where Python itself ends a top-level def; blank lines inside it (between statements, or a
    paragraph break in a docstring) belong to it. rule "blank-line" (the judge before 2026-12): the
    body also ends at the first blank line, which cut every docstring with a paragraph break in two
    and so failed it. Either way, if the sampler stopped for length (`complete` False) before the
    body ended, the last line, which may be cut mid-token, is dropped.

    >>> function_body("\n    x = 1\n\n    return x\nprint(1)\n", True)
    '\n    x = 1\n\n    return x\n'
    >>> function_body("\n    x = 1\n\n    return x\nprint(1)\n", True, rule="blank-line")
    '\n    x = 1\n'
    """
    if rule not in BODY_RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of: {', '.join(BODY_RULES)}")
    lines = completion.split("\n")
    body = [lines[0]]  # the rest of the header's line (normally empty)
    for line in lines[1:]:
        blank = not line.strip()
        if (blank and rule == "blank-line") or (not blank and not line[0].isspace()):
            return "\n".join(body).rstrip() + "\n"
        body.append(line)
    if not complete:
        body = body[:-1]
    return "\n".join(body).rstrip() + "\n"


def parses(header: str, completion: str, complete: bool, rule: str = "indent") -> bool:
    """True if `header + function_body(completion, complete, rule)` is valid Python (`ast.parse`)."""
    try:
        ast.parse(header + function_body(completion, complete, rule))
        return True
    except (SyntaxError, ValueError):
        return False


# -----------------------------------------------------------------------------
# Command line: `minicoder train-tiny`


def register_cli(sub) -> None:
    t = sub.add_parser("train-tiny", help="the `make train-tiny` flow: tokenizer, tokens, training, samples in <= 10 min")
    t.add_argument("--preset", default="tiny", choices=TINY_PRESETS,
                   help="tiny (DeepSeek-Coder v1's architecture) or tiny-moe (V2's: MLA and DeepSeekMoE); default: tiny")
    t.add_argument("--out", default=None, help="run directory (default: runs/<preset>)")
    t.add_argument("--cache-dir", default=".cache", help="where the tokenizer and tokens are cached (default: .cache)")
    t.add_argument("--budget-s", type=float, default=BUDGET_S,
                   help=f"wall-clock budget of the whole command, every phase included (default: {BUDGET_S:.0f}); "
                        "a machine too slow for the preset's steps shortens the run while its rate is at its peak")
    t.add_argument("--max-steps", type=int, default=None,
                   help="optimizer steps (default: the tiny preset's); 0 trains nothing and evaluates the initial model")
    t.add_argument("--retrain", action="store_true", help="delete the run in --out and train again from scratch")
    t.add_argument("--seed", type=int, default=1337, help="seed of training and of the samples (default: 1337)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")

    def run(args) -> int:
        args.out = args.out or f"runs/{args.preset}"
        check_out_dir(args.out)  # an --out naming a file fails now, not after minutes of work
        if not math.isfinite(args.budget_s):
            raise ValueError(f"--budget-s must be a number of seconds, got {args.budget_s}")
        return _cli_train_tiny(args)

    t.set_defaults(func=run)


def sample_report(model, tokenizer, seed: int = 1337, max_new_tokens: int = 128) -> dict:
    """Completions of `def fibonacci(n):`, one FIM example, and the parse check on PARSE_HEADERS.

    Our training data separates documents with EOS and has no BOS, so each prompt starts with EOS
    (the start of a document, as the model saw it). Sampling: temperature 0.6, top-k 50, top-p
    0.95, seeded (header i uses seed + i).
    """
    from minicoder.generate import decode_completion, default_stop_ids, encode_fim_prompt, generate_ids

    stop = default_stop_ids(tokenizer)
    model = model.with_mla_impl("absorb")  # tiny-moe trains with per-head K/V, decodes from the latent
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
        results.append({"header": header, "completion": text, "complete": done, "parses": parses(header, text, done),
                        "parses_blank_line_rule": parses(header, text, done, rule="blank-line")})
    return {"fibonacci": fib, "fim": {"prefix": prefix, "suffix": suffix, "middle": middle},
            "parse_ok": sum(r["parses"] for r in results), "parse_total": len(results),
            "parse_ok_blank_line_rule": sum(r["parses_blank_line_rule"] for r in results), "parse_results": results}


def _cli_train_tiny(args) -> int:
    from minicoder.checkpoint import _read_json, load_checkpoint
    from minicoder.data import prepare_repo_tokens, repo_tokenizer
    from minicoder.train import evaluate_split, train

    t0 = time.monotonic()
    timings: dict[str, float] = {}
    progress = not args.no_progress
    if args.max_steps is not None and args.max_steps < 0:
        raise ValueError(f"--max-steps must be 0 or more, got {args.max_steps}")
    if args.budget_s <= RESERVE_S:
        raise ValueError(f"--budget-s {args.budget_s:g} leaves no time to train after the evaluation and samples "
                         f"({RESERVE_S:.0f} s); give more than that")

    print(f"[1/5] tokenizer: BPE, {VOCAB_SIZE} ids, on the standard library's training repositories only "
          f"(cache: {args.cache_dir})")
    tok = repo_tokenizer(None, ".py", VOCAB_SIZE, val_fraction=VAL_FRACTION, cache_dir=args.cache_dir, progress=progress)
    timings["tokenizer_s"] = time.monotonic() - t0
    print(f"      {timings['tokenizer_s']:.1f} s")

    t = time.monotonic()
    print("[2/5] tokens: the repo-level pipeline (minicoder prepare) on the standard library: filters, "
          "dependency order, repository dedup, decontamination, FIM rate 0.5 per file (cached too)")
    data = prepare_repo_tokens(tok, None, cache_dir=args.cache_dir, val_fraction=VAL_FRACTION, fim_rate=0.5,
                               seed=args.seed, progress=progress)
    sp = data.meta["splits"]
    timings["tokens_s"] = time.monotonic() - t
    val_repos = sorted({n.rsplit("#", 1)[0] for n in sp["val"]["samples"]})
    print(f"      train {sp['train']['tokens']:,} tokens; validation {sp['val']['tokens']:,} tokens "
          f"({sp['val']['bytes']:,} bytes) of the held-out packages {', '.join(val_repos)}; "
          f"{timings['tokens_s']:.1f} s")

    preset = args.preset
    model_config = ModelConfig.from_preset(preset, vocab_size=tok.vocab_size)
    overrides = {"out_dir": args.out, "seed": args.seed}
    if args.max_steps is not None:  # a shorter run keeps its warm-up to a tenth of it
        warmup = TrainConfig.from_preset(preset).warmup_steps
        overrides.update(max_steps=args.max_steps, warmup_steps=min(warmup, args.max_steps // 10))
    cfg = TrainConfig.from_preset(preset, **overrides)
    run = Path(args.out)
    if args.retrain and find_checkpoint(run) is not None:
        for old in run.iterdir():
            if old.name.startswith("ckpt") or old.name in ("latest", "metrics.jsonl", "loss.png", "samples.json",
                                                           "report.json"):
                shutil.rmtree(old) if old.is_dir() else old.unlink()
    existing = find_checkpoint(run)
    state = _read_json(existing / "trainer.json") if existing else None
    t = time.monotonic()
    if state and state.get("finished"):
        print(f"[3/5] training: {existing} is a finished run (step {state['step']}); reusing it (--retrain to redo)")
    else:
        seconds = args.budget_s - (time.monotonic() - t0) - RESERVE_S
        if existing is not None:  # resume the run as it was planned
            cfg = TrainConfig.from_dict({**state["train_config"], "out_dir": args.out})
            print(f"[3/5] training: resuming {existing} at step {state['step']} of {cfg.max_steps}, "
                  f"at most {seconds:.0f} s")
        else:
            active = f", {model_config.num_active_params() / 1e6:.2f}M active" if model_config.is_moe else ""
            print(f"[3/5] training the {preset} preset ({model_config.num_params() / 1e6:.2f}M parameters{active}): "
                  f"{cfg.max_steps} steps of {cfg.tokens_per_step:,} tokens, at most {seconds:.0f} s")
        # fit_to_time_limit: a machine too slow (or slowed down) for the preset's steps runs fewer, with
        # the whole schedule, rather than being cut before the learning rate drops
        cfg = dataclasses.replace(cfg, time_limit_s=max(1.0, seconds), fit_to_time_limit=True)
        train(model_config, cfg, data, tok, resume=existing is not None, progress=progress,
              resume_command=f"make train-{preset}")
    timings["training_s"] = time.monotonic() - t
    model, tok, _, _, state, _ = load_checkpoint(run)

    t = time.monotonic()
    if state.get("val_bpb_full") is not None:  # train() scored the whole split at its end
        full = {"loss": state["val_loss_full"], "bpb": state["val_bpb_full"], "tokens": state.get("val_tokens_full")}
    else:  # an interrupted run, or one finished by an older minicoder: score it now
        full = evaluate_split(model, data, "val", seq_len=cfg.seq_len)
    timings["evaluation_s"] = time.monotonic() - t
    print(f"[4/5] validation, the whole held-out split (every token once, windows of {cfg.seq_len}): "
          f"{full['bpb']:.3f} bits per byte ({full['loss']:.4f} nats/token) at step {state['step']} "
          f"(of {state['train_config']['max_steps']} planned, the preset's {TrainConfig.from_preset(preset).max_steps}), "
          f"{state['tokens']:,} tokens trained; loss plot {run / 'loss.png'}")

    t = time.monotonic()
    print("[5/5] samples (temperature 0.6, top-k 50, top-p 0.95, seeded)")
    report = sample_report(model, tok, seed=args.seed)
    timings["samples_s"] = time.monotonic() - t
    print("----- def fibonacci(n):" + report["fibonacci"] + "\n-----")
    fim = report["fim"]
    print(f"----- FIM: prefix {fim['prefix']!r}, suffix {fim['suffix']!r}\n      middle: {fim['middle']!r}")
    print(f"----- function headers whose completion parses with ast.parse: "
          f"{report['parse_ok']}/{report['parse_total']}")
    timings["total_s"] = time.monotonic() - t0
    summary = {"step": state["step"], "tokens": state["tokens"], "params": model_config.num_params(),
               "val_bpb_full": full["bpb"], "val_loss_full": full["loss"], "val_tokens_scored": full["tokens"],
               "parse_ok": report["parse_ok"], "parse_total": report["parse_total"], "timings": timings}
    (run / "samples.json").write_text(json.dumps(report, indent=1))
    (run / "report.json").write_text(json.dumps(summary, indent=1))
    print("phases: " + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in timings.items() if k != "total_s")
          + " (training includes the final full-split evaluation)")
    print(f"done in {timings['total_s']:.0f} s; samples in {run / 'samples.json'}, figures in {run / 'report.json'}")
    return 0
