#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: package_updates
short_description: Apply the OS package updates of a maintenance window (security only by default) and report them
version_added: 0.1.0
description:
  - Updates the packages of a Debian clinic host with python3-apt, the way C(apt-get upgrade) does,
    and reports exactly what it upgraded, what it held back and why, what it left out, the systemd
    services that run upgraded code and whether the host needs a reboot.
  - With O(updates=security) (the default, like unattended-upgrades) a package is upgraded only when
    its candidate version (the version APT would install) itself comes from a security origin
    (O(security_origins)). That some version of the package is in a security repository is not
    enough; a security version that is not the candidate (because APT pinning prefers another) is
    reported in RV(held_back), never installed instead.
  - The upgrade never installs a new package and never removes one (except with O(autoremove=true)).
    An upgrade that would need a new dependency, a removal or an upgrade this run does not take
    (excluded, held, not a security update) is kept back and reported in RV(held_back) with the
    reason; the other upgrades still go ahead.
  - Packages matching O(exclude), and packages on dpkg hold (C(apt-mark hold)), are never upgraded.
  - dpkg runs non-interactively (C(DEBIAN_FRONTEND=noninteractive)) and keeps the host's changed
    configuration files (C(--force-confdef --force-confold), C(UCF_FORCE_CONFFOLD)). needrestart's
    APT hook is suspended (C(NEEDRESTART_SUSPEND)); restarting services is left to the runbook, which
    gets them in RV(services_to_restart).
  - The dpkg lock is taken before anything else (waiting up to O(lock_timeout) for another APT or dpkg,
    for example unattended-upgrades), and held until the end. If it cannot be had, the task fails
    and nothing is changed, not even the package lists.
  - Each upgrade is installed in a dpkg run of its own (with the selected upgrades it needs), like
    unattended-upgrades' minimal steps, in the order of the package names; so a package whose
    installation fails leaves the ones before it upgraded and configured. The first failure (a full
    disk, a failing maintainer script) stops the run, and the task fails saying, from what dpkg reports
    afterwards, which packages were upgraded, which were not, and which were left unfinished (for
    C(dpkg --configure -a)).
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
attributes:
  check_mode:
    support: full
    details:
      - Plans the same upgrade on the package cache and reports what would be upgraded, held back,
        excluded and autoremoved, and the services that run the packages' current binaries. It
        takes no lock, does not update the package lists (the plan uses the lists as they are; the
        message says so when they are older than O(cache_valid_time)) and changes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Once the selected upgrades are installed, a second run finds none and reports no change.
options:
  updates:
    description:
      - V(security) upgrades only the packages whose candidate comes from a security origin.
      - V(all) upgrades every package that has a newer candidate, like C(apt-get upgrade).
    type: str
    choices: [security, all]
    default: security
  update_cache:
    description:
      - Update the package lists (C(apt-get update)) first, unless they are younger than O(cache_valid_time).
      - If a repository cannot be reached, the task fails and no package is changed.
    type: bool
    default: true
  cache_valid_time:
    description:
      - Package lists updated less than this many seconds ago are not updated again. V(0) always updates.
      - Their age is that of C(/var/lib/apt/periodic/update-success-stamp) when it exists, else of the
        newest file in C(/var/lib/apt/lists).
    type: int
    default: 3600
  security_origins:
    description:
      - What counts as a security origin. Each pattern is a comma-separated list of C(field=glob)
        that must all match one origin of the candidate version (the fields of the repository's
        Release file); several patterns are alternatives.
      - Fields are C(origin) (C(o)), C(label) (C(l)), C(archive) or C(suite) (C(a)), C(codename) (C(n)),
        C(component) (C(c)) and C(site) (the host name of the repository), the names of
        unattended-upgrades' C(Origins-Pattern). Globs are case-sensitive C(fnmatch) patterns.
      - The default matches Debian's security archive (C(Suite bookworm-security), C(Label Debian-Security)).
    type: list
    elements: str
    default: ["archive=*-security", "label=Debian-Security"]
  exclude:
    description:
      - Package names or globs (C(linux-image-*), C(postgresql-15)) never upgraded by this module, nor
        removed by O(autoremove). They are reported in RV(excluded).
      - A pattern that matches no installed package is reported as a warning.
    type: list
    elements: str
    default: []
  autoremove:
    description:
      - Also remove the packages that were installed automatically as dependencies and that nothing
        needs any more once the upgrades are done (C(apt-get autoremove)), in a last dpkg run. Their
        configuration files are kept (no purge).
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds to wait for the dpkg lock (and the package lists lock) held by another APT or dpkg
        process, trying again every second. V(0) fails at once.
    type: int
    default: 60
