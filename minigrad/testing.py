"""Gradient checking: compare autograd's gradients with central finite differences.

Shipped with the library because lessons and anyone adding a layer use it: write the op, then
`gradcheck(lambda x: my_op(x), [x])` before trusting it.
"""
import numpy as np

from . import backend
from .tensor import Tensor, no_grad


def _as_float64_leaf(t):
    """A float64 copy (never the caller's array: gradcheck perturbs it in place)."""
    data = t.data if isinstance(t, Tensor) else t
    xp = backend.xp_of(data) if backend.is_array(data) else np
    data = xp.asarray(data)
    if data.dtype.kind not in "f":          # integer class labels and masks stay as they are
        return Tensor(data)
    wants_grad = t.requires_grad if isinstance(t, Tensor) else True
    return Tensor(xp.array(data, dtype=np.float64, copy=True), requires_grad=wants_grad,
                  dtype=np.float64)


def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check d fn(*inputs) / d input against central differences, in float64.

    func:   a function of the input tensors returning a Tensor (any shape).
    inputs: Tensors or arrays. They are copied to float64; the ones with requires_grad=True are
            checked (all of them when none asks for grad). Parameters that fn closes over are not
            checked here: make them inputs, or convert the module with .to(np.float64) first.
    A non-scalar output is reduced to L = sum(out * R) with a fixed random R, so every element
    of the Jacobian contributes. Each checked element is perturbed by +-eps:
        numeric = (L(x + eps) - L(x - eps)) / (2 eps)
    and must satisfy |analytic - numeric| <= atol + rtol * |numeric|.

    Returns True, or raises AssertionError naming the input, the worst element, and both values.

    fn is called many times (twice per checked element), so it must be deterministic. For an
    op with randomness (dropout, noise) either draw the random part once outside fn and close
    over it (a fixed mask: `mask = ...; gradcheck(lambda x: x * mask, [x])`), or reseed inside
    fn (`def fn(x): minigrad.manual_seed(0); return F.dropout(x, 0.5)`), so that every call
    sees the same random numbers.
    """
    fn = func
    tensors = [_as_float64_leaf(t) for t in inputs]
    checked = [i for i, t in enumerate(tensors) if t.requires_grad]
    if not checked:
        checked = [i for i, t in enumerate(tensors) if t.dtype.kind == "f"]
        for i in checked:
            tensors[i].requires_grad = True

    out = fn(*tensors)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    if out.dtype != np.float64:
        raise TypeError(f"gradcheck: fn returned {out.dtype}; finite differences need float64 "
                        "all the way through (convert parameters with module.to(np.float64))")
    xp = backend.xp_of(out.data)
    weights = xp.asarray(np.random.default_rng(seed).standard_normal(out.shape))

    def scalar_loss():
        with no_grad():
            return float((fn(*tensors).data * weights).sum())

    loss = (out * Tensor(weights, dtype=np.float64)).sum()
    loss.backward()

    for i in checked:
        t = tensors[i]
        analytic = backend.to_numpy(t.grad) if t.grad is not None else np.zeros(t.shape)
        numeric = np.zeros(t.shape)
        flat = t.data.reshape(-1)           # a view: perturbing it perturbs t.data
        for k in range(flat.size):
            orig = flat[k].item()
            flat[k] = orig + eps
            plus = scalar_loss()
            flat[k] = orig - eps
            minus = scalar_loss()
            flat[k] = orig
            numeric.reshape(-1)[k] = (plus - minus) / (2 * eps)
        excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if excess.size and excess.max() > 0:
            worst = tuple(int(k) for k in np.unravel_index(int(np.argmax(excess)), t.shape))
            raise AssertionError(
                f"gradcheck failed for input {i} (shape {t.shape}) at index {worst}: "
                f"analytic {analytic[worst]:.10g} vs numeric {numeric[worst]:.10g} "
                f"(|diff| {abs(analytic[worst] - numeric[worst]):.3g} > atol {atol} + rtol {rtol} "
                f"* |numeric|); max |diff| over the input "
                f"{np.abs(analytic - numeric).max():.3g}")
    return True
