"""lessons/make_learner_copies.py and the derive-first path: solutions are stripped, checks kept,
the copies fail loudly, and nbgrader can read the same notebooks.

The script is not part of the package, so it is loaded from its path. The end-to-end tests build
learner copies and run them one cell at a time in one kernel: every failure must be an unsolved
exercise, derivation or question ("... is not solved yet"); once that one is filled in with the
reference solution, the copy runs on to the next. The checks of lessons 06 and 07 are fed wrong
answers (written as a learner would) and must name each mistake. The copies land inside lessons/,
are never overwritten, and the README's test command never collects them.
"""
import importlib.util
import json
import re
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


def test_nbgrader_style_markers_are_stripped_too():
    lines = ["def f():\n", "    ### BEGIN SOLUTION\n", "    return 1\n", "    ### END SOLUTION\n"]
    out, removed = tool.strip_solutions(lines, "c")
    assert removed == 1 and "return 1" not in "".join(out)
    assert out[1] == "    # YOUR CODE HERE (this exercise)\n"


def test_a_line_that_mentions_a_marker_without_being_one_is_refused():
    # nbgrader treats any line containing the words as a marker, so the script refuses such a line
    for line in ("x = 1  # BEGIN SOLUTION\n", "print('END SOLUTION')\n"):
        with pytest.raises(ValueError, match="mentions a solution marker but is not a marker line"):
            tool.strip_solutions(["a = 1\n", line], "lesson cell 7")


def test_markdown_solution_region_is_replaced_and_the_question_kept():
    lines = ["### 2.4 A question\n", "\n", "**Derive it first (derivation 6.1).** What is dx?\n", "\n",
             "<!-- BEGIN SOLUTION derivation 6.1 -->\n", "$$dx = 42$$\n", "<!-- END SOLUTION -->\n",
             "\n", "Afterwards.\n"]
    out, removed = tool.strip_solutions(lines, "c", "markdown", origin="lessons/06_x.ipynb")
    text = "".join(out)
    assert removed == 1
    assert "dx = 42" not in text and "SOLUTION" not in text
    assert text.startswith("### 2.4 A question\n\n**Derive it first (derivation 6.1).** What is dx?\n\n")
    assert "**Your derivation (derivation 6.1).**" in text and "lessons/06_x.ipynb" in text
    assert text.endswith("\nAfterwards.\n")
    # a code-style marker in markdown is not a marker there: refused, as nbgrader would strip it
    with pytest.raises(ValueError, match="not a marker line"):
        tool.strip_solutions(["# BEGIN SOLUTION\n", "x\n", "# END SOLUTION\n"], "c", "markdown")


def _notebook(*cells):
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _cell(kind, source, nbgrader=None):
    cell = {"cell_type": kind, "metadata": {}, "source": source.splitlines(keepends=True)}
    if kind == "code":
        cell.update(outputs=[], execution_count=None)
    if nbgrader is not None:
        cell["metadata"]["nbgrader"] = nbgrader
    return cell


def test_a_whole_cell_marked_as_solution_by_nbgrader_metadata_is_replaced(tmp_path):
    meta = dict(grade=False, grade_id="question-3-1", locked=False, schema_version=3, solution=True)
    text_meta = dict(grade=True, grade_id="derivation-3-1-written", locked=False, points=2,
                     schema_version=3, solution=True)
    src = tmp_path / "03_x.ipynb"
    src.write_text(json.dumps(_notebook(_cell("code", "answer = 4\n", meta),
                                        _cell("markdown", "The derivation.\n", text_meta))))
    assert tool.make_copy(src, tmp_path / "copy.ipynb") == 2
    copy = json.loads((tmp_path / "copy.ipynb").read_text())
    code, text = ("".join(c["source"]) for c in copy["cells"])
    assert "answer = 4" not in code and "question 3.1 is not solved yet" in code
    assert "The derivation" not in text and "Your derivation (derivation 3.1)" in text


# ---- nbgrader: cell metadata, schema 3 ----------------------------------------------------------
SOLUTION = dict(grade=False, grade_id="exercise-1-1", locked=False, schema_version=3, solution=True)
CHECK = dict(grade=True, grade_id="exercise-1-1-check", locked=True, points=1, schema_version=3,
             solution=False)
MARKED = "def f():\n    # BEGIN SOLUTION exercise 1.1\n    return 1\n    # END SOLUTION\n"


