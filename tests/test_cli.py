"""The `minicoder` entry point: --help without torch, --version, help on every flag, passive OpenMP.

Run: .venv/bin/pytest tests/test_cli.py -q
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from minicoder import __version__, cli

# Runs `minicoder` as its console script does (minicoder.cli:main) and prints OMP_WAIT_POLICY at
# the moment torch is first imported, which is when libgomp reads it. `generate` on a missing
# checkpoint loads torch (its module) and then fails with a one-line error.
_SPY = """
import os, sys
class TorchImportSpy:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "torch" not in sys.modules:
            print("torch imported with OMP_WAIT_POLICY =", os.environ.get("OMP_WAIT_POLICY"), flush=True)
        return None
sys.meta_path.insert(0, TorchImportSpy())
import minicoder.cli
assert "torch" not in sys.modules, "importing minicoder.cli must not import torch"
assert minicoder.cli.main(["generate", "--checkpoint", "/nonexistent/run", "--prompt", "x"]) == 1
assert "torch" in sys.modules
"""


def _torch_sees(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_value is not None:
        env["OMP_WAIT_POLICY"] = env_value
    out = subprocess.run([sys.executable, "-c", _SPY], env=env, capture_output=True, text=True, timeout=120, check=True)
    return [line for line in out.stdout.splitlines() if line.startswith("torch imported")][0]


def test_minicoder_sets_passive_openmp_waiting_before_torch_loads():
    assert _torch_sees(None) == "torch imported with OMP_WAIT_POLICY = PASSIVE"


def test_a_user_setting_of_omp_wait_policy_is_kept():
    assert _torch_sees("ACTIVE") == "torch imported with OMP_WAIT_POLICY = ACTIVE"


def _commands(parser: argparse.ArgumentParser, prefix=()) -> list[tuple[str, ...]]:
    """Every command path of the parser: ("train",), ("tokenizer", "encode"), ..."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((*prefix, name))
                found += _commands(sub, (*prefix, name))
    return found


# Parses `--help` of the top level and of every command in one process, then reports which heavy
# modules got imported.
_HELP_PROBE = """
import json, sys
from minicoder import cli
for argv in json.loads(sys.argv[1]):
    try:
        cli.main([*argv, "--help"])
    except SystemExit as e:
        assert e.code == 0, argv
print(json.dumps(sorted(m for m in ("torch", "numpy", "safetensors", "transformers") if m in sys.modules)))
"""


def test_help_of_every_command_answers_without_torch_or_numpy():
    commands = [list(c) for c in _commands(cli.build_parser())]
    assert ["train"] in commands and ["generate"] in commands and ["train-tiny"] in commands
    out = subprocess.run([sys.executable, "-c", _HELP_PROBE, json.dumps([[], *commands])], capture_output=True,
                         text=True, timeout=120, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_every_flag_has_help():
    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{path} {name}")
            elif action.help is not argparse.SUPPRESS:
                yield path, action

    missing = [f"{path}: {action.option_strings or action.dest}" for path, action in walk(cli.build_parser(), "minicoder")
               if not action.help]
    assert missing == []


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"minicoder {__version__}\n"


def test_defaults_repeated_in_the_cli_match_their_modules():
    from minicoder.dedup import METHODS
    from minicoder.prepare import PrepareConfig

    defaults = {f.name: f.default for f in dataclasses.fields(PrepareConfig)}
    assert cli.PREPARE_DEFAULTS == {k: defaults[k] for k in cli.PREPARE_DEFAULTS}
    assert cli.DEDUP_METHODS == METHODS


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
