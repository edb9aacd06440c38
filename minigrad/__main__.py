"""Command line: `minigrad info` and `minigrad train` (also `python -m minigrad ...`).

`train` checks every option and the output folder first, then builds a small MLP or CNN, with or
without BatchNorm, and trains it with SGD on the bundled digits (or MNIST / Fashion-MNIST IDX
files from a folder) in a run folder of its own (minigrad/runs.py). Ctrl-C stops after the
current step with a checkpoint that `--resume` continues exactly.
"""
import argparse
import json
import math
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import numpy as np

from . import backend, runs

# Exit codes, also listed in `minigrad train --help`.
OK, FAILED, USAGE, UNHEALTHY, INTERRUPTED = 0, 1, 2, 3, 130

DEFAULTS = dict(model="cnn", norm="batch", epochs=8, batch_size=32, lr=0.05, momentum=0.9,
                weight_decay=0.0, seed=0, device="cpu", data="digits", data_dir=None, out="runs",
                name=None, resume=None, quiet=False)
# What a resumed run keeps from its start; --epochs (the new total), --device and --quiet may
# change, and --data-dir when the IDX files moved.
FIXED_BY_RESUME = ("model", "norm", "batch_size", "lr", "momentum", "weight_decay", "seed",
                   "data", "out", "name")
CHECKPOINT_FORMAT = "minigrad train checkpoint 1"
NUM_CLASSES = 10                   # digits, MNIST and Fashion-MNIST alike


class UsageError(Exception):
    """A bad option or output folder: one line naming the option, exit code 2."""


class Unhealthy(Exception):
    """The run diverged or ended at chance: exit code 3, its folder is kept for inspection."""


def build_model(kind, norm, in_shape, num_classes=10):
    """The networks `minigrad train` offers; norm='batch' puts BatchNorm after each hidden layer."""
    from . import nn
    C, H, W = in_shape
    bn = norm == "batch"
    if kind == "mlp":
        d = C * H * W
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(d, 256, bias=not bn), *([nn.BatchNorm1d(256)] if bn else []), nn.ReLU(),
            nn.Linear(256, 128, bias=not bn), *([nn.BatchNorm1d(128)] if bn else []), nn.ReLU(),
            nn.Linear(128, num_classes))
    # A bias right before BatchNorm is cancelled by its mean subtraction, so it is left out.
    h2, w2 = (H + 1) // 2, (W + 1) // 2
    return nn.Sequential(
        nn.Conv2d(C, 32, 3, padding=1, bias=not bn), *([nn.BatchNorm2d(32)] if bn else []),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=not bn),
        *([nn.BatchNorm2d(64)] if bn else []), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * h2 * w2, num_classes))


def evaluate(model, images, labels, batch_size=512, device="cpu"):
    """(mean loss, accuracy) in eval mode without recording a graph; restores the mode after."""
    from . import functional as F
    from .tensor import Tensor, no_grad
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    with no_grad():
        for i in range(0, len(images), batch_size):
            x = Tensor(images[i:i + batch_size], device=device)
            y = Tensor(labels[i:i + batch_size], device=device)
            logits = model(x)
            total_loss += F.cross_entropy(logits, y).item() * len(y)
            correct += int((logits.data.argmax(axis=1) == y.data).sum())
    model.train(was_training)
    return total_loss / len(images), correct / len(images)


def load_data(name, data_dir):
    from . import data
    if name == "digits":
        return data.load_digits("train"), data.load_digits("test")
    return data.load_mnist(data_dir, "train", name), data.load_mnist(data_dir, "test", name)


