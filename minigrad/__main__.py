"""Command line: `minigrad info` and `minigrad train` (also `python -m minigrad ...`).

`train` checks every option and the output folder first (one line naming the option, exit code
2), then hands the run to minigrad/runs.py: a small MLP or CNN, with or without BatchNorm,
trained with SGD on the bundled digits (or MNIST / Fashion-MNIST IDX files from a folder) in a
run folder of its own. Ctrl-C stops after the current step with a checkpoint that `--resume`
continues exactly.
"""
import argparse
import json
import math
import os
import sys
from pathlib import Path

from . import backend, runs
from .runs import DEFAULTS, shown

# Exit codes, also listed in `minigrad train --help`.
OK, FAILED, USAGE, UNHEALTHY, INTERRUPTED = 0, 1, 2, 3, 130
# What a resumed run keeps from its start; --epochs (the new total), --device and --quiet may
# change, and --data-dir when the IDX files moved.
FIXED_BY_RESUME = ("model", "norm", "batch_size", "lr", "momentum", "weight_decay", "seed",
                   "data", "out", "name")


class UsageError(Exception):
    """A bad option or output folder: one line naming the option, exit code 2."""


# ---- checking the options before anything runs ------------------------------------------------

def check_options(args):
    """Fill in the defaults and refuse every option that is wrong or does nothing here.

    Returns (config, run folder, saved checkpoint or None); raises UsageError. Nothing is
    trained, and no folder is created unless every check before it passed.
    """
    given = {k for k, v in vars(args).items() if v is not None and k != "func"}
    if args.resume is not None:
        return check_resume(args, given)
    config = {k: getattr(args, k) if k in given else DEFAULTS[k] for k in DEFAULTS}
    check_data_options(config, given)
    check_device(config["device"])
    train_size = check_data_dir(config)
    check_batch_size(config, train_size)
    if config["name"] is not None:
        runs.check_name(config["name"])
    name = config["name"] or runs.new_run_name(config["out"])
    run = runs.create_run_folder(config["out"], name)           # the last check: it creates
    config["name"] = run.name
    return config, run, None


def check_resume(args, given):
    from .checkpoint import load
    refused = [k for k in FIXED_BY_RESUME if k in given]
    if refused:
        flag = "--" + refused[0].replace("_", "-")
        raise UsageError(f"{flag} cannot be combined with --resume: a resumed run keeps the "
                         "settings it started with (its metrics.json lists them); only "
                         "--epochs, --device, --quiet and --data-dir may change")
    run = Path(args.resume)
    if not run.is_dir():
        raise UsageError(f"--resume {args.resume}: no such run folder")
    path = run / runs.CHECKPOINT
    if not path.is_file():
        raise UsageError(f"--resume {args.resume}: there is no {runs.CHECKPOINT} in it (only "
                         "runs started by this version of minigrad train can be resumed)")
    try:
        state = load(path)
        if state.get("format") != runs.CHECKPOINT_FORMAT:
            raise ValueError("it holds no 'format' entry of a minigrad train checkpoint")
        config = json.loads(state["config"])
    except Exception as exc:       # any damage: np.load and zipfile raise many kinds
        raise UsageError(f"--resume {args.resume}: {path} is not a readable minigrad train "
                         f"checkpoint ({exc})") from None
    done = int(state["progress"]["epoch"].item()) - 1          # epochs finished so far
    for k in ("epochs", "device", "data_dir"):
        if k in given:
            config[k] = getattr(args, k)
    config["quiet"] = bool(args.quiet)
    if "data_dir" in given and config["data"] == "digits":
        raise UsageError("--data-dir only applies to a run on mnist or fashion-mnist; this run "
                         "trains on the digits that ship inside minigrad")
    if config["epochs"] <= done:
        raise UsageError(f"--resume {args.resume}: the run has finished {done} of its "
                         f"{config['epochs']} epochs; pass --epochs with a larger total (e.g. "
                         f"--epochs {done + 4}) to train it further")
    check_device(config["device"])
    check_batch_size(config, check_data_dir(config))
    try:
        runs.check_writable(run)
    except runs.RunFolderError as exc:
        raise UsageError(f"--resume {args.resume}: {exc}") from None
    return config, run.resolve(), state


