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

    python lessons/make_learner_copies.py            # writes learner/*.ipynb
    python lessons/make_learner_copies.py --out DIR
"""
import argparse
import json
import re
from pathlib import Path

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
    nb = json.loads(Path(src).read_text())
    total = 0
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        lines = cell["source"] if isinstance(cell["source"], list) else \
            cell["source"].splitlines(keepends=True)
        cell["source"], n = strip_solutions(lines, f"{src} cell {i}")
        cell["outputs"], cell["execution_count"] = [], None
        total += n
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    Path(dst).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="learner", help="folder for the copies")
    parser.add_argument("--lessons", default=str(Path(__file__).parent))
    args = parser.parse_args(argv)
    for src in sorted(Path(args.lessons).glob("*.ipynb")):
        n = make_copy(src, Path(args.out) / src.name)
        print(f"{src.name}: {n} solution(s) removed")


if __name__ == "__main__":
    main()
