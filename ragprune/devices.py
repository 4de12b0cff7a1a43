"""Which device to run on by default, and how to name the hardware a measurement ran on."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def default_device() -> str:
    """``"cuda"`` when a CUDA GPU is visible, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo`` where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_hardware(device: str) -> str:
    """For benchmark tables: the GPU's name for a CUDA device, else the CPU's name, cores and threads."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{cpu_name()} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