def test_nbgrader_problems_accepts_a_marked_solution_and_its_check():
    nb = _notebook(_cell("code", MARKED, dict(SOLUTION)), _cell("code", "assert f() == 1\n", dict(CHECK)))
    assert tool.nbgrader_problems(nb) == []


@pytest.mark.parametrize("change, kind, expected", [
    (None, "code", "has a solution region but no nbgrader metadata"),
    ({"solution": False}, "code", "has a solution region but is not a solution cell"),
    ({"grade_id": ""}, "code", "needs a grade_id"),
    ({"grade_id": "exercise 1.1"}, "code", "may hold only letters, digits"),
    ({"schema_version": 2}, "code", "schema_version 2, expected 3"),
    ({"points": 1}, "code", None),                         # allowed: nbgrader ignores points without grade
    ({"comment": "x"}, "code", "unknown nbgrader key 'comment'"),
    ({"grade": "yes"}, "code", "'grade' must be bool"),
    ({"grade": True}, "code", "a grade cell needs points"),
    ({"locked": None}, "code", "'locked' must be bool"),
    ({}, "markdown", "must be grade AND solution"),        # nbgrader: "Markdown solution cell is not ..."
    ({"task": True}, "code", "task cells have to be markdown"),
], ids=["no-metadata", "not-solution", "empty-id", "bad-id", "schema-2", "points-ok", "extra-key",
        "grade-not-bool", "grade-without-points", "locked-none", "markdown-not-graded", "code-task"])
def test_nbgrader_problems_names_what_nbgrader_would_refuse(change, kind, expected):
    source = MARKED if kind == "code" else "<!-- BEGIN SOLUTION d 1.1 -->\nx\n<!-- END SOLUTION -->\n"
    meta = None if change is None else {**SOLUTION, **change}
    problems = tool.nbgrader_problems(_notebook(_cell(kind, source, meta)))
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


def test_nbgrader_problems_finds_duplicate_grade_ids_and_missing_keys():
    nb = _notebook(_cell("code", MARKED, dict(SOLUTION)), _cell("code", "x = 1\n", dict(SOLUTION)),
                   _cell("code", "y = 2\n", {"grade": False, "solution": False}))
    problems = tool.nbgrader_problems(nb)
    assert any("grade_id 'exercise-1-1' is also used by cell 0" in p for p in problems), problems
    assert any("lacks schema_version, locked" in p for p in problems), problems


def test_add_nbgrader_metadata_marks_solutions_and_checks_and_is_idempotent():
    nb = _notebook(_cell("markdown", "<!-- BEGIN SOLUTION derivation 2.1 -->\nd\n<!-- END SOLUTION -->\n"),
                   _cell("code", MARKED), _cell("code", "assert f() == 1\n"),
                   _cell("code", "z = 3\n"),
                   _cell("code", "# BEGIN SOLUTION exercise 1.1\nz = 4\n# END SOLUTION\n"))
    assert tool.nbgrader_problems(nb)                         # unmarked solution regions
    assert tool.add_nbgrader_metadata(nb) == 4
    metas = [c["metadata"].get("nbgrader") for c in nb["cells"]]
    assert metas[0] == dict(grade=True, grade_id="derivation-2-1-written", locked=False, points=2,
                            schema_version=3, solution=True)
    assert metas[1] == SOLUTION and metas[2] == CHECK
    assert metas[3] is None                                   # an ordinary cell stays ordinary
    assert metas[4]["grade_id"] == "exercise-1-1-2"           # grade ids stay unique
    assert tool.nbgrader_problems(nb) == []
    before = json.dumps(nb)
    assert tool.add_nbgrader_metadata(nb) == 0 and json.dumps(nb) == before


# ---- the shipped notebooks ---------------------------------------------------------------------
def test_there_are_shipped_notebooks():
    assert NOTEBOOKS, f"no lesson notebooks found in {LESSONS}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_notebook_has_at_least_two_solution_blocks(notebook):
    begins = sum(src.count("# BEGIN SOLUTION") for src in _code_sources(notebook))
    ends = sum(src.count("# END SOLUTION") for src in _code_sources(notebook))
    assert begins >= 2, f"{notebook.name} has {begins} solution block(s); lessons need at least 2"
    assert begins == ends, f"{notebook.name}: {begins} BEGIN markers but {ends} END markers"