requirements:
  - python3-apt on the clinic host (Debian's C(python3-apt) package); the interpreter running the
    module must be able to import it (C(/usr/bin/python3) does)
  - root (C(become=true)) to change anything; check mode only reads
notes:
  - RV(services_to_restart) is best effort. It names the active systemd services whose C(ExecStart)
    program or unit file belongs to an upgraded package (from C(dpkg-query -L) and
    C(systemctl show -p ExecStart,FragmentPath)). A service that only loads an upgraded library (for
    example C(libssl3)), or that is started through a wrapper of another package (C(pg_ctlcluster)
    for PostgreSQL), is not found; tools such as C(needrestart) look at the running processes.
  - RV(reboot_required) reads C(/var/run/reboot-required), which the packages that need it (a new
    kernel, libc) create; it may have been created before this run.
seealso:
  - module: ansible.builtin.apt
  - name: unattended-upgrades
    description: Debian's automatic security updates, whose origin patterns this module's O(security_origins) follows.
    link: https://wiki.debian.org/UnattendedUpgrades
  - name: Debian security FAQ
    description: The security archive and its suites.
    link: https://www.debian.org/security/faq
"""

EXAMPLES = r"""
- name: Security updates of the maintenance window
  clinicops.runbook.package_updates:
  become: true
  register: updates

- name: Restart the services running upgraded programs
  ansible.builtin.systemd_service:
    name: "{{ item }}"
    state: restarted
  loop: "{{ updates.services_to_restart }}"
  become: true

- name: All updates, except the kernel and PostgreSQL, and remove the dependencies nothing needs any more
  clinicops.runbook.package_updates:
    updates: all
    exclude: ["linux-image-*", "postgresql-15"]
    autoremove: true
  become: true

- name: What the window would upgrade, without changing anything
  clinicops.runbook.package_updates:
  check_mode: true
  register: pending

- name: A clinic that also takes the security updates of a vendor repository
  clinicops.runbook.package_updates:
    security_origins:
      - "archive=*-security"
      - "label=Debian-Security"
      - "origin=Clinic Vendor,label=Clinic Vendor Security"
    lock_timeout: 300
  become: true
"""

RETURN = r"""
msg:
  description: One line saying what was (or would be) upgraded, held back, excluded, and what to restart or reboot.
  returned: always
  type: str
  sample: "security updates: upgraded 2 package(s) (openssl 3.0.14-1~deb12u1 -> 3.0.15-1~deb12u1, ...);
    1 held back (...); services to restart: nginx.service; reboot required (linux-image-6.1.0-28-amd64)"
updates:
  description: The O(updates) applied.
  returned: always
  type: str
  sample: security
cache_updated:
  description: Whether the package lists were updated by this run.
  returned: always
  type: bool
  sample: true
upgraded:
  description:
    - The packages upgraded (in check mode, that would be), by name. When the task fails in dpkg,
      only those dpkg reports as installed at their new version.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The package.
      type: str
      sample: openssl
    from:
      description: The version before.
      type: str
      sample: 3.0.14-1~deb12u1
    to:
      description: The version after.
      type: str
      sample: 3.0.15-1~deb12u1
    origin:
      description: The origin of the new version, as a pattern O(security_origins) would accept.
      type: str
      sample: o=Debian,l=Debian-Security,a=bookworm-security,n=bookworm-security,c=main,site=security.debian.org
    services:
      description: The active systemd services running this package's programs (see RV(services_to_restart)).
      type: list
      elements: str
      sample: []
held_back:
  description: Upgrades this run would take but did not, with the reason (the package stays at RV(held_back[].from)).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The package.
      type: str
      sample: clinic-agent
    from:
      description: The installed version.
      type: str
      sample: "1.0"
    to:
      description: The candidate version not installed.
      type: str
      sample: "1.1"
    origin:
      description: The origin of the candidate.
      type: str
      sample: o=Debian,l=Debian-Security,a=bookworm-security
    reason:
      description: Why it was kept back.
      type: str
      sample: needs new package(s) libclinic2 (an upgrade never installs new packages nor removes any)
excluded:
  description: Upgrades this run would take that O(exclude) left out (same fields as RV(upgraded), without C(services)).
  returned: always
  type: list
  elements: dict
  sample:
    - {"name": "linux-image-amd64", "from": "6.1.112-1", "to": "6.1.119-1", "origin": "o=Debian,a=bookworm-security"}
non_security_updates:
  description:
    - With O(updates=security), the upgrades available whose candidate is not from a security origin (not taken).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "tzdata", "from": "2024a-0+deb12u1", "to": "2024b-0+deb12u1", "origin": "o=Debian,a=bookworm"}]
