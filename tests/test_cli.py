"""The command line: `minigrad info` and `minigrad train`, in-process through
minigrad.__main__.main (fast) plus one real `python -m minigrad` subprocess. Errors must be one
line and an exit code, never a traceback."""
import json
import subprocess
import sys

import numpy as np
import pytest

import minigrad
from minigrad import backend
from minigrad.__main__ import build_model, evaluate, main
from minigrad.data import load_digits, write_idx

TINY = ["--epochs", "1", "--model", "mlp", "--batch-size", "64", "--quiet"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(argv, capsys):
    """(exit code, stdout, stderr) of main(argv); argparse's exits are caught too."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err, *fragments):
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("minigrad: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], err


# ---- info ---------------------------------------------------------------------------------------
def test_info_in_process(capsys):
    code, out, err = run(["info"], capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"minigrad {minigrad.__version__}"
    assert f"numpy    {np.__version__}" in lines
    gpu = [line for line in lines if line.startswith("GPU")]
    assert len(gpu) == 1
    if backend.cuda_available():
        assert gpu[0].startswith("GPU      usable: ")
    else:
        assert gpu[0] == f"GPU      not usable: {backend.cuda_unavailable_reason()}"


def test_info_as_a_real_subprocess():
    proc = subprocess.run([sys.executable, "-m", "minigrad", "info"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"numpy    {np.__version__}" in proc.stdout
    assert any(line.startswith("GPU      ") and "usable" in line
               for line in proc.stdout.splitlines())
    assert "Traceback" not in proc.stderr


# ---- train --------------------------------------------------------------------------------------
def test_tiny_training_run_writes_checkpoint_metrics_and_curves(tmp_path, capsys, device):
    if device == "strict":
        pytest.skip("--device offers the user's devices (cpu, cuda); the strict device trains "
                    "in tests/test_nn.py::test_training_step_on_every_device")
    code, out, err = run(["train", *TINY, "--device", device, "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert err == ""                                      # --quiet: no progress bar, no epochs
    assert "test accuracy" in out and str(tmp_path) in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "metrics.json",
                                                         "model.npz"]

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["history"]) == 1
    epoch = metrics["history"][0]
    assert epoch["epoch"] == 1
    assert set(epoch) >= {"train_loss", "train_acc", "test_loss", "test_acc", "seconds"}
    assert metrics["test_accuracy"] == epoch["test_acc"]
    assert 0.5 < metrics["test_accuracy"] <= 1.0          # one epoch already learns digits
    assert np.isfinite(epoch["train_loss"]) and epoch["test_loss"] < np.log(10)
    assert metrics["config"]["model"] == "mlp" and metrics["config"]["epochs"] == 1
    assert metrics["config"]["device"] == device

    png = (tmp_path / "curves.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 5000

    # the checkpoint is the trained network: loads strictly and reproduces the reported accuracy
    model = build_model("mlp", "batch", (1, 8, 8))
    model.load_state_dict(minigrad.load(tmp_path / "model.npz"), strict=True)
    assert int(model[2].num_batches_tracked.item()) == 1438 // 64      # drop_last batches
    x_test, y_test = load_digits("test")
    _, accuracy = evaluate(model, x_test, y_test)
    assert accuracy == pytest.approx(metrics["test_accuracy"], abs=1 / len(y_test))


def test_training_is_reproducible_for_a_seed(tmp_path, capsys):
    for name in ("a", "b"):
        assert run(["train", *TINY, "--seed", "3", "--out", str(tmp_path / name)], capsys)[0] == 0
    a, b = (minigrad.load(tmp_path / n / "model.npz") for n in ("a", "b"))
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(a[k].data, b[k].data, err_msg=k)


def test_progress_goes_to_stderr_without_quiet(tmp_path, capsys):
    args = ["train", "--epochs", "1", "--model", "mlp", "--batch-size", "64",
            "--norm", "none", "--out", str(tmp_path)]
    code, out, err = run(args, capsys)
    assert code == 0
    assert "epoch 1: train loss" in err and "Traceback" not in err
    model = build_model("mlp", "none", (1, 8, 8))
    model.load_state_dict(minigrad.load(tmp_path / "model.npz"), strict=True)
    assert model.buffers() == []                         # no BatchNorm with --norm none


@pytest.mark.parametrize("argv, fragments", [
    (["train", "--lr", "-1"], ["argument --lr", "must be > 0, got -1"]),
    (["train", "--model", "foo"], ["argument --model", "invalid choice: 'foo'"]),
    (["train", "--epochs", "0"], ["argument --epochs", "must be > 0, got 0"]),
    (["train", "--batch-size", "-4"], ["argument --batch-size", "must be > 0"]),
    (["train", "--momentum", "-0.5"], ["argument --momentum", "must be >= 0, got -0.5"]),
    (["train", "--data", "cifar"], ["argument --data", "invalid choice: 'cifar'"]),
    (["train", "--unknown"], ["unrecognized arguments: --unknown"]),
    (["fly"], ["invalid choice: 'fly'"]),
    ([], ["required: command"]),
], ids=["negative_lr", "unknown_model", "zero_epochs", "negative_batch", "negative_momentum",
        "unknown_data", "unknown_flag", "unknown_command", "no_command"])
def test_invalid_arguments_exit_2_with_one_line(argv, fragments, tmp_path, capsys):
    code, out, err = run(argv + ["--out", str(tmp_path)] if argv[:1] == ["train"] else argv,
                         capsys)
    assert code == 2
    assert_one_line_error(err, *fragments)
    assert list(tmp_path.iterdir()) == []                  # nothing was trained or written


@pytest.mark.parametrize("argv, type_name", [
    (["train", "--lr", "abc"], "float"),
    (["train", "--epochs", "2.5"], "int"),
    (["train", "--momentum", "fast"], "float"),
], ids=["lr", "epochs", "momentum"])
def test_unparsable_numbers_name_the_expected_type(argv, type_name, capsys):
    """argparse names the type function: it should read 'invalid float value', not 'parse'."""
    code, _, err = run(argv, capsys)
    assert code == 2
    assert_one_line_error(err, f"invalid {type_name} value: '{argv[-1]}'")


@pytest.mark.skipif(backend.cuda_available(), reason="CUDA works on this machine")
def test_cuda_without_a_gpu_exits_1_with_the_reason(tmp_path, capsys):
    code, out, err = run(["train", *TINY, "--device", "cuda", "--out", str(tmp_path)], capsys)
    assert code == 1
    assert_one_line_error(err, "device 'cuda' was requested but is not usable",
                          backend.cuda_unavailable_reason(), "minigrad[cuda12]")
    assert list(tmp_path.iterdir()) == []


def test_mnist_without_data_dir_exits_1(tmp_path, capsys):
    code, out, err = run(["train", *TINY, "--data", "mnist", "--out", str(tmp_path)], capsys)
    assert code == 1
    assert_one_line_error(err, "--data mnist needs --data-dir")
    assert list(tmp_path.iterdir()) == []


def test_mnist_with_an_empty_data_dir_exits_1_naming_the_files(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run(["train", *TINY, "--data", "fashion-mnist", "--data-dir", str(empty),
                          "--out", str(tmp_path / "run")], capsys)
    assert code == 1
    assert_one_line_error(err, "train-images-idx3-ubyte", "does not download")


def write_fake_mnist(folder, n_train=192, n_test=64):
    """Tiny IDX files in MNIST's layout whose label is readable from the image (a bright row)."""
    rng = np.random.default_rng(0)
    for split, n, gz in (("train", n_train, ""), ("t10k", n_test, ".gz")):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        images[np.arange(n), 2 + 2 * labels, :] = 255
        write_idx(folder / f"{split}-images-idx3-ubyte{gz}", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte{gz}", labels)


def test_mnist_from_idx_files_trains_one_epoch(tmp_path, capsys):
    data = tmp_path / "mnist"
    data.mkdir()
    write_fake_mnist(data)
    out_dir = tmp_path / "run"
    code, out, err = run(["train", "--data", "mnist", "--data-dir", str(data), "--model", "mlp",
                          "--epochs", "1", "--batch-size", "32", "--quiet", "--out",
                          str(out_dir)], capsys)
    assert code == 0, err
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["config"]["data"] == "mnist" and len(metrics["history"]) == 1
    assert metrics["history"][0]["train_loss"] > 0 and 0 <= metrics["test_accuracy"] <= 1
    state = minigrad.load(out_dir / "model.npz")
    assert state["1.weight"].shape == (256, 28 * 28)
    assert int(state["2.num_batches_tracked"].item()) == 192 // 32
    model = build_model("mlp", "batch", (1, 28, 28))
    model.load_state_dict(state, strict=True)


@pytest.mark.slow
def test_default_training_reaches_97_percent(tmp_path, capsys):
    """The README's promise: `minigrad train` with no options (8 epochs of the BatchNorm CNN on
    the digits) reaches ~98% test accuracy; about 15-25 s on two cores."""
    code, out, err = run(["train", "--quiet", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["model"] == "cnn" and metrics["config"]["norm"] == "batch"
    assert len(metrics["history"]) == 8
    assert metrics["test_accuracy"] >= 0.97
