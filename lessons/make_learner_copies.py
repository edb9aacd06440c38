"""Make learner copies of the lessons: every reference solution removed, every check kept.

In the shipped notebooks a solution sits between two marker lines. In a code cell:

        # BEGIN SOLUTION exercise 6.2
        dx = ...
        # END SOLUTION

The learner copy replaces that block (markers included) by

        # YOUR CODE HERE (exercise 6.2)
        raise NotImplementedError("exercise 6.2 is not solved yet: ...")

at the same indentation, so running the notebook stops at the unsolved exercise with a
message that says which one. Exercises are written as functions, so the check cell that calls
them is what reports the missing solution. A derivation written in a markdown cell is marked
the same way with HTML comments, which Jupyter does not display:

        <!-- BEGIN SOLUTION derivation 6.1 -->
        $$ ... $$
        <!-- END SOLUTION -->

and the learner copy keeps the question around it and asks for the learner's own derivation in
its place. Outputs are cleared.

    python lessons/make_learner_copies.py              # writes lessons/my-work/*.ipynb
    python lessons/make_learner_copies.py --out DIR
    python lessons/make_learner_copies.py --force      # replace copies, after a backup

A copy that exists is never overwritten: the script makes the missing ones and names the ones
it left alone. With --force it first copies the existing ones into DIR/backup-<date-time>/.
The folder gets a marker file, .learner-copies, so the test command never collects the copies
(see conftest.py at the repository root); lessons/my-work/ is also in .gitignore.

The same notebooks go through nbgrader unchanged: nbgrader's ClearSolutions replaces every line
region from one containing "BEGIN SOLUTION" to one containing "END SOLUTION" (nbgrader's own
examples write `### BEGIN SOLUTION`; this script accepts any number of #), and it wants each
such cell marked in the cell metadata (schema 3). Two options keep that metadata right:

    python lessons/make_learner_copies.py --check-nbgrader          # what nbgrader would refuse
    python lessons/make_learner_copies.py --nbgrader-metadata [NB]  # add it where it is missing
"""
import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

LESSONS = Path(__file__).resolve().parent
DEFAULT_OUT = LESSONS / "my-work"         # inside lessons/: JupyterLab's file browser shows it
MARKER = ".learner-copies"

# a code cell's markers are comments, a markdown cell's are HTML comments (Jupyter hides them)
MARKERS = {
    "code": (re.compile(r"^(\s*)#+ BEGIN SOLUTION\b\s*(.*?)\s*$"),
             re.compile(r"^\s*#+ END SOLUTION\s*$")),
    "markdown": (re.compile(r"^(\s*)<!--\s*BEGIN SOLUTION\b\s*(.*?)\s*-->\s*$"),
                 re.compile(r"^\s*<!--\s*END SOLUTION\s*-->\s*$")),
}


def code_stub(indent, label):
    return [f"{indent}# YOUR CODE HERE ({label})\n",
            f'{indent}raise NotImplementedError("{label} is not solved yet: write '
            f'your solution here, then re-run this cell and its check")\n']


def text_stub(indent, label, origin):
    noun = "derivation" if label.startswith("derivation") else "answer"
    where = f" ({origin})" if origin else ""
    return [f"{indent}**Your {noun} ({label}).** Double-click this cell and write it here "
            "(Markdown and LaTeX work), then complete the code cell below: its check says "
            "whether your result is right and names the usual mistakes. The reference "
            f"{noun} is in this cell of the original lesson{where}.\n"]