def _markdown_regions(text):
    """(outside, inside) of the solution regions of a markdown cell's text."""
    parts = re.split(r"<!--\s*(?:BEGIN|END) SOLUTION[^>]*-->\n?", text)
    return "".join(parts[0::2]), "".join(parts[1::2])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_make_copy_removes_every_solution(notebook, tmp_path):
    dst = tmp_path / notebook.name
    removed = tool.make_copy(notebook, dst)
    assert removed >= 2
    copy = json.loads(dst.read_text())
    original = json.loads(notebook.read_text())
    assert len(copy["cells"]) == len(original["cells"]), "cells must not be added or dropped"
    everything = "\n".join("".join(c["source"]) for c in copy["cells"])
    assert "BEGIN SOLUTION" not in everything and "END SOLUTION" not in everything
    code_stubs = "\n".join(_code_sources(dst)).count("is not solved yet")
    text_stubs = everything.count("** Double-click this cell and write it here")
    assert code_stubs + text_stubs == removed
    for a, b in zip(original["cells"], copy["cells"]):
        if b["cell_type"] == "code":
            assert b["outputs"] == [] and b["execution_count"] is None
        if a["cell_type"] == "markdown":
            outside, inside = _markdown_regions("".join(a["source"]))
            if not inside:
                assert a["source"] == b["source"], "markdown without a solution region is untouched"
                continue
            text = "".join(b["source"])                  # the question stays, the derivation goes
            assert all(line in text for line in outside.splitlines())
            assert not any(line.strip() and line in text for line in inside.splitlines())


DERIVE_FIRST = {   # lesson -> the derivations a learner copy asks for, each with a line of its answer
    "06_batchnorm_backward.ipynb": [("derivation 6.1", r"+ \underbrace{\frac{\partial\ell}{\partial\mu_B}\cdot\frac1m}"),
                                    ("derivation 6.2", r"\boxed{")],
    "07_training_vs_inference.ipynb": [("derivation 7.1", r"= (m-1)\,\mathrm{Var}[x],$$"),
                                       ("derivation 7.2", "fused_conv_b = (conv_b - bn_rm)")],
}


@pytest.mark.parametrize("name", sorted(DERIVE_FIRST))
def test_learner_copy_replaces_derivations_with_the_question_and_a_check(name, tmp_path):
    tool.make_copy(LESSONS / name, tmp_path / name)
    original = [("".join(c["source"]), c) for c in json.loads((LESSONS / name).read_text())["cells"]]
    copy = ["".join(c["source"]) for c in json.loads((tmp_path / name).read_text())["cells"]]
    for label, answer in DERIVE_FIRST[name]:
        (i,) = [k for k, (text, c) in enumerate(original)
                if c["cell_type"] == "markdown" and f"BEGIN SOLUTION {label}" in text]
        assert answer in original[i][0] and answer not in copy[i]
        assert f"**Derive it first ({label}).**" in copy[i]                     # the question
        assert f"**Your derivation ({label}).**" in copy[i] and f"lessons/{name}" in copy[i]
        assert not any(answer in text for text in copy[:i]), f"{label}'s answer shows before it is asked"
        (j,) = [k for k, (text, c) in enumerate(original)
                if c["cell_type"] == "code" and f"BEGIN SOLUTION {label}" in text]
        assert i < j and f'raise NotImplementedError("{label} is not solved yet' in copy[j]
        check = copy[j + 1]                                                      # the check, unchanged
        assert check == original[j + 1][0] and "name_the_mistakes" in check
        assert original[i][1]["metadata"]["nbgrader"]["grade"] is True           # a graded answer for nbgrader


def test_lesson_06_intro_no_longer_gives_the_closed_form_away():
    nb = json.loads((LESSONS / "06_batchnorm_backward.ipynb").read_text())
    intro = "".join(nb["cells"][0]["source"])
    assert r"m\,dy - \sum dy" not in intro and "Derive first" in intro


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_shipped_notebook_is_ready_for_nbgrader(notebook):
    nb = json.loads(notebook.read_text())
    assert tool.nbgrader_problems(nb) == []
    assert tool.add_nbgrader_metadata(nb) == 0, "every solution and its check already carry metadata"


