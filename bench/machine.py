"""Machine and build facts the benchmarks print, shared by ridge.py and extract.py."""

from __future__ import annotations

import os
import platform
import subprocess
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
