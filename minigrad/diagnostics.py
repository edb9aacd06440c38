"""bn_report(model, loader): is each BatchNorm's running statistics right for the data it sees?

The most common BatchNorm bug in practice is a model that is good in training mode and bad in
eval mode. The report measures, per BatchNorm layer, its running statistics against the
population statistics of its input over the loader, the channels whose input barely varies, and
the whole model's train-mode vs eval-mode output gap; then it tries update_bn on a copy and says
in words which layer is off and what to do. The model is left exactly as it was found.
"""
import copy
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from . import backend
from .nn import _BatchNorm
from .nn_utils import update_bn
from .tensor import Tensor, no_grad

__all__ = ["bn_report", "BNReport", "LayerReport"]


@dataclass
class LayerReport:
    """One BatchNorm layer. Shifts are in population standard deviations, per channel:
    mean_shift = |running_mean - mean| / sqrt(var + eps), var_ratio = (running_var + eps) / (var
    + eps), where mean and var are the population statistics of the layer's eval-mode input."""
    name: str
    kind: str
    num_features: int
    eps: float
    values_per_example: int                  # m per example: H*W after a conv, 1 after a Linear
    tracked: bool                            # False: track_running_stats=False, nothing to check
    count: int = 0                           # values per channel seen over the loader
    max_mean_shift: float = 0.0
    mean_shift_channel: int = 0
    worst_var_ratio: float = 1.0             # the ratio farthest from 1 (in log scale)
    var_ratio_channel: int = 0
    vanishing_channels: list = field(default_factory=list)   # population var < eps
    off: bool = False
    mean_shift: list = field(default_factory=list)           # per channel
    var_ratio: list = field(default_factory=list)            # per channel


@dataclass
class BNReport:
    """What bn_report measured; `to_dict()` is JSON-serialisable, `str(report)` reads as text."""
    layers: list
    batches: int
    examples: int
    output_gap: float                   # ||out_batch_stats - out_eval|| / ||out_eval||
    accuracy_eval: float = None         # when the loader gives labels and the model logits
    accuracy_batch_stats: float = None
    agreement: float = None             # fraction of equal predictions in the two modes
    skipped_batches: int = 0            # batches BatchNorm refused (one value per channel)
    recalibrated: dict = None           # the same measures after update_bn on a copy
    findings: list = field(default_factory=list)    # stale_stats, batch_dependence,
    advice: list = field(default_factory=list)      # vanishing_variance; what to do, in words

    def to_dict(self):
        return asdict(self)

    @property
    def healthy(self):
        return not self.findings

    def __str__(self):
        return _render(self)


def bn_report(model, loader, mean_tol=0.5, var_tol=2.0, agree_tol=0.95, recalibrate=True):
    """Check every BatchNorm layer of `model` on the data of `loader`; returns a BNReport.

    loader:  re-iterable batches (a DataLoader, or a list): a Tensor, or a tuple whose first
             element is the input and whose second, if integer, is the labels.
    A layer is off when a channel's running mean is more than `mean_tol` population standard
    deviations from the population mean of the layer's eval-mode input over the loader, or its
    running variance is more than `var_tol` times too large or too small. For a classifier
    (2-D output) the eval-mode predictions are compared with the predictions made with batch
    statistics; fewer than `agree_tol` equal is a gap. With recalibrate=True everything is
    measured again on a copy recalibrated by update_bn(loader, copy): stale statistics are fixed
    by that, a model that depends on the batch itself (trained with small batches) is not.
    Model state (modes, running statistics, num_batches_tracked, momentum) is left as found.
    """
    if recalibrate and iter(loader) is loader:
        raise TypeError("bn_report with recalibrate=True needs a loader it can iterate several "
                        "times (a DataLoader or a list of batches), not a one-shot iterator or "
                        "generator; pass recalibrate=False to measure in one pass")
    layers, measured = _measure(model, loader, mean_tol, var_tol)
    report = BNReport(layers=layers, **measured)
    if recalibrate and any(layer.tracked for layer in layers):
        twin = copy.deepcopy(model)
        # batches of one are left out, as in the batch-statistics pass: BatchNorm after a
        # Linear layer cannot take them in train mode
        update_bn((b for b in loader if len(_split(b)[0]) > 1), twin)
        twin_layers, twin_measured = _measure(twin, loader, mean_tol, var_tol)
        report.recalibrated = dict(
            output_gap=twin_measured["output_gap"],
            agreement=twin_measured.get("agreement"),
            accuracy_eval=twin_measured.get("accuracy_eval"),
            layers_off=[layer.name for layer in twin_layers if layer.off])
    _conclude(report, agree_tol)
    return report