autoremoved:
  description: With O(autoremove=true), the packages removed (in check mode, that would be).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The package.
      type: str
      sample: libclinic1
    version:
      description: Its version.
      type: str
      sample: 1.0-2
reboot_required:
  description: Whether C(/var/run/reboot-required) exists after the run.
  returned: always
  type: bool
  sample: false
reboot_required_packages:
  description: The packages named in C(/var/run/reboot-required.pkgs), each once.
  returned: always
  type: list
  elements: str
  sample: [linux-image-6.1.0-28-amd64]
services_to_restart:
  description:
    - The active systemd services whose C(ExecStart) program or unit file belongs to an upgraded
      package, sorted (best effort, see the notes). Empty when systemd is not running.
  returned: always
  type: list
  elements: str
  sample: [nginx.service]
not_upgraded:
  description: When dpkg failed, the planned upgrades that did not happen (C(now) is the version installed now).
  returned: failure
  type: list
  elements: dict
  sample: [{"name": "clinic-agent", "from": "1.0", "to": "1.1", "now": "1.0"}]
unfinished:
  description:
    - When dpkg failed, the packages it left not fully installed (C(state) as dpkg says, such as
      C(unpacked) or C(half-configured)); C(dpkg --configure -a) finishes them.
  returned: failure
  type: list
  elements: dict
  sample: [{"name": "clinic-agent", "from": "1.0", "to": "1.1", "now": "1.1", "state": "unpacked"}]
dpkg_errors:
  description: When dpkg failed, the errors it reported, one per package.
  returned: failure
  type: list
  elements: str
  sample:
    - "/var/cache/apt/archives/clinic-agent_1.1_all.deb: new clinic-agent package pre-installation script
      subprocess returned error exit status 1"
