"""The clinic host image: Debian bookworm with systemd and the services of a clinic.

No registry is reachable, so the image is built from Debian's own packages: debootstrap makes a
root file system with every package of ``lab/image/packages.txt``, it is imported as a base
image, and ``lab/image/Dockerfile`` adds the container drop-ins. The tag is a hash of the recipe,
so the image is rebuilt exactly when the recipe changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from clinicops.errors import ClinicopsError
from clinicops.lab.engine import ensure_host_tools

IMAGE_REPOSITORY = "clinicops-clinic"
BASE_REPOSITORY = "clinicops-clinic-base"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"


@dataclass(frozen=True)
class ImageRecipe:
    directory: Path

    def files(self) -> list[Path]:
        return sorted(path for path in self.directory.rglob("*") if path.is_file())

    def packages(self) -> list[str]:
        lines = (self.directory / "packages.txt").read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip() and not line.startswith("#")]

    @property
    def tag(self) -> str:
        digest = hashlib.sha256()
        for path in self.files():
            digest.update(str(path.relative_to(self.directory)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        return digest.hexdigest()[:12]

    @property
    def image(self) -> str:
        return f"{IMAGE_REPOSITORY}:{self.tag}"


def _image_exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-800:]
        raise ClinicopsError(f"{what} failed ({argv[0]} exited {done.returncode}): {tail}")


def _build_base(client: docker.DockerClient, recipe: ImageRecipe, base: str, log) -> None:
    mirror = os.environ.get("CLINICOPS_DEBIAN_MIRROR", DEFAULT_MIRROR)
    workdir = Path(tempfile.mkdtemp(prefix="clinicops-rootfs-", dir="/var/tmp"))
    try:
        rootfs = workdir / "rootfs"
        log(f"debootstrap {SUITE} with {len(recipe.packages())} packages (about 2 minutes)")
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(recipe.packages())}",
                SUITE,
                str(rootfs),
                mirror,
            ],
            "debootstrap of the clinic image",
        )
        tarball = workdir / "rootfs.tar"
        _run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."], "packing the rootfs")
        shutil.rmtree(rootfs)
        log(f"importing the root file system as {base}")
        repository, tag = base.split(":")
        client.api.import_image_from_file(
            str(tarball), repository=repository, tag=tag, changes=['CMD ["/lib/systemd/systemd"]']
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def ensure_image(client: docker.DockerClient, recipe: ImageRecipe, log=print) -> str:
    """Return the clinic image name, building it only when this recipe was never built."""
    image = recipe.image
    if _image_exists(client, image):
        return image
    ensure_host_tools(log)
    base = f"{BASE_REPOSITORY}:{recipe.tag}"
    if not _image_exists(client, base):
        _build_base(client, recipe, base, log)
    log(f"building {image}")
    try:
        client.images.build(
            path=str(recipe.directory),
            tag=image,
            buildargs={"BASE": base},
            rm=True,
            labels={"clinicops.recipe": recipe.tag},
        )
    except docker.errors.BuildError as exc:
        lines = [str(item.get("stream", item.get("error", ""))).strip() for item in exc.build_log]
        raise ClinicopsError(f"building {image} failed: {exc.msg}; last output: {lines[-5:]}") from exc
    return image