# ---- measuring ----------------------------------------------------------------------------------
class _Moments:
    """Per-channel count, mean and M2 (sum of squared deviations) over many batches, combined with
    the parallel formula of Chan, Golub & LeVeque (no E[x^2] - E[x]^2 cancellation)."""

    def __init__(self):
        self.n, self.examples, self.mean, self.m2 = 0, 0, None, None

    def add(self, x):
        axes = (0,) + tuple(range(2, x.ndim))                # every axis but the channels
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        x = x.astype(np.float64)
        n = x.size // x.shape[1]
        mean = x.mean(axis=axes)
        m2 = backend.to_numpy(((x - mean.reshape(shape)) ** 2).sum(axis=axes))
        mean = backend.to_numpy(mean)
        self.examples += x.shape[0]
        if self.n == 0:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta ** 2 * self.n * n / total
        self.n = total


def _split(batch):
    if isinstance(batch, (list, tuple)):
        x = batch[0]
        y = batch[1] if len(batch) > 1 and isinstance(batch[1], Tensor) else None
        return x, (y if y is not None and y.dtype.kind in "iu" else None)
    return batch, None


def _measure(model, loader, mean_tol, var_tol):
    """One pass over the loader: each batch runs in eval mode (BatchNorm inputs recorded), then
    with batch statistics (BatchNorm layers alone in train mode, their running statistics put
    back at once, so the next batch's eval pass sees them unchanged)."""
    bns = [(name or type(m).__name__, m) for name, m in model.named_modules()
           if isinstance(m, _BatchNorm)]
    modes = [(m, m.training) for m in model.modules()]
    saved = [(bn, bn.momentum, [None if b is None else b.data.copy() for b in _buffers(bn)])
             for _, bn in bns]
    moments = {id(bn): _Moments() for _, bn in bns}
    recording = [False]

    def record(module, inputs, out):
        if recording[0]:
            moments[id(module)].add(inputs[0].data)

    handles = [bn.register_forward_hook(record) for _, bn in bns]
    outputs, labels, batch_outputs = [], [], []
    try:
        model.eval()
        with no_grad():
            for batch in loader:
                x, y = _split(batch)
                recording[0] = True
                outputs.append(_run(model, x))
                recording[0] = False
                labels.append(None if y is None else backend.to_numpy(y.data))
                for _, bn in bns:
                    bn.training = True
                batch_outputs.append(None if outputs[-1] is None else _run(model, x))
                for _, bn in bns:
                    bn.training = False
                _put_back(saved)
    finally:
        for h in handles:
            h.remove()
        _put_back(saved)
        for m, training in modes:
            m.training = training
    layers = [_layer_report(name, bn, moments[id(bn)], mean_tol, var_tol) for name, bn in bns]
    pairs = [(e, b) for e, b in zip(outputs, batch_outputs) if b is not None]
    gap_num = sum(float(((b - e) ** 2).sum()) for e, b in pairs)
    gap_den = sum(float((e ** 2).sum()) for e, _ in pairs)
    measured = dict(batches=len(outputs), examples=sum(len(e) for e, _ in pairs),
                    output_gap=math.sqrt(gap_num / gap_den) if gap_den > 0 else 0.0,
                    skipped_batches=len(outputs) - len(pairs))
    measured.update(_accuracies(outputs, batch_outputs, labels))
    return layers, measured


def _run(model, x):
    """The model's output as a float64 host array, or None for a batch that BatchNorm refuses
    in train mode (one value per channel: nothing to compute batch statistics from)."""
    try:
        return backend.to_numpy(model(x).data).astype(np.float64)
    except ValueError as exc:
        if "Expected more than 1 value per channel" not in str(exc):
            raise
        return None


