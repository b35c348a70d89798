"""The `minicoder` command line: one subcommand group per module.

Each module that has a command line defines `register_cli(subparsers)`, which adds its
subcommands and sets `func` on them; this file only gathers them. Errors that a user can fix
(`MinicoderError` and its subclasses, `ValueError`, `FileNotFoundError`) are printed as one line,
not as a traceback.

OpenMP: unless the user set OMP_WAIT_POLICY, `main` sets it to PASSIVE before any module that
imports torch is loaded (libgomp reads it once, when torch loads it). Spinning idle threads cost
little on a quiet many-core machine but make torch 20 to 100 times slower on a busy 2-core one.
Nothing this file imports at the top may import torch.
"""

import argparse
import importlib
import os
import sys

# Modules that contribute subcommands, in the order `minicoder --help` lists them.
CLI_MODULES = [
    "minicoder.tokenizer",
    "minicoder.assignments",
    "minicoder.dedup",
    "minicoder.decontam",
    "minicoder.generate",
    "minicoder.prepare",
    "minicoder.train",
    "minicoder.train_tiny",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minicoder",
        description="minicoder: build, train and run DeepSeek-Coder-style models from scratch.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in CLI_MODULES:
        importlib.import_module(name).register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before build_parser imports torch; see the docstring
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as e:
        print(f"minicoder {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
