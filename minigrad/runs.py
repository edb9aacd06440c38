"""Run folders for `minigrad train`: one folder per run, never overwritten, and a `latest` pointer.

    runs/2026-11-30_22-17-05/   checkpoint.npz (to resume), model.npz, metrics.json, curves.png
    runs/latest -> 2026-11-30_22-17-05      moved only when a run finishes healthy

Files are written to a temporary name and renamed, so each appears complete or not at all.
"""
import os
import tempfile
import time
from pathlib import Path

CHECKPOINT = "checkpoint.npz"
LATEST = "latest"


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
