"""The `minicoder` command line: one subcommand group per module, answering `--help` without torch.

Modules whose imports are light (the standard library and `regex`: tokenizer, assignments,
decontam, train-tiny's recipe) define `register_cli(subparsers)` themselves. The commands of
modules that load torch or numpy (generate, complete, train, info, export, prepare, dedup) are
defined here, and their `func` imports the module only when the command runs (`_run_in`), so
`minicoder --help` and `minicoder train --help` take a fraction of a second, not the 1.8 s that
importing torch costs. A test holds every parser torch-free; `benchmarks/cli.py` times it.

Errors that a user can fix (`ValueError`, `FileNotFoundError` and the like) are printed as one
line, `minicoder COMMAND: error: ...`, with exit status 1, not as a traceback; Ctrl-C prints
`interrupted` and exits with 130.

OpenMP: unless the user set OMP_WAIT_POLICY, `main` sets it to PASSIVE before any module that
imports torch is loaded (libgomp reads it once, when torch loads it). Spinning idle threads cost
little on a quiet many-core machine but make torch 20 to 100 times slower on a busy 2-core one.
Nothing this file imports at the top may import torch or numpy.
"""

import argparse
import importlib
import os
import sys

from minicoder import __version__
from minicoder.depsort import METHODS as ORDER_METHODS
from minicoder.filters import FilterConfig
from minicoder.train_config import TRAIN_PRESETS, TrainConfig

# Modules that define their own `register_cli`, and this file's own groups (`_register_model`,
# `_register_data`), in the order `minicoder --help` lists them.
CLI_MODULES = [
    "minicoder.tokenizer",
    "minicoder.assignments",
    "data",  # prepare, dedup (below)
    "minicoder.decontam",
    "model",  # generate, complete, train, info, export (below)
    "minicoder.scaling",
    "minicoder.train_tiny",
]

# PrepareConfig's defaults (minicoder/prepare.py loads numpy, so they are repeated here; tests/test_cli.py
# holds them equal).
PREPARE_DEFAULTS = {"workers": 2, "seed": 0, "fim_rate": 0.5, "val_fraction": 0.03, "dedup_threshold": 0.7,
                    "order": "cycle-aware", "exclude": ("__pycache__", "node_modules", "site-packages", "venv"),
                    "shard_tokens": 100_000_000}
DEDUP_METHODS = ("lsh", "naive")  # minicoder.dedup.METHODS


def _run_in(module: str, function: str):
    """A command's `func` that imports `module` (and so torch) only when the command runs."""

    def run(args):
        return getattr(importlib.import_module(module), function)(args)

    run.__qualname__ = f"{module}.{function}"
    return run


# -----------------------------------------------------------------------------
# prepare, dedup


