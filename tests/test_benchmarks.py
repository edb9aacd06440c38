"""The benchmark's minigrad side still works: every case trains, FLOPs count, RESULTS.md updates.

benchmarks/bench.py is a script, not part of the package, so it is imported from its path.
No PyTorch needed: only the minigrad builders run (at a small batch, to stay fast).
"""
import importlib.util
import math
from pathlib import Path

import numpy as np
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
    with pytest.raises(SystemExit):                  # RESULTS.md holds NumPy as installed
        bench.main(["--openblas-coretype", "SkylakeX", "--write"])


def _section(bench, cpu, flags, body):
    res = {"device": "cpu", "info": {"cpu": cpu, "cpu_flags": flags}}
    key = bench.section_key(bench.machine_heading(res))
    return f"<!-- results:{key} -->\n## {bench.machine_heading(res)}\n\n- run: {body}, x\n" \
           f"<!-- /results:{key} -->\n"


def test_results_file_keeps_one_section_per_machine(bench):
    amd = _section(bench, "AMD EPYC", "AVX-512", "amd one")
    intel = _section(bench, "Intel(R) Xeon(R) CPU", "AVX-512", "intel one")
    amd_avx2 = _section(bench, "AMD EPYC", "AVX2, no AVX-512", "amd avx2")
    gpu = "<!-- results:cuda -->\n## GPU\n\nnot measured\n<!-- /results:cuda -->\n"
    assert "results:cpu-amd-epyc-avx-512 -->" in amd
    text = bench.update_results(bench.update_results("", amd), gpu.replace("cuda", "gpu-x"))
    text = bench.update_results(text, intel)
    text = bench.update_results(text, amd_avx2)           # same model name, other flags: new
    assert text.startswith("# Benchmark results")
    order = [text.index(k) for k in ("amd one", "intel one", "amd avx2", "gpu-x")]
    assert order == sorted(order)                          # CPU sections before the GPU's
    text = bench.update_results(text, amd.replace("amd one", "amd two"))
    assert "amd two" in text and "amd one" not in text
    assert all(k in text for k in ("intel one", "amd avx2", "gpu-x"))
    assert text.count("<!-- results:") == 4 and text.index("amd two") < text.index("intel one")
    # a first GPU run replaces the placeholder that says no GPU was measured yet
    text = bench.update_results(amd + "\n" + gpu, "<!-- results:gpu-h200 -->\n## GPU: H200\n"
                                "<!-- /results:gpu-h200 -->\n")
    assert "results:cuda" not in text and "GPU: H200" in text and "amd one" in text


def test_readme_lists_the_latest_run_of_each_machine(bench):
    text = (bench.RESULTS_HEADER + _section(bench, "AMD EPYC", "AVX-512", "2026-12-01 10:00")
            + "\n" + _section(bench, "Intel(R) Xeon(R)", "AVX2, no AVX-512", "2026-12-02 11:00"))
    readme = "intro\n<!-- latest-results -->\nold list\n<!-- /latest-results -->\nrest\n"
    out = bench.update_readme_index(readme, text)
    assert "old list" not in out and out.startswith("intro\n") and out.endswith("rest\n")
    assert ("- [CPU: AMD EPYC (AVX-512)](RESULTS.md#cpu-amd-epyc-avx-512): 2026-12-01 10:00"
            in out)
    assert "(RESULTS.md#cpu-intelr-xeonr-avx2-no-avx-512): 2026-12-02 11:00" in out
    # the committed files carry the markers and a section per machine
    assert "<!-- latest-results -->" in bench.README.read_text()
    listed = bench.results_index(bench.RESULTS.read_text())
    assert listed and all(h.startswith(("CPU", "GPU")) for h, _ in listed)


def test_cpu_flags_name_the_vector_extensions(bench):
    assert bench.flags_label(["fpu", "avx2", "avx512f", "avx512bw"]) == "AVX-512"
    assert bench.flags_label(["fpu", "avx", "avx2", "fma"]) == "AVX2, no AVX-512"
    assert bench.flags_label(["fpu", "sse4_2"]) == "no AVX2"


def test_digits_batches_repeat_past_the_dataset(bench):
    x, y = bench.make_batch("digits", 2000)
    images, labels = bench._digits()
    assert x.shape == (2000, 1, 8, 8) and y.shape == (2000,)
    np.testing.assert_array_equal(x[:len(images)], images)
    np.testing.assert_array_equal(x[len(images):], images[:2000 - len(images)])
    np.testing.assert_array_equal(y[len(images):], labels[:2000 - len(images)])


def test_sweep_times_every_batch_and_measures_growth(bench, monkeypatch):
    monkeypatch.setattr(bench, "SWEEP", {"a": (4, 8), "c": (2, 4)})
    rows = bench.measure_sweep("cpu", None, dict(rounds=1, block_s=0.001))
    assert [(r["key"], r["batch"]) for r in rows] == [("a", 4), ("a", 8), ("c", 2), ("c", 4)]
    assert all(r["minigrad_ms"] > 0 and "torch_ms" not in r for r in rows)
    fake = [{"key": "a", "batch": b, "minigrad_ms": ms, "torch_ms": t}
            for b, ms, t in ((32, 3.2, 6.4), (256, 12.8, 25.6), (4096, 409.6, 204.8))]
    growth = bench.sweep_growth(fake)        # per sample: 0.1, 0.05, 0.1 / 0.2, 0.1, 0.05
    assert growth == {"a": {"minigrad": 2.0, "PyTorch": 1.0}}
    lines = bench.render_sweep([dict(r, ratio=r["minigrad_ms"] / r["torch_ms"], ratio_min=0.4,
                                     ratio_max=2.1, target=0.9) for r in fake])
    assert "| (a) | 4096 | 409.60 ms | 204.80 ms | 2.00 (0.40-2.10) | <= 0.9 | miss | 100.0 / " \
           "50.0 |" in lines
    assert f"| (a) | 2.00 | 1.00 | <= {bench.SWEEP_GROWTH:g} | miss |" in lines


def test_overhead_verdict_is_a_ratio_to_pytorch(bench):
    o = {"minigrad_us": 6.0, "array_us": 0.5, "diff_us": 5.5, "torch_us": 30.0,
         "target": bench.OVERHEAD_TARGET, "ratio": 0.2, "ratio_min": 0.18, "ratio_max": 0.23}
    res = {"device": "cpu", "rounds": 1, "quick": True, "no_torch": None, "train": [], "bn": [],
           "memory": [], "overhead": o, "matmul": {"n": 8, "array_gflops": 1.0,
                                                   "torch_gflops": 1.0},
           "info": {"cpu": "Test CPU", "cpu_flags": "AVX2, no AVX-512", "cores": 2,
                    "threads": 2, "python": "3", "numpy": "2", "minigrad": "0", "torch": "2",
                    "cupy": "-", "gpu": None, "date": "2026-12-01 10:00", "load": 0.1}}
    text = bench.render_section(res)
    assert text.startswith("<!-- results:cpu-test-cpu-avx2-no-avx-512 -->\n"
                           "## CPU: Test CPU (AVX2, no AVX-512)\n")
    assert "| 6.00 us | 30.00 us | 0.20 (0.18-0.23) | <= 0.25 | pass | - |" in text
    assert bench.results_index(text) == [("CPU: Test CPU (AVX2, no AVX-512)",
                                          "2026-12-01 10:00")]


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