def check_data_options(config, given):
    if config["data"] == "digits" and "data_dir" in given:
        raise UsageError("--data-dir only applies to --data mnist or --data fashion-mnist (the "
                         "digits ship inside minigrad); drop --data-dir or add --data mnist")
    if config["data"] != "digits" and config["data_dir"] is None:
        raise UsageError(f"--data {config['data']} needs --data-dir, the folder with its four "
                         "IDX files (minigrad never downloads data)")


def check_device(device):
    if device == "cuda" and not backend.cuda_available():
        from .install import cuda_install_hint
        raise UsageError(f"--device cuda is not usable here: {backend.cuda_unavailable_reason()}."
                         f" To install CuPy, {cuda_install_hint()}; `minigrad info` shows what "
                         "minigrad found")


def check_data_dir(config):
    """The number of training images (for MNIST and Fashion-MNIST from the file headers)."""
    from . import data
    if config["data"] == "digits":
        return len(data.load_digits("train")[1])
    folder = config["data_dir"]
    if not os.path.isdir(folder):
        raise UsageError(f"--data-dir {folder} is not a folder; give the folder that holds the "
                         f"{config['data']} IDX files")
    try:
        train_size = data.mnist_size(folder, "train", config["data"])
        data.mnist_size(folder, "test", config["data"])
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(f"--data-dir {folder}: {exc}") from None
    return train_size


def check_batch_size(config, train_size):
    batch = config["batch_size"]
    if batch > train_size:
        raise UsageError(f"--batch-size {batch} is larger than the training set ({train_size:,} "
                         f"images); use at most {train_size}")
    if batch == 1 and config["model"] == "mlp" and config["norm"] == "batch":
        raise UsageError("--batch-size 1 with --model mlp --norm batch: BatchNorm1d needs at "
                         "least 2 examples per batch (with one, its variance is 0 and every "
                         "output is the same); use --batch-size 16 or more, or --norm none")


# ---- training ---------------------------------------------------------------------------------


def train(args):
    # Keeping freed memory for reuse makes training steps faster; it is a per-process choice.
    backend.tune_malloc()
    config, run, state = check_options(args)
    try:
        status = runs.run_training(config, run, state)
    except KeyboardInterrupt:
        if state is None and not any(run.iterdir()):
            run.rmdir()                # interrupted before anything was saved: no empty folder
            print("minigrad: interrupted before the first checkpoint; nothing was saved",
                  file=sys.stderr)
        else:
            print(f"minigrad: stopped at once by a second Ctrl-C; the last checkpoint is in "
                  f"{shown(run)} (minigrad train --resume {shown(run)})", file=sys.stderr)
        return INTERRUPTED
    return INTERRUPTED if status == "interrupted" else OK


# ---- info and the parser ----------------------------------------------------------------------

def info(args):
    from . import __version__
    from .install import cuda_install_hint
    v = backend.versions()
    print(f"minigrad {__version__}")
    print(f"numpy    {v['numpy']}")
    print(f"cupy     {v['cupy'] or 'not installed'}")
    if v["cuda"]:
        print(f"GPU      usable: {v['gpu']}")
    else:
        print(f"GPU      not usable: {v['cuda_reason']}")
        print(f"         (on a machine with an NVIDIA GPU, {cuda_install_hint()})")
    print("malloc   " + ("keeps freed memory for reuse" if v["malloc_tuned"] else
                         "left at its defaults here; `minigrad train` calls "
                         "minigrad.backend.tune_malloc() to keep freed memory for reuse"))
    return OK


def _number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: a finite `kind` in the given range, with a one-line reason if not."""
    def parse(text):
        value = kind(text)
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if low is not None and (value <= low if low_open else value < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low}, got "
                                             f"{text}")
        if high is not None and (value >= high if high_open else value > high):
            raise argparse.ArgumentTypeError(f"must be {'<' if high_open else '<='} {high}, "
                                             f"got {text}")
        return value
    parse.__name__ = kind.__name__     # argparse says "invalid float value: 'abc'"
    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message):        # one line and exit code 2, not a traceback
        self.exit(USAGE, f"minigrad: error: {message}\n")


TRAIN_EPILOG = """\
A new run writes OUT/NAME/: checkpoint.npz (after every epoch and on Ctrl-C), model.npz,
metrics.json and curves.png; OUT/latest then points at it if the run finished healthy.
Ctrl-C stops after the current step and saves a checkpoint; --resume continues it exactly.