"""

import os
import sys
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.package_updates import (
    DEFAULT_SECURITY_ORIGINS,
    PackageUpdatesError,
    apt_error_text,
    classify,
    commit_outcome,
    cut_list,
    held_back_reason,
    is_excluded,
    parse_unit_properties,
    reboot_packages,
    services_by_package,
    summary,
    unexpected_changes,
    unmatched_excludes,
    validate,
)

APT_LISTS = "/var/lib/apt/lists"
UPDATE_STAMP = "/var/lib/apt/periodic/update-success-stamp"
REBOOT_REQUIRED = "/var/run/reboot-required"
SYSTEMD_RUNNING = "/run/systemd/system"
DPKG_OPTIONS = ("--force-confdef", "--force-confold")
# dpkg and the maintainer scripts must never ask; needrestart would restart services behind the runbook's back.
QUIET_ENVIRONMENT = {
    "DEBIAN_FRONTEND": "noninteractive",
    "APT_LISTCHANGES_FRONTEND": "none",
    "UCF_FORCE_CONFFOLD": "1",
    "NEEDRESTART_SUSPEND": "1",
}
LOCK_RETRY_SECONDS = 1.0
DPKG_LOG_TAIL = 600


def argument_spec():
    return dict(
        updates=dict(type="str", choices=["security", "all"], default="security"),
        update_cache=dict(type="bool", default=True),
        cache_valid_time=dict(type="int", default=3600),
        security_origins=dict(type="list", elements="str", default=list(DEFAULT_SECURITY_ORIGINS)),
        exclude=dict(type="list", elements="str", default=[]),
        autoremove=dict(type="bool", default=False),
        lock_timeout=dict(type="int", default=60),
    )


class CommitError(PackageUpdatesError):
    """dpkg or the download failed; ``report`` says what was and was not upgraded."""

    def __init__(self, message, report):
        super(CommitError, self).__init__(message)
        self.report = report


def import_apt():
    """python3-apt, imported only when the module runs (it is a Debian package, not on the controller)."""
    try:
        import apt
        import apt.cache
        import apt.progress.base
        import apt_pkg
    except ImportError as exc:
        raise PackageUpdatesError(
            "python3-apt cannot be imported by %s (%s): install python3-apt, or run the module with "
            "ansible_python_interpreter=/usr/bin/python3; nothing was changed" % (sys.executable, exc)
        ) from None
    return apt, apt_pkg


def lists_age(now):
    """Seconds since the package lists were last updated, or None if they never were."""
    if os.path.exists(UPDATE_STAMP):
        return now - os.stat(UPDATE_STAMP).st_mtime
    try:
        names = [name for name in os.listdir(APT_LISTS) if name not in ("lock", "partial", "auxfiles")]
    except OSError:
        return None
    stamps = [os.lstat(os.path.join(APT_LISTS, name)).st_mtime for name in names]  # file: sources are links
    return now - max(stamps) if stamps else None


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def quiet_install_progress(apt):
    """An InstallProgress whose dpkg writes to a log file, not to the module's stdout (that is the JSON)."""

    class QuietInstallProgress(apt.progress.base.InstallProgress):
        def __init__(self, log_path):
            super(QuietInstallProgress, self).__init__()
            self.log_path = log_path
            self.errors = []

        def fork(self):
            pid = os.fork()
            if pid == 0:
                log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                nothing = os.open(os.devnull, os.O_RDONLY)
                os.dup2(nothing, 0)
                os.dup2(log, 1)
                os.dup2(log, 2)
            return pid

        def error(self, pkg, errormsg):
            self.errors.append("%s: %s" % (pkg, errormsg.strip()))

    return QuietInstallProgress


