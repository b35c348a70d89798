"""`minicoder prepare` end to end on a small corpus full of awkward files.

Run: .venv/bin/pytest tests/test_prepare.py -q

Checked here: repositories are deduplicated whole (section 2.3), FIM is drawn per file inside a
repository sample and every middle lies within one file (section 3.1), and the tokens decode back
to the samples `depsort` makes of the files on disk.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from minicoder.cli import main
from minicoder.data import TokenData
from minicoder.decontam import load_humaneval
from minicoder.depsort import repository_samples
from minicoder.prepare import PrepareConfig, ShardWriter, prepare
from minicoder.tokenizer import FIM_BEGIN, FIM_END, FIM_HOLE, Tokenizer, default_tokenizer_path

REPOS = Path(__file__).resolve().parents[1] / "data_samples" / "repos"


def read_files(root: Path) -> dict[str, str]:
    """The files prepare keeps from a clean repository: all but those in hidden or excluded directories."""
    paths = [p for p in sorted(root.rglob("*")) if p.is_file()
             and not any(d.startswith(".") or d == "__pycache__" for d in p.relative_to(root).parts[:-1])]
    return {p.relative_to(root).as_posix(): p.read_text() for p in paths}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Four repositories: repo_a (python_calc, 9 files, 3 samples), repo_b (a near-copy of it),
    repo_c (two good files, one carrying a HumanEval solution, and eight files that must be
    skipped) and repo_empty (an empty directory)."""
    root = tmp_path_factory.mktemp("corpus")
    shutil.copytree(REPOS / "python_calc", root / "repo_a")
    shutil.copytree(REPOS / "python_calc", root / "repo_b")
    parser = root / "repo_b" / "calc" / "parser.py"
    parser.write_text(parser.read_text().replace("unexpected", "stray token"))
    (root / "repo_a" / ".git").mkdir()
    (root / "repo_a" / ".git" / "config").write_text("[core]\n\tbare = false\n")  # hidden: never seen
    (root / "repo_a" / "calc" / "__pycache__").mkdir()
    (root / "repo_a" / "calc" / "__pycache__" / "nodes.cpython-311.pyc").write_bytes(b"\xa7\r\r\n")  # excluded

    c = root / "repo_c"
    c.mkdir()
    solution = load_humaneval()[0]["canonical_solution"]
    (c / "solution.py").write_text(f"def any_two_close(numbers, threshold):\n{solution}")
    (c / "util.py").write_text('def slugify(title: str) -> str:\n    return "-".join(title.lower().split())\n')
    (c / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")  # binary
    (c / "latin1.py").write_bytes("name = 'café'\n".encode("latin-1"))  # not UTF-8
    (c / "empty.py").write_text("")
    (c / "loop").symlink_to(".", target_is_directory=True)  # a symlink loop
    (c / "alias.py").symlink_to("util.py")
    with open(c / "big.py", "wb") as f:  # 50 MB, sparse: skipped by size, never read
        f.truncate(50 * 2**20)
    os.mkfifo(c / "pipe.py")  # reading it would block forever
    (c / os.fsdecode(b"bad\xff.py")).write_text("value = 1\n")
    (root / "repo_empty").mkdir()
    return root


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("out") / "tokens"
    manifest = prepare(PrepareConfig(corpus=str(corpus), out=str(out), workers=2, val_fraction=0.3, progress=False))
    return out, manifest


def test_manifest_counts(prepared):
    out, m = prepared
    assert m == json.loads((out / "manifest.json").read_text())
    assert m["repositories"] == 4 and m["empty_repositories"] == ["repo_empty"]
    assert m["files_seen"] == 9 + 9 + 10 and m["files_kept"] == 9 + 9 + 1
    assert m["drops"] == {"bad_filename": 1, "binary": 1, "decontaminated": 1, "empty": 1, "not_a_file": 1,
                          "not_utf8": 1, "symlink": 2, "too_large": 1}
    assert m["decontaminated"] == 1 and m["decontaminated_files"][0]["file"] == "repo_c/solution.py"
    assert "HumanEval/0" in m["decontaminated_files"][0]["reason"]
    assert m["repository_samples"] == 3 + 3 + 1
    # repo_b is a near copy of repo_a: it goes whole, and the manifest says of which
    assert m["duplicates_removed"] == 1 and m["duplicate_repositories"] == {"repo_b": "repo_a"}
    assert m["duplicate_samples"] == ["repo_b#0", "repo_b#1", "repo_b#2"]
    assert sum(m["samples"].values()) == 4
    assert m["seed"] == 0 and m["tokenizer"] == str(default_tokenizer_path())


def unfim_files(sample: str, files: dict[str, str]) -> tuple[str, int]:
    """Undo file-level FIM in a decoded sample of Python files, checking that each FIM segment is
    one whole file (`# path` comment and code) so that its middle lies inside that file.
    Returns (the plain sample, the number of FIM segments)."""
    out, n, rest = [], 0, sample
    while FIM_BEGIN in rest:
        before, _, rest = rest.partition(FIM_BEGIN)
        prefix, _, rest = rest.partition(FIM_HOLE)
        suffix, _, rest = rest.partition(FIM_END)
        path = prefix.split("\n", 1)[0].removeprefix("# ")
        whole = f"# {path}\n{files[path]}" + ("" if files[path].endswith("\n") else "\n")
        assert whole.startswith(prefix) and whole.endswith(suffix) and len(prefix) + len(suffix) <= len(whole)
        middle = whole[len(prefix) : len(whole) - len(suffix)]
        assert rest.startswith(middle), f"the middle of {path} does not end inside {path}"
        out += [before, whole]
        rest, n = rest[len(middle) :], n + 1
    return "".join(out) + rest, n


def test_tokens_decode_back_to_the_samples(prepared, corpus):
    out, m = prepared
    meta = json.loads((out / "meta.json").read_text())
    files = read_files(corpus / "repo_a")
    expected = {f"repo_a#{i}": s for i, s in enumerate(repository_samples(files))}
    files["util.py"] = (corpus / "repo_c" / "util.py").read_text()
    expected["repo_c#0"] = repository_samples({"util.py": files["util.py"]})[0]
    tok = Tokenizer.from_file(default_tokenizer_path())
    fim_files = fim_samples = 0
    for split, info in meta["splits"].items():
        ids = np.concatenate([np.fromfile(out / s, dtype=meta["dtype"]) for s in info["shards"]])
        assert len(ids) == info["tokens"] == m["tokens"][split]
        ends = np.flatnonzero(ids == tok.eos_id)
        assert len(ends) == len(info["samples"]) and ends[-1] == len(ids) - 1  # each sample ends in EOS
        for name, start, end in zip(info["samples"], np.r_[0, ends[:-1] + 1], ends):
            text = tok.decode(ids[start:end].tolist())
            assert split == "train" or FIM_BEGIN not in text  # validation stays plain
            plain, n = unfim_files(text, files)
            assert plain == expected[name]
            fim_files, fim_samples = fim_files + n, fim_samples + (n > 0)
    assert sorted(n for info in meta["splits"].values() for n in info["samples"]) == sorted(expected)
    assert (fim_files, fim_samples) == (m["fim_files"], m["fim_samples"])
    assert meta["fim"]["unit"] == "file" and m["fim_share"] == m["fim_files"] / meta["splits"]["train"]["files"]


def test_dedup_keeps_a_repository_whole_when_it_shares_a_file(tmp_path):
    """Section 2.3 deduplicates repositories, never single files of one: repo_y holds a copy of
    repo_x's calc/tokens.py (and two identical files of its own), yet all of them are kept."""
    shutil.copytree(REPOS / "python_calc", tmp_path / "repo_x")
    y = tmp_path / "repo_y"
    shutil.copytree(REPOS / "python_geometry", y)
    (y / "vendor").mkdir()
    shutil.copy(REPOS / "python_calc" / "calc" / "tokens.py", y / "vendor" / "tokens.py")
    for d in ("one", "two"):  # the same file twice in one repository (as __phello__/spam.py in the stdlib)
        (y / d).mkdir()
        (y / d / "spam.py").write_text('def spam(n: int) -> str:\n    return " ".join(["spam"] * n)\n')
    out = tmp_path / "out"
    m = prepare(PrepareConfig(corpus=str(tmp_path), out=str(out), workers=1, fim_rate=0, val_fraction=0.3,
                              progress=False))
    assert m["duplicates_removed"] == 0 and m["duplicate_repositories"] == {} and m["duplicate_samples"] == []
    assert m["files_kept"] == 9 + 10 + 3
    meta = json.loads((out / "meta.json").read_text())
    assert sum(info["files"] for info in meta["splits"].values()) == m["files_kept"]


def test_training_loader_reads_the_output(prepared):
    out, m = prepared
    data = TokenData.load(out)
    assert {s: len(f) for s, f in data.splits.items()} == m["tokens"]


def test_same_result_with_one_worker_and_rerun_replaces_output(prepared, corpus):
    out, m = prepared
    before = {p.name: p.read_bytes() for p in out.glob("*.bin")}
    cfg = PrepareConfig(corpus=str(corpus), out=str(out), workers=1, val_fraction=0.3, progress=False)
    assert prepare(cfg) == {**m, "config": {**m["config"], "workers": 1}}
    assert {p.name: p.read_bytes() for p in out.glob("*.bin")} == before
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_shard_writer_cuts_exactly(tmp_path):
    w = ShardWriter(tmp_path, "train", np.dtype(np.uint16), shard_tokens=4)
    for ids in ([1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11]):
        w.add(np.array(ids, dtype=np.uint16))
    names = w.close()
    assert [np.fromfile(tmp_path / n, dtype=np.uint16).tolist() for n in names] == [
        [1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11]]


def run_cli(argv, capsys) -> tuple[int, str]:
    code = main(["prepare", *argv, "--quiet"])
    return code, capsys.readouterr().err.strip()


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    code, err = run_cli(["--corpus", str(tmp_path / "missing"), "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and err.count("\n") == 0 and "does not exist" in err and "--corpus" in err
    (tmp_path / "empty").mkdir()
    code, err = run_cli(["--corpus", str(tmp_path / "empty"), "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and err.count("\n") == 0 and "is empty" in err
    (tmp_path / "hollow" / "repo").mkdir(parents=True)
    code, err = run_cli(["--corpus", str(tmp_path / "hollow"), "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and err.count("\n") == 0 and "holds no files" in err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    code, err = run_cli(["--corpus", str(REPOS), "--out", str(tmp_path / "mine")], capsys)
    assert code == 1 and "not an earlier `minicoder prepare` output" in err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="--fim-rate"):
        PrepareConfig(corpus="c", out="o", fim_rate=2)


def test_cli_on_the_shipped_repositories(tmp_path, capsys):
    code = main(["prepare", "--corpus", str(REPOS), "--out", str(tmp_path / "o"), "--workers", "1", "--quiet"])
    assert code == 0
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    expected = {k: e for k, e in json.loads((REPOS / "EXPECTED.json").read_text()).items() if k[0] != "_"}
    # a component of only empty files (python_nested's __init__.py files) makes no sample
    nonempty = sum(any((REPOS / k / p).read_text().strip() for p in c) for k, e in expected.items() for c in e["order"])
    assert m["repositories"] == 10 and m["repository_samples"] == nonempty + 1  # + README.md (EXPECTED.json is dropped)
    assert "repositories" in capsys.readouterr().out


# Runs `minicoder prepare` on the standard library with 2 workers, waits until the workers are
# reading, then sends Ctrl-C (SIGINT) to the whole process group, as a terminal does. Before the
# fix, each worker printed a KeyboardInterrupt traceback, and Pool.terminate could hang for good.
@pytest.mark.slow
def test_ctrl_c_stops_workers_with_one_line_and_no_tracebacks(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from minicoder.data import default_corpus_dir

    out = tmp_path / "tokens"
    proc = subprocess.Popen([sys.executable, "-m", "minicoder.cli", "prepare", "--corpus", str(default_corpus_dir()),
                             "--out", str(out), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        seen = ""
        deadline = time.monotonic() + 60
        while "reading" not in seen and time.monotonic() < deadline:  # tqdm's bar: the pool is at work
            seen += proc.stderr.read(1)
        time.sleep(0.5)
        assert proc.poll() is None, "prepare finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    stderr = seen + stderr
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    last = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip()][-1]
    assert last.startswith("minicoder prepare: interrupted;") and str(out) in last
    assert not out.exists() and not list(tmp_path.glob(".tokens*"))
