"""The install stays light: numpy, tqdm and matplotlib are minigrad's only runtime dependencies,
and nothing in the package, the lessons, the tests or the benchmarks imports scikit-learn or
SciPy (the 8x8 digits ship inside the package). pyproject.toml is read as text, so the check
needs no TOML parser.
"""
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = re.compile(r"^\s*(import|from)\s+(sklearn|scipy)\b", re.MULTILINE)
# The maintainer's script that rebuilt digits.npz from scikit-learn's copy; not run by users.
ALLOWED = {REPO / "minigrad" / "datasets" / "make_digits.py"}


def pyproject_list(name):
    """The quoted requirement names of the TOML list `name = [ ... ]` in pyproject.toml."""
    text = (REPO / "pyproject.toml").read_text()
    block = re.search(rf"^{re.escape(name)} = \[(.*?)^\]", text, re.MULTILINE | re.DOTALL)
    assert block, f"no list {name!r} in pyproject.toml"
    return [re.split(r"[<>=\[ ]", req)[0] for req in re.findall(r'"([^"]+)"', block[1])]


def test_runtime_dependencies_are_numpy_tqdm_matplotlib():
    assert sorted(pyproject_list("dependencies")) == ["matplotlib", "numpy", "tqdm"]


def test_extras_do_not_bring_scikit_learn_back():
    for extra in ("lessons", "dev"):
        names = pyproject_list(extra)
        assert "scikit-learn" not in names and "scipy" not in names, extra
        assert "threadpoolctl" in names, f"the lessons import threadpoolctl; [{extra}] needs it"


def code_of(path):
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return path.read_text(encoding="utf-8")


def test_nothing_imports_scikit_learn_or_scipy():
    files = [p for folder in ("minigrad", "lessons", "tests", "benchmarks")
             for pattern in ("*.py", "*.ipynb") for p in (REPO / folder).rglob(pattern)
             if ".ipynb_checkpoints" not in p.parts and "my-work" not in p.parts]
    assert len(files) > 20
    offenders = [str(p.relative_to(REPO)) for p in files
                 if p not in ALLOWED and HEAVY.search(code_of(p))]
    assert offenders == []
    assert all(HEAVY.search(code_of(p)) for p in ALLOWED)   # the pattern does match imports
