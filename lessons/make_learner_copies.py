"""Make learner copies of the lessons: every reference solution removed, every check kept.

In the shipped notebooks a solution sits between two marker lines in a code cell:

        # BEGIN SOLUTION exercise 6.2
        dx = ...
        # END SOLUTION

The learner copy replaces that block (markers included) by

        # YOUR CODE HERE (exercise 6.2)
        raise NotImplementedError("exercise 6.2 is not solved yet: ...")

at the same indentation, so running the notebook stops at the unsolved exercise with a
message that says which one. Exercises are written as functions, so the check cell that calls
them is what reports the missing solution. Outputs are cleared.

    python lessons/make_learner_copies.py              # writes lessons/my-work/*.ipynb
    python lessons/make_learner_copies.py --out DIR
    python lessons/make_learner_copies.py --force      # replace copies, after a backup

A copy that exists is never overwritten: the script makes the missing ones and names the ones
it left alone. With --force it first copies the existing ones into DIR/backup-<date-time>/.
The folder gets a marker file, .learner-copies, so the test command never collects the copies
(see conftest.py at the repository root); lessons/my-work/ is also in .gitignore.
"""
import argparse
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

LESSONS = Path(__file__).resolve().parent
DEFAULT_OUT = LESSONS / "my-work"         # inside lessons/: JupyterLab's file browser shows it
MARKER = ".learner-copies"

BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION\s*(.*)$")
END = re.compile(r"^\s*# END SOLUTION\s*$")


def strip_solutions(source, where):
    """Return (new source lines, number of solutions removed) for one cell's lines."""
    out, removed, inside = [], 0, None
    for line in source:
        text = line.rstrip("\n")
        if inside is None:
            m = BEGIN.match(text)
            if m:
                inside = m
                continue
            out.append(line)
        elif END.match(text):
            indent, label = inside.group(1), inside.group(2).strip() or "this exercise"
            out.append(f"{indent}# YOUR CODE HERE ({label})\n")
            out.append(f'{indent}raise NotImplementedError("{label} is not solved yet: write '
                       f'your solution here, then re-run this cell and its check")\n')
            removed += 1
            inside = None
        elif BEGIN.match(text):
            raise ValueError(f"{where}: nested BEGIN SOLUTION")
    if inside is not None:
        raise ValueError(f"{where}: BEGIN SOLUTION without END SOLUTION")
    return out, removed


def make_copy(src, dst):
    """Write the learner copy of notebook `src` to `dst` (through a temporary file and a
    rename, so `dst` is never half-written); returns the number of solutions removed."""
    nb = json.loads(Path(src).read_text(encoding="utf-8"))
    total = 0
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        lines = cell["source"] if isinstance(cell["source"], list) else \
            cell["source"].splitlines(keepends=True)
        cell["source"], n = strip_solutions(lines, f"{src} cell {i}")
        cell["outputs"], cell["execution_count"] = [], None
        total += n
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=".tmp-", suffix=".ipynb")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, dst)
    return total


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT),
                        help="folder for the copies (default: lessons/my-work)")
    parser.add_argument("--lessons", default=str(LESSONS),
                        help="folder with the lesson notebooks (default: this script's folder)")
    parser.add_argument("--force", action="store_true",
                        help="replace existing copies after backing them up into "
                             "OUT/backup-<date-time>/ (default: leave them alone)")
    args = parser.parse_args(argv)
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
