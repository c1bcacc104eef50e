"""The external programs of the curl + jq baseline, installed with apt-get when missing."""

from __future__ import annotations

import os
import shutil
import subprocess

from bench.processes import BenchError

__all__ = ["ensure_commands"]

# Debian package of each command the baseline runs.
_PACKAGES = {"curl": "curl", "jq": "jq"}
_APT_TIMEOUT = 600.0  # seconds per apt-get call


def ensure_commands(commands: tuple[str, ...] = ("curl", "jq")) -> None:
    """Install the Debian packages of missing commands, as root with apt-get.

    Raises BenchError naming the packages when they are missing and cannot be
    installed here (no apt-get, or not root).
    """
    missing = [command for command in commands if shutil.which(command) is None]
    if not missing:
        return
    packages = sorted(_PACKAGES[command] for command in missing)
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise BenchError(
            f"{', '.join(missing)} not found. Install the packages {' '.join(packages)} "
            "and run the benchmarks again."
        )

    print(f"Installing {' '.join(packages)} with apt-get for the curl + jq baseline.", flush=True)
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", *packages],
    ):
        try:
            subprocess.run(
                argv,
                check=True,
                env=environment,
                timeout=_APT_TIMEOUT,
                stdout=subprocess.DEVNULL,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise BenchError(f"`{' '.join(argv)}` failed: {exc}") from exc
