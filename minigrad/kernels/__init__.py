"""Fast kernels: performance engineering, safe to skip on a first read.

The ops in ops.py and functional.py are the definitions, written as the lessons write the math.
A kernel is a faster `Function` with the same inputs and outputs as the op it stands in for
(tests/test_kernels.py proves the results equal). Kernels are on by default; one switch runs
everything on the reference ops:

    minigrad.kernels.use_fast(False)          # from now on, reference ops only
    with minigrad.kernels.reference():        # reference ops inside the block only
        ...

`cpu.py` holds the kernels, tuned for NumPy; they use `ctx.xp` only, so they run unchanged on
CuPy. Lesson 12 reads them side by side with the reference ops.
"""
import contextlib

_fast = True
KERNELS = {}        # reference Function -> fast Function


def stands_in_for(reference_op):
    """Class decorator: register the decorated Function as the fast version of reference_op."""
    def register(kernel):
        KERNELS[reference_op] = kernel
        return kernel
    return register


def pick(op):
    """The Function to run for the reference op `op`: its kernel when kernels are on."""
    return KERNELS.get(op, op) if _fast else op


def use_fast(enabled=True):
    """Turn the fast kernels on (the default) or off for the whole process."""
    global _fast
    _fast = bool(enabled)


def fast_enabled():
    return _fast


class reference(contextlib.ContextDecorator):
    """Context manager (and decorator) that runs the reference ops inside its block."""

    def __enter__(self):
        self._previous = _fast
        use_fast(False)
        return self

    def __exit__(self, *exc):
        use_fast(self._previous)
