"""The `minicoder` entry point: passive OpenMP waiting, set before torch loads.

Run: .venv/bin/pytest tests/test_cli.py -q
"""

import os
import subprocess
import sys

# Runs `minicoder` as its console script does (minicoder.cli:main) and prints OMP_WAIT_POLICY at
# the moment torch is first imported, which is when libgomp reads it.
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
try:
    minicoder.cli.main(["train", "--help"])
except SystemExit:
    pass
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
