"""Where to compute and with how many threads: CUDA, Apple MPS or CPU, picked automatically."""

from __future__ import annotations

import os


def cpu_cores() -> int:
    """Cores this process may use (respects CPU affinity, e.g. in containers and CI)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def torch_threads() -> int:
    """Threads for a small model on CPU: one, on every machine. Small-batch MLP steps gain little from more,
    an OpenMP thread per core spins on barriers whenever another process takes a core (measured: 2.5x slower
    than 1 thread on a busy 2-core machine), and the result then depends on the core count (measured: the
    same MLP fit with 1 and 3 threads differs by 1e-5 in its probabilities, enough to move early stopping)."""
    return 1


def use_every_core(device: str) -> None:
    """On the CPU, torch threads on every core: convolutions, LSTMs, encoders and wide matmuls use them all."""
    import torch

    if device == "cpu" and torch.get_num_threads() != cpu_cores():
        torch.set_num_threads(cpu_cores())


def torch_device(choice: str = "auto") -> str:
    """``auto`` -> ``cuda`` if available, else ``mps``, else ``cpu``; an explicit choice is checked."""
    import torch

    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
    if choice == "auto":
        return next(d for d in ("cuda", "mps", "cpu") if available[d])
    if not available.get(choice, False):
        raise ValueError(f"device {choice!r} is not available here; use auto or cpu")
    return choice


def xgboost_device(choice: str = "auto") -> str:
    """XGBoost runs on CUDA or CPU (no MPS): ``auto`` picks CUDA when a GPU is visible."""
    if choice != "auto":
        return choice
    return "cuda" if torch_device("auto") == "cuda" else "cpu"
