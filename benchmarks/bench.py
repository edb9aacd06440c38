"""Speed and memory of minigrad against PyTorch eager on the same networks, in one run.

Every case builds the same network in both libraries (PyTorch starts from minigrad's initial
weights; it runs in a child process of its own, see TorchWorker) and times them in interleaved
rounds, so a busy machine slows both alike; we report the median times and the median of the
per-round ratios. README.md explains each measurement and its target;
`python benchmarks/bench.py --help` lists the options. PyTorch is optional.
"""
import os
import sys


def _option_from_argv(argv, name, default=None):
    """An option's value, read before argparse runs (see the block below for why)."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


if __name__ == "__main__":
    # OpenBLAS (NumPy's matmul) and OpenMP/MKL (PyTorch) size their thread pools, and OpenBLAS
    # picks its kernels, when the library is first loaded, so both settings must be in the
    # environment before `import numpy` below. Child processes (the memory runs) inherit them.
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _option_from_argv(sys.argv, "--threads", "2")
    if _option_from_argv(sys.argv, "--openblas-coretype"):
        os.environ["OPENBLAS_CORETYPE"] = _option_from_argv(sys.argv, "--openblas-coretype")

import argparse            # noqa: E402  (after the thread settings, on purpose)
import datetime            # noqa: E402
import gc                  # noqa: E402
import json                # noqa: E402
import multiprocessing     # noqa: E402
import platform            # noqa: E402
import re                  # noqa: E402
import resource            # noqa: E402
import statistics          # noqa: E402
import subprocess          # noqa: E402
import time                # noqa: E402
import traceback           # noqa: E402
import tracemalloc         # noqa: E402
from dataclasses import dataclass  # noqa: E402
from functools import lru_cache   # noqa: E402
from pathlib import Path   # noqa: E402

import numpy as np         # noqa: E402

import minigrad as mg      # noqa: E402
import minigrad.functional as MF  # noqa: E402
from minigrad import backend  # noqa: E402

# Both processes (this one and PyTorch's, which re-imports this script) keep freed memory for
# reuse, as `minigrad train` does (see "Where the time went" in benchmarks/README.md).
backend.tune_malloc()
# --reference times minigrad's reference ops (kernels off); set before argparse so that the
# memory children, which inherit the environment, measure the same path.
if os.environ.get("MINIGRAD_BENCH_REFERENCE") == "1":
    mg.kernels.use_fast(False)

LR, MOMENTUM, SEED = 0.05, 0.9, 0
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
README = Path(__file__).resolve().parent / "README.md"


# ---- the networks: one function each, built by either library's `nn` ----------------------------
# minigrad.nn and torch.nn share constructor names, arguments and state-dict keys, so the same
# function builds both, and torch_model.load_state_dict(minigrad_model.state_dict()) copies the
# weights. A layer followed by BatchNorm has no bias: BN's mean subtraction would cancel it
# (as in `minigrad train`).

def mlp_digits(nn):
    return nn.Sequential(nn.Linear(64, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(),
                         nn.Linear(256, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(),
                         nn.Linear(256, 10))


def mlp_784(nn):
    return nn.Sequential(nn.Linear(784, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(),
                         nn.Linear(512, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(),
                         nn.Linear(512, 10))


def cnn_8x8(nn):
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.Flatten(), nn.Linear(64 * 8 * 8, 10))


def cnn_28x28(nn):
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 10))


@dataclass
class Case:
    key: str            # (a), (b), ... in README.md
    title: str
    build: object       # one of the functions above
    data: str           # what make_batch feeds it
    batch: int          # CPU batch (and GPU without --batch-scale)
    gpu_batch: int      # GPU batch with --batch-scale
    target: float       # minigrad time / PyTorch time must be <= this


TRAIN_CASES = [
    Case("a", "MLP 64-256-BN-256-BN-10, 8x8 digits", mlp_digits, "digits_flat", 128, 128, 0.9),
    Case("b", "MLP 784-512-BN-512-BN-10", mlp_784, "pixels_784", 128, 128, 1.0),
    Case("c", "CNN 8x8: conv32-BN-conv64-BN-linear", cnn_8x8, "digits", 128, 512, 1.4),
    Case("d", "CNN 28x28: conv32-BN-conv64/2-BN-conv64/2-BN-linear", cnn_28x28, "pixels_28",
         64, 256, 1.5),
]
CASES = {c.key: c for c in TRAIN_CASES}
BN_SHAPES, BN_TARGET = [(128, 64, 8, 8), (64, 64, 28, 28)], 2.0
OVERHEAD_TARGET = 0.25       # minigrad's tiny add + backward over PyTorch's own
MEMORY_CASES, MEMORY_TARGET = ("c", "d"), 1.5
SWEEP = {"a": (32, 256, 1024, 4096), "c": (16, 64, 256, 1024), "d": (16, 64, 256)}
SWEEP_GROWTH = 1.1           # cost per sample at the largest batch over the sweep's lowest
DEFAULT_PARTS = [c.key for c in TRAIN_CASES] + ["bn", "overhead", "memory"]
PARTS = DEFAULT_PARTS + ["sweep"]                       # what --only can pick


def make_batch(kind, batch, seed=SEED):
    """One fixed batch (x float32, y int64) as NumPy arrays: the real 8x8 digits where the case
    says so (repeated past the 1,797 there are, for the batch sweep), else uniform pixels in
    [0, 1) with random labels (no MNIST download needed)."""
    if kind.startswith("digits"):
        images, labels = _digits()
        rows = np.arange(batch) % len(images)
        x, y = images[rows], labels[rows]                    # (batch, 1, 8, 8), (batch,)
        return (x.reshape(batch, 64) if kind == "digits_flat" else x), y
    rng = np.random.default_rng(seed)
    shape = (batch, 784) if kind == "pixels_784" else (batch, 1, 28, 28)
    return rng.random(shape, dtype=np.float32), rng.integers(0, 10, batch)


@lru_cache(maxsize=1)
def _digits():
    return mg.data.load_digits("all")        # 1,797 images


# ---- the two libraries side by side -------------------------------------------------------------
def load_torch(device):
    """(torch, None), or (None, why) when PyTorch is not installed or cannot use `device`."""
    try:
        import torch
    except ImportError as exc:
        return None, f"PyTorch is not installed ({exc})"
    if device == "cuda" and not torch.cuda.is_available():
        return None, f"PyTorch {torch.__version__} cannot use CUDA here"
    return torch, None


def minigrad_sync(device):
    """A function that waits for the GPU (a no-op on the CPU), for timing."""
    if device == "cpu":
        return lambda: None
    import cupy      # only for the timer: the library itself reaches CuPy through backend.py
    return cupy.cuda.Device().synchronize


def torch_sync(torch, device):
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def minigrad_train_step(case, batch, device):
    """(step, model): step() runs one training step and returns the loss Tensor.

    A training step is what a training loop does per batch: zero_grad, forward, cross-entropy,
    backward, SGD with momentum 0.9. The batch stays the same, so the loss must fall.
    """
    mg.manual_seed(SEED)
    model = case.build(mg.nn).to(device)
    x_np, y_np = make_batch(case.data, batch)
    x, y = mg.Tensor(x_np, device=device), mg.Tensor(y_np, device=device)
    opt = mg.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def step():
        opt.zero_grad()
        loss = MF.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step, model


def torch_train_step(torch, case, batch, device, state):
    """The same training step in PyTorch, starting from minigrad's state dict `state`
    ({name: NumPy array}, see numpy_state)."""
    model = case.build(torch.nn)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    model.to(device)
    x_np, y_np = make_batch(case.data, batch)
    x, y = torch.from_numpy(x_np).to(device), torch.from_numpy(y_np).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def numpy_state(model):
    """A minigrad model's state dict as NumPy arrays: what PyTorch's load_state_dict is given."""
    return {k: backend.to_numpy(v.data) for k, v in model.state_dict().items()}


def training_flops(model, x):
    """Matmul and convolution FLOPs of one training step (a multiply-add counts 2).

    Forward once, then in backward the same again for dW and for dx, except that the first
    layer needs no dx (its input is data): 3x forward, less one. BatchNorm, ReLU and the loss
    are memory-bound and not counted. Counted with forward hooks, in eval mode so the running
    statistics stay as they were.
    """
    counts = []

    def hook(module, inputs, out):
        if isinstance(module, mg.nn.Linear):
            per_output = module.in_features
        else:
            kh, kw = module.kernel_size
            per_output = module.in_channels * kh * kw
        counts.append(2 * out.numel() * per_output)

    layers = [m for m in model.modules() if isinstance(m, (mg.nn.Linear, mg.nn.Conv2d))]
    handles = [m.register_forward_hook(hook) for m in layers]
    model.eval()
    with mg.no_grad():
        model(x)
    model.train()
    for h in handles:
        h.remove()
    return sum(counts) * 3 - counts[0]


def minigrad_bn2d(shape, device):
    """BatchNorm2d alone in training mode: forward and backward of a fixed input."""
    rng = np.random.default_rng(SEED)
    bn = mg.nn.BatchNorm2d(shape[1]).to(device)
    x = mg.Tensor(rng.standard_normal(shape, dtype=np.float32), requires_grad=True, device=device)
    dout = mg.Tensor(rng.standard_normal(shape, dtype=np.float32), device=device)

    def step():
        x.grad = None
        bn.zero_grad()
        bn(x).backward(dout)
    return step


def torch_bn2d(torch, shape, device):
    rng = np.random.default_rng(SEED)
    bn = torch.nn.BatchNorm2d(shape[1]).to(device)
    x = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32)).to(device)
    x.requires_grad_()
    dout = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32)).to(device)

    def step():
        x.grad = None
        bn.zero_grad()
        bn(x).backward(dout)
    return step


TINY_LOOP = 1000      # tiny ops run in loops of this many, so the timer's own cost vanishes


def tiny_add_loops(device):
    """{name: loop}: each loop runs TINY_LOOP tiny (2, 2) adds.

    minigrad: c = a + b; c.backward(g) (the engine's fixed cost per op, both ways);
    array: the array library's own a + b on the same arrays (NumPy, or CuPy on the GPU).
    """
    xp = backend.xp_for(device)
    a_np, b_np = xp.ones((2, 2), dtype=np.float32), xp.full((2, 2), 2.0, dtype=np.float32)
    a, b = mg.Tensor(a_np, requires_grad=True), mg.Tensor(b_np, requires_grad=True)
    g = mg.Tensor(xp.ones((2, 2), dtype=np.float32))

    def minigrad_loop():
        for _ in range(TINY_LOOP):
            c = a + b
            c.backward(g)

    def array_loop():
        for _ in range(TINY_LOOP):
            a_np + b_np
    return {"minigrad": minigrad_loop, "array": array_loop}


def torch_tiny_loop(torch, device):
    """PyTorch's c = a + b; c.backward(g), TINY_LOOP times."""
    ta = torch.ones((2, 2), device=device, requires_grad=True)
    tb = torch.full((2, 2), 2.0, device=device, requires_grad=True)
    tg = torch.ones((2, 2), device=device)

    def torch_loop():
        for _ in range(TINY_LOOP):
            c = ta + tb
            c.backward(tg)
    return torch_loop


def square_matrices(n):
    """The two n x n float32 matrices of the matmul-rate measurement (same in both processes)."""
    rng = np.random.default_rng(SEED)
    return [rng.standard_normal((n, n), dtype=np.float32) for _ in range(2)]


# ---- PyTorch in a process of its own ------------------------------------------------------------
class TorchWorker:
    """PyTorch in a child process, building and timing its side of each case on request.

    Both libraries once shared this process. Then NumPy work timed right after PyTorch's blocks
    ran 3-5x slower (BatchNorm2d (128, 64, 8, 8): 6-10 ms a step instead of 2 ms; with
    OMP_WAIT_POLICY=PASSIVE, or with PyTorch in another process, the slowdown was gone): PyTorch's
    OpenMP threads got in NumPy's way. So each library runs in its own process, as it would for
    a user, and the rounds still alternate, one library running at a time.
    """

    def __init__(self, device, threads):
        context = multiprocessing.get_context("spawn")
        self.conn, child_end = context.Pipe()
        # The child re-imports this script, and with it minigrad, so PyTorch gets the same
        # malloc settings as minigrad (see benchmarks/README.md: PyTorch gains from them too).
        self.process = context.Process(target=_torch_worker_main, daemon=True,
                                       args=(child_end, device, threads))
        self.process.start()
        self.version, self.why_not, self.threads = self.conn.recv()

    def call(self, *message):
        self.conn.send(message)
        ok, value = self.conn.recv()
        if not ok:
            raise RuntimeError(f"the PyTorch process failed:\n{value}")
        return value

    def runner(self, kind, *args):
        """A runner for time_interleaved whose calls run in the PyTorch process."""
        return RemoteRunner(self, self.call("build", kind, args))

    def close(self):
        if self.process.is_alive():
            try:
                self.conn.send(("stop",))
            except OSError:          # the child had already finished (no PyTorch to run)
                pass
            self.process.join(10)


def _torch_worker_main(conn, device, threads):
    """The PyTorch process: answer TorchWorker's messages until told to stop."""
    torch, why = load_torch(device)
    if torch is not None:
        torch.set_num_threads(threads)
    conn.send((torch.__version__ if torch else None, why,
               torch.get_num_threads() if torch else None))
    if torch is None:
        return
    sync = torch_sync(torch, device)

    def matmul(n):
        a, b = (torch.from_numpy(m).to(device) for m in square_matrices(n))
        return lambda: a @ b

    builders = {"train": lambda key, batch, state: torch_train_step(torch, CASES[key], batch,
                                                                     device, state),
                "bn": lambda shape: torch_bn2d(torch, shape, device),
                "tiny": lambda: torch_tiny_loop(torch, device),
                "matmul": matmul}
    runners = {}
    while True:
        kind, *args = conn.recv()
        if kind == "stop":
            return
        try:
            if kind == "build":
                builder, builder_args = args
                key = len(runners)
                runners[key] = LocalRunner(builders[builder](*builder_args), sync)
                value = key
            elif kind == "once":
                value = runners[args[0]].once()
            elif kind == "block":
                value = runners[args[0]].block(args[1])
            elif kind == "free":
                del runners[args[0]]
                value = None
            elif kind == "cuda_pool":
                value = cuda_pool_growth("torch", torch, CASES[args[0]], *args[1:])
            else:
                raise ValueError(f"unknown message {kind!r}")
            conn.send((True, value))
        except Exception:
            conn.send((False, traceback.format_exc()))


# ---- timing -------------------------------------------------------------------------------------
class LocalRunner:
    """A function timed in this process; sync waits for the GPU (a no-op on the CPU)."""

    def __init__(self, fn, sync):
        self.fn, self.sync = fn, sync

    def once(self):
        t0 = time.perf_counter()
        self.fn()
        self.sync()
        return time.perf_counter() - t0

    def block(self, calls):
        """Seconds for `calls` calls, after one untimed call (caches and thread pools warm)."""
        self.fn()
        self.sync()
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(calls):
            self.fn()
        self.sync()
        return time.perf_counter() - t0


class RemoteRunner:
    """The same interface for a function that lives in the PyTorch process."""

    def __init__(self, worker, key):
        self.worker, self.key = worker, key

    def once(self):
        return self.worker.call("once", self.key)

    def block(self, calls):
        return self.worker.call("block", self.key, calls)

    def free(self):
        self.worker.call("free", self.key)


def time_interleaved(runners, rounds, block_s, settle_s=0.0):
    """Seconds per call of each runner, one value per round: {name: [s, s, ...]}.

    runners: {name: (fn, sync) or runner}. Each round runs every runner for about block_s
    seconds, in an order that rotates from round to round. Before each timed block we wait
    settle_s (OpenBLAS worker threads keep spinning for ~0.1 s after their last call and would
    steal cores from the next library) and make one untimed call.
    """
    runners = {name: r if hasattr(r, "block") else LocalRunner(*r) for name, r in runners.items()}
    calls = {}
    for name, runner in runners.items():
        runner.once()                                  # warm-up: first-call allocations
        calls[name] = max(1, round(block_s / max(runner.once(), 1e-9)))
    names = list(runners)
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            time.sleep(settle_s)
            times[name].append(runners[name].block(calls[name]) / calls[name])
    return times


def time_against_torch(runners, worker, torch_side, **timing):
    """time_interleaved over `runners` and, when PyTorch runs (worker is not None), PyTorch's
    side as "torch": torch_side = (kind, *args) is built in the worker and freed afterwards."""
    if worker is None:
        return time_interleaved(runners, **timing)
    remote = worker.runner(*torch_side)
    try:
        return time_interleaved({**runners, "torch": remote}, **timing)
    finally:
        remote.free()


def summarize(times, a="minigrad", b="torch"):
    """Medians (in ms) of both and the median / min / max of the per-round ratios a/b."""
    out = {"minigrad_ms": 1e3 * statistics.median(times[a])}
    if b in times:
        ratios = [x / y for x, y in zip(times[a], times[b])]
        out.update(torch_ms=1e3 * statistics.median(times[b]), ratio=statistics.median(ratios),
                   ratio_min=min(ratios), ratio_max=max(ratios))
    return out


def matmul_rates(device, worker, **timing):
    """GFLOP/s of an n x n float32 matmul (n = 1024 on the CPU, 4096 on the GPU): the rate
    the machine can reach, against which each case's achieved rate is read."""
    n = 1024 if device == "cpu" else 4096
    a, b = (backend.to_device(m, device) for m in square_matrices(n))
    runners = {"array": (lambda: a @ b, minigrad_sync(device))}     # NumPy or CuPy
    times = time_against_torch(runners, worker, ("matmul", n), **timing)
    return {name: 2 * n ** 3 / statistics.median(t) / 1e9 for name, t in times.items()}, n


# ---- memory -------------------------------------------------------------------------------------
def _proc_status_kib(field):
    """A field of /proc/self/status in KiB (VmRSS: resident now, VmHWM: its peak), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss():
    """Reset the kernel's resident-set peak to the current size (Linux: clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_peak_growth(step, steps):
    """Bytes by which the process's peak resident set grows over `steps` calls of step().

    Resident memory counts every allocator (NumPy's and PyTorch's alike), so it is the one
    measure both libraries share. With the peak reset (Linux) it is VmHWM after the steps minus
    VmRSS before them; elsewhere ru_maxrss after minus before, which misses nothing only when
    the process never stood higher before the steps.
    """
    gc.collect()
    if _reset_peak_rss() and _proc_status_kib("VmRSS") is not None:
        before = _proc_status_kib("VmRSS")
        for _ in range(steps):
            step()
        return 1024 * (_proc_status_kib("VmHWM") - before), "VmHWM - VmRSS (peak reset)"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(steps):
        step()
    scale = 1 if sys.platform == "darwin" else 1024        # macOS reports bytes, Linux KiB
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return scale * (after - before), "ru_maxrss after - before"


def memory_child(framework, key, batch, steps):
    """Entry point of a fresh process: build the case, print its peak RSS growth as JSON."""
    case = CASES[key]
    step, model = minigrad_train_step(case, batch, "cpu")
    if framework == "torch":
        torch, why = load_torch("cpu")
        if torch is None:
            raise SystemExit(why)
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
        step = torch_train_step(torch, case, batch, "cpu", numpy_state(model))
        del model                                           # only its weights were needed
    bytes_, method = rss_peak_growth(step, steps)
    print(json.dumps({"bytes": bytes_, "method": method}))


def rss_in_fresh_process(framework, key, batch, steps, threads):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child", framework, key,
           "--batch", str(batch), "--steps", str(steps), "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"memory run {framework} ({key}) failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def tracemalloc_peak(step):
    """Peak bytes NumPy allocates during one training step after a warm-up step (tracemalloc
    sees NumPy's allocations; PyTorch's are invisible to it, hence the RSS comparison)."""
    step()
    gc.collect()
    tracemalloc.start()
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def cuda_pool_growth(framework, torch, case, batch, steps):
    """GPU: growth of the caching allocator's pool over `steps` steps from a freshly built model.

    Both libraries keep freed blocks in a pool that only grows, so its size after the steps is
    their high-water mark: CuPy's default pool total_bytes(), PyTorch's max_memory_reserved().
    Each pool is emptied of cached blocks first, so earlier cases do not lend it memory.
    """
    step, model = minigrad_train_step(case, batch, "cuda")
    if framework == "minigrad":
        import cupy
        pool = cupy.get_default_memory_pool()
        gc.collect()
        pool.free_all_blocks()
        before = pool.total_bytes()
        for _ in range(steps):
            step()
        cupy.cuda.Device().synchronize()
        return pool.total_bytes() - before
    step = torch_train_step(torch, case, batch, "cuda", numpy_state(model))
    del model
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_reserved()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_reserved() - before


# ---- the run ------------------------------------------------------------------------------------
def cpu_flags():
    """The vector extensions that decide how fast BLAS and NumPy's loops run (see flags_label),
    or the machine's architecture where /proc/cpuinfo is absent."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line.split(":", 1)[1].split() for line in f if line.startswith("flags"))
    except (OSError, StopIteration):
        return platform.machine() or "flags unknown"
    return flags_label(flags)


def flags_label(flags):
    """"AVX-512", "AVX2, no AVX-512" or "no AVX2", from a CPU's list of flags."""
    if "avx512f" in flags:
        return "AVX-512"
    return "AVX2, no AVX-512" if "avx2" in flags else "no AVX2"


def machine_info(device, threads, torch_version):
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or cpu
    versions = backend.versions()
    info = {"cpu": cpu, "cpu_flags": cpu_flags(), "cores": os.cpu_count(), "threads": threads,
            "python": platform.python_version(), "numpy": np.__version__,
            "minigrad": mg.__version__, "torch": torch_version or "not installed",
            "cupy": versions["cupy"] or "not installed", "gpu": versions["gpu"],
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    try:                                    # what the BLAS pools really got, when we can ask
        from threadpoolctl import threadpool_info
        pools = threadpool_info()
        info["blas_threads"] = ", ".join(f"{p['internal_api']}={p['num_threads']}" for p in pools)
        info["blas_kernels"] = ", ".join(f"{p['internal_api']} {p['architecture']}"
                                         for p in pools if p.get("architecture"))
    except ImportError:
        pass
    return info


def run(args):
    """Every measurement, printed as it completes; returns them for RESULTS.md."""
    device, threads = args.device, args.threads
    if device == "cuda" and not backend.cuda_available():
        raise SystemExit(f"--device cuda: {backend.cuda_unavailable_reason()}")
    worker = TorchWorker(device, threads)
    why_no_torch = worker.why_not
    if worker.version is None:
        worker.close()
        worker = None
    try:
        return measure_all(args, device, threads, worker, why_no_torch)
    finally:
        if worker is not None:
            worker.close()


def measure_all(args, device, threads, worker, why_no_torch):
    only = set(args.only or DEFAULT_PARTS) | ({"sweep"} if args.sweep else set())
    timing = dict(rounds=args.rounds or (3 if args.quick else 15),
                  block_s=0.02 if args.quick else 0.25, settle_s=0.0 if args.quick else 0.1)
    info = machine_info(device, threads, worker.version if worker else None)
    versus = (f"PyTorch {worker.version} (in a process of its own)" if worker
              else f"nothing: {why_no_torch}")
    print(f"minigrad {mg.__version__} vs {versus}; device {device}, {threads} threads, "
          f"{timing['rounds']} interleaved rounds; CPU {info['cpu']} ({info['cpu_flags']})")
    if "blas_threads" in info:
        print(f"thread pools: {info['blas_threads']} (minigrad's process)"
              + (f", PyTorch {worker.threads} threads" if worker else ""))
    if info["cpu_flags"] == "AVX-512" and "Haswell" in info.get("blas_kernels", ""):
        print("note: NumPy's OpenBLAS runs its AVX2 (Haswell) kernels on this AVX-512 CPU (it "
              "does not recognise the model); --openblas-coretype SkylakeX compares with its "
              "AVX-512 kernels (benchmarks/README.md)")
    if info["load"] is not None and info["load"] > 0.5:
        print(f"warning: the machine was busy before this run (load average {info['load']:.1f} "
              f"on {info['cores']} cores): absolute times are inflated and thread pools "
              "(PyTorch's most) lose time waiting for descheduled threads")
    rates, n = matmul_rates(device, worker, **timing)
    print(f"\nfloat32 {n}x{n} matmul: array library {rates['array']:.1f} GFLOP/s"
          + (f", PyTorch {rates['torch']:.1f} GFLOP/s" if worker else ""))
    return {"device": device, "rounds": timing["rounds"], "quick": args.quick, "info": info,
            "no_torch": why_no_torch,
            "matmul": {"n": n, "array_gflops": rates["array"], "torch_gflops": rates.get("torch")},
            **measure_speed(device, worker, args.batch_scale, timing, only),
            "overhead": measure_overhead(device, worker, timing) if "overhead" in only else None,
            "memory": (measure_memory(device, worker, args.batch_scale, threads, args.quick)
                       if "memory" in only else []),
            "sweep": measure_sweep(device, worker, timing) if "sweep" in only else []}


def measure_speed(device, worker, batch_scale, timing, only=None):
    """The training steps (a)-(d) and BatchNorm2d alone, each library against the other
    (only the parts named in `only`: case keys and "bn"; all by default)."""
    only = set(DEFAULT_PARTS) if only is None else only
    print(f"\n{'training step':66s} {'minigrad':>10s} {'PyTorch':>10s} {'ratio (min-max)':>18s}"
          f" {'target':>7s}  GFLOP/s mg/torch")
    train, bn = [], []
    for case in (c for c in TRAIN_CASES if c.key in only):
        batch = case.gpu_batch if batch_scale else case.batch
        step, model = minigrad_train_step(case, batch, device)
        x_np, _ = make_batch(case.data, batch)
        flops = training_flops(model, mg.Tensor(x_np, device=device))
        times = time_against_torch({"minigrad": (step, minigrad_sync(device))}, worker,
                                   ("train", case.key, batch, numpy_state(model)), **timing)
        train.append({"key": case.key, "title": case.title, "batch": batch,
                      "target": case.target, "gflop": flops / 1e9, **summarize(times)})
        print(_console_row(f"({case.key}) {case.title}, batch {batch}", train[-1], flops))
    for shape in (BN_SHAPES if "bn" in only else []):
        times = time_against_torch({"minigrad": (minigrad_bn2d(shape, device),
                                                 minigrad_sync(device))},
                                   worker, ("bn", shape), **timing)
        bn.append({"shape": shape, "target": BN_TARGET, **summarize(times)})
        print(_console_row(f"BatchNorm2d fwd+bwd {shape}", bn[-1], None))
    return {"train": train, "bn": bn}


def measure_sweep(device, worker, timing):
    """Each case of SWEEP at every batch size of its list, against PyTorch as in measure_speed:
    time per step, ratio, and cost per sample. At most 5 rounds per batch, so the sweep adds
    a few minutes."""
    timing = dict(timing, rounds=min(timing["rounds"], 5))
    print(f"\n{'batch sweep':30s} {'minigrad':>10s} {'PyTorch':>10s} {'ratio (min-max)':>18s}"
          f" {'target':>7s}  us/sample mg/torch")
    rows = []
    for key, batches in SWEEP.items():
        case = CASES[key]
        for batch in batches:
            step, model = minigrad_train_step(case, batch, device)
            times = time_against_torch({"minigrad": (step, minigrad_sync(device))}, worker,
                                       ("train", key, batch, numpy_state(model)), **timing)
            row = {"key": key, "batch": batch, "target": case.target, **summarize(times)}
            rows.append(row)
            print(_console_row(f"({key}) batch {batch}", row, None, width=30) + "  "
                  + " / ".join(f"{1e3 * row[k] / batch:.1f}" for k in ("minigrad_ms", "torch_ms")
                               if k in row))
            del step, model
            gc.collect()
    for key, growth in sweep_growth(rows).items():
        print(f"({key}) cost per sample, largest batch over the sweep's lowest: "
              + ", ".join(f"{name} {g:.2f}" for name, g in growth.items())
              + f" (target for minigrad <= {SWEEP_GROWTH:g})")
    return rows


def sweep_growth(rows):
    """{case: {library: cost per sample at the largest batch / the lowest over the sweep}}."""
    out = {}
    for key in dict.fromkeys(r["key"] for r in rows):
        case_rows = sorted((r for r in rows if r["key"] == key), key=lambda r: r["batch"])
        out[key] = {}
        for name, field in (("minigrad", "minigrad_ms"), ("PyTorch", "torch_ms")):
            if field in case_rows[0]:
                per_sample = [r[field] / r["batch"] for r in case_rows]
                out[key][name] = per_sample[-1] / min(per_sample)
    return out


def measure_overhead(device, worker, timing):
    """Microseconds per tiny add: minigrad's forward + backward, PyTorch's, and the array
    library's own a + b; the verdict is minigrad's time over PyTorch's (median of the per-round
    ratios), a ratio that does not move with the machine's speed."""
    sync = minigrad_sync(device)
    runners = {name: (fn, sync) for name, fn in tiny_add_loops(device).items()}
    times = time_against_torch(runners, worker, ("tiny",), **timing)
    us = {name: 1e6 * statistics.median(t) / TINY_LOOP for name, t in times.items()}
    row = {"minigrad_us": us["minigrad"], "array_us": us["array"],
           "diff_us": us["minigrad"] - us["array"], "torch_us": us.get("torch"),
           "target": OVERHEAD_TARGET}
    array_name = "NumPy" if device == "cpu" else "CuPy"
    line = (f"\ntiny (2,2) add: minigrad fwd+bwd {us['minigrad']:.2f} us ({array_name} a + b "
            f"{us['array']:.2f} us, difference {row['diff_us']:.2f} us)")
    if "torch" in times:
        ratio = summarize(times)
        row.update(ratio=ratio["ratio"], ratio_min=ratio["ratio_min"],
                   ratio_max=ratio["ratio_max"])
        line += (f"; PyTorch fwd+bwd {us['torch']:.2f} us; ratio {row['ratio']:.2f} "
                 f"({row['ratio_min']:.2f}-{row['ratio_max']:.2f}), target <= {OVERHEAD_TARGET:g}")
    print(line)
    return row


def measure_memory(device, worker, batch_scale, threads, quick):
    """Peak memory of the (c) and (d) training steps; see rss_peak_growth / cuda_pool_growth."""
    steps, repeats = (2, 1) if quick else (3, 3)
    names = ["minigrad"] + (["torch"] if worker is not None else [])
    print()
    rows = []
    for key in MEMORY_CASES:
        case = CASES[key]
        batch = case.gpu_batch if batch_scale else case.batch
        row = {"key": key, "batch": batch, "target": MEMORY_TARGET, "steps": steps}
        if device == "cpu":
            row["tracemalloc"] = tracemalloc_peak(minigrad_train_step(case, batch, device)[0])
            measured = {name: [] for name in names}
            for r in range(repeats):                        # fresh processes, alternating
                for name in (names if r % 2 == 0 else names[::-1]):
                    out = rss_in_fresh_process(name, key, batch, steps, threads)
                    measured[name].append(out["bytes"])
                    row["method"] = out["method"]
        else:
            measured = {"minigrad": [cuda_pool_growth("minigrad", None, case, batch, steps)]}
            if worker is not None:
                measured["torch"] = [worker.call("cuda_pool", key, batch, steps)]
            row["method"] = "caching-pool growth (CuPy total_bytes, torch max_memory_reserved)"
        row["minigrad"] = statistics.median(measured["minigrad"])
        line = f"peak memory ({key}) batch {batch}: minigrad {row['minigrad'] / 2**20:.1f} MiB"
        if worker is not None:
            row["torch"] = statistics.median(measured["torch"])
            row["ratio"] = row["minigrad"] / max(row["torch"], 1)
            line += (f", PyTorch {row['torch'] / 2**20:.1f} MiB, ratio {row['ratio']:.2f} "
                     f"(target <= {MEMORY_TARGET:g})")
        if "tracemalloc" in row:
            line += f"; minigrad tracemalloc peak {row['tracemalloc'] / 2**20:.1f} MiB"
        print(line)
        rows.append(row)
    return rows


def _console_row(label, row, flops, width=66):
    line = f"{label:{width}s} {row['minigrad_ms']:8.2f}ms"
    if "torch_ms" in row:
        line += (f" {row['torch_ms']:8.2f}ms {row['ratio']:6.2f} ({row['ratio_min']:.2f}-"
                 f"{row['ratio_max']:.2f}) {row['target']:7.2f}")
    else:
        line += f" {'-':>10s} {'-':>18s} {row['target']:7.2f}"
    if flops:
        line += f"  {flops / row['minigrad_ms'] / 1e6:.1f}"
        if "torch_ms" in row:
            line += f" / {flops / row['torch_ms'] / 1e6:.1f}"
    return line


# ---- RESULTS.md ---------------------------------------------------------------------------------
def _verdict(value, target):
    return "n/a" if value is None else ("pass" if value <= target else "miss")


def machine_heading(res):
    """The section's title, which names the machine: "CPU: <model> (<flags>)" or "GPU: <model>"."""
    info = res["info"]
    if res["device"] == "cuda":
        return f"GPU: {info['gpu']}"
    return f"CPU: {info['cpu']} ({info['cpu_flags']})"


def section_key(heading):
    """The marker name of a machine's section: its heading, lower case, runs of other characters
    as one '-' ("CPU: AMD EPYC (AVX-512)" -> "cpu-amd-epyc-avx-512")."""
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")


def render_section(res):
    """The markdown section of one run on one machine: machine, versions, then the tables."""
    info, gpu = res["info"], res["device"] == "cuda"
    heading = machine_heading(res)
    key = section_key(heading)
    lines = [f"<!-- results:{key} -->",
             f"## {heading}", "",
             f"- machine: {info['cpu']} ({info['cpu_flags']}), {info['cores']} cores"
             + (f"; GPU {info['gpu']}" if gpu else "")
             + (f"; BLAS kernels: {info['blas_kernels']}" if info.get("blas_kernels") else ""),
             f"- versions: Python {info['python']}, NumPy {info['numpy']}, minigrad "
             f"{info['minigrad']}, PyTorch {info['torch']}, CuPy {info['cupy']}",
             f"- run: {info['date']}, {info['threads']} threads (torch.set_num_threads and "
             f"OMP/OPENBLAS/MKL_NUM_THREADS), {res['rounds']} interleaved rounds, PyTorch in a "
             "process of its own"
             + (" (--quick)" if res["quick"] else "")
             + (f"; 1-minute load average before the run {info['load']:.1f}"
                if info["load"] is not None else ""),
             f"- float32 {res['matmul']['n']}x{res['matmul']['n']} matmul: "
             f"{res['matmul']['array_gflops']:.1f} GFLOP/s ({'CuPy' if gpu else 'NumPy'})"
             + (f", {res['matmul']['torch_gflops']:.1f} GFLOP/s (PyTorch)"
                if res["matmul"]["torch_gflops"] else "")]
    if res["no_torch"]:
        lines.append(f"- minigrad only: {res['no_torch']}")
    lines += ["", "| case | minigrad | PyTorch | ratio (min-max) | target | result | "
              "GFLOP/s minigrad / PyTorch |", "|---|---:|---:|---:|---:|---|---:|"]
    peak = res["matmul"]["array_gflops"]

    def ratio_cells(row):
        if "ratio" not in row:
            return ["-", f"<= {row['target']:g}", "n/a"]
        return [f"{row['ratio']:.2f} ({row['ratio_min']:.2f}-{row['ratio_max']:.2f})",
                f"<= {row['target']:g}", _verdict(row["ratio"], row["target"])]

    def ms_row(label, row, gflop=None):
        has_torch = "torch_ms" in row
        cells = [label, f"{row['minigrad_ms']:.2f} ms",
                 f"{row['torch_ms']:.2f} ms" if has_torch else "-", *ratio_cells(row), "-"]
        if gflop:
            mg_rate = gflop / row["minigrad_ms"] * 1e3
            cells[-1] = f"{mg_rate:.1f} ({100 * mg_rate / peak:.0f}% of matmul)"
            if has_torch:
                cells[-1] += f" / {gflop / row['torch_ms'] * 1e3:.1f}"
        return "| " + " | ".join(cells) + " |"

    for row in res["train"]:
        lines.append(ms_row(f"({row['key']}) {row['title']}, batch {row['batch']}, train step",
                            row, row["gflop"]))
    for row in res["bn"]:
        lines.append(ms_row(f"BatchNorm2d {tuple(row['shape'])} fwd+bwd", row))
    o = res["overhead"]
    if o is not None:
        array_name = "CuPy" if gpu else "NumPy"
        lines.append(f"| tiny (2,2) add fwd+bwd ({array_name} a + b {o['array_us']:.2f} us, "
                     f"difference {o['diff_us']:.2f} us) | {o['minigrad_us']:.2f} us | "
                     + (f"{o['torch_us']:.2f} us" if o["torch_us"] is not None else "-")
                     + " | " + " | ".join(ratio_cells(o)) + " | - |")
    for row in res["memory"]:
        extra = (f" (minigrad tracemalloc, one step: {row['tracemalloc'] / 2**20:.1f} MiB)"
                 if "tracemalloc" in row else "")
        lines.append(f"| ({row['key']}) peak memory, batch {row['batch']}{extra} | "
                     f"{row['minigrad'] / 2**20:.1f} MiB | "
                     + (f"{row['torch'] / 2**20:.1f} MiB | {row['ratio']:.2f}"
                        if "torch" in row else "- | -")
                     + f" | <= {row['target']:g} | {_verdict(row.get('ratio'), row['target'])}"
                     " | - |")
    if res["memory"]:
        lines += ["", f"Memory method: {res['memory'][0]['method']}, over "
                  f"{res['memory'][0]['steps']} training steps from a freshly built model"
                  + (", in a fresh process per library (median of the runs)"
                     if not gpu else "") + "."]
    if res.get("sweep"):
        lines += render_sweep(res["sweep"])
    lines.append(f"<!-- /results:{key} -->")
    return "\n".join(lines) + "\n"


def render_sweep(rows):
    """The batch-size sweep: one row per case and batch, then the growth of each case's cost
    per sample from the sweep's lowest to its largest batch."""
    lines = ["", "Batch-size sweep (training step; cost per sample = time per step / batch):", "",
             "| case | batch | minigrad | PyTorch | ratio (min-max) | target | result | "
             "us/sample minigrad / PyTorch |", "|---|---:|---:|---:|---:|---:|---|---:|"]
    for row in rows:
        has_torch = "torch_ms" in row
        ratio = (f"{row['ratio']:.2f} ({row['ratio_min']:.2f}-{row['ratio_max']:.2f})"
                 if has_torch else "-")
        per_sample = f"{1e3 * row['minigrad_ms'] / row['batch']:.1f}" + (
            f" / {1e3 * row['torch_ms'] / row['batch']:.1f}" if has_torch else "")
        lines.append(f"| ({row['key']}) | {row['batch']} | {row['minigrad_ms']:.2f} ms | "
                     + (f"{row['torch_ms']:.2f} ms" if has_torch else "-")
                     + f" | {ratio} | <= {row['target']:g} | "
                     f"{_verdict(row.get('ratio'), row['target'])} | {per_sample} |")
    lines += ["", "| case | cost per sample, largest batch / sweep's lowest: minigrad | PyTorch "
              "| target (minigrad) | result |", "|---|---:|---:|---:|---|"]
    for key, growth in sweep_growth(rows).items():
        torch_growth = f"{growth['PyTorch']:.2f}" if "PyTorch" in growth else "-"
        lines.append(f"| ({key}) | {growth['minigrad']:.2f} | {torch_growth} | "
                     f"<= {SWEEP_GROWTH:g} | {_verdict(growth['minigrad'], SWEEP_GROWTH)} |")
    return lines


RESULTS_HEADER = """# Benchmark results

Written by `python benchmarks/bench.py --write` (add `--sweep` for the batch-size sweep, and
`--device cuda` on a GPU). Each machine has a section of its own, named by its CPU model and
vector extensions (or its GPU): a run replaces only its own machine's section, so results from
different machines never overwrite each other. README.md explains the measurements and lists the
latest run on each machine. Ratio is minigrad time / PyTorch time, the median of the per-round
ratios; at or below the target is a pass.

"""


def update_results(text, section):
    """`text` (the old RESULTS.md, or "") with `section`'s machine section replaced, or added:
    a new CPU section before the first GPU section, a new GPU section at the end (in place of
    the placeholder that says no GPU was measured yet). Other machines' sections stay as is."""
    key = section.split("<!-- results:", 1)[1].split(" -->", 1)[0]
    begin, end = f"<!-- results:{key} -->", f"<!-- /results:{key} -->"
    if not text.strip():
        text = RESULTS_HEADER
    if begin not in text and key.startswith("gpu") and "<!-- results:cuda -->" in text:
        begin, end = "<!-- results:cuda -->", "<!-- /results:cuda -->"    # the placeholder
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        return head + section + ("\n" + tail if tail else "")
    first_gpu = min((text.index(m) for m in ("<!-- results:gpu", "<!-- results:cuda -->")
                     if m in text), default=None)
    if key.startswith("cpu") and first_gpu is not None:
        return text[:first_gpu] + section + "\n" + text[first_gpu:]
    return text.rstrip("\n") + "\n\n" + section


def results_index(text):
    """[(heading, run line)] of every machine section in a RESULTS.md text, in file order."""
    out = []
    for chunk in text.split("<!-- results:")[1:]:
        body = chunk.split(" -->", 1)[1]
        heading = next((ln[3:].strip() for ln in body.splitlines() if ln.startswith("## ")), None)
        run = next((ln[len("- run: "):].split(",")[0] for ln in body.splitlines()
                    if ln.startswith("- run: ")), "not measured yet")
        if heading:
            out.append((heading, run))
    return out


def _anchor(heading):
    """GitHub's anchor for a markdown heading: lower case, punctuation dropped, spaces as '-'."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


def update_readme_index(readme, results_text):
    """README.md's list of the latest run on each machine (between its markers), rebuilt from
    RESULTS.md's sections."""
    begin, end = "<!-- latest-results -->", "<!-- /latest-results -->"
    if begin not in readme or end not in readme:
        return readme
    items = [f"- [{heading}](RESULTS.md#{_anchor(heading)}): {run}"
             for heading, run in results_index(results_text)]
    head, rest = readme.split(begin, 1)
    return head + begin + "\n" + "\n".join(items) + "\n" + end + rest.split(end, 1)[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved rounds per case (default 15, or 3 with --quick)")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads for NumPy's BLAS and for PyTorch (default 2)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (~20 s)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: minigrad on CuPy, PyTorch on CUDA")
    parser.add_argument("--batch-scale", action="store_true",
                        help="GPU batches: (c) at 512 and (d) at 256")
    parser.add_argument("--sweep", action="store_true",
                        help="add the batch-size sweep: (a) 32-4096, (c) 16-1024, (d) 16-256")
    parser.add_argument("--write", action="store_true",
                        help="write this machine's section of benchmarks/RESULTS.md")
    parser.add_argument("--openblas-coretype", metavar="NAME",
                        help="set OPENBLAS_CORETYPE (e.g. SkylakeX) before NumPy loads, to compare "
                             "OpenBLAS's kernels; not with --write")
    parser.add_argument("--reference", action="store_true",
                        help="time minigrad's reference ops (fast kernels off); not with --write")
    parser.add_argument("--only", nargs="+", choices=PARTS, metavar="PART",
                        help=f"measure only these parts ({', '.join(PARTS)}), e.g. to re-measure "
                             "one in a fresh process; not with --write")
    # a memory run in a fresh process (used internally)
    parser.add_argument("--memory-child", nargs=2, metavar=("FRAMEWORK", "CASE"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.only and args.write:
        parser.error("--only measures part of the table; run without it to --write RESULTS.md")
    if args.reference and args.write:
        parser.error("--reference measures the reference ops; RESULTS.md holds the default path")
    if args.openblas_coretype and args.write:
        parser.error("--openblas-coretype changes NumPy's kernels; RESULTS.md holds the default")
    if args.reference:
        os.environ["MINIGRAD_BENCH_REFERENCE"] = "1"
        mg.kernels.use_fast(False)
    if args.memory_child:
        memory_child(*args.memory_child, args.batch, args.steps)
        return
    t0 = time.perf_counter()
    res = run(args)
    print(f"\ndone in {time.perf_counter() - t0:.0f} s")
    if args.write:
        old = RESULTS.read_text() if RESULTS.exists() else ""
        RESULTS.write_text(update_results(old, render_section(res)))
        README.write_text(update_readme_index(README.read_text(), RESULTS.read_text()))
        print(f"wrote this machine's section of {RESULTS} and the list in {README}")


if __name__ == "__main__":
    main()
