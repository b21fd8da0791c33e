"""The peer of the calibration benchmarks: l0-python 0.6.2 in a venv of its own.

It imports as ``l0`` too, so it runs in a separate interpreter; the benchmarks pass it problems
as ``.npz`` files (:func:`save_problem`) and read back one JSON line.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

PEER_VENV = Path(tempfile.gettempdir()) / "l0-bench-peer-venv"


def peer_python() -> str:
    """The peer venv's interpreter, created (torch 2.13.0 first, never a CUDA build) if missing."""
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        print(f"installing l0-python 0.6.2 into {PEER_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q"]
        quiet = {"check": True, "stderr": subprocess.DEVNULL}
        subprocess.run(pip + ["torch==2.13.0"], **quiet)
        subprocess.run(pip + ["l0-python==0.6.2", "numpy", "scipy"], **quiet)
    return str(python)


def save_problem(M: sp.csr_array, y: np.ndarray, directory: str, name: str) -> str:
    """``M`` (CSR) and ``y`` in one ``.npz`` file; returns its path."""
    path = str(Path(directory) / f"{name}.npz")
    np.savez(path, data=M.data, indices=M.indices, indptr=M.indptr, shape=np.array(M.shape), y=y)
    return path


def load_problem(path: str) -> tuple[sp.csr_matrix, np.ndarray]:
    z = np.load(path)
    M = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    return M, z["y"]
