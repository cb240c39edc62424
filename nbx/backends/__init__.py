"""Backends: each turns a fusion plan into Python source and loads it."""

from __future__ import annotations


def load_backend(target: str):
    if target == "cpu":
        from . import cpu_backend
        return cpu_backend
    if target == "cuda":
        from . import cuda_backend
        return cuda_backend
    if target == "cuda-ufunc":
        from . import cuda_ufunc
        return cuda_ufunc
    raise ValueError(f"unknown target {target!r}")
