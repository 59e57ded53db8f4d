"""One line describing the machine a benchmark ran on (figures are only comparable within one run)."""

from __future__ import annotations

import os
import platform
import sys


def describe() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import cryptography
        from cryptography.hazmat.backends.openssl import backend

        crypto = f"cryptography {cryptography.__version__} / {backend.openssl_version_text()}"
    except Exception:  # pragma: no cover - informational only
        crypto = "cryptography ?"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.node()}: {cpu}, {os.cpu_count()} cores, load {load:.2f}; Python {sys.version.split()[0]}; "
            f"{crypto}")
