"""Offline pip installs of plugin packages into a site folder of their own (shared by tests).

Installing with ``--target`` never modifies the shared environment, so nothing needs
uninstalling and concurrent test runs never see the package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def pip_install_target(package_dir: Path, target: Path) -> None:
    """Build and install ``package_dir`` with pip, offline, into ``target``."""
    cmd = [
        sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
        "--no-cache-dir", "--disable-pip-version-check", "--quiet", "--target", str(target), str(package_dir),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"pip install of {package_dir} failed:\n{done.stdout}\n{done.stderr}"


def install_to_target(package_dir: Path, workdir: Path) -> Path:
    """Copy ``package_dir`` (so the build leaves no files in the repository) and install it into
    ``workdir/site``; returns that folder."""
    src = workdir / "src-copy"
    shutil.copytree(package_dir, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "dist"))
    site = workdir / "site"
    pip_install_target(src, site)
    return site