def plot_curves(history, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [h["epoch"] for h in history]
    ax1.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax1.plot(epochs, [h["test_loss"] for h in history], label="test")
    ax1.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    ax2.plot(epochs, [h["train_acc"] for h in history], label="train")
    ax2.plot(epochs, [h["test_acc"] for h in history], label="test")
    ax2.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for ax in (ax1, ax2):
        ax.legend()
    fig.tight_layout()
    tmp = Path(path).with_name(".tmp-" + Path(path).name)
    fig.savefig(tmp, dpi=100, format="png")
    os.replace(tmp, path)
    plt.close(fig)


def shown(path):
    """A path as the user would type it: relative to the working folder when inside it."""
    rel = os.path.relpath(path)
    return shlex.quote(rel if not rel.startswith("..") else str(Path(path).resolve()))


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
        if state.get("format") != CHECKPOINT_FORMAT:
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
    check_data_dir(config)
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
    """The number of training images, read from file headers only."""
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

class CtrlC:
    """While active, the first Ctrl-C only sets `requested` (the loop stops after its step);
    a second one raises KeyboardInterrupt at once."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:             # not the main thread: Ctrl-C keeps its default meaning
            self._previous = None
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after this step and saving a checkpoint (Ctrl-C again stops "
              "at once, without saving)", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def train(args):
    # The lead's backend gains an explicit tune_malloc(); older backends tune at import time.
    tune_malloc = getattr(backend, "tune_malloc", None)
    if tune_malloc is not None:
        tune_malloc()
    config, run, state = check_options(args)
    try:
        return run_training(config, run, state)
    except KeyboardInterrupt:
        if state is None and not any(run.iterdir()):
            run.rmdir()                # interrupted before anything was saved: no empty folder
            print("minigrad: interrupted before the first checkpoint; nothing was saved",
                  file=sys.stderr)
        else:
            print(f"minigrad: stopped at once by a second Ctrl-C; the last checkpoint is in "
                  f"{shown(run)} (minigrad train --resume {shown(run)})", file=sys.stderr)
        return INTERRUPTED


def run_training(config, run, state):
    from tqdm import tqdm
    from . import functional as F, optim
    from .checkpoint import load, rng_state, save, set_rng_state
    from .data import DataLoader

    quiet, device = config["quiet"], config["device"]
    (x_train, y_train), (x_test, y_test) = load_data(config["data"], config["data_dir"])
    backend.manual_seed(config["seed"])
    model = build_model(config["model"], config["norm"], x_train.shape[1:]).to(device)
    opt = optim.SGD(model.parameters(), lr=config["lr"], momentum=config["momentum"],
                    weight_decay=config["weight_decay"])
    # drop_last: a last batch of one example would make BatchNorm's variance 0.
    loader = DataLoader((x_train, y_train), batch_size=config["batch_size"], shuffle=True,
                        drop_last=True, seed=config["seed"])
    history, epoch, step, sums, seconds = [], 1, 0, [0.0, 0, 0], 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        loader.load_state_dict(state["loader"])
        set_rng_state(state["rng"])
        p = {k: v.item() for k, v in state["progress"].items()}
        epoch, step, seconds = int(p["epoch"]), int(p["step"]), p["seconds"]
        sums = [p["loss_sum"], int(p["correct"]), int(p["seen"])]
        history = json.loads(state["history"])

    def checkpoint():
        save({"format": CHECKPOINT_FORMAT, "config": json.dumps(config),
              "history": json.dumps(history), "model": model.state_dict(),
              "optimizer": opt.state_dict(), "loader": loader.state_dict(), "rng": rng_state(),
              "progress": {"epoch": epoch, "step": step, "loss_sum": sums[0],
                           "correct": sums[1], "seen": sums[2],
                           "seconds": seconds + time.perf_counter() - start}},
             run / runs.CHECKPOINT)

    def finish(status, message=""):
        metrics = {"status": status, "message": message, "config": config, "history": history,
                   "test_accuracy": history[-1]["test_acc"] if history else None,
                   "wall_seconds": seconds + time.perf_counter() - start}
        runs.write_atomic(run / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        if history:
            plot_curves(history, run / "curves.png")

    if not quiet:
        verb = f"resuming {shown(run)} at epoch {epoch}, step {step}" if state else \
            f"training in {shown(run)}"
        print(f"minigrad: {verb}: {config['model']}, norm={config['norm']}, {config['data']} "
              f"({len(y_train):,} train / {len(y_test):,} test images), {device}",
              file=sys.stderr)
    show_bar = not quiet and sys.stderr.isatty()       # no \r frames in logs and pipes
    start = time.perf_counter()
    # A diverging run is caught by the finite-loss check below, not by NumPy's warnings.
    with CtrlC() as ctrl_c, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        while epoch <= config["epochs"]:
            model.train()
            bar = tqdm(loader, total=len(loader), initial=step, leave=False, disable=not show_bar,
                       desc=f"epoch {epoch}/{config['epochs']}", dynamic_ncols=True)
            for x, y in bar:
                x, y = x.to(device), y.to(device)
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                value = loss.item()
                step += 1
                if not math.isfinite(value):
                    message = diverged_message(config, value, epoch, step)
                    finish("diverged", message)
                    raise Unhealthy(f"{message}; the run is kept in {shown(run)}")
                sums[0] += value * len(y)
                sums[1] += int((logits.data.argmax(axis=1) == y.data).sum())
                sums[2] += len(y)
                bar.set_postfix(loss=f"{sums[0] / sums[2]:.4f}", acc=f"{sums[1] / sums[2]:.3f}")
                if ctrl_c.requested:
                    break
            bar.close()
            if ctrl_c.requested and step < len(loader):
                checkpoint()
                finish("interrupted")
                return interrupted(run, epoch, step, len(loader))
            test_loss, test_acc = evaluate(model, x_test, y_test, device=device)
            history.append(dict(epoch=epoch, train_loss=sums[0] / sums[2],
                                train_acc=sums[1] / sums[2], test_loss=test_loss,
                                test_acc=test_acc,
                                seconds=seconds + time.perf_counter() - start))
            if not quiet:
                print(f"epoch {epoch}: train loss {sums[0] / sums[2]:.4f} acc "
                      f"{sums[1] / sums[2]:.4f} | test loss {test_loss:.4f} acc {test_acc:.4f}",
                      file=sys.stderr, flush=True)
            epoch, step, sums = epoch + 1, 0, [0.0, 0, 0]
            checkpoint()                    # every epoch: a crash loses at most one epoch
            if ctrl_c.requested and epoch <= config["epochs"]:
                finish("interrupted")
                return interrupted(run, epoch, 0, len(loader))

    save(model.state_dict(), run / "model.npz")
    accuracy = history[-1]["test_acc"]
    if accuracy < 2 / NUM_CLASSES:                  # not even twice as good as guessing
        message = chance_message(config, accuracy, len(loader))
        finish("at chance", message)
        raise Unhealthy(f"{message}; the run is kept in {shown(run)}")
    finish("finished")
    note = runs.point_latest(run)
    wall = history[-1]["seconds"]
    print(f"test accuracy {accuracy:.4f} after {plural(config['epochs'], 'epoch')} in {wall:.2f} s "
          f"({config['model']}, norm={config['norm']}, {device}); wrote {shown(run)}/ "
          f"(model.npz, metrics.json, curves.png, checkpoint.npz); {note}")
    return OK


def interrupted(run, epoch, step, steps):
    print(f"minigrad: interrupted at epoch {epoch}, step {step} of {steps}; checkpoint saved in "
          f"{shown(run / runs.CHECKPOINT)}. Resume with: minigrad train --resume {shown(run)}",
          file=sys.stderr)
    return INTERRUPTED


def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def lower_lr(config, factor):
    """A learning rate to suggest: `factor` times lower, at most the default."""
    return min(config["lr"] / factor, DEFAULTS["lr"])


def small_batch_cause(config):
    """Why a batch under 8 examples fails with a learning rate tuned for larger ones, or ""."""
    batch, lr = config["batch_size"], config["lr"]
    if batch >= 8:
        return ""
    scaled = lr * batch / DEFAULTS["batch_size"]
    cause = (f"--batch-size {batch} with --lr {lr:g}: a small batch gives a noisy gradient at "
             f"every step and needs a smaller learning rate (scaled with the batch size from the "
             f"defaults: --lr {scaled:g}), or use --batch-size 16 or more")
    if batch == 1 and config["norm"] == "batch":
        cause += "; with BatchNorm each example is then also normalised by its own statistics"
    return cause


def diverged_message(config, value, epoch, step):
    cause = small_batch_cause(config) or (
        f"the learning rate (--lr {config['lr']:g}) is probably too high; try "
        f"--lr {lower_lr(config, 10):g}"
        + ("" if config["norm"] == "batch" else ", or --norm batch, which tolerates larger "
           "rates"))
    return f"the loss became {value} at epoch {epoch}, step {step}: {cause}"


def chance_message(config, accuracy, steps_per_epoch):
    lr, steps = config["lr"], config["epochs"] * steps_per_epoch
    cause = small_batch_cause(config)
    if cause:
        pass
    elif lr > 1:
        cause = (f"the learning rate (--lr {lr:g}) is probably too high; try "
                 f"--lr {lower_lr(config, 100):g}")
    elif steps < 20:
        cause = (f"it took only {plural(steps, 'SGD step')} ({plural(config['epochs'], 'epoch')}"
                 f" of {steps_per_epoch}); use a smaller --batch-size or more --epochs")
    elif lr < 1e-3:
        cause = (f"the learning rate (--lr {lr:g}) is probably too low for "
                 f"{plural(config['epochs'], 'epoch')}; try --lr {DEFAULTS['lr']} (the default) "
                 "or more --epochs")
    else:
        cause = (f"the usual cause is the learning rate (--lr {lr:g}); try a few values around "
                 f"{DEFAULTS['lr']} (the default)")
    return f"the run ended at chance (test accuracy {accuracy:.4f}): {cause}"


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
    if "malloc_tuned" in v:
        print("malloc   " + ("keeps freed memory for reuse (MINIGRAD_MALLOC_TUNING=0 turns it "
                             "off)" if v["malloc_tuned"] else "left at its defaults"))
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
    except Unhealthy as exc:
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
