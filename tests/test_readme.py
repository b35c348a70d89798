"""The README's commands are real: every `minicoder` command in its code blocks parses with the
real argument parser, the cheap ones run and print what the README says, and the make targets it
names exist.

Run: .venv/bin/pytest tests/test_readme.py -q
"""

import re
import shlex
from pathlib import Path

import pytest

from minicoder.cli import build_parser, main

README = Path(__file__).resolve().parents[1] / "README.md"
MAKEFILE = README.parent / "Makefile"


def _bash_words(line: str) -> list[str]:
    """shlex's split, plus bash's $'...' quoting (the README's way to write a newline)."""
    line = re.sub(r"\$'((?:[^'\\]|\\.)*)'",
                  lambda m: shlex.quote(m.group(1).encode().decode("unicode_escape")), line)
    return shlex.split(line, comments=True)


def readme_commands() -> list[list[str]]:
    """The argument lists of every `minicoder ...` line inside the README's ```bash blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    commands, pending = [], ""
    for block in blocks:
        for line in block.splitlines():
            line = pending + line
            if line.rstrip().endswith("\\"):
                pending = line.rstrip()[:-1] + " "
                continue
            pending = ""
            words = _bash_words(line)
            for i, word in enumerate(words):
                if word.endswith("bin/minicoder"):
                    commands.append(words[i + 1:])
                elif word == "-m" and i + 1 < len(words) and words[i + 1] == "minicoder.cli":
                    commands.append(words[i + 2:])
    return commands


def test_the_readme_has_minicoder_commands():
    names = {c[0] for c in readme_commands()}
    assert {"train", "generate", "complete", "prepare", "tokenizer", "assignment", "info", "export"} <= names


@pytest.mark.parametrize("argv", readme_commands(), ids=lambda a: " ".join(a)[:60])
def test_every_readme_command_parses(argv):
    args = build_parser().parse_args(argv)  # argparse exits (SystemExit) on an unknown flag or command
    assert hasattr(args, "func")


def test_readme_encode_and_decode_examples_print_what_they_say(capsys):
    assert main(["tokenizer", "encode", "def fibonacci(n):"]) == 0
    ids = capsys.readouterr().out.split()
    text = README.read_text(encoding="utf-8")
    m = re.search(r'tokenizer decode "([\d ]+)"\s+# (.*)', text)
    assert m and m.group(1).split() == ids
    assert main(["tokenizer", "decode", m.group(1)]) == 0
    assert capsys.readouterr().out.strip() == m.group(2).strip()


def test_complete_example_passes_real_newlines():
    argv = next(c for c in readme_commands() if c[0] == "complete")
    args = build_parser().parse_args(argv)
    assert args.prefix == "def is_even(n):\n    return " and args.suffix == "\n"


def test_make_targets_named_in_the_readme_exist():
    targets = set(re.findall(r"^([\w-]+):", MAKEFILE.read_text(), re.M))
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    lines = [line for b in blocks for line in b.splitlines() if "in the package" not in line]  # student's Makefile
    named = {m for line in lines for m in re.findall(r"\bmake ([a-z][\w-]*)", line.split("#")[0])}
    assert named and named <= targets, f"README names make targets the Makefile lacks: {sorted(named - targets)}"
