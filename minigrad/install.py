"""How to install the GPU extras, worded for the way this copy of minigrad was installed.

From a source checkout (an editable install, or running inside the repository) the extras come
from the checkout: `pip install -e ".[cuda12]"`. Asking the package index for `minigrad[cuda12]`
there would fetch whatever the index holds under that name instead.
"""
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def source_checkout():
    """The repository folder when this package runs from a source checkout, else None.

    A checkout has minigrad's pyproject.toml next to the package folder; an installed wheel
    sits in site-packages, where no such file is.
    """
    root = PACKAGE_DIR.parent
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return None
    return root if 'name = "minigrad"' in text else None


def cuda_install_hint():
    """One sentence: the pip command that installs CuPy for this copy of minigrad."""
    root = source_checkout()
    if root is not None:
        return (f'in the source checkout ({root}) run pip install -e ".[cuda12]" for CUDA 12.x '
                'drivers or pip install -e ".[cuda13]" for CUDA 13.x')
    return ("pip install 'minigrad[cuda12]' for CUDA 12.x drivers or pip install "
            "'minigrad[cuda13]' for CUDA 13.x")
