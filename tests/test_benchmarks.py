"""The benchmark's minigrad side still works: every case trains, FLOPs count, RESULTS.md updates.

benchmarks/bench.py is a script, not part of the package, so it is imported from its path.
No PyTorch needed: only the minigrad builders run (at a small batch, to stay fast).
"""
import importlib.util
import math
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("key", ["a", "b", "c", "d"])
def test_training_case_learns_its_fixed_batch(bench, key):
    step, _ = bench.minigrad_train_step(bench.CASES[key], 16, "cpu")
    losses = [step().item() for _ in range(3)]
    assert all(math.isfinite(v) for v in losses)
    assert losses[2] < losses[0]


def test_training_flops_counts_forward_dw_and_dx(bench):
    case = bench.CASES["a"]
    step, model = bench.minigrad_train_step(case, 16, "cpu")
    x, _ = bench.make_batch(case.data, 16)
    forward = 2 * 16 * (64 * 256 + 256 * 256 + 256 * 10)
    first_dx = 2 * 16 * 64 * 256            # the data needs no gradient
    assert bench.training_flops(model, bench.mg.Tensor(x)) == 3 * forward - first_dx
    # conv: 2 * outputs * (C_in * kh * kw) per layer, outputs = N * O * Ho * Wo
    case = bench.CASES["d"]
    _, model = bench.minigrad_train_step(case, 2, "cpu")
    x, _ = bench.make_batch(case.data, 2)
    convs = [2 * 2 * 32 * 28 * 28 * 9, 2 * 2 * 64 * 14 * 14 * 288, 2 * 2 * 64 * 7 * 7 * 576]
    forward = sum(convs) + 2 * 2 * 10 * 3136
    assert bench.training_flops(model, bench.mg.Tensor(x)) == 3 * forward - convs[0]


def test_bn_and_tiny_op_runners_run(bench, monkeypatch):
    bench.minigrad_bn2d((4, 3, 5, 5), "cpu")()
    monkeypatch.setattr(bench, "TINY_LOOP", 10)
    loops = bench.tiny_add_loops("cpu")
    assert sorted(loops) == ["array", "minigrad"]
    times = bench.time_interleaved({k: (f, lambda: None) for k, f in loops.items()}, 2, 0.001)
    assert all(len(t) == 2 and min(t) > 0 for t in times.values())


def test_only_measures_the_parts_named(bench, monkeypatch):
    monkeypatch.setattr(bench, "BN_SHAPES", [(4, 3, 5, 5)])     # small, to stay fast
    timing = dict(rounds=1, block_s=0.001)
    res = bench.measure_speed("cpu", None, False, timing, only={"bn"})
    assert res["train"] == [] and [r["shape"] for r in res["bn"]] == [(4, 3, 5, 5)]
    with pytest.raises(SystemExit):                  # a partial run must not write RESULTS.md
        bench.main(["--only", "a", "--write"])


def test_results_file_keeps_the_other_devices_section(bench):
    cpu = "<!-- results:cpu -->\ncpu body one\n<!-- /results:cpu -->\n"
    gpu = "<!-- results:cuda -->\ngpu body\n<!-- /results:cuda -->\n"
    text = bench.update_results("", gpu, "cuda")
    text = bench.update_results(text, cpu, "cpu")             # goes before the GPU section
    assert text.index("cpu body one") < text.index("gpu body")
    text = bench.update_results(text, cpu.replace("one", "two"), "cpu")
    assert "cpu body two" in text and "cpu body one" not in text and "gpu body" in text
    assert text.index("cpu body two") < text.index("gpu body")
    assert text.startswith("# Benchmark results") and text.count("results:cpu -->") == 2


def test_torch_worker_process_answers(monkeypatch):
    # PyTorch runs in a process of its own (bench.TorchWorker). Without PyTorch installed (as
    # in CI) the worker must say why; with it, it must build, time and free a runner, and turn
    # a failure inside the child into an error naming it.
    monkeypatch.syspath_prepend(str(BENCH.parent))
    bench = importlib.import_module("bench")       # importable by name: the child re-imports it
    worker = bench.TorchWorker("cpu", 1)
    try:
        if worker.version is None:
            assert "PyTorch" in worker.why_not and "not installed" in worker.why_not
            return
        runner = worker.runner("bn", (4, 3, 5, 5))
        assert runner.once() > 0 and runner.block(3) > 0
        runner.free()
        with pytest.raises(RuntimeError, match="KeyError"):
            runner.once()                           # freed: the child reports its KeyError
    finally:
        worker.close()