# nbgrader/nbgraderformat/v3.json (nbgrader 0.9.6), the JSON schema of the cell metadata
NBGRADER_V3_SCHEMA = {
    "type": "object",
    "properties": {
        "schema_version": {"type": "integer", "minimum": 3, "maximum": 3},
        "grade": {"type": "boolean"}, "locked": {"type": "boolean"},
        "solution": {"type": "boolean"}, "task": {"type": "boolean"},
        "grade_id": {"type": "string", "pattern": "^[a-zA-Z0-9_\\-]*$"},
        "points": {"type": "number", "minimum": 0},
        "checksum": {"type": "string", "minLength": 32, "maxLength": 32},
        "cell_type": {"type": "string", "enum": ["raw", "code", "markdown"]},
    },
    "required": ["schema_version", "grade", "locked", "solution"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_nbgrader_metadata_in_the_lessons_matches_nbgraders_schema(notebook):
    jsonschema = pytest.importorskip("jsonschema")        # installed with nbformat
    cells = json.loads(notebook.read_text())["cells"]
    metas = [c["metadata"]["nbgrader"] for c in cells if "nbgrader" in c["metadata"]]
    for meta in metas:
        jsonschema.validate(meta, NBGRADER_V3_SCHEMA)
    assert metas, f"{notebook.name} has no nbgrader metadata"


# ---- end to end, in a kernel: copies stop only at unsolved work; checks name each mistake -----
class Kernel:
    """One kernel that runs cells of a notebook one at a time (the lessons' folder is its cwd)."""

    def __init__(self, client):
        self.client = client

    def run(self, source):
        """Run `source` as a code cell; return None, or the error's text."""
        import nbformat
        from nbclient.exceptions import CellExecutionError
        cell = nbformat.v4.new_code_cell(source)
        self.client.nb.cells = [cell]           # nbclient stores the cell back at its index
        try:
            self.client.execute_cell(cell, 0)
            return None
        except CellExecutionError as e:
            return re.sub(r"\x1b\[[0-9;]*m", "", str(e))     # without the terminal colours


@pytest.fixture
def kernel():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    client = nbclient.NotebookClient(nbformat.v4.new_notebook(), timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(LESSONS)}})
    with client.setup_kernel():
        yield Kernel(client)


def _cells(path):
    return json.loads(Path(path).read_text())["cells"]


NOT_SOLVED = re.compile(r'NotImplementedError: ((?:exercise|derivation|question) \d+\.\d+) is not solved yet')


@pytest.mark.lesson
@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS if p.name[:2] in ("01", "02", "03", "04", "06", "07", "11")])
def test_learner_copy_fails_only_at_unsolved_work_in_order(name, tmp_path, kernel):
    """Run All on the learner copy stops at its first unsolved piece of work with the 'not solved
    yet' message. Filling that piece in with the reference solution lets the copy run on to the
    next one, and so on to the end: nothing else in the copy fails."""
    tool.make_copy(LESSONS / name, tmp_path / name)
    learner, original = _cells(tmp_path / name), _cells(LESSONS / name)
    stubs = {}                                  # label -> the cell that holds its stub
    for i, cell in enumerate(learner):
        for label in re.findall(r'raise NotImplementedError\("(\S+ \d+\.\d+) is not solved yet',
                                "".join(cell["source"])):
            stubs.setdefault(label, i)
    assert len(stubs) >= 3
    seen = []
    for i, cell in enumerate(learner):
        if cell["cell_type"] != "code":
            continue
        error = kernel.run("".join(cell["source"]))
        if error is None:
            continue
        found = NOT_SOLVED.search(error)
        assert found, f"{name} cell {i} failed with something other than unsolved work:\n{error[-3000:]}"
        label = found.group(1)
        assert label not in seen and stubs[label] <= i, f"{name} cell {i}: {label} again or out of order"
        seen.append(label)
        j = stubs[label]
        assert kernel.run("".join(original[j]["source"])) is None, f"{name}: the reference {label} fails"
        if j < i:                               # the stub was a function; its check comes after
            assert kernel.run("".join(cell["source"])) is None, f"{name} cell {i} fails once {label} is solved"
    assert seen == list(stubs), f"{name}: met {seen}, expected every piece of work in order: {list(stubs)}"


def _with_body(source, label, body):
    """The cell `source` with the lines inside its solution region for `label` replaced by `body`."""
    lines = source.splitlines(keepends=True)
    (b,) = [k for k, line in enumerate(lines) if f"BEGIN SOLUTION {label}" in line]
    e = next(k for k in range(b, len(lines)) if "END SOLUTION" in lines[k])
    indent = lines[b][:len(lines[b]) - len(lines[b].lstrip())]
    return "".join(lines[:b + 1] + [indent + line + "\n" for line in body.splitlines()] + lines[e:])


