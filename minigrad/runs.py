"""A run of `minigrad train`: its network, its folder, its training loop and its checkpoint.

    runs/2026-11-30_22-17-05/   checkpoint.npz (to resume), model.npz, metrics.json, curves.png
    runs/latest -> 2026-11-30_22-17-05      moved only when a run finishes healthy

A run never overwrites another. Files are written to a temporary name and renamed, so each
appears complete or not at all. Ctrl-C stops after the current step with a checkpoint from
which `--resume` continues exactly. __main__.py checks the options before anything here runs.
"""
import json
import math
import os
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import backend

CHECKPOINT = "checkpoint.npz"
CHECKPOINT_FORMAT = "minigrad train checkpoint 1"
LATEST = "latest"
NUM_CLASSES = 10                   # digits, MNIST and Fashion-MNIST alike
# A run's settings and their defaults (the options of `minigrad train`).
DEFAULTS = dict(model="cnn", norm="batch", epochs=8, batch_size=32, lr=0.05, momentum=0.9,
                weight_decay=0.0, seed=0, device="cpu", data="digits", data_dir=None, out="runs",
                name=None, resume=None, quiet=False)


class Unhealthy(Exception):
    """The run diverged or ended at chance; its folder is kept for inspection."""


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


# ---- the run folder --------------------------------------------------------------------------

class RunFolderError(Exception):
    """A run folder that cannot be used; the message names the option and what to do."""


def new_run_name(out):
    """The date and time, made unique inside `out` with -2, -3, ... when needed."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    name, k = stamp, 2
    while os.path.lexists(os.path.join(out, name)):
        name, k = f"{stamp}-{k}", k + 1
    return name


def check_name(name):
    """Refuse a --name that is not one plain folder name (or that is the pointer's)."""
    if not name or name in (".", "..") or "/" in name or os.sep in name or name.startswith("."):
        raise RunFolderError(f"--name {name!r} must be a plain folder name (no '/', not starting "
                             "with '.'), e.g. --name bn-lr0.1")
    if name == LATEST:
        raise RunFolderError(f"--name {LATEST} is reserved for the pointer to the last healthy "
                             "run; choose another name")


def create_run_folder(out, name):
    """Make `out/name` (and `out` if missing), check that files can be written there, return it.

    Every failure is a RunFolderError naming --out or --name; nothing is trained before this.
    """
    out = Path(out)
    if out.is_file():
        raise RunFolderError(f"--out {out} is a file, not a folder; give a folder for the runs "
                             "(it is created when missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(f"--out {out}: cannot create this folder ({exc.strerror}); choose a "
                             "folder you can write to") from None
    run = out / name
    try:
        run.mkdir()
    except FileExistsError:
        raise RunFolderError(f"--name {name}: {run} already exists and minigrad never "
                             f"overwrites a run; choose another --name, or continue that run "
                             f"with --resume {run}") from None
    except OSError as exc:
        raise RunFolderError(f"--out {out}: cannot create the run folder {run} "
                             f"({exc.strerror}); choose a folder you can write to") from None
    try:
        check_writable(run)
    except RunFolderError:
        run.rmdir()
        raise RunFolderError(f"--out {out}: cannot write files into {run}; choose a folder you "
                             "can write to") from None
    return run


def check_writable(folder):
    """Write and remove a probe file, since permission bits do not tell the whole story
    (read-only mounts, /proc, root's privileges)."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise RunFolderError(f"cannot write files into {folder} ({exc.strerror})") from None


def file_mode():
    """The permissions open() would give a new file: 0o666 less the process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path, data):
    """Write bytes (or text) to `path` through a temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        os.chmod(tmp, file_mode())            # mkstemp's 0600 would hide the file from others
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def point_latest(run):
    """Point `run`'s parent/latest at `run` (a relative symbolic link, replaced atomically).

    Returns one sentence for the user saying what happened. A `latest` that is a real folder
    (written by an older minigrad) is renamed, never deleted.
    """
    run = Path(run)
    latest = run.parent / LATEST
    note = ""
    if os.path.lexists(latest) and not latest.is_symlink():
        kept = run.parent / f"{LATEST}-before-{time.strftime('%Y-%m-%d_%H-%M-%S')}"
        os.rename(latest, kept)
        note = f" (the old {LATEST}, a real folder, was renamed to {kept.name})"
    tmp = run.parent / f".{LATEST}-{os.getpid()}"
    try:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(run.name, tmp, target_is_directory=True)
        os.replace(tmp, latest)
    except OSError as exc:
        return f"could not point {latest} at it ({exc.strerror}){note}."
    return f"{latest} points at it{note}."


# ---- training --------------------------------------------------------------------------------

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
              "at once and keeps only the checkpoint of the last finished epoch)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def run_training(config, run, state):
    """Train the run in folder `run` (from `state`, a loaded checkpoint, when resuming).

    Returns "finished" or "interrupted" (Ctrl-C, after saving a checkpoint); raises Unhealthy
    when the loss becomes NaN/inf or the run ends at chance.
    """
    from tqdm import tqdm
    from . import functional as F, optim
    from .checkpoint import rng_state, save, set_rng_state
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
             run / CHECKPOINT)

    def finish(status, message="", bn_check=None):
        metrics = {"status": status, "message": message, "config": config, "history": history,
                   "test_accuracy": history[-1]["test_acc"] if history else None,
                   "wall_seconds": seconds + time.perf_counter() - start,
                   "bn_report": None if bn_check is None else bn_check.to_dict()}
        write_atomic(run / "metrics.json", json.dumps(metrics, indent=2) + "\n")
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
    bn_check = None
    if config["norm"] == "batch":
        from .diagnostics import bn_report
        # on training images at the training batch size, so that "batch statistics" are the
        # ones the model trained with; 8,192 images are plenty for population statistics
        check = DataLoader((x_train[:8192], y_train[:8192]), batch_size=config["batch_size"],
                           drop_last=True, device=device)
        bn_check = bn_report(model, check)
        if not quiet:               # one line here; the full report is in metrics.json
            print("BatchNorm check: " + ("healthy (running statistics match the data)"
                                         if bn_check.healthy else "; ".join(bn_check.advice)),
                  file=sys.stderr)
    finish("finished", bn_check=bn_check)
    note = point_latest(run)
    wall = history[-1]["seconds"]
    print(f"test accuracy {accuracy:.4f} after {plural(config['epochs'], 'epoch')} in "
          f"{wall:.2f} s ({config['model']}, norm={config['norm']}, {device}); wrote "
          f"{shown(run)}/ (model.npz, metrics.json, curves.png, checkpoint.npz); {note}")
    return "finished"


def interrupted(run, epoch, step, steps):
    print(f"minigrad: interrupted at epoch {epoch}, step {step} of {steps}; checkpoint saved in "
          f"{shown(run / CHECKPOINT)}. Resume with: minigrad train --resume {shown(run)}",
          file=sys.stderr)
    return "interrupted"


# ---- what went wrong -------------------------------------------------------------------------

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