def _buffers(bn):
    return [bn.running_mean, bn.running_var, bn.num_batches_tracked]


def _put_back(saved):
    """Restore each BatchNorm's momentum and buffers (in place) from the copies taken first."""
    for bn, momentum, buffers in saved:
        bn.momentum = momentum
        for b, data in zip(_buffers(bn), buffers):
            if b is not None:
                b.data[...] = data


def _layer_report(name, bn, moments, mean_tol, var_tol):
    report = LayerReport(name=name, kind=type(bn).__name__, num_features=bn.num_features,
                         eps=float(bn.eps), values_per_example=1,
                         tracked=bn.running_mean is not None)
    if moments.n == 0:                    # the layer never ran (an unused branch)
        return report
    report.count = int(moments.n)
    report.values_per_example = int(moments.n // moments.examples)
    var = moments.m2 / max(moments.n - 1, 1)             # unbiased, like running_var
    report.vanishing_channels = [int(c) for c in np.flatnonzero(var < bn.eps)]
    if not report.tracked:
        return report
    rm = backend.to_numpy(bn.running_mean.data).astype(np.float64)
    rv = backend.to_numpy(bn.running_var.data).astype(np.float64)
    shift = np.abs(rm - moments.mean) / np.sqrt(var + bn.eps)
    ratio = (rv + bn.eps) / (var + bn.eps)
    worst = int(np.argmax(np.abs(np.log(ratio))))
    report.mean_shift = [float(v) for v in shift]
    report.var_ratio = [float(v) for v in ratio]
    report.max_mean_shift, report.mean_shift_channel = float(shift.max()), int(shift.argmax())
    report.worst_var_ratio, report.var_ratio_channel = float(ratio[worst]), worst
    report.off = bool(shift.max() > mean_tol or abs(math.log(ratio[worst])) > math.log(var_tol))
    return report


def _accuracies(outputs, batch_outputs, labels):
    """Accuracy in eval mode and with batch statistics, and how often the two predict alike."""
    pairs = [(e, b, y) for e, b, y in zip(outputs, batch_outputs, labels)
             if e is not None and b is not None]
    if not pairs or any(e.ndim != 2 for e, _, _ in pairs):
        return {}
    eval_pred = np.concatenate([e.argmax(1) for e, _, _ in pairs])
    batch_pred = np.concatenate([b.argmax(1) for _, b, _ in pairs])
    out = dict(agreement=float((eval_pred == batch_pred).mean()))
    if all(y is not None and len(y) == len(e) for e, _, y in pairs):
        y = np.concatenate([y for _, _, y in pairs])
        out.update(accuracy_eval=float((eval_pred == y).mean()),
                   accuracy_batch_stats=float((batch_pred == y).mean()))
    return out


# ---- conclusions, in words -----------------------------------------------------------------------
def _conclude(report, agree_tol):
    off = [layer for layer in report.layers if layer.off]
    recal = report.recalibrated
    gap = report.agreement is not None and report.agreement < agree_tol
    if off:
        first = off[0]
        report.advice.append(
            f"Layer '{first.name}' ({first.kind}) is the first whose running statistics do not "
            f"describe its input: running mean up to {first.max_mean_shift:.2f} population "
            f"standard deviations off (channel {first.mean_shift_channel}), running variance "
            f"x{first.worst_var_ratio:.3g} the population's (channel {first.var_ratio_channel})."
            + (" The layers after it see its output, so their numbers may follow from it."
               if len(off) > 1 else ""))
    if gap:
        report.advice.append(
            f"Eval mode and batch statistics predict differently for {1 - report.agreement:.1%} "
            "of the examples.")
    still = (recal is not None and recal["agreement"] is not None
             and recal["agreement"] < agree_tol)
    if still:
        report.findings.append("batch_dependence")
        report.advice.append(
            f"Recalibrating does not remove the gap (on a recalibrated copy they still differ "
            f"for {1 - recal['agreement']:.1%}): the model depends on the statistics of each "
            "batch itself, as after training with small batches; worst where a BatchNorm sees "
            "one value per example and channel (after a Linear layer"
            + "".join(f", '{layer.name}'" for layer in report.layers
                      if layer.values_per_example == 1)
            + "). Train with larger batches, or replace BatchNorm by GroupNorm or LayerNorm "
            "(no batch statistics), or use Batch Renormalization.")
    elif off or gap:
        report.findings.append("stale_stats")
        effect = ""
        if recal is not None:
            parts = []
            if recal["agreement"] is not None:
                parts.append(f"predictions agree {report.agreement:.1%} -> "
                             f"{recal['agreement']:.1%}")
            if recal["accuracy_eval"] is not None:
                parts.append(f"eval accuracy {report.accuracy_eval:.3f} -> "
                             f"{recal['accuracy_eval']:.3f}")
            parts.append("layers off: " + (", ".join(recal["layers_off"]) or "none"))
            effect = " On a copy it gives: " + "; ".join(parts) + "."
        report.advice.append(
            "Recalibrate: nn.utils.update_bn(train_loader, model) recomputes every running "
            "statistic with the final weights." + effect + " Common causes: a forward pass in "
            "train mode during evaluation (model.eval() forgotten), too few steps for the "
            "momentum, or weights changed after the statistics were taken.")
    vanishing = [layer for layer in report.layers if layer.vanishing_channels]
    if vanishing:
        report.findings.append("vanishing_variance")
        report.advice.append(
            "Channels whose input barely varies (population variance below eps, so eps, not the "
            "data, sets their scale): " + "; ".join(
                f"'{layer.name}' channels {_short(layer.vanishing_channels)}"
                for layer in vanishing)
            + ". Usually dead units in the layer before (a ReLU that never fires, a constant "
            "input channel): check its initialisation and learning rate, or prune them.")
    if not report.findings:
        report.advice.append("Healthy: every running statistic matches the population "
                             "statistics of its input, and eval mode agrees with batch "
                             "statistics.")


def _short(items, limit=8):
    return str(items) if len(items) <= limit else f"{items[:limit]}".rstrip("]") + ", ...]"


def _pct(v):
    return "-" if v is None else f"{v:.3f}"


def _render(r):
    lines = [f"BatchNorm report: {len(r.layers)} layer(s), {r.examples} examples in {r.batches} "
             f"batches" + (f" ({r.skipped_batches} of one example skipped in train mode)"
                           if r.skipped_batches else "")]
    if r.layers:
        lines.append(f"  {'layer':<24} {'C':>4} {'m/ex':>5} {'mean off (sd)':>16} "
                     f"{'var ratio':>16} {'var<eps':>8}  status")
    for layer in r.layers:
        name = f"{layer.name} ({layer.kind})"
        if layer.tracked and layer.count:
            shift = f"{layer.max_mean_shift:.3f} [ch {layer.mean_shift_channel}]"
            ratio = f"x{layer.worst_var_ratio:.3g} [ch {layer.var_ratio_channel}]"
        else:
            shift = ratio = "no running stats" if not layer.tracked else "not run"
        status = "OFF" if layer.off else "ok"
        lines.append(f"  {name:<24} {layer.num_features:>4} {layer.values_per_example:>5} "
                     f"{shift:>16} {ratio:>16} {len(layer.vanishing_channels):>8}  {status}")
    lines.append(f"Eval mode vs batch statistics: output gap {r.output_gap:.1%}"
                 + (f", predictions agree {r.agreement:.1%}" if r.agreement is not None else "")
                 + (f"; accuracy eval {_pct(r.accuracy_eval)}, batch statistics "
                    f"{_pct(r.accuracy_batch_stats)}" if r.accuracy_eval is not None else ""))
    if r.recalibrated is not None:
        rc = r.recalibrated
        lines.append(f"After update_bn on a copy: output gap {rc['output_gap']:.1%}"
                     + (f", predictions agree {rc['agreement']:.1%}"
                        if rc["agreement"] is not None else "")
                     + (f", eval accuracy {_pct(rc['accuracy_eval'])}"
                        if rc["accuracy_eval"] is not None else "")
                     + f", layers off {rc['layers_off'] or 'none'}")
    lines += [f"- {a}" for a in r.advice]
    return "\n".join(lines)