CLOSED = "m = dout.shape[0]\ndbeta = dout.sum(axis=0)\ndgamma = (dout * xhat).sum(axis=0)\ndx = {}\nreturn dx, dgamma, dbeta"
SPATIAL = ("N, C, H, W = dout.shape\nm = {m}\nax = (0, 2, 3)\nc = lambda v: v.reshape(1, C, 1, 1)\n"
           "dbeta = dout.sum(axis=ax)\ndgamma = (dout * xhat).sum(axis=ax)\n"
           "return c(gamma * invstd / m) * (m * dout{mu} - xhat * c(dgamma)), dgamma, dbeta")
FOLD = ("s = gamma / {root}\nW2 = W * s.reshape({shape})\nreturn W2, {bias}")
WRONG_ANSWERS = {   # lesson -> label -> [(a learner's wrong answer, what the check must say)]
    "06_batchnorm_backward.ipynb": {
        "derivation 6.1": [
            ("return dxhat * invstd, dvar * 2 * xmu / m, 0 * dmu", ["you forgot the mu-path term"]),
            ("return dxhat * invstd, dvar * 2 * xmu / m, -dmu / m", ["sign error in the mu-path term"]),
            ("return dxhat * invstd, dvar * 2 * xmu / (m - 1), dmu / m",
             ["a spurious m/(m-1) in the variance-path term"]),
            ("return dxhat * invstd, dvar * 2 * xmu / m, dmu / (m - 1)", ["m - 1 for m in the mu-path term"]),
            ("return dxhat * invstd, -dvar * 2 * xmu / m, 0 * dmu",
             ["two mistakes at once", "you forgot the mu-path term", "sign error in the variance-path term"]),
            ("return dxhat * invstd, dvar * xmu / m, dmu / m", ["not by one of the usual mistakes"]),
        ],
        "derivation 6.2": [
            (CLOSED.format("gamma * invstd / m * (m * dout - xhat * dgamma)"), ["you forgot the mean-path term"]),
            (CLOSED.format("gamma * invstd / m * (m * dout - dbeta + xhat * dgamma)"),
             ["sign error in the variance-path term"]),
            (CLOSED.format("gamma * invstd / m * (m * dout - dbeta - m / (m - 1) * xhat * dgamma)"),
             ["a spurious m/(m-1) on the variance-path term"]),
            (CLOSED.format("gamma * invstd / (m - 1) * ((m - 1) * dout - dbeta - xhat * dgamma)"),
             ["m - 1 for m"]),
            (CLOSED.format("-gamma * invstd / m * (m * dout - dbeta - xhat * dgamma)"), ["sign error: your dx is minus"]),
            (CLOSED.format("gamma * invstd / m * (m * dout - m / (m - 1) * xhat * dgamma)"),
             ["two mistakes at once", "you forgot the mean-path term", "a spurious m/(m-1)"]),
            (CLOSED.format("invstd / m * (m * dout + dbeta - xhat * dgamma)"),
             ["two mistakes at once", "sign error in the mean-path term", "gamma is missing"]),
        ],
        "question 6.1": [("answer_6_1 = 10", ["question 6.1: 10 is not the answer", "Hint:"])],
        "question 6.2": [("answer_6_2 = 'a'", ["question 6.2: 'a' is not the answer"])],
        "exercise 6.1": [
            (SPATIAL.format(m="N", mu=" - c(dbeta)"), ["you used m = N"]),
            (SPATIAL.format(m="N * H * W", mu=""), ["you forgot the mu-path term"]),
            (SPATIAL.format(m="N", mu=""), ["two mistakes at once", "forgot the mu-path term", "you used m = N"]),
            (SPATIAL.format(m="N * H * W", mu=" + c(dbeta)"), ["sign error in the mean-path term"]),
        ],
        "exercise 6.3": [(
            "m = x.shape[0]\nmu = x.mean(axis=0)\nxmu = x - mu\nvar = (xmu ** 2).sum(axis=0) / (m - 1)\n"
            "invstd = 1 / np.sqrt(var + eps)\ndxhat = dout * gamma\n"
            "dvar = np.sum(dxhat * xmu, axis=0) * -0.5 * (var + eps) ** -1.5\n"
            "dmu = np.sum(dxhat * -invstd, axis=0)\ndx = dxhat * invstd + dvar * 2 * xmu / m + dmu / (m - 1)\n"
            "return dx, np.sum(dout * xmu * invstd, axis=0), np.sum(dout, axis=0)",
            ["two mistakes at once", "your variance path divides by m", "a spurious m/(m-1) on the mu path"])],
    },
    "07_training_vs_inference.ipynb": {
        "derivation 7.1": [
            ("return var", ["you treated mu_B as the population mean", "or: a spurious m/(m-1)"]),
            ("return (m + 1) / m * var", ["sign error in the term of the batch mean"]),
            ("return (m - 2) / (m - 1) * var", ["m - 1 for m in the variance of the batch mean"]),
            ("return m / (m - 1) * var", ["you gave the correction factor m/(m-1)"]),
            ("return (m - 1) * var", ["you did not divide by m at the end"]),
            ("return (m + 1) * var", ["two mistakes at once", "sign error", "did not divide by m"]),
        ],
        "derivation 7.2": [
            (FOLD.format(root="(running_var + eps) ** 0.5", shape="-1, 1", bias="b * s + beta"),
             ["you forgot the running-mean shift"]),
            (FOLD.format(root="(running_var + eps) ** 0.5", shape="-1, 1", bias="(b + running_mean) * s + beta"),
             ["sign error on the running mean"]),
            (FOLD.format(root="running_var ** 0.5", shape="-1, 1", bias="(b - running_mean) * s + beta"),
             ["you left eps out of s"]),
            (FOLD.format(root="(running_var + eps) ** 0.5", shape="1, -1", bias="(b - running_mean) * s + beta"),
             ["you scaled the input columns of W"]),
            (FOLD.format(root="running_var ** 0.5", shape="-1, 1", bias="(b - running_mean) * s"),
             ["two mistakes at once", "you left eps out of s", "you forgot beta"]),
        ],
        "question 7.1": [("answer_7_1 = 8 / 7", ["question 7.1: 1.1428"]),
                         ("answer_7_1 = 1", ["question 7.1: 1 is not the answer"])],
        "question 7.3": [("answer_7_3 = '(a)'", ["question 7.3: '(a)' is not the answer"])],
    },
}


