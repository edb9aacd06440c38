"""The command line: `minigrad info` and `minigrad train`.

Most checks run in-process through minigrad.__main__.main (fast; the run itself lives in
minigrad/runs.py); every behaviour the user meets at the shell (issue 14's table: bad output
folders, second runs, unhealthy runs, Ctrl-C and --resume, batch sizes, --data-dir, --help,
redirected output, install hints) is also checked in a real `python -m minigrad` subprocess.
Errors must be one line and an exit code, never a traceback.
"""
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import minigrad
from minigrad import backend, optim
from minigrad.__main__ import FIXED_BY_RESUME, main, make_parser
from minigrad.runs import DEFAULTS, build_model, evaluate
from minigrad.data import load_digits, write_idx

REPO = Path(__file__).resolve().parent.parent
TINY = ["--epochs", "1", "--model", "mlp", "--batch-size", "64", "--quiet"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RUN_FILES = ["checkpoint.npz", "curves.png", "metrics.json", "model.npz"]


def run(argv, capsys):
    """(exit code, stdout, stderr) of main(argv); argparse's exits are caught too."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def cli(*args, cwd, timeout=120, **kwargs):
    """`python -m minigrad ARGS` in a subprocess that imports this checkout's minigrad."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get(
        "PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "minigrad", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def assert_one_line_error(err, *fragments):
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("minigrad: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], err


def only_run(out_dir):
    """The one run folder inside an --out folder (besides the latest link)."""
    (folder,) = [p for p in Path(out_dir).iterdir() if p.name != "latest"]
    return folder


def load_state(path):
    return {k: v.numpy() for k, v in minigrad.load(path).items()}


def assert_same_weights(a, b):
    a, b = load_state(a), load_state(b)
    assert list(a) == list(b)
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), f"{k} differs"


# ---- info -------------------------------------------------------------------------------------
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


@pytest.mark.skipif(backend.cuda_available(), reason="CUDA works here: no install hint shown")
def test_info_subprocess_gives_the_source_checkout_install_command(tmp_path):
    """Row 'minigrad info and the CUDA error': from a checkout the hint is pip install -e, never
    the package name (which would fetch an unrelated package from the index)."""
    proc = cli("info", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"numpy    {np.__version__}" in proc.stdout
    assert 'pip install -e ".[cuda12]"' in proc.stdout and str(REPO) in proc.stdout
    assert "minigrad[cuda12]" not in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(backend.cuda_available(), reason="CUDA works on this machine")
def test_cuda_without_a_gpu_is_refused_before_training_with_the_install_hint(tmp_path):
    proc = cli("train", *TINY, "--device", "cuda", "--out", "runs", cwd=tmp_path)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "--device cuda is not usable here",
                          backend.cuda_unavailable_reason(), 'pip install -e ".[cuda12]"')
    assert list(tmp_path.iterdir()) == []


def test_install_hint_outside_a_checkout_names_the_package(tmp_path, monkeypatch):
    from minigrad import install
    assert install.source_checkout() == REPO
    assert 'pip install -e ".[cuda12]"' in install.cuda_install_hint()
    site = tmp_path / "site-packages"
    (site / "minigrad").mkdir(parents=True)
    monkeypatch.setattr(install, "PACKAGE_DIR", site / "minigrad")
    assert install.source_checkout() is None
    hint = install.cuda_install_hint()
    assert "pip install 'minigrad[cuda12]'" in hint and "'minigrad[cuda13]'" in hint
    assert "-e" not in hint
    # another project's pyproject.toml next to the package is not minigrad's checkout
    (site / "pyproject.toml").write_text('[project]\nname = "other"\n')
    assert install.source_checkout() is None


# ---- a healthy run ----------------------------------------------------------------------------
def test_tiny_training_run_writes_its_own_folder(tmp_path, capsys, device):
    if device == "strict":
        pytest.skip("--device offers the user's devices (cpu, cuda); the strict device trains "
                    "in tests/test_nn.py::test_training_step_on_every_device")
    code, out, err = run(["train", *TINY, "--device", device, "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert err == ""                                      # --quiet: no progress bar, no epochs
    folder = only_run(tmp_path)
    assert "test accuracy" in out and folder.name in out
    assert sorted(p.name for p in folder.iterdir()) == RUN_FILES
    assert (tmp_path / "latest").is_symlink() and os.readlink(tmp_path / "latest") == folder.name

    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["status"] == "finished"
    assert len(metrics["history"]) == 1
    epoch = metrics["history"][0]
    assert epoch["epoch"] == 1
    assert set(epoch) >= {"train_loss", "train_acc", "test_loss", "test_acc", "seconds"}
    assert metrics["test_accuracy"] == epoch["test_acc"]
    assert 0.5 < metrics["test_accuracy"] <= 1.0          # one epoch already learns digits
    assert np.isfinite(epoch["train_loss"]) and epoch["test_loss"] < np.log(10)
    assert metrics["config"]["model"] == "mlp" and metrics["config"]["epochs"] == 1
    assert metrics["config"]["device"] == device and metrics["config"]["name"] == folder.name
    report = metrics["bn_report"]             # diagnostics.bn_report of the trained model
    bn_names = [n for n, m in build_model("mlp", "batch", (1, 8, 8)).named_modules()
                if isinstance(m, minigrad.nn.BatchNorm1d)]
    assert [layer["name"] for layer in report["layers"]] == bn_names and bn_names
    assert report["examples"] > 0 and isinstance(report["findings"], list)

    png = (folder / "curves.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 5000

    # the checkpoint is the trained network: loads strictly and reproduces the reported accuracy
    model = build_model("mlp", "batch", (1, 8, 8))
    model.load_state_dict(minigrad.load(tmp_path / "latest" / "model.npz"), strict=True)
    assert int(model[2].num_batches_tracked.item()) == 1438 // 64      # drop_last batches
    x_test, y_test = load_digits("test")
    _, accuracy = evaluate(model, x_test, y_test)
    assert accuracy == pytest.approx(metrics["test_accuracy"], abs=1 / len(y_test))


def test_training_is_reproducible_for_a_seed(tmp_path, capsys):
    for name in ("a", "b"):
        code, _, err = run(["train", *TINY, "--seed", "3", "--out", str(tmp_path), "--name",
                            name], capsys)
        assert code == 0, err
    assert_same_weights(tmp_path / "a" / "model.npz", tmp_path / "b" / "model.npz")


def test_train_calls_tune_malloc(tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(backend, "tune_malloc", lambda: calls.append(1) or True)
    code, _, err = run(["train", *TINY, "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert calls == [1]


def test_norm_none_trains_without_buffers(tmp_path, capsys):
    code, out, err = run(["train", *TINY, "--norm", "none", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    model = build_model("mlp", "none", (1, 8, 8))
    model.load_state_dict(minigrad.load(only_run(tmp_path) / "model.npz"), strict=True)
    assert model.buffers() == []                         # no BatchNorm with --norm none


# ---- row: a bad --out is refused before anything trains ---------------------------------------
@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_out_in_proc_is_refused_at_once(tmp_path):
    proc = cli("train", "--out", "/proc/minigrad-run", cwd=tmp_path)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "--out /proc/minigrad-run", "cannot create this folder",
                          "choose a folder you can write to")
    assert "epoch" not in proc.stderr and proc.stdout == ""


def test_out_that_is_a_file_is_refused_at_once(tmp_path):
    (tmp_path / "taken").write_text("not a folder")
    proc = cli("train", "--out", "taken", cwd=tmp_path)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "--out taken is a file, not a folder")
    proc = cli("train", "--out", "taken/runs", cwd=tmp_path)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "--out taken/runs", "Not a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into read-only folders; /proc covers it for root")
def test_out_in_an_unwritable_folder_is_refused_at_once(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        proc = cli("train", "--out", "locked", cwd=tmp_path)
    finally:
        locked.chmod(0o755)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "--out locked", "choose a folder you can write to")
    assert list(locked.iterdir()) == []


def test_existing_run_name_is_never_overwritten(tmp_path):
    (tmp_path / "runs" / "mine").mkdir(parents=True)
    (tmp_path / "runs" / "mine" / "model.npz").write_bytes(b"precious")
    proc = cli("train", *TINY, "--name", "mine", cwd=tmp_path)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "--name mine", "already exists",
                          "never overwrites a run", "--resume runs/mine")
    assert (tmp_path / "runs" / "mine" / "model.npz").read_bytes() == b"precious"


@pytest.mark.parametrize("name, fragment", [("../x", "plain folder name"),
                                            ("latest", "reserved"), (".hidden", "plain")])
def test_bad_run_names(name, fragment, tmp_path, capsys):
    code, _, err = run(["train", "--out", str(tmp_path), "--name", name], capsys)
    assert code == 2
    assert_one_line_error(err, "--name", fragment)
    assert list(tmp_path.iterdir()) == []


# ---- row: a second run, and unhealthy runs, never replace runs/latest --------------------------
def test_second_run_gets_its_own_folder_and_unhealthy_runs_leave_latest_alone(tmp_path):
    first = cli("train", *TINY, cwd=tmp_path)
    second = cli("train", *TINY, "--seed", "1", cwd=tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    runs_dir = tmp_path / "runs"
    healthy = sorted(p.name for p in runs_dir.iterdir() if p.name != "latest")
    assert len(healthy) == 2                              # same second: NAME and NAME-2
    assert os.readlink(runs_dir / "latest") == healthy[1]
    for name in healthy:
        assert sorted(p.name for p in (runs_dir / name).iterdir()) == RUN_FILES

    # the MLP with --lr 1e6 turns the loss into NaN within a few steps
    diverged = cli("train", *TINY, "--lr", "1e6", "--name", "diverged", cwd=tmp_path)
    assert diverged.returncode == 3
    err = diverged.stderr.strip().splitlines()[-1]
    assert "Traceback" not in diverged.stderr and "RuntimeWarning" not in diverged.stderr
    assert err.startswith("minigrad: error: the loss became nan at epoch 1, step ")
    assert "the learning rate (--lr 1e+06) is probably too high" in err
    assert "runs/diverged" in err
    metrics = json.loads((runs_dir / "diverged" / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and "learning rate" in metrics["message"]

    # the BatchNorm CNN with --lr 1e6 keeps a finite loss but ends at chance (issue 14's case)
    chance = cli("train", "--epochs", "1", "--lr", "1e6", "--quiet", "--name", "chance",
                 cwd=tmp_path)
    assert chance.returncode == 3
    assert_one_line_error(chance.stderr, "the run ended at chance (test accuracy 0.",
                          "learning rate (--lr 1e+06) is probably too high", "runs/chance")
    metrics = json.loads((runs_dir / "chance" / "metrics.json").read_text())
    assert metrics["status"] == "at chance" and metrics["test_accuracy"] < 0.2
    assert (runs_dir / "chance" / "model.npz").is_file()      # kept for inspection
    assert os.readlink(runs_dir / "latest") == healthy[1]     # still the last healthy run


def test_latest_that_is_a_real_folder_is_renamed_not_deleted(tmp_path, capsys):
    """An older minigrad wrote runs/latest as a folder: it holds a model worth keeping."""
    old = tmp_path / "latest"
    old.mkdir()
    (old / "model.npz").write_bytes(b"old model")
    code, out, err = run(["train", *TINY, "--out", str(tmp_path), "--name", "new"], capsys)
    assert code == 0, err
    assert os.readlink(tmp_path / "latest") == "new"
    (kept,) = tmp_path.glob("latest-before-*")
    assert (kept / "model.npz").read_bytes() == b"old model"
    assert kept.name in out


# ---- row: batch sizes -------------------------------------------------------------------------
def test_batch_size_larger_than_the_training_set_is_refused_with_its_size(tmp_path):
    proc = cli("train", "--batch-size", "1439", cwd=tmp_path)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "--batch-size 1439 is larger than the training set "
                                       "(1,438 images)", "use at most 1438")
    assert list(tmp_path.iterdir()) == []


def test_batch_size_1_cnn_ends_at_chance_and_says_why(tmp_path):
    proc = cli("train", "--batch-size", "1", "--epochs", "1", "--quiet", "--name", "b1",
               cwd=tmp_path)
    assert proc.returncode == 3
    assert_one_line_error(proc.stderr, "the run ended at chance", "--batch-size 1 with --lr 0.05",
                          "smaller learning rate", "--lr 0.0015625", "BatchNorm")
    assert not (tmp_path / "runs" / "latest").exists()


def test_batch_size_1_with_batchnorm1d_is_refused_at_once(tmp_path, capsys):
    code, _, err = run(["train", "--model", "mlp", "--batch-size", "1", "--out", str(tmp_path)],
                       capsys)
    assert code == 2
    assert_one_line_error(err, "--batch-size 1 with --model mlp --norm batch",
                          "at least 2 examples")
    assert list(tmp_path.iterdir()) == []


def test_too_few_steps_is_named_as_the_cause(tmp_path, capsys):
    code, _, err = run(["train", "--model", "cnn", "--batch-size", "1438", "--epochs", "1",
                        "--quiet", "--out", str(tmp_path)], capsys)
    assert code == 3
    assert_one_line_error(err, "ended at chance", "only 1 SGD step (1 epoch of 1)")


# ---- row: options that do nothing are refused -------------------------------------------------
def test_data_dir_without_mnist_is_refused(tmp_path):
    proc = cli("train", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "--data-dir only applies to --data mnist or --data "
                                       "fashion-mnist")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, fragments", [
    (["train", "--lr", "-1"], ["argument --lr", "must be > 0, got -1"]),
    (["train", "--lr", "nan"], ["argument --lr", "must be a finite number, got nan"]),
    (["train", "--weight-decay", "inf"], ["argument --weight-decay", "finite"]),
    (["train", "--model", "foo"], ["argument --model", "invalid choice: 'foo'"]),
    (["train", "--epochs", "0"], ["argument --epochs", "must be >= 1, got 0"]),
    (["train", "--batch-size", "-4"], ["argument --batch-size", "must be >= 1"]),
    (["train", "--momentum", "-0.5"], ["argument --momentum", "must be >= 0, got -0.5"]),
    (["train", "--momentum", "1"], ["argument --momentum", "must be < 1, got 1"]),
    (["train", "--seed", "-1"], ["argument --seed", "must be >= 0"]),
    (["train", "--seed", str(2**32)], ["argument --seed", "must be <= 4294967295"]),
    (["train", "--data", "cifar"], ["argument --data", "invalid choice: 'cifar'"]),
    (["train", "--data", "mnist"], ["--data mnist needs --data-dir"]),
    (["train", "--unknown"], ["unrecognized arguments: --unknown"]),
    (["fly"], ["invalid choice: 'fly'"]),
    ([], ["required: command"]),
], ids=["negative_lr", "nan_lr", "inf_weight_decay", "unknown_model", "zero_epochs",
        "negative_batch", "negative_momentum", "momentum_1", "negative_seed", "huge_seed",
        "unknown_data", "mnist_without_dir", "unknown_flag", "unknown_command", "no_command"])
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


# ---- row: --help and --version ----------------------------------------------------------------
def train_parser():
    parser = make_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    return sub.choices["train"]


def test_every_train_option_has_a_sentence_and_its_default():
    options = [a for a in train_parser()._actions if a.option_strings and a.dest not in
               ("help", "version")]
    assert {a.dest for a in options} == set(DEFAULTS)
    for action in options:
        text = action.help or ""
        assert len(text.split()) >= 6 and text.endswith(")."), action.dest
        assert "(default: " in text, action.dest
        if DEFAULTS[action.dest] not in (None, False):
            assert f"(default: {DEFAULTS[action.dest]:g})." in text if isinstance(
                DEFAULTS[action.dest], float) else f"(default: {DEFAULTS[action.dest]})." in text


def test_help_and_version_in_a_subprocess(tmp_path):
    proc = cli("train", "--help", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    text = " ".join(proc.stdout.split())                  # argparse wraps lines
    for flag in ("--model", "--norm", "--epochs", "--batch-size", "--lr", "--momentum",
                 "--weight-decay", "--seed", "--device", "--data", "--data-dir", "--out",
                 "--name", "--resume", "--quiet"):
        assert flag in text
    assert text.count("(default: ") == len(DEFAULTS)
    assert "exit codes: 0 finished" in text and "130 interrupted" in text
    for argv in (["--version"], ["train", "--version"]):
        proc = cli(*argv, cwd=tmp_path)
        assert proc.returncode == 0 and proc.stdout.strip() == f"minigrad {minigrad.__version__}"


# ---- row: output redirected to a file ---------------------------------------------------------
def test_redirected_output_has_one_line_per_epoch_and_no_progress_frames(tmp_path):
    log = tmp_path / "log.txt"
    with open(log, "w") as f:                  # `minigrad train > log.txt 2>&1`
        proc = subprocess.run([sys.executable, "-m", "minigrad", "train", "--model", "mlp",
                               "--epochs", "3", "--batch-size", "64"], cwd=tmp_path, stdout=f,
                              stderr=subprocess.STDOUT, timeout=120,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0
    text = log.read_text()
    assert "\r" not in text and "it/s" not in text
    lines = text.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("epoch ")] == [
        "epoch 1", "epoch 2", "epoch 3"]
    assert len(lines) == 6          # the start line, 3 epochs, the BatchNorm check, the summary
    assert lines[-2].startswith("BatchNorm check: healthy")
    assert lines[0].startswith("minigrad: training in runs/")
    assert lines[-1].startswith("test accuracy ")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_a_terminal_gets_a_progress_bar(tmp_path):
    import fcntl
    import pty
    import termios
    primary, secondary = pty.openpty()
    # a new pseudo-terminal is 0 columns wide; give it a real terminal's 24 x 80
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "minigrad", "train", *TINY[:-1]],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=secondary,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:                      # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert proc.wait(timeout=120) == 0
    text = b"".join(chunks).decode(errors="replace")
    assert "\repoch 1/1:   0%|" in text and "0/22 [" in text                  # the bar
    assert "epoch 1: train loss" in text


# ---- row: Ctrl-C and --resume -----------------------------------------------------------------
RESUMABLE = ["--model", "mlp", "--epochs", "6", "--batch-size", "16"]       # 89 steps an epoch


def test_sigint_to_a_real_training_process_then_resume_equals_an_uninterrupted_run(tmp_path):
    """Send SIGINT to `minigrad train` once its first epoch is done: it must finish the step,
    save a checkpoint, print how to resume and exit 130 without a traceback; `--resume` then
    ends with the same weights, bit for bit, as the same run left alone."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "minigrad", "train", *RESUMABLE, "--name",
                             "cut"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("epoch 1:"):
            proc.send_signal(signal.SIGINT)
            break
    out, rest = proc.communicate(timeout=120)
    err = "".join(seen) + rest
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "Ctrl-C: stopping after this step" in err
    last = err.strip().splitlines()[-1]
    # usually epoch 2; a busy machine may deliver the signal later, which changes nothing below
    stopped = re.match(r"minigrad: interrupted at epoch (\d), step (\d+) of 89;", last)
    assert stopped and 2 <= int(stopped[1]) <= 6, last
    assert "checkpoint saved in runs/cut/checkpoint.npz" in last
    assert last.endswith("Resume with: minigrad train --resume runs/cut")
    run_dir = tmp_path / "runs" / "cut"
    assert (run_dir / "checkpoint.npz").is_file() and not (run_dir / "model.npz").exists()
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "interrupted"
    assert not (tmp_path / "runs" / "latest").exists()

    resumed = cli("train", "--resume", "runs/cut", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming runs/cut at epoch {stopped[1]}, step {stopped[2]}" in resumed.stderr
    whole = cli("train", *RESUMABLE, "--name", "whole", "--quiet", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    assert_same_weights(run_dir / "model.npz", tmp_path / "runs" / "whole" / "model.npz")
    a = json.loads((run_dir / "metrics.json").read_text())
    b = json.loads((tmp_path / "runs" / "whole" / "metrics.json").read_text())
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in a["history"]]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in b["history"]]
    assert a["status"] == "finished" and len(a["history"]) == 6
    assert os.readlink(tmp_path / "runs" / "latest") == "whole"


def interrupt_at_step(monkeypatch, step):
    """Make optimizer step number `step` (1-based, over the whole run) send this process a
    SIGINT, as Ctrl-C would: deterministic, unlike a signal sent from outside."""
    count = [0]
    real_step = optim.SGD.step

    def step_then_maybe_interrupt(self):
        real_step(self)
        count[0] += 1
        if count[0] == step:
            signal.raise_signal(signal.SIGINT)
    monkeypatch.setattr(optim.SGD, "step", step_then_maybe_interrupt)


needs_main_thread = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                       reason="signal handlers live in the main thread")


@needs_main_thread
@pytest.mark.parametrize("stop_at, where", [(22 + 7, "2, step 7 of 22"),
                                            (44, "3, step 0 of 22")],
                         ids=["mid_epoch", "epoch_end"])
def test_interrupt_and_resume_in_process_is_bit_exact(stop_at, where, tmp_path, capsys,
                                                      monkeypatch):
    """SGD with momentum, BatchNorm running statistics, the shuffling generator and the partial
    epoch's sums all carry over: the resumed run equals the uninterrupted one exactly."""
    argv = ["train", "--model", "mlp", "--epochs", "3", "--batch-size", "64", "--momentum",
            "0.9", "--weight-decay", "1e-4", "--out", str(tmp_path)]
    assert run(argv + ["--name", "whole"], capsys)[0] == 0
    with monkeypatch.context() as m:
        interrupt_at_step(m, stop_at)
        code, out, err = run(argv + ["--name", "cut"], capsys)
    assert code == 130
    assert f"interrupted at epoch {where}" in err and "Traceback" not in err
    assert out == ""
    checkpoint = minigrad.load(tmp_path / "cut" / "checkpoint.npz")
    assert checkpoint["format"] == "minigrad train checkpoint 1"
    assert set(checkpoint) >= {"model", "optimizer", "loader", "rng", "progress", "config"}
    code, out, err = run(["train", "--resume", str(tmp_path / "cut"), "--quiet"], capsys)
    assert code == 0, err
    assert_same_weights(tmp_path / "cut" / "model.npz", tmp_path / "whole" / "model.npz")
    a = json.loads((tmp_path / "cut" / "metrics.json").read_text())["history"]
    b = json.loads((tmp_path / "whole" / "metrics.json").read_text())["history"]
    assert [h["train_loss"] for h in a] == [h["train_loss"] for h in b]
    assert [h["test_acc"] for h in a] == [h["test_acc"] for h in b]


def test_resume_with_more_epochs_equals_a_longer_run(tmp_path, capsys):
    base = ["train", "--model", "mlp", "--batch-size", "64", "--quiet", "--out", str(tmp_path)]
    assert run(base + ["--epochs", "3", "--name", "long"], capsys)[0] == 0
    assert run(base + ["--epochs", "2", "--name", "short"], capsys)[0] == 0
    code, _, err = run(["train", "--resume", str(tmp_path / "short")], capsys)
    assert code == 2
    assert_one_line_error(err, "has finished 2 of its 2 epochs", "--epochs 6")
    code, _, err = run(["train", "--resume", str(tmp_path / "short"), "--epochs", "3"], capsys)
    assert code == 0, err
    assert_same_weights(tmp_path / "short" / "model.npz", tmp_path / "long" / "model.npz")


@pytest.mark.parametrize("option", FIXED_BY_RESUME)
def test_resume_refuses_options_that_would_change_the_run(option, tmp_path, capsys):
    value = {"model": "cnn", "norm": "none", "data": "mnist", "momentum": "0.5"}.get(option, "1")
    flag = "--" + option.replace("_", "-")
    code, _, err = run(["train", "--resume", str(tmp_path), flag, value], capsys)
    assert code == 2
    assert_one_line_error(err, f"{flag} cannot be combined with --resume")


def test_resume_of_something_that_is_not_a_run(tmp_path, capsys):
    code, _, err = run(["train", "--resume", str(tmp_path / "nope")], capsys)
    assert code == 2
    assert_one_line_error(err, "no such run folder")
    code, _, err = run(["train", "--resume", str(tmp_path)], capsys)
    assert code == 2
    assert_one_line_error(err, "there is no checkpoint.npz in it")
    (tmp_path / "checkpoint.npz").write_bytes(b"garbage")
    code, _, err = run(["train", "--resume", str(tmp_path)], capsys)
    assert code == 2
    assert_one_line_error(err, "is not a readable minigrad train checkpoint")
    minigrad.save({"weights": np.ones(2)}, tmp_path / "checkpoint.npz")
    code, _, err = run(["train", "--resume", str(tmp_path)], capsys)
    assert code == 2
    assert_one_line_error(err, "is not a readable minigrad train checkpoint")


# ---- MNIST from IDX files ---------------------------------------------------------------------
def test_mnist_with_an_empty_data_dir_is_refused_naming_the_files(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run(["train", *TINY, "--data", "fashion-mnist", "--data-dir", str(empty),
                          "--out", str(tmp_path / "runs")], capsys)
    assert code == 2
    assert_one_line_error(err, "--data-dir", "train-images-idx3-ubyte", "does not download")
    assert not (tmp_path / "runs").exists()


def write_fake_mnist(folder, n_train=192, n_test=64):
    """Tiny IDX files in MNIST's layout whose label is readable from the image (a bright row)."""
    rng = np.random.default_rng(0)
    for split, n, gz in (("train", n_train, ""), ("t10k", n_test, ".gz")):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        images[np.arange(n), 2 + 2 * labels, :] = 255
        write_idx(folder / f"{split}-images-idx3-ubyte{gz}", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte{gz}", labels)


def test_mnist_from_idx_files_trains_and_checks_the_batch_size(tmp_path, capsys):
    data = tmp_path / "mnist"
    data.mkdir()
    write_fake_mnist(data)
    argv = ["train", "--data", "mnist", "--data-dir", str(data), "--model", "mlp", "--epochs",
            "3", "--quiet", "--out", str(tmp_path / "runs"), "--name", "m"]
    code, _, err = run(argv + ["--batch-size", "193"], capsys)
    assert code == 2
    assert_one_line_error(err, "--batch-size 193 is larger than the training set (192 images)")
    code, out, err = run(argv + ["--batch-size", "32"], capsys)
    assert code == 0, err
    out_dir = tmp_path / "runs" / "m"
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["config"]["data"] == "mnist" and len(metrics["history"]) == 3
    assert metrics["test_accuracy"] > 0.5                # the bright row gives the label away
    state = minigrad.load(out_dir / "model.npz")
    assert state["1.weight"].shape == (256, 28 * 28)
    assert int(state["2.num_batches_tracked"].item()) == 3 * (192 // 32)
    model = build_model("mlp", "batch", (1, 28, 28))
    model.load_state_dict(state, strict=True)


def test_damaged_idx_data_exits_1_with_one_line(tmp_path, capsys):
    data = tmp_path / "mnist"
    data.mkdir()
    write_fake_mnist(data)
    raw = (data / "train-images-idx3-ubyte").read_bytes()
    (data / "train-images-idx3-ubyte").write_bytes(raw[:-100])
    code, _, err = run(["train", "--data", "mnist", "--data-dir", str(data), *TINY, "--out",
                        str(tmp_path / "runs")], capsys)
    assert code == 1
    assert_one_line_error(err, "is truncated")


@pytest.mark.slow
def test_default_training_reaches_97_percent(tmp_path, capsys):
    """The README's promise: `minigrad train` with no options (8 epochs of the BatchNorm CNN on
    the digits) reaches ~98% test accuracy."""
    code, out, err = run(["train", "--quiet", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "latest" / "metrics.json").read_text())
    assert metrics["config"]["model"] == "cnn" and metrics["config"]["norm"] == "batch"
    assert len(metrics["history"]) == 8
    assert metrics["test_accuracy"] >= 0.97
