"""Run ``ansible-test sanity`` on the collection, offline except for the Python package index.

``make sanity`` runs this with the project venv's Python. Idempotent; exits non-zero when any sanity test fails.

Two things stand between ``ansible-test sanity`` and this checkout:

* ansible-test lists a collection's files with git, or else by walking the directory without following
  symlinks. ``build/collections/ansible_collections/<ns>/<name>`` is a tree of symlinks inside a git checkout
  that ignores ``build/``, so ansible-test sees no files there, skips every test and exits 0. The script
  copies that tree, following the links, to ``build/sanity/ansible_collections/<ns>/<name>`` and runs
  ansible-test in the copy. Reported paths are relative to the collection root, the same as in the checkout.
* ansible-test bootstraps pip into each sanity virtual environment with pip's ``get-pip.py``, downloaded
  from ci-files.testing.ansible.com, which is unreachable offline. The script writes a stand-in to the
  cache path ansible-test looks at first (bundled pip via ``ensurepip``, then the pip version ansible-test
  asks for from the configured package index). The virtual environments are cached in
  ``~/.ansible/test/venv``, so only the first run installs anything.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import types
from collections.abc import Iterable
from pathlib import Path

import yaml

from clinicops.project import collections_root, project_root

# Sanity tests not run, each with the reason. Empty: every test runs (the whole suite takes ~15 s once cached).
SKIPPED_TESTS: dict[str, str] = {}

GET_PIP_STANDIN = '''\
"""Offline stand-in for pip's get-pip.py, written by clinicops tests/sanity/run_sanity.py.

ansible-test runs get-pip.py to put pip into the empty virtual environments of its sanity tests and
downloads it from ci-files.testing.ansible.com. This does the same with the interpreter's bundled pip
(ensurepip), then installs the packages ansible-test asked for (pip==<version>) from the package index.
"""

import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")  # get-pip.py options that pip install does not know


def run(*args):
    """Run python -m <args>, print its output only if it fails."""
    done = subprocess.run([sys.executable, "-m", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.stdout.write(done.stdout.decode("utf-8", "replace"))
        sys.exit(done.returncode)


def main():
    run("ensurepip")
    run("pip", "install", *[arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY])
    if "--no-setuptools" in sys.argv:  # ensurepip installs setuptools on Python < 3.12; get-pip.py would not
        run("pip", "uninstall", "--yes", "setuptools")


if __name__ == "__main__":
    main()
'''


def main() -> int:
    started = time.monotonic()
    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    tree = sanity_tree(project_root(), collection_tree())
    install_get_pip_standin(bootstrap_pip_version(python_version))
    status = run_ansible_test(tree, python_version)
    print(f"sanity: {'passed' if status == 0 else 'FAILED'} in {time.monotonic() - started:.0f} s")
    return status


def collection_tree() -> Path:
    """The symlinked collection tree, (re)made the way `make collection` does."""
    base = collections_root()
    meta = yaml.safe_load((project_root() / "galaxy.yml").read_text(encoding="utf-8"))
    return base / "ansible_collections" / meta["namespace"] / meta["name"]


def sanity_tree(root: Path, source: Path) -> Path:
    """A plain copy of the collection tree (links followed) for ansible-test, replacing the previous one."""
    copy = root / "build" / "sanity" / source.relative_to(source.parents[2])
    print(f"+ copy {source} -> {copy} (following links)")
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(source, copy, ignore=_not_content, ignore_dangling_symlinks=True)
    return copy


def _not_content(directory: str, names: list[str]) -> set[str]:
    """Byte code and earlier ansible-test results: not collection content, ansible-test flags them."""
    ignored = {name for name in names if name == "__pycache__" or name.endswith((".pyc", ".pyo"))}
    if Path(directory).name == "tests":
        ignored.update(name for name in names if name == "output")
    return ignored


def bootstrap_pip_version(python_version: str) -> str:
    """The pip version ansible-test bootstraps into sanity virtual environments (names get_pip_<version>.py)."""
    try:
        from ansible_test._internal.python_requirements import get_venv_packages
    except ImportError as exc:
        raise SystemExit(f"cannot find ansible-test's pip version: {exc}") from exc
    return get_venv_packages(types.SimpleNamespace(version=python_version))["pip"]


def install_get_pip_standin(pip_version: str) -> None:
    """Write the get-pip.py stand-in where ansible-test caches get-pip.py, unless it is already there."""
    path = Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{pip_version.replace('.', '_')}.py"
    if path.is_file() and path.read_text(encoding="utf-8") == GET_PIP_STANDIN:
        return
    print(f"+ write {path} (offline stand-in for pip {pip_version}'s get-pip.py)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(GET_PIP_STANDIN, encoding="utf-8")


def ansible_test_command(python_version: str) -> list[str]:
    ansible_test = Path(sys.executable).parent / "ansible-test"  # the one installed with this Python's ansible-core
    command = [str(ansible_test), "sanity", "--requirements", "--python", python_version]
    for test in SKIPPED_TESTS:
        command += ["--skip-test", test]
    return command


def ansible_test_env(tree: Path) -> dict[str, str]:
    """This environment plus ANSIBLE_TEST_CONTENT_ROOT: ansible-test then lists the copy's files itself.

    Otherwise it asks the enclosing checkout's git, which ignores build/, and skips every test. (ansible-test
    passes only a few variables, such as PATH and HOME, on to the tests it runs.)
    """
    return {**os.environ, "ANSIBLE_TEST_CONTENT_ROOT": str(tree)}


def run_ansible_test(tree: Path, python_version: str) -> int:
    """Run the sanity tests in the copy, streaming the output; a run that tested nothing fails."""
    command = ansible_test_command(python_version)
    for test, reason in SKIPPED_TESTS.items():
        print(f"skipping sanity test {test}: {reason}")
    env = ansible_test_env(tree)
    print(f"+ cd {tree} && ANSIBLE_TEST_CONTENT_ROOT={tree} {shlex.join(command)}", flush=True)
    with subprocess.Popen(
        command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        tests_run = count_tests_run(process.stdout or ())
    if process.returncode == 0 and tests_run == 0:
        print("ERROR: ansible-test ran no sanity test (it found no collection files?)")
        return 1
    return process.returncode


def count_tests_run(lines: Iterable[str]) -> int:
    """Echo ansible-test's output and count the tests it ran."""
    count = 0
    for line in lines:
        print(line, end="", flush=True)
        if line.startswith("Running sanity test"):
            count += 1
    return count


if __name__ == "__main__":
    sys.exit(main())