@pytest.mark.lesson
@pytest.mark.parametrize("name", sorted(WRONG_ANSWERS))
def test_checks_name_each_mistake(name, kernel):
    """The lesson runs cell by cell; at each listed solution its check is fed the wrong answers
    first (each must fail, naming the mistake), then the reference solution, and the lesson runs on."""
    cells, cases = _cells(LESSONS / name), WRONG_ANSWERS[name]
    where = {label: i for i, c in enumerate(cells) for label in cases
             if c["cell_type"] == "code" and f"BEGIN SOLUTION {label}" in "".join(c["source"])}
    assert sorted(where) == sorted(cases)
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        for label in [label for label, j in where.items() if j == i]:
            check = "".join(cells[i + 1]["source"])
            for body, expected in cases[label]:
                assert kernel.run(_with_body(source, label, body)) is None, f"{label}: {body!r} does not run"
                error = kernel.run(check)
                assert error is not None, f"{label}: the check accepted {body!r}"
                assert "AssertionError" in error and all(e in error for e in expected), \
                    f"{label}: for {body!r} expected {expected} in:\n{error[-1500:]}"
        assert kernel.run(source) is None, f"{name} cell {i} fails"


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



def test_check_nbgrader_and_nbgrader_metadata_options(tmp_path):
    nb = tmp_path / "01_x.ipynb"
    nb.write_text(json.dumps(_notebook(_cell("code", MARKED), _cell("code", "assert f() == 1\n"))))
    proc = subprocess.run([sys.executable, str(LESSONS / "make_learner_copies.py"), "--check-nbgrader",
                           str(nb)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "01_x.ipynb: cell 0 (code) has a solution region but no nbgrader" in proc.stdout
    assert not list(tmp_path.glob("my-work"))               # no copies made
    out = run_tool("--nbgrader-metadata", str(nb))
    assert "01_x.ipynb: nbgrader metadata added to 2 cells" in out
    metas = [c["metadata"]["nbgrader"] for c in json.loads(nb.read_text())["cells"]]
    assert metas == [SOLUTION, CHECK]
    assert "01_x.ipynb: ready for nbgrader" in run_tool("--check-nbgrader", str(nb))
    assert "added" not in run_tool("--nbgrader-metadata", str(nb))    # nothing left to add

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
