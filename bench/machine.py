"""Machine and build facts the benchmarks print, and the per-stage time and
memory meter they share."""

from __future__ import annotations

import os
import platform
import contextlib
import re
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "runner-target"))


def load() -> str:
    """The 1-minute load average: other work on the machine skews the timings."""
    return f"load {os.getloadavg()[0]:.2f}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cmd_output(cmd) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def lock_version(crate: str) -> str:
    try:
        lines = (REPO / "Cargo.lock").read_text().splitlines()
    except OSError:
        return "unknown"
    for i, line in enumerate(lines):
        if line == f'name = "{crate}"' and i + 1 < len(lines):
            return lines[i + 1].split("=", 1)[1].strip().strip('"')
    return "unknown"


# ------------------------------------------------------------------- memory

def peak_mib() -> float:
    """Peak resident memory since the last reset_peak (VmHWM), in MiB."""
    m = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(m.group(1)) / 1024


def reset_peak():
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


class Stages(dict):
    """Wall seconds, CPU seconds and peak memory of each named stage."""

    @contextlib.contextmanager
    def __call__(self, name):
        reset_peak()
        t0, c0 = time.perf_counter(), time.process_time()
        yield
        self[name] = {"s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                      "peak_mib": peak_mib()}
