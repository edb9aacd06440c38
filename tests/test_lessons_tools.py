"""lessons/make_learner_copies.py: solutions are stripped, checks kept, and the copies fail loudly.

The script is not part of the package, so it is loaded from its path. The end-to-end test builds
the learner copy of lesson 11 and runs it: it must stop at the first unsolved exercise with the
"is not solved yet" message. The copies land inside lessons/, are never overwritten, and the
README's test command never collects them.
"""
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LESSONS = REPO / "lessons"
NOTEBOOKS = sorted(LESSONS.glob("*.ipynb"))


def _load_tool():
    spec = importlib.util.spec_from_file_location("make_learner_copies",
                                                  LESSONS / "make_learner_copies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


def _code_sources(path):
    nb = json.loads(Path(path).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            src = cell["source"]
            yield "".join(src) if isinstance(src, list) else src


# ---- strip_solutions on single cells ------------------------------------------------------------
def test_strip_solutions_replaces_block_with_labelled_raise_at_its_indentation():
    lines = [
        "def f(x):\n",
        "    y = 1\n",
        "    # BEGIN SOLUTION exercise 6.2\n",
        "    dx = x * 2\n",
        "    return dx + y\n",
        "    # END SOLUTION\n",
        "\n",
        "print('after')\n",
    ]
    out, removed = tool.strip_solutions(lines, "cell")
    assert removed == 1
    text = "".join(out)
    assert "dx = x * 2" not in text and "return dx + y" not in text
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    assert out[0] == "def f(x):\n" and out[1] == "    y = 1\n"       # code before is kept
    assert out[2] == "    # YOUR CODE HERE (exercise 6.2)\n"
    assert out[3].startswith('    raise NotImplementedError("exercise 6.2 is not solved yet')
    assert out[3].endswith('")\n')
    assert out[4:] == ["\n", "print('after')\n"]                      # code after is kept
    compile(text, "<learner cell>", "exec")                           # still valid Python


def test_strip_solutions_keeps_deeper_indentation_and_counts_blocks():
    lines = [
        "class Op:\n",
        "    @staticmethod\n",
        "    def forward(ctx, x):\n",
        "        # BEGIN SOLUTION exercise 11.1\n",
        "        return x\n",
        "        # END SOLUTION\n",
        "\n",
        "    @staticmethod\n",
        "    def backward(ctx, dout):\n",
        "        # BEGIN SOLUTION exercise 11.1\n",
        "        return dout\n",
        "        # END SOLUTION\n",
    ]
    out, removed = tool.strip_solutions(lines, "cell")
    assert removed == 2
    raises = [line for line in out if "raise NotImplementedError" in line]
    assert len(raises) == 2
    expected_start = '        raise NotImplementedError("exercise 11.1 '
    assert all(line.startswith(expected_start) for line in raises)
    namespace = {}
    exec(compile("".join(out), "<learner cell>", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="exercise 11.1 is not solved yet"):
        namespace["Op"].forward(None, 1.0)


def test_strip_solutions_without_label_says_this_exercise():
    out, removed = tool.strip_solutions(["# BEGIN SOLUTION\n", "x = 1\n", "# END SOLUTION\n"], "c")
    assert removed == 1
    assert out[0] == "# YOUR CODE HERE (this exercise)\n"
    assert out[1].startswith('raise NotImplementedError("this exercise is not solved yet')


def test_strip_solutions_leaves_cells_without_markers_unchanged():
    lines = ["a = 1\n", "b = a + 1\n"]
    assert tool.strip_solutions(lines, "c") == (lines, 0)


def test_unterminated_begin_raises_value_error():
    lines = ["def f():\n", "    # BEGIN SOLUTION exercise 1.1\n", "    return 1\n"]
    with pytest.raises(ValueError, match="BEGIN SOLUTION without END SOLUTION"):
        tool.strip_solutions(lines, "lesson cell 3")


def test_nested_begin_raises_value_error():
    lines = ["# BEGIN SOLUTION exercise 1\n", "# BEGIN SOLUTION exercise 2\n", "# END SOLUTION\n"]
    with pytest.raises(ValueError, match="nested"):
        tool.strip_solutions(lines, "c")


# ---- the shipped notebooks ---------------------------------------------------------------------
def test_there_are_shipped_notebooks():
    assert NOTEBOOKS, f"no lesson notebooks found in {LESSONS}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_notebook_has_at_least_two_solution_blocks(notebook):
    begins = sum(src.count("# BEGIN SOLUTION") for src in _code_sources(notebook))
    ends = sum(src.count("# END SOLUTION") for src in _code_sources(notebook))
    assert begins >= 2, f"{notebook.name} has {begins} solution block(s); lessons need at least 2"
    assert begins == ends, f"{notebook.name}: {begins} BEGIN markers but {ends} END markers"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_make_copy_removes_every_solution(notebook, tmp_path):
    dst = tmp_path / notebook.name
    removed = tool.make_copy(notebook, dst)
    assert removed >= 2
    copy = json.loads(dst.read_text())
    text = "\n".join(_code_sources(dst))
    assert "# BEGIN SOLUTION" not in text and "# END SOLUTION" not in text
    assert text.count("is not solved yet") >= removed
    for cell in copy["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    original = json.loads(notebook.read_text())
    assert len(copy["cells"]) == len(original["cells"]), "cells must not be added or dropped"
    # markdown is untouched
    for a, b in zip(original["cells"], copy["cells"]):
        if a["cell_type"] == "markdown":
            assert a["source"] == b["source"]


# ---- end to end: the learner copy of lesson 11 stops at the first exercise ---------------------
@pytest.mark.lesson
def test_learner_copy_of_lesson_11_fails_with_not_solved_message(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from nbclient.exceptions import CellExecutionError

    (src,) = LESSONS.glob("11_*.ipynb")
    dst = tmp_path / src.name
    assert tool.make_copy(src, dst) >= 3
    nb = nbformat.read(dst, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(CellExecutionError) as info:
        client.execute()
    message = str(info.value)
    assert "NotImplementedError" in message
    assert "exercise 11.1 is not solved yet" in message


# ---- where the copies go, and that a learner's work is never overwritten -----------------------
def run_tool(*args):
    proc = subprocess.run([sys.executable, str(LESSONS / "make_learner_copies.py"), *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_copies_go_inside_lessons_where_jupyterlab_shows_them():
    assert tool.DEFAULT_OUT == LESSONS / "my-work"
    assert "lessons/my-work/" in (REPO / ".gitignore").read_text().splitlines()


def test_a_second_run_leaves_existing_copies_alone_and_makes_missing_ones(tmp_path):
    out = tmp_path / "work"
    first = run_tool("--out", str(out))
    assert f"Learner copies are in {out}" in first
    assert first.count("  made  ") == len(NOTEBOOKS)
    assert (out / tool.MARKER).is_file()
    solved = out / NOTEBOOKS[0].name
    solved.write_text(solved.read_text() + " ")         # the learner's work
    mine = solved.read_text()
    (out / NOTEBOOKS[1].name).unlink()                  # a copy the learner deleted

    second = run_tool("--out", str(out))
    assert solved.read_text() == mine
    assert f"  made        {NOTEBOOKS[1].name}" in second
    assert f"  left alone  {NOTEBOOKS[0].name}" in second
    assert f"{len(NOTEBOOKS) - 1} copies existed and may hold your work" in second
    assert "--force" in second
    assert not list(out.glob("backup-*"))


def test_force_backs_up_every_copy_it_replaces(tmp_path):
    out = tmp_path / "work"
    run_tool("--out", str(out))
    solved = out / NOTEBOOKS[0].name
    solved.write_text(solved.read_text() + " ")
    mine = solved.read_text()
    forced = run_tool("--out", str(out), "--force")
    (backup,) = out.glob("backup-*")
    assert (backup / NOTEBOOKS[0].name).read_text() == mine
    assert sorted(p.name for p in backup.iterdir()) == sorted(p.name for p in NOTEBOOKS)
    assert solved.read_text() != mine and "is not solved yet" in solved.read_text()
    assert f"  replaced    {NOTEBOOKS[0].name}" in forced and str(backup) in forced
    run_tool("--out", str(out), "--force")              # a second backup never overwrites one
    assert len(list(out.glob("backup-*"))) == 2


def test_the_test_command_never_collects_learner_copies(tmp_path):
    """`pytest --nbmake tests lessons` in a copy of the repository's test setup, with learner
    copies in lessons/my-work, in a folder of another name, and in one whose marker is gone:
    only the shipped lesson (and the unmarked stray copy) is collected."""
    pytest.importorskip("nbmake")
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    shutil.copy(NOTEBOOKS[0], lessons / NOTEBOOKS[0].name)
    for folder in ("my-work", "mine"):
        run_tool("--lessons", str(lessons), "--out", str(lessons / folder))
    run_tool("--lessons", str(lessons), "--out", str(lessons / "stray"))
    (lessons / "stray" / tool.MARKER).unlink()
    (lessons / "my-work" / tool.MARKER).unlink()        # the default folder is skipped anyway
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "--nbmake",
                           "-p", "no:cacheprovider", "lessons"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    collected = [line for line in proc.stdout.splitlines() if ".ipynb::" in line]
    assert collected == [f"lessons/{NOTEBOOKS[0].name}::{NOTEBOOKS[0].name}",
                         f"lessons/stray/{NOTEBOOKS[0].name}::{NOTEBOOKS[0].name}"], proc.stdout
