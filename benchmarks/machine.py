"""What the benchmark scripts share: the machine they ran on, and the result-mismatch error."""

from __future__ import annotations

import os
import platform


class Mismatch(AssertionError):
    """A benchmarked implementation gave a wrong result: its time means nothing."""


def loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
