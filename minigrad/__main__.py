"""Command line: `minigrad info` and `minigrad train` (also `python -m minigrad ...`).

`train` builds a small MLP or CNN, with or without BatchNorm, trains it with SGD on the bundled
digits (or MNIST / Fashion-MNIST IDX files from a folder) and writes the checkpoint, a metrics
JSON and a PNG of the curves to --out.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from . import backend


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
    if data_dir is None:
        raise ValueError(f"--data {name} needs --data-dir pointing at the folder with its IDX "
                         "files")
    kind = "mnist" if name == "mnist" else "fashion-mnist"
    return data.load_mnist(data_dir, "train", kind), data.load_mnist(data_dir, "test", kind)


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
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(args):
    from tqdm import tqdm
    from . import functional as F, optim
    from .checkpoint import save
    from .data import DataLoader

    backend.manual_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load_data(args.data, args.data_dir)
    model = build_model(args.model, args.norm, x_train.shape[1:]).to(args.device)
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                    weight_decay=args.weight_decay)
    # drop_last: a last batch of one example would make BatchNorm's variance 0.
    loader = DataLoader((x_train, y_train), batch_size=args.batch_size, shuffle=True,
                        drop_last=True, seed=args.seed)
    history, start = [], time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        bar = tqdm(loader, desc=f"epoch {epoch}/{args.epochs}", leave=False,
                   disable=args.quiet, dynamic_ncols=True)
        seen, loss_sum, correct = 0, 0.0, 0
        for x, y in bar:
            x, y = x.to(args.device), y.to(args.device)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            correct += int((logits.data.argmax(axis=1) == y.data).sum())
            seen += len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
        if not np.isfinite(loss_sum):
            raise FloatingPointError(f"the loss became {loss_sum} in epoch {epoch}: the "
                                     f"learning rate {args.lr} is probably too high")
        test_loss, test_acc = evaluate(model, x_test, y_test, device=args.device)
        history.append(dict(epoch=epoch, train_loss=loss_sum / seen, train_acc=correct / seen,
                            test_loss=test_loss, test_acc=test_acc,
                            seconds=time.perf_counter() - start))
        if not args.quiet:
            print(f"epoch {epoch}: train loss {loss_sum / seen:.4f} acc {correct / seen:.4f} | "
                  f"test loss {test_loss:.4f} acc {test_acc:.4f}", file=sys.stderr)
    wall = time.perf_counter() - start

    os.makedirs(args.out, exist_ok=True)
    save(model.state_dict(), os.path.join(args.out, "model.npz"))
    config = {k: v for k, v in vars(args).items() if k != "func"}
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump({"config": config, "history": history, "test_accuracy": history[-1]["test_acc"],
                   "wall_seconds": wall}, f, indent=2)
    plot_curves(history, os.path.join(args.out, "curves.png"))
    print(f"test accuracy {history[-1]['test_acc']:.4f} after {args.epochs} epochs in {wall:.1f} s "
          f"({args.model}, norm={args.norm}, {args.device}); wrote {args.out}/model.npz, "
          "metrics.json, curves.png")
    return 0


def info(args):
    from . import __version__
    v = backend.versions()
    print(f"minigrad {__version__}")
    print(f"numpy    {v['numpy']}")
    print(f"cupy     {v['cupy'] or 'not installed'}")
    if v["cuda"]:
        print(f"GPU      usable: {v['gpu']}")
    else:
        print(f"GPU      not usable: {v['cuda_reason']}")
        print("         (pip install 'minigrad[cuda12]' or 'minigrad[cuda13]' on a machine with an "
              "NVIDIA GPU)")
    print("malloc   " + ("keeps freed memory for reuse (MINIGRAD_MALLOC_TUNING=0 turns it off)"
                         if v["malloc_tuned"] else "left at its defaults"))
    return 0


def _positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    parse.__name__ = kind.__name__     # argparse says "invalid float value: 'abc'"
    return parse


def _non_negative(text):
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


_non_negative.__name__ = "float"


class _Parser(argparse.ArgumentParser):
    def error(self, message):        # one line and exit code 2, not a traceback
        self.exit(2, f"minigrad: error: {message}\n")


def make_parser():
    parser = _Parser(prog="minigrad", description="minigrad command line")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("info", help="versions and whether a GPU is usable")
    p.set_defaults(func=info)
    p = sub.add_parser("train", help="train a network on the bundled digits (default) or MNIST")
    p.add_argument("--model", choices=["mlp", "cnn"], default="cnn")
    p.add_argument("--norm", choices=["batch", "none"], default="batch")
    p.add_argument("--epochs", type=_positive(int), default=8)
    p.add_argument("--batch-size", type=_positive(int), default=32)
    p.add_argument("--lr", type=_positive(float), default=0.05)
    p.add_argument("--momentum", type=_non_negative, default=0.9)
    p.add_argument("--weight-decay", type=_non_negative, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--data", choices=["digits", "mnist", "fashion-mnist"], default="digits")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    p.add_argument("--out", default="runs/latest", help="folder for model.npz, metrics.json, "
                                                        "curves.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    p.set_defaults(func=train)
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError, FloatingPointError) as exc:
        print(f"minigrad: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