class PackageUpdates(object):
    def __init__(self, module, apt, apt_pkg):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.apt = apt
        self.apt_pkg = apt_pkg
        self.deadline = None
        self.locked = False

    # -- setup -----------------------------------------------------------------------------------

    def configure(self):
        os.environ.update(QUIET_ENVIRONMENT)
        config = self.apt_pkg.config
        present = config.value_list("DPkg::Options")
        for option in DPKG_OPTIONS:
            if option not in present:
                config.set("DPkg::Options::", option)
        # New packages are never installed, so their recommendations never matter; trial upgrades
        # (held_back reasons) must not count recommendations as needed.
        config.set("APT::Install-Recommends", "false")
        config.set("APT::Install-Suggests", "false")

    def waiting(self, attempt, what):
        """Run ``attempt`` until it no longer fails on a lock, or the lock timeout is over."""
        while True:
            try:
                return attempt()
            except (self.apt_pkg.Error, SystemError, self.apt.cache.LockFailedException) as exc:
                text = apt_error_text(exc)
                if "lock" not in text.lower() or "permission denied" in text.lower():
                    raise PackageUpdatesError("%s: %s; nothing was changed" % (what, text)) from None
                if time.monotonic() >= self.deadline:
                    raise PackageUpdatesError(
                        "another package manager holds the lock: %s (waited %d s, lock_timeout); nothing was "
                        "changed" % (text, self.params["lock_timeout"])
                    ) from None
            time.sleep(LOCK_RETRY_SECONDS)  # an fcntl lock of another process: nothing to wait on but time

    def lock(self):
        if os.geteuid() != 0:
            raise PackageUpdatesError("package updates need root (become: true); nothing was changed")
        self.deadline = time.monotonic() + self.params["lock_timeout"]
        self.waiting(self.apt_pkg.pkgsystem_lock, "taking the dpkg lock failed")
        self.locked = True

    def unlock(self):
        if self.locked:
            self.apt_pkg.pkgsystem_unlock()
            self.locked = False

    def refresh_lists(self, cache):
        """Update the package lists when asked and stale: (updated, a note for the message or None)."""
        if not self.params["update_cache"]:
            return False, None
        age = lists_age(time.time())
        if age is not None and age < self.params["cache_valid_time"]:
            return False, None
        if self.check_mode:
            return False, "package lists not updated in check mode (%s)" % (
                "last updated %d s ago" % age if age is not None else "never updated"
            )
        try:
            self.waiting(cache.update, "updating the package lists failed")
        except self.apt.cache.FetchFailedException as exc:
            raise PackageUpdatesError(
                "updating the package lists failed: %s; no package was changed" % apt_error_text(exc)
            ) from None
        cache.open()
        return True, None

    # -- reading the cache -----------------------------------------------------------------------

    def origin(self, origin):
        return dict(
            origin=origin.origin,
            label=origin.label,
            archive=origin.archive,
            codename=origin.codename,
            component=origin.component,
            site=origin.site,
            trusted=bool(origin.trusted),
        )

    def upgradable(self, cache):
        """(plain dicts of the installed packages with a newer candidate, their apt.Package, installed names)."""
        compare = self.apt_pkg.version_compare
        packages, objects, installed = [], {}, []
        for raw in cache._cache.packages:
            if raw.current_ver is None:
                continue
            package = self.apt.Package(cache, raw)
            installed.append(package.name)
            candidate = package.candidate
            current = package.installed.version
            if candidate is None or compare(candidate.version, current) <= 0:
                continue
            newer = [
                dict(version=version.version, origins=[self.origin(item) for item in version.origins])
                for version in package.versions
                if version.version != candidate.version and compare(version.version, current) > 0
            ]
            packages.append(
                dict(
                    name=package.name,
                    fullname=package.fullname,
                    installed=current,
                    candidate=candidate.version,
                    candidate_origins=[self.origin(item) for item in candidate.origins],
                    newer_versions=newer,
                    hold=raw.selected_state == self.apt_pkg.SELSTATE_HOLD,
                )
            )
            objects[package.name] = package
        return packages, objects, installed

    # -- planning --------------------------------------------------------------------------------

    def pin(self, cache, selected):
        """Start over with every installed package not selected kept at its installed version."""
        cache.clear()
        depcache = cache._depcache
        for raw in cache._cache.packages:
            if raw.current_ver is None or raw.get_fullname(True) in selected:
                continue
            if depcache.get_candidate_ver(raw) != raw.current_ver:
                depcache.set_candidate_ver(raw, raw.current_ver)

    def changes(self, cache):
        found = []
        for package in cache.get_changes():
            if package.marked_delete:
                action = "remove"
            elif package.marked_downgrade:
                action = "downgrade"
            elif package.marked_reinstall:
                action = "reinstall"
            elif not package.is_installed:
                action = "install"
            elif package.marked_upgrade:
                action = "upgrade"
            else:
                action = "change"
            found.append(
                dict(name=package.name, action=action, to=package.candidate.version if package.candidate else None)
            )
        return found

    def unmet(self, package, selected):
        """The dependencies of the candidate that the installed and selected versions do not satisfy."""

        def would_be(target):
            name = target.package.name
            if name in selected:
                return selected[name]["to"]
            return target.package.installed.version if target.package.installed else None

        unmet = []
        for group in package.candidate.get_dependencies("PreDepends", "Depends"):
            if any(
                would_be(target) == target.version
                for alternative in group.or_dependencies
                for target in alternative.target_versions
            ):
                continue
            unmet.append(
                " | ".join(
                    "%s (%s %s)" % (alt.name, alt.relation, alt.version) if alt.relation else alt.name
                    for alt in group.or_dependencies
                )
            )
        return unmet

    def held_back_reason(self, cache, package, selected, not_selected):
        """Try the upgrade of one kept-back package alone, and say what it would take."""
        self.pin(cache, selected)
        package.mark_install(auto_fix=True, auto_inst=True, from_user=False)
        trial = self.changes(cache)
        new = [change["name"] for change in trial if change["action"] == "install"]
        removed = [change["name"] for change in trial if change["action"] == "remove"]
        return held_back_reason(new, removed, self.unmet(package, selected), not_selected)

    def plan(self, cache, packages, objects, classified, exclude):
        """Mark the upgrades (and autoremovals) on ``cache``; returns (upgrades, held_back, autoremoved)."""
        selected = dict((item["name"], item) for item in classified["selected"])
        self.pin(cache, selected)
        cache.upgrade(dist_upgrade=False)
        marked = set(change["name"] for change in self.changes(cache) if change["action"] == "upgrade")
        kept = [name for name in sorted(selected) if name not in marked]
        reasons = {}
        if kept:
            not_selected = dict((item["name"], "excluded") for item in classified["excluded"])
            not_selected.update((item["name"], "held back") for item in classified["held_back"])
            not_selected.update((item["name"], "not a security update") for item in classified["non_security"])
            reasons = dict((name, self.held_back_reason(cache, objects[name], selected, not_selected)) for name in kept)
            self.pin(cache, selected)
            cache.upgrade(dist_upgrade=False)
        held = [dict(selected[name], reason=reasons[name]) for name in kept]
        upgrades = [selected[name] for name in sorted(selected) if name in marked]
        removable = self.autoremove(cache, exclude) if self.params["autoremove"] else []
        changes = self.changes(cache)
        odd = unexpected_changes(changes, upgrades, set(item["name"] for item in removable))
        if odd or cache._depcache.broken_count:
            raise PackageUpdatesError(
                "APT planned changes outside the selected upgrades (%s)%s; nothing was changed"
                % (
                    cut_list(odd) or "none",
                    ", with %d broken package(s)" % cache._depcache.broken_count
                    if cache._depcache.broken_count
                    else "",
                )
            )
        return upgrades, held, removable

    def autoremove(self, cache, exclude):
        removable = []
        for raw in cache._cache.packages:
            if raw.current_ver is None:
                continue
            package = self.apt.Package(cache, raw)
            if (
                package.is_auto_removable
                and not package.marked_upgrade
                and not is_excluded(dict(name=package.name, fullname=package.fullname), exclude)
            ):
                removable.append(package)
        for package in removable:
            package.mark_delete(auto_fix=False, purge=False)
        return [dict(name=package.name, version=package.installed.version) for package in removable]

    # -- committing ------------------------------------------------------------------------------

    def commit(self, cache, upgrades, removable):
        """Install the planned changes in small steps; on failure raise CommitError saying what dpkg did.

        Each upgrade is committed on its own (with the selected upgrades it needs), like
        unattended-upgrades' minimal steps, so a failing package leaves the others upgraded and
        configured rather than unpacked. An upgrade that cannot go alone goes with the rest of the
        plan in one step. The first failure stops the run; the autoremovals come last.
        """
        selected = dict((item["name"], item) for item in upgrades)
        outcome = dict(failure=None, errors=[], log="")
        for name in sorted(selected):
            if self.dpkg_now(cache, name) == (selected[name]["to"], "installed"):
                continue  # it came with an earlier step
            self.pin(cache, selected)
            cache[name].mark_install(auto_fix=True, auto_inst=True, from_user=False)
            if unexpected_changes(self.changes(cache), upgrades) or cache._depcache.broken_count:
                self.pin(cache, selected)
                cache.upgrade(dist_upgrade=False)
            if not self.install(cache, outcome):
                break
        if removable and outcome["failure"] is None:
            cache.clear()
            for item in removable:
                if item["name"] in cache and cache[item["name"]].is_auto_removable:
                    cache[item["name"]].mark_delete(auto_fix=False, purge=False)
            self.install(cache, outcome)
        now = dict((item["name"], self.dpkg_now(cache, item["name"])) for item in upgrades)
        upgraded, not_upgraded, unfinished = commit_outcome(upgrades, now)
        removed = [item for item in removable if self.dpkg_now(cache, item["name"])[0] is None]
        if outcome["failure"] is None and not not_upgraded and not unfinished and len(removed) == len(removable):
            return upgraded, removed
        report = dict(
            upgraded=upgraded,
            not_upgraded=not_upgraded,
            unfinished=unfinished,
            autoremoved=removed,
            dpkg_errors=outcome["errors"],
        )
        raise CommitError(self.failure_message(outcome, upgraded, not_upgraded, unfinished), report)

    def install(self, cache, outcome):
        """Commit what is marked on ``cache`` and reopen it; False (with ``outcome`` filled in) if it failed."""
        if not cache.get_changes():
            return True
        handle, log_path = tempfile.mkstemp(
            prefix="package-updates-dpkg-", suffix=".log", dir=getattr(self.module, "tmpdir", None)
        )
        os.close(handle)
        try:
            with quiet_install_progress(self.apt)(log_path) as progress:
                cache.commit(install_progress=progress)
        except (
            SystemError,
            self.apt_pkg.Error,
            self.apt.cache.FetchFailedException,
            self.apt.cache.LockFailedException,
        ) as exc:
            outcome["failure"] = apt_error_text(exc)
        finally:
            outcome["log"] = read_text(log_path) or ""
            os.unlink(log_path)
        outcome["errors"] += progress.errors
        cache.open()
        return outcome["failure"] is None

    def dpkg_now(self, cache, name):
        """(installed version or None, dpkg state) of a package, read from a freshly opened cache."""
        if name not in cache:
            return None, "not-installed"  # removed, and in no repository
        package = cache[name]
        states = {
            self.apt_pkg.CURSTATE_INSTALLED: "installed",
            self.apt_pkg.CURSTATE_UNPACKED: "unpacked",
            self.apt_pkg.CURSTATE_HALF_CONFIGURED: "half-configured",
            self.apt_pkg.CURSTATE_HALF_INSTALLED: "half-installed",
            self.apt_pkg.CURSTATE_CONFIG_FILES: "config-files",
            self.apt_pkg.CURSTATE_NOT_INSTALLED: "not-installed",
        }
        state = states.get(package._pkg.current_state, "state %s" % package._pkg.current_state)
        return (package.installed.version if package.installed else None), state

    @staticmethod
    def failure_message(outcome, upgraded, not_upgraded, unfinished):
        cause = "; ".join(outcome["errors"]) or outcome["failure"] or "dpkg did not finish every upgrade"
        log = outcome["log"].strip()
        if not outcome["errors"] and log:
            cause += " (dpkg: %s)" % " / ".join(log[-DPKG_LOG_TAIL:].splitlines()[-4:])
        upgraded_text = cut_list(["%s %s -> %s" % (i["name"], i["from"], i["to"]) for i in upgraded])
        parts = ["package updates failed: %s" % cause, "upgraded: %s" % (upgraded_text or "none")]
        if not_upgraded:
            parts.append("not upgraded: %s" % cut_list(["%s (still %s)" % (i["name"], i["now"]) for i in not_upgraded]))
        if unfinished:
            parts.append(
                "left unfinished: %s; run dpkg --configure -a"
                % cut_list(["%s (%s %s)" % (i["name"], i["state"], i["now"]) for i in unfinished])
            )
        return "; ".join(parts)

    # -- what the host needs now -----------------------------------------------------------------

    def services(self, names):
        """Per package name, the active systemd services that run its programs (empty without systemd)."""
        if not names or not os.path.isdir(SYSTEMD_RUNNING):
            return dict((name, []) for name in names)
        rc, out, _err = self.module.run_command(
            ["systemctl", "list-units", "--type=service", "--state=active", "--plain", "--no-legend", "--no-pager"]
        )
        active = [line.split()[0] for line in out.splitlines() if line.strip()] if rc == 0 else []
        units = []
        if active:
            rc, out, _err = self.module.run_command(
                ["systemctl", "show", "--no-pager", "-p", "Id,ExecStart,FragmentPath", "--", *active]
            )
            units = parse_unit_properties(out) if rc == 0 else []
        files = {}
        for name in names:
            rc, out, _err = self.module.run_command(["dpkg-query", "-L", name])
            files[name] = out.splitlines() if rc == 0 else []
        return services_by_package(files, units)

    # -- the run ---------------------------------------------------------------------------------

    def run(self, patterns, exclude):
        self.configure()
        if not self.check_mode:
            self.lock()
        try:
            cache = self.apt.Cache(memonly=self.check_mode)
            updated, note = self.refresh_lists(cache)
            return self.update(cache, patterns, exclude, updated, note)
        finally:
            self.unlock()

    def update(self, cache, patterns, exclude, updated, note):
        packages, objects, installed = self.upgradable(cache)
        for pattern in unmatched_excludes(exclude, installed):
            self.module.warn("exclude pattern %r matches no installed package" % pattern)
        classified = classify(packages, self.params["updates"], patterns, exclude)
        upgrades, held, removable = self.plan(cache, packages, objects, classified, exclude)
        held += classified["held_back"]
        if not self.check_mode and (upgrades or removable):
            try:
                upgrades, removable = self.commit(cache, upgrades, removable)
            except CommitError as exc:
                # The whole report of what happened (services, reboot) goes with the failure.
                done = self.report(exc.report["upgraded"], held, classified, exc.report["autoremoved"], updated, None)
                done.pop("msg")
                exc.report = dict(done, **exc.report)
                raise
        return self.report(upgrades, held, classified, removable, updated, note)

    def report(self, upgrades, held, classified, removable, updated, note):
        services = self.services([item["name"] for item in upgrades])
        upgraded = [dict(item, services=services.get(item["name"], [])) for item in upgrades]
        report = dict(
            updates=self.params["updates"],
            cache_updated=updated,
            upgraded=upgraded,
            held_back=sorted(held, key=lambda item: item["name"]),
            excluded=classified["excluded"],
            non_security_updates=classified["non_security"] if self.params["updates"] == "security" else [],
            autoremoved=removable,
            services_to_restart=sorted(set(unit for item in upgraded for unit in item["services"])),
            reboot_required=os.path.exists(REBOOT_REQUIRED),
            reboot_required_packages=reboot_packages(read_text(REBOOT_REQUIRED + ".pkgs")),
        )
        report["changed"] = bool(upgraded or removable)
        report["msg"] = summary(report, self.check_mode, note)
        return report


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        patterns, exclude = validate(module.params)
        apt, apt_pkg = import_apt()
        report = PackageUpdates(module, apt, apt_pkg).run(patterns, exclude)
    except CommitError as exc:
        module.fail_json(msg=str(exc), **exc.report)
    except PackageUpdatesError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**report)


if __name__ == "__main__":
    main()