def strip_solutions(source, where, cell_type="code", default_label="this exercise", origin=None):
    """Return (new source lines, number of solutions removed) for one cell's lines.

    nbgrader treats every line that contains BEGIN SOLUTION or END SOLUTION as a marker, so a
    line that mentions them in any other form is refused here rather than left to surprise it.
    """
    begin, end = MARKERS[cell_type]
    out, removed, inside = [], 0, None
    for k, line in enumerate(source, 1):
        text = line.rstrip("\n")
        if ("BEGIN SOLUTION" in text and not begin.match(text)) or \
                ("END SOLUTION" in text and not end.match(text)):
            form = ("# BEGIN SOLUTION label / # END SOLUTION" if cell_type == "code" else
                    "<!-- BEGIN SOLUTION label --> / <!-- END SOLUTION -->")
            raise ValueError(f"{where}, line {k}: {text.strip()!r} mentions a solution marker but "
                             f"is not a marker line ({form}, alone on the line); nbgrader would "
                             "still treat it as one")
        if inside is None:
            m = begin.match(text)
            if m:
                inside = m
                continue
            out.append(line)
        elif end.match(text):
            indent, label = inside.group(1), inside.group(2).strip() or default_label
            out += (code_stub(indent, label) if cell_type == "code" else
                    text_stub(indent, label, origin))
            removed += 1
            inside = None
        elif begin.match(text):
            raise ValueError(f"{where}: nested BEGIN SOLUTION")
    if inside is not None:
        raise ValueError(f"{where}: BEGIN SOLUTION without END SOLUTION")
    return out, removed


def cell_lines(cell):
    src = cell["source"]
    return src if isinstance(src, list) else src.splitlines(keepends=True)


def label_of(cell, default="this exercise"):
    """A readable label from a cell's nbgrader grade_id: derivation-6-1-written -> derivation 6.1."""
    grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
    m = re.match(r"^([a-z]+)-(\d+)-(\d+)", grade_id)
    return f"{m.group(1)} {m.group(2)}.{m.group(3)}" if m else (grade_id or default)


def is_solution_cell(cell):
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution", False))


def make_copy(src, dst):
    """Write the learner copy of notebook `src` to `dst` (through a temporary file and a
    rename, so `dst` is never half-written); returns the number of solutions removed.

    A cell that nbgrader's metadata marks as a solution but that has no marker lines is
    replaced as a whole, as nbgrader does."""
    nb = json.loads(Path(src).read_text(encoding="utf-8"))
    origin = f"lessons/{Path(src).name}"
    total = 0
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] not in MARKERS:
            continue
        label = label_of(cell)
        lines, n = strip_solutions(cell_lines(cell), f"{src} cell {i}", cell["cell_type"],
                                   label, origin)
        if n == 0 and is_solution_cell(cell):
            lines, n = strip_solutions(["# BEGIN SOLUTION\n", "# END SOLUTION\n"]
                                       if cell["cell_type"] == "code" else
                                       ["<!-- BEGIN SOLUTION -->\n", "<!-- END SOLUTION -->\n"],
                                       f"{src} cell {i}", cell["cell_type"], label, origin)
        cell["source"] = lines
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        total += n
    write_notebook(nb, dst)
    return total


