"""A Docker engine for the lab: use a running one, else (root on Debian) install and start it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import docker
import docker.errors

from clinicops.errors import ClinicopsError

ENGINE_LOG = Path("/var/log/clinicops-dockerd.log")
ENGINE_START_TIMEOUT = 60.0
HOST_TOOLS = (("docker.io", "dockerd"), ("debootstrap", "debootstrap"))


def _client() -> docker.DockerClient | None:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except docker.errors.DockerException:
        return None


def _is_debian() -> bool:
    return Path("/etc/debian_version").is_file()


def ensure_host_tools(log=print) -> None:
    """Install the Debian packages the lab needs on this machine (docker.io, debootstrap)."""
    missing = [pkg for pkg, binary in HOST_TOOLS if not shutil.which(binary)]
    if not missing:
        return
    if os.geteuid() != 0 or not _is_debian():
        raise ClinicopsError(
            f"the lab needs {', '.join(missing)}; install them (Debian: apt-get install "
            f"{' '.join(missing)}) or run clinicops as root on Debian so it can"
        )
    log(f"installing {', '.join(missing)} from Debian (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ClinicopsError(
                f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-400:]}; nothing else was changed"
            )


def _start_engine(log) -> docker.DockerClient:
    log(f"starting dockerd (log: {ENGINE_LOG})")
    with open(ENGINE_LOG, "ab") as out:
        subprocess.Popen(["dockerd"], stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + ENGINE_START_TIMEOUT
    while time.monotonic() < deadline:
        client = _client()
        if client is not None:
            return client
        time.sleep(0.5)  # polling the engine socket: there is no event to wait on
    raise ClinicopsError(f"dockerd did not answer within {ENGINE_START_TIMEOUT:.0f}s; see {ENGINE_LOG}")


def ensure_engine(log=print) -> docker.DockerClient:
    """Return a client of a running engine, installing and starting one when allowed."""
    client = _client()
    if client is not None:
        return client
    if os.geteuid() != 0 or not _is_debian():
        raise ClinicopsError(
            "no Docker engine is running. Start one (e.g. `sudo systemctl start docker`) or run "
            "`clinicops lab up` as root on Debian so it can install docker.io and start dockerd."
        )
    ensure_host_tools(log)
    return _start_engine(log)