exit codes: 0 finished, 1 the data could not be read, 2 a bad option or output folder,
3 the run diverged (loss NaN/inf) or ended at chance accuracy, 130 interrupted by Ctrl-C."""


def make_parser():
    from . import __version__
    parser = _Parser(prog="minigrad", description="minigrad command line")
    parser.add_argument("--version", action="version", version=f"minigrad {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("info", help="versions and whether a GPU is usable",
                       description="Print the minigrad, NumPy and CuPy versions and whether a "
                                   "GPU is usable, and why not.")
    p.set_defaults(func=info)
    p = sub.add_parser("train", help="train a network on the bundled digits (default) or MNIST",
                       description="Train a small CNN or MLP, with or without BatchNorm, with "
                                   "SGD. Every option is checked before training starts.",
                       epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = DEFAULTS
    add = p.add_argument
    add("--model", choices=["mlp", "cnn"], help="The network: a CNN with two convolutions or an "
        f"MLP with two hidden layers (default: {d['model']}).")
    add("--norm", choices=["batch", "none"], help="batch puts BatchNorm after every hidden "
        f"layer; none trains the same network without it (default: {d['norm']}).")
    add("--epochs", type=_number(int, low=1), help="Passes over the training set; with "
        f"--resume, the new total (default: {d['epochs']}).")
    add("--batch-size", type=_number(int, low=1), help="Examples per SGD step, at most the "
        f"training set's size (default: {d['batch_size']}).")
    add("--lr", type=_number(float, low=0, low_open=True), help="The SGD learning rate, > 0 "
        f"(default: {d['lr']}).")
    add("--momentum", type=_number(float, low=0, high=1, high_open=True), help="The SGD "
        f"momentum, 0 <= m < 1 (default: {d['momentum']}).")
    add("--weight-decay", type=_number(float, low=0), help="L2 penalty added to each gradient, "
        f">= 0 (default: {d['weight_decay']:g}).")
    add("--seed", type=_number(int, low=0, high=2**32 - 1), help="Seeds the initial weights and "
        f"the shuffling; the same seed repeats a run exactly on the CPU (default: {d['seed']}).")
    add("--device", choices=["cpu", "cuda"], help="cpu, or cuda for an NVIDIA GPU through CuPy "
        f"(default: {d['device']}).")
    add("--data", choices=["digits", "mnist", "fashion-mnist"], help="digits: the 8x8 digits "
        "inside minigrad; mnist, fashion-mnist: IDX files you downloaded, in --data-dir "
        f"(default: {d['data']}).")
    add("--data-dir", metavar="DIR", help="The folder with the four MNIST or Fashion-MNIST IDX "
        "files, .gz or not; only with --data mnist or fashion-mnist (default: none).")
    add("--out", metavar="DIR", help="The folder that holds the runs, one sub-folder each; it is "
        f"created when missing (default: {d['out']}).")
    add("--name", help="The name of this run's folder inside --out, which must not exist yet "
        "(default: the date and time, e.g. 2026-11-30_22-17-05).")
    add("--resume", metavar="RUN_DIR", help="Continue the run in RUN_DIR from its checkpoint.npz "
        "with its own settings; only --epochs, --device, --quiet and --data-dir may be given "
        "with it (default: start a new run).")
    add("--quiet", action="store_true", default=None, help="Print only the final line: no "
        "progress bar, no line per epoch (default: off).")
    add("--version", action="version", version=f"minigrad {__version__}")
    p.set_defaults(func=train)
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, runs.RunFolderError) as exc:
        print(f"minigrad: error: {exc}", file=sys.stderr)
        return USAGE
    except runs.Unhealthy as exc:
        print(f"minigrad: error: {exc}", file=sys.stderr)
        return UNHEALTHY
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"minigrad: error: {exc}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        print("minigrad: interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