def write_notebook(nb, dst):
    """Write `nb` as the lessons are stored (one-space JSON), through a temporary file and a
    rename."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=".tmp-", suffix=".ipynb")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, dst)


# ---- nbgrader: cell metadata, schema version 3 ---------------------------------------------
# The rules of nbgrader/nbgraderformat/v3.json and v3.py (nbgrader 0.9), so that the lessons can
# be checked without installing nbgrader.
NBGRADER_KEYS = {"schema_version": int, "grade": bool, "locked": bool, "solution": bool,
                 "task": bool, "grade_id": str, "points": (int, float), "checksum": str,
                 "cell_type": str}
GRADE_ID = re.compile(r"^[a-zA-Z0-9_\-]*$")
MARKDOWN_POINTS, CHECK_POINTS = 2, 1


def has_solution_region(cell):
    # nbgrader's rule, in a cell of any type: a line that contains the words
    return any("BEGIN SOLUTION" in line for line in cell_lines(cell))


def nbgrader_problems(nb):
    """What nbgrader would refuse in notebook `nb`, one sentence each; [] when it accepts it."""
    problems, ids = [], {}
    for i, cell in enumerate(nb["cells"]):
        where = f"cell {i} ({cell['cell_type']})"
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta is None:
            if has_solution_region(cell):
                problems.append(f"{where} has a solution region but no nbgrader metadata: "
                                "nbgrader refuses a solution region outside a solution cell")
            continue
        if not isinstance(meta, dict):
            problems.append(f"{where}: metadata.nbgrader must be a dict, got {type(meta).__name__}")
            continue
        for key in sorted(set(meta) - set(NBGRADER_KEYS)):
            problems.append(f"{where}: unknown nbgrader key {key!r} (schema 3 allows "
                            f"{', '.join(sorted(NBGRADER_KEYS))})")
        missing = [k for k in ("schema_version", "grade", "locked", "solution") if k not in meta]
        if missing:
            problems.append(f"{where}: nbgrader metadata lacks {', '.join(missing)}")
            continue
        for key, kind in NBGRADER_KEYS.items():
            value = meta.get(key)
            if key in meta and (not isinstance(value, kind) or
                                (kind is not bool and isinstance(value, bool))):
                problems.append(f"{where}: nbgrader {key!r} must be {getattr(kind, '__name__', 'a number')}, "
                                f"got {value!r}")
        if meta["schema_version"] != 3:
            problems.append(f"{where}: schema_version {meta['schema_version']!r}, expected 3")
        grade, solution, locked = meta["grade"], meta["solution"], meta["locked"]
        task = meta.get("task", False)
        grade_id = meta.get("grade_id")
        if grade or solution or locked:
            if not grade_id:
                problems.append(f"{where}: a grade, solution or locked cell needs a grade_id")
            elif not GRADE_ID.match(str(grade_id)):
                problems.append(f"{where}: grade_id {grade_id!r} may hold only letters, digits, "
                                "_ and -")
            elif grade_id in ids:
                problems.append(f"{where}: grade_id {grade_id!r} is also used by cell "
                                f"{ids[grade_id]}")
            else:
                ids[grade_id] = i
        if grade and not isinstance(meta.get("points"), (int, float)):
            problems.append(f"{where}: a grade cell needs points")
        if isinstance(meta.get("points"), (int, float)) and meta["points"] < 0:
            problems.append(f"{where}: points must be >= 0")
        if task and cell["cell_type"] != "markdown":
            problems.append(f"{where}: task cells have to be markdown")
        if not task and cell["cell_type"] == "markdown" and grade != solution:
            problems.append(f"{where}: a markdown cell must be grade AND solution (a manually "
                            "graded answer) or neither")
        if has_solution_region(cell) and not solution:
            problems.append(f"{where} has a solution region but is not a solution cell")
    return problems


def grade_id_of(label):
    """exercise 6.1 -> exercise-6-1 (nbgrader allows letters, digits, _ and -)."""
    return re.sub(r"[^a-zA-Z0-9_\-]+", "-", label.strip()).strip("-").lower() or "solution"


def add_nbgrader_metadata(nb):
    """Give every cell with a solution region, and the code cell right after a code solution
    (its check), nbgrader metadata where it has none. Returns the number of cells changed.

    Code solution: an autograded answer. Its check: autograder tests, locked, CHECK_POINTS.
    Markdown solution (a derivation): a manually graded answer, MARKDOWN_POINTS."""
    used = {c["metadata"]["nbgrader"].get("grade_id") for c in nb["cells"]
            if "nbgrader" in c.get("metadata", {})}

    def fresh(base):
        grade_id, k = base, 2
        while grade_id in used:
            grade_id, k = f"{base}-{k}", k + 1
        used.add(grade_id)
        return grade_id

    changed = 0
    for i, cell in enumerate(nb["cells"]):
        if "nbgrader" in cell.get("metadata", {}) or not has_solution_region(cell):
            continue
        begin = MARKERS[cell["cell_type"]][0]
        labels = [begin.match(line.rstrip("\n")).group(2) for line in cell_lines(cell)
                  if begin.match(line.rstrip("\n"))]
        base = grade_id_of(next((lab for lab in labels if lab), "solution"))
        if cell["cell_type"] == "code":
            cell.setdefault("metadata", {})["nbgrader"] = dict(
                grade=False, grade_id=fresh(base), locked=False, schema_version=3, solution=True)
            nxt = nb["cells"][i + 1] if i + 1 < len(nb["cells"]) else None
            if nxt is not None and nxt["cell_type"] == "code" and not has_solution_region(nxt) \
                    and "nbgrader" not in nxt.get("metadata", {}):
                nxt.setdefault("metadata", {})["nbgrader"] = dict(
                    grade=True, grade_id=fresh(f"{base}-check"), locked=True,
                    points=CHECK_POINTS, schema_version=3, solution=False)
                changed += 1
        else:
            cell.setdefault("metadata", {})["nbgrader"] = dict(
                grade=True, grade_id=fresh(f"{base}-written"), locked=False,
                points=MARKDOWN_POINTS, schema_version=3, solution=True)
        changed += 1
    return changed


def make_copies(lessons, out, force=False):
    """Make the learner copies of every notebook in `lessons` inside `out`.

    Returns {"made": [...], "kept": [...], "replaced": [...]} (notebook names) and the backup
    folder (None unless --force replaced a copy).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("Learner copies of the minigrad lessons (made by "
                              "lessons/make_learner_copies.py); the tests never collect this "
                              "folder.\n", encoding="utf-8")
    report, backup = {"made": [], "kept": [], "replaced": []}, None
    for src in sorted(Path(lessons).glob("*.ipynb")):
        dst = out / src.name
        if dst.exists() and not force:
            report["kept"].append(src.name)
            continue
        if dst.exists():
            if backup is None:
                backup = new_backup_folder(out)
            shutil.copy2(dst, backup / src.name)
            report["replaced"].append(src.name)
        else:
            report["made"].append(src.name)
        make_copy(src, dst)
    return report, backup