def _register_data(sub) -> None:
    d = PREPARE_DEFAULTS
    p = sub.add_parser("prepare", help="filter, order, deduplicate, decontaminate and tokenize a corpus of repositories",
                       description="`minicoder prepare`: a directory of repositories -> filtered, ordered, "
                                   "deduplicated token shards (DeepSeek-Coder section 2).")
    p.add_argument("--corpus", required=True, help="directory with one subdirectory per repository")
    p.add_argument("--out", required=True, help="output directory for token shards, meta.json and manifest.json")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer.json to encode with (default: the shipped DeepSeek-Coder vocabulary)")
    p.add_argument("--workers", type=int, default=d["workers"], help="worker processes (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d["seed"], help="seed of the FIM draws (default: %(default)s)")
    p.add_argument("--fim-rate", type=float, default=d["fim_rate"],
                   help="share of training files made fill-in-the-middle (PSM), each drawn on its own (default: %(default)s)")
    p.add_argument("--val-fraction", type=float, default=d["val_fraction"],
                   help="share of repositories held out for validation (default: %(default)s)")
    p.add_argument("--dedup-threshold", type=float, default=d["dedup_threshold"],
                   help="MinHash Jaccard at which two repositories are near-duplicates (default: %(default)s)")
    p.add_argument("--no-decontaminate", action="store_true",
                   help="keep files that share a 10-gram or a short benchmark string with HumanEval")
    p.add_argument("--order", choices=ORDER_METHODS, default=d["order"],
                   help="dependency ordering: cycle-aware (default) or the paper's Algorithm 1 as printed")
    p.add_argument("--exclude", nargs="*", default=list(d["exclude"]), metavar="NAME",
                   help="directory names to skip anywhere, besides hidden ones (default: %(default)s)")
    p.add_argument("--max-file-bytes", type=int, default=FilterConfig().max_bytes,
                   help="skip files larger than this, without reading them (default: %(default)s)")
    p.add_argument("--shard-tokens", type=int, default=d["shard_tokens"],
                   help="tokens per shard file (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_in("minicoder.prepare", "_cli_prepare"))

    p = sub.add_parser("dedup", help="list clusters of near-duplicate files in a directory")
    p.add_argument("root", help="directory of source files, read recursively")
    p.add_argument("--ext", default=".py", help="file extension to compare (default: .py)")
    p.add_argument("--threshold", type=float, default=0.7, help="Jaccard similarity of 5-gram sets (default: 0.7)")
    p.add_argument("--method", choices=DEDUP_METHODS, default="lsh",
                   help="lsh (fast, default) or naive (all pairs, exact)")
    p.add_argument("--quiet", action="store_true", help="print only the summary line")
    p.set_defaults(func=_run_in("minicoder.dedup", "_cli_dedup"))


# -----------------------------------------------------------------------------
# generate, complete, train, info, export


def _register_model(sub) -> None:
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
        p.add_argument("--tokenizer", help="tokenizer.json to use instead of the one in the model directory "
                                           "(with --checkpoint, only the one the model was trained with is accepted)")
        p.add_argument("--max-new-tokens", type=int, default=128, help="most tokens to generate (default 128)")
        p.add_argument("--temperature", type=float, default=0.0,
                       help="0 is greedy (default); higher is more random; a finite number >= 0")
        p.add_argument("--top-k", type=int, default=None, help="sample only among the k most likely tokens")
        p.add_argument("--top-p", type=float, default=None, help="sample only among the most likely tokens "
                       "whose probability mass reaches p, in (0, 1] (nucleus sampling)")
        p.add_argument("--seed", type=int, default=None, help="seed for sampling, for repeatable output")
        p.add_argument("--bos", action=argparse.BooleanOptionalAction, default=None,
                       help="prepend BOS (default: as the model's training data did: yes for --hf, "
                            "no for --checkpoint, whose documents are separated by EOS only)")
        p.add_argument("--echo", action=argparse.BooleanOptionalAction, default=True,
                       help="print the prompt (for complete: prefix and suffix) around the new text "
                            "(default: yes; --no-echo prints only the new text)")
        p.add_argument("--device", default=None,
                       help="cpu, cuda, cuda:N or mps (default: cuda if this torch sees a GPU, else cpu)")
        p.set_defaults(func=_run_in("minicoder.generate", "_cli_run"))

    p = sub.add_parser("train", help="train a model on a directory of source files (default: the Python stdlib)")
    p.add_argument("--preset", default=None, choices=sorted(TRAIN_PRESETS),
                   help="training preset (TrainConfig); it names the model preset it trains (default: tiny)")
    p.add_argument("--model", default=None,
                   help="ModelConfig preset; must be the one --preset trains (default: that one)")
    p.add_argument("--corpus", default=None, help="directory of source files (default: this Python's standard library)")
    p.add_argument("--data", default=None,
                   help="token directory written by `minicoder prepare` (instead of --corpus; needs --tokenizer)")
    p.add_argument("--ext", default=None, help="file name ending to train on (default: .py)")
    p.add_argument("--val-fraction", type=float, default=None,
                   help="share of files held out for validation (default: 0.03)")
    p.add_argument("--fim-rate", type=float, default=None,
                   help="share of training documents turned into FIM samples (default: 0.5, as DeepSeek-Coder)")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer.json to use (default: train a BPE tokenizer on the corpus, cached in --cache-dir)")
    p.add_argument("--vocab-size", type=int, default=None,
                   help="vocabulary of the tokenizer trained when --tokenizer is not given (default: 4096)")
    p.add_argument("--cache-dir", default=".cache", help="where tokenizers and token files are cached (default: .cache)")
    p.add_argument("--out", default=None,
                   help="run directory for checkpoints and logs (default: runs/train-<preset>; runs/tiny is "
                        "`make train-tiny`'s)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out with its own recorded configuration; flags that would change "
                        "it are refused, except run control (--time-limit-s, --device, --compile, --parallel, --keep, ...)")
    p.add_argument("--keep", type=int, default=None,
                   help=f"how many of the newest checkpoints to keep, so that a damaged one can be skipped "
                        f"(default: {TrainConfig.keep_checkpoints})")
    p.add_argument("--stop-after", type=int, default=None,
                   help="stop after this step as if interrupted (the schedule still runs to --max-steps)")
    p.add_argument("--attn-impl", default=None, choices=["naive", "sdpa"],
                   help="attention path (default: the model preset's); both give the same function")
    p.add_argument("--init-from", default=None,
                   help="start from the weights of this run or checkpoint (the -long presets: their stage-1 run); "
                        "'none' for random weights (default: the preset's)")
    for name, typ, helptext in [
        ("batch-size", int, "windows per micro-batch per process"), ("seq-len", int, "tokens per window"),
        ("grad-accum", int, "micro-batches per optimizer step, over all processes"),
        ("max-steps", int, "optimizer steps in the whole run (0: evaluate and checkpoint the initial weights)"),
        ("lr", float, "peak learning rate"),
        ("warmup-steps", int, "linear warm-up steps"), ("weight-decay", float, "AdamW decay on matrices"),
        ("grad-clip", float, "clip the gradient norm to this (0: off)"),
        ("eval-interval", int, "steps between sampled validation estimates"),
        ("eval-iters", int, "validation micro-batches per sampled estimate"),
        ("checkpoint-interval", int, "steps between checkpoints"), ("log-interval", int, "steps between metric lines"),
        ("seed", int, "seed of the model's init and the data order"),
        ("time-limit-s", float, "stop cleanly after this many seconds, final evaluation included"),
        ("device", str, "auto, cpu, cuda or mps"), ("dtype", str, "auto (bf16 on cuda), float32 or bfloat16"),
    ]:
        p.add_argument(f"--{name}", type=typ, default=None, help=f"{helptext} (default: the preset's)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the model (default: the preset's)")
    p.add_argument("--parallel", default=None, metavar="{ddp,fsdp}",
                   help="under torchrun: ddp (every process holds the whole model) or fsdp (FSDP2: parameters, "
                        "gradients and optimizer state sharded over the processes) (default: ddp; on --resume, "
                        "the run's own)")
    p.add_argument("--eval-full", action=argparse.BooleanOptionalAction, default=None,
                   help="score the whole validation split at the end, every token once (default: yes)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_in("minicoder.train", "_cli_train"))

    p = sub.add_parser("info", help="what a checkpoint holds: step, tokens, validation, configs, tokenizer")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a run directory (its latest checkpoint) or a checkpoint")
    p.add_argument("--json", action="store_true", help="print the same facts as one JSON object")
    p.set_defaults(func=_run_in("minicoder.train_config", "_cli_info"))

    p = sub.add_parser("export", help="write a checkpoint as a Hugging Face LlamaForCausalLM directory")
    p.add_argument("--hf", required=True, metavar="DIR",
                   help="directory to create (it must not exist, or be empty) with config.json, model.safetensors, "
                        "tokenizer.json and tokenizer_config.json")
    p.add_argument("--checkpoint", required=True, metavar="RUN",
                   help="a `minicoder train` run directory (its latest checkpoint) or a checkpoint directory")
    p.set_defaults(func=_run_in("minicoder.hf", "_cli_export"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minicoder",
        description="minicoder: build, train and run DeepSeek-Coder-style models from scratch.",
    )
    parser.add_argument("--version", action="version", version=f"minicoder {__version__}",
                        help="print minicoder's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in CLI_MODULES:
        if name == "data":
            _register_data(sub)
        elif name == "model":
            _register_model(sub)
        else:
            importlib.import_module(name).register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before a command imports torch; see the docstring
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
            FileExistsError) as e:
        message = " ".join(str(e).split("\n")).strip() or type(e).__name__
        print(f"minicoder {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"minicoder {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
