"""Finding a corpus's source files: the directory walk every reader of a corpus shares.

`default_corpus_dir()` is the running interpreter's standard library (present on every machine,
so `make train-tiny` downloads nothing); `list_source_files(root, ext, exclude)` lists its files
in a fixed order. `tokenizer.read_corpus`, `data`, `dedup` and `decontam` all walk a corpus this
way; keeping the walk here, below all of them, lets each import it without importing the others
(`data.py` re-exports these names). See `data.py`'s docstring for why the standard library's
tests, idlelib, pydoc_data and encodings are skipped.

Left out: .gitignore rules, symlinked directories (os.walk does not follow them), binary-file
detection (callers read files as UTF-8 and count the ones that are not).
"""

import os
import sysconfig
from pathlib import Path

# Directory names skipped anywhere under the corpus root.
CORPUS_EXCLUDE = ("__pycache__", ".git", ".venv", "venv", "site-packages", "node_modules")
# ...and, for the standard library, these too (see the module docstring for why).
STDLIB_EXCLUDE = CORPUS_EXCLUDE + ("test", "tests", "idlelib", "pydoc_data", "encodings")


def default_corpus_dir() -> Path:
    """The running interpreter's standard library, e.g. /usr/lib/python3.11."""
    return Path(sysconfig.get_paths()["stdlib"])


def list_source_files(root: str | Path, ext: str = ".py", exclude: tuple[str, ...] = CORPUS_EXCLUDE) -> list[str]:
    """Relative POSIX paths of every file under `root` ending in `ext`, sorted.

    Directories named in `exclude`, or starting with a dot, are not entered.
    """
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in exclude and not d.startswith(".")]
        for name in filenames:
            if name.endswith(ext):
                found.append((Path(dirpath) / name).relative_to(root).as_posix())
    return sorted(found)