def new_backup_folder(out):
    """out/backup-<date-time>, with -2, -3, ... when one was already made in that second."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    folder, k = out / f"backup-{stamp}", 2
    while folder.exists():
        folder, k = out / f"backup-{stamp}-{k}", k + 1
    folder.mkdir()
    return folder


def nbgrader_main(lessons, notebooks, write):
    """--check-nbgrader and --nbgrader-metadata: returns the exit status."""
    paths = [Path(n) for n in notebooks] or sorted(Path(lessons).glob("*.ipynb"))
    status = 0
    for path in paths:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if write:
            n = add_nbgrader_metadata(nb)
            if n:
                write_notebook(nb, path)
                print(f"  {path.name}: nbgrader metadata added to {n} cells")
        problems = nbgrader_problems(nb)
        for p in problems:
            print(f"  {path.name}: {p}")
        if not problems and not write:
            print(f"  {path.name}: ready for nbgrader")
        status = status or (1 if problems else 0)
    return status


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT),
                        help="folder for the copies (default: lessons/my-work)")
    parser.add_argument("--lessons", default=str(LESSONS),
                        help="folder with the lesson notebooks (default: this script's folder)")
    parser.add_argument("--force", action="store_true",
                        help="replace existing copies after backing them up into "
                             "OUT/backup-<date-time>/ (default: leave them alone)")
    parser.add_argument("--check-nbgrader", nargs="*", metavar="NOTEBOOK",
                        help="make no copies; say what nbgrader would refuse in the given "
                             "notebooks (default: every lesson); exit status 1 if anything")
    parser.add_argument("--nbgrader-metadata", nargs="*", metavar="NOTEBOOK",
                        help="make no copies; write nbgrader cell metadata into the given "
                             "notebooks (default: every lesson) where a solution or its check "
                             "has none, in place")
    args = parser.parse_args(argv)
    if args.check_nbgrader is not None or args.nbgrader_metadata is not None:
        write = args.nbgrader_metadata is not None
        sys.exit(nbgrader_main(args.lessons, args.nbgrader_metadata if write else
                               args.check_nbgrader, write))
    if not sorted(Path(args.lessons).glob("*.ipynb")):
        parser.error(f"no lesson notebooks (*.ipynb) in {args.lessons}")
    out = Path(args.out).resolve()
    report, backup = make_copies(args.lessons, out, force=args.force)
    print(f"Learner copies are in {out}")
    for name in report["made"]:
        print(f"  made        {name}")
    for name in report["replaced"]:
        print(f"  replaced    {name}")
    for name in report["kept"]:
        print(f"  left alone  {name}")
    if report["kept"]:
        print(f"{len(report['kept'])} copies existed and may hold your work, so they were left "
              "alone; --force replaces them after a backup.")
    if backup is not None:
        print(f"Your previous versions of the replaced copies are in {backup}")
    where = (f"lessons/{out.relative_to(LESSONS)} in JupyterLab's file browser (jupyter lab "
             "lessons/)" if out.is_relative_to(LESSONS) else f"{out} in JupyterLab")
    print(f"Open {where} and work the exercises in order; each check cell says what is still "
          "missing.")


if __name__ == "__main__":
    main()
