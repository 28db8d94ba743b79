# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure decisions of the package_updates module: what counts as security, what is upgraded, what is reported.

Nothing here talks to APT or dpkg. The module reads the package cache with python3-apt, turns
each upgradable package into a plain dict, and hands it to these functions; they decide what is
selected, excluded or held back and why, check the change set APT planned against that
selection, tell what a commit really did from the versions dpkg reports afterwards, and map
upgraded packages to the systemd units they run. So every decision is testable with plain data.

An origin is what APT knows of the repository a version comes from (the fields of its Release
file): ``origin``, ``label``, ``archive`` (the suite), ``codename``, ``component`` and ``site``,
plus ``trusted``. An origin pattern is a comma-separated list of ``field=glob`` (the field names of
unattended-upgrades' Origins-Pattern are accepted too: ``o``, ``l``, ``a``, ``n``, ``c``); a version
comes from a security origin when one of its origins matches every field of one pattern.

Private to the collection: the interface may change between releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from fnmatch import fnmatchcase

ORIGIN_FIELDS = ("origin", "label", "archive", "codename", "component", "site")
FIELD_ALIASES = {
    "origin": "origin",
    "o": "origin",
    "label": "label",
    "l": "label",
    "archive": "archive",
    "suite": "archive",
    "a": "archive",
    "codename": "codename",
    "n": "codename",
    "component": "component",
    "c": "component",
    "site": "site",
}
# What Debian's security archive says in its Release file (Suite: bookworm-security, Label: Debian-Security).
DEFAULT_SECURITY_ORIGINS = ["archive=*-security", "label=Debian-Security"]
# A Debian package name (policy 5.6.1), optionally :arch, with the glob characters fnmatch knows.
EXCLUDE_PATTERN = re.compile(r"[a-z0-9*?\[][a-z0-9+.\-*?\[\]!]*(:[a-z0-9*?\-]+)?")
NOTHING_CHANGED = "nothing was changed"
HOLD_REASON = "held by dpkg (selection 'hold', see apt-mark showhold); apt-mark unhold it to let it be upgraded"


class PackageUpdatesError(Exception):
    """A request refused, or updates stopped; the message says why and what was (not) changed."""


# -- origins ---------------------------------------------------------------------------------------


def parse_origin_pattern(text):
    """``"label=Debian-Security,archive=*-security"`` -> ``{"label": "Debian-Security", "archive": "*-security"}``."""
    if not isinstance(text, str) or not text.strip():
        raise PackageUpdatesError(
            "security_origins: empty pattern %r; give field=glob pairs such as "
            "'archive=*-security'; %s" % (text, NOTHING_CHANGED)
        )
    pattern = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in FIELD_ALIASES or not value.strip():
            raise PackageUpdatesError(
                "security_origins: %r in pattern %r is not field=glob with a field among %s; %s"
                % (part.strip(), text, ", ".join(ORIGIN_FIELDS), NOTHING_CHANGED)
            )
        field = FIELD_ALIASES[key]
        if field in pattern:
            raise PackageUpdatesError(
                "security_origins: pattern %r names %s twice; %s" % (text, field, NOTHING_CHANGED)
            )
        pattern[field] = value.strip()
    return pattern


def parse_origin_patterns(texts):
    if not texts:
        raise PackageUpdatesError(
            "security_origins is empty, so no update would count as security; give at least one pattern "
            "(default: %s); %s" % (", ".join(DEFAULT_SECURITY_ORIGINS), NOTHING_CHANGED)
        )
    return [parse_origin_pattern(text) for text in texts]


def origin_matches(origin, pattern):
    """Whether ``origin`` (a dict of ORIGIN_FIELDS) matches every field of ``pattern`` (case-sensitive globs)."""
    return all(fnmatchcase(origin.get(field) or "", glob) for field, glob in pattern.items())


def is_security_origin(origin, patterns):
    return any(origin_matches(origin, pattern) for pattern in patterns)


def describe_origin(origin):
    """An origin as ``o=Debian,l=Debian-Security,a=bookworm-security,...`` (a pattern that matches it)."""
    short = (("o", "origin"), ("l", "label"), ("a", "archive"), ("n", "codename"), ("c", "component"), ("site", "site"))
    return ",".join("%s=%s" % (key, origin[field]) for key, field in short if origin.get(field))


def security_origin_of(origins, patterns):
    """The first trusted origin that matches a pattern, else the first matching one, else None."""
    matching = [origin for origin in origins if is_security_origin(origin, patterns)]
    trusted = [origin for origin in matching if origin.get("trusted")]
    return (trusted or matching or [None])[0]


# -- exclusions ------------------------------------------------------------------------------------


def check_exclude(patterns):
    """Return the exclude patterns if each is a package name or glob, else refuse them."""
    for pattern in patterns or []:
        if not isinstance(pattern, str) or not EXCLUDE_PATTERN.fullmatch(pattern):
            raise PackageUpdatesError(
                "exclude: %r is not a package name or glob (lower-case letters, digits, '+', '-', '.', "
                "optionally ':arch', and the globs '*', '?', '[...]'); %s" % (pattern, NOTHING_CHANGED)
            )
    return list(patterns or [])


def is_excluded(package, patterns):
    """Whether a package (``name`` as APT shows it, ``fullname`` with its architecture) matches a pattern."""
    names = {package["name"], package.get("fullname") or package["name"]}
    return any(fnmatchcase(name, pattern) for pattern in patterns for name in names)


def unmatched_excludes(patterns, installed_names):
    """The exclude patterns that match no installed package (most likely a typo)."""
    return [pattern for pattern in patterns if not any(fnmatchcase(name, pattern) for name in installed_names)]


def validate(params):
    """Check the module's options before anything is read or changed: (origin patterns, exclude patterns)."""
    for option in ("cache_valid_time", "lock_timeout"):
        if params[option] < 0:
            raise PackageUpdatesError(
                "%s must be 0 or more seconds, not %d; %s" % (option, params[option], NOTHING_CHANGED)
            )
    return parse_origin_patterns(params["security_origins"]), check_exclude(params["exclude"])


# -- selection -------------------------------------------------------------------------------------


def entry(package, origin=None, **extra):
    """A package as reported: name, from, to, and the origin of ``to``."""
    shown = {"name": package["name"], "from": package["installed"], "to": package["candidate"]}
    if origin is not None:
        shown["origin"] = describe_origin(origin)
    shown.update(extra)
    return shown


def classify(packages, updates, patterns, exclude):
    """Sort upgradable packages into selected, excluded, held back and (with updates=security) non-security.

    Each package is a dict: ``name``, ``fullname``, ``installed`` and ``candidate`` versions,
    ``candidate_origins`` (origin dicts with ``trusted``), ``newer_versions`` (the other versions
    newer than the installed one, each ``{"version", "origins"}``) and ``hold`` (dpkg selection
    hold). With updates=security a package is taken only when its candidate itself comes from a
    security origin; a security version that is not the candidate is reported, never installed.
    """
    result = {"selected": [], "excluded": [], "held_back": [], "non_security": []}
    for package in sorted(packages, key=lambda item: item["name"]):
        origins = package["candidate_origins"]
        security = security_origin_of(origins, patterns)
        origin = security if updates == "security" else (security or _first_trusted(origins))
        if updates == "security" and security is None:
            security_versions = [
                version
                for version in package.get("newer_versions", [])
                if security_origin_of(version["origins"], patterns) is not None
            ]
            if not security_versions:
                result["non_security"].append(entry(package, _first_trusted(origins)))
            elif is_excluded(package, exclude):
                result["excluded"].append(entry(package, _first_trusted(origins)))
            else:
                reason = (
                    "its candidate %s is not from a security origin; the security version %s is not the candidate "
                    "(APT's priorities prefer the other) and is not installed instead"
                    % (package["candidate"], security_versions[0]["version"])
                )
                result["held_back"].append(entry(package, _first_trusted(origins), reason=reason))
            continue
        if is_excluded(package, exclude):
            result["excluded"].append(entry(package, origin))
        elif package.get("hold"):
            result["held_back"].append(entry(package, origin, reason=HOLD_REASON))
        elif not any(item.get("trusted") for item in ([security] if updates == "security" else origins)):
            result["held_back"].append(
                entry(
                    package,
                    origin,
                    reason="its candidate %s is not from a trusted (signed) repository" % package["candidate"],
                )
            )
        else:
            result["selected"].append(entry(package, origin))
    return result


def _first_trusted(origins):
    trusted = [origin for origin in origins if origin.get("trusted")]
    return (trusted or origins or [None])[0]


# -- APT's plan ------------------------------------------------------------------------------------


def unexpected_changes(changes, selected, removable=()):
    """The planned changes that are not an upgrade of a selected package to its candidate (or an autoremoval).

    ``changes`` are dicts ``{"name", "action", "to"}`` with action upgrade, install, remove,
    downgrade or reinstall; ``selected`` are entries from classify(); ``removable`` names the
    packages autoremove may remove.
    """
    wanted = {item["name"]: item["to"] for item in selected}
    odd = []
    for change in changes:
        if change["action"] == "upgrade" and wanted.get(change["name"]) == change.get("to"):
            continue
        if change["action"] == "remove" and change["name"] in removable:
            continue
        odd.append("%s %s" % (change["action"], change["name"]))
    return odd


def held_back_reason(new, removed, unmet, not_selected):
    """Why APT keeps a selected upgrade back, from a trial of that upgrade alone.

    ``new``: packages it would install; ``removed``: packages it would remove; ``unmet``: its
    dependencies that the selection cannot satisfy (``"libfoo (>= 1.2)"``); ``not_selected``: for
    package names, why their upgrade is not in this run (excluded, held back, not security).
    """
    reasons = []
    if new:
        reasons.append("needs new package(s) %s" % ", ".join(sorted(new)))
    if removed:
        reasons.append("would remove %s" % ", ".join(sorted(removed)))
    for dependency in unmet:
        name = dependency.split(" ", 1)[0]
        if name in new:
            continue  # said above
        why = not_selected.get(name)
        reasons.append("depends on %s%s" % (dependency, " (%s)" % why if why else ""))
    if not reasons:
        return "kept back by APT's resolver (its dependencies cannot be met by an upgrade alone)"
    return "; ".join(reasons) + " (an upgrade never installs new packages nor removes any)"


# -- APT's messages --------------------------------------------------------------------------------

APT_MESSAGE = re.compile(r"(?:^|, )([EW]):")


def apt_error_text(error):
    """The errors of an APT exception text (``E:...``) without its warnings, joined by ``; ``.

    python-apt joins APT's error stack as ``E:first, W:warning, E:second``; the warnings there
    ("removing the lock file is not a solution") only repeat the error at 3 a.m.
    """
    text = str(error).strip()
    pieces = APT_MESSAGE.split(text)
    if len(pieces) < 3:
        return text
    messages = [(pieces[index], pieces[index + 1].strip()) for index in range(1, len(pieces) - 1, 2)]
    errors = [message for level, message in messages if level == "E" and message]
    return "; ".join(errors or [message for _level, message in messages if message]) or text


# -- after the commit ------------------------------------------------------------------------------


def commit_outcome(planned, now):
    """Split the planned upgrades by what dpkg reports now.

    ``planned``: entries (``name``, ``from``, ``to``); ``now``: name -> (installed version or None,
    dpkg state such as ``installed``, ``unpacked``, ``half-configured``). Returns (upgraded,
    not_upgraded, unfinished): upgraded are at ``to`` and installed; unfinished are at ``to``
    or another version but not fully installed (``dpkg --configure -a`` finishes them).
    """
    upgraded, not_upgraded, unfinished = [], [], []
    for item in planned:
        version, state = now.get(item["name"], (None, "not-installed"))
        if version == item["to"] and state == "installed":
            upgraded.append(item)
        elif state != "installed":
            unfinished.append(dict(item, now=version, state=state))
        else:
            not_upgraded.append(dict(item, now=version))
    return upgraded, not_upgraded, unfinished


def reboot_packages(text):
    """The package names of /run/reboot-required.pkgs, each once, in order."""
    seen = []
    for line in (text or "").splitlines():
        name = line.strip()
        if name and name not in seen:
            seen.append(name)
    return seen


# -- services --------------------------------------------------------------------------------------

EXEC_PATH = re.compile(r"\bpath=([^ ;]+)")


def parse_unit_properties(text):
    """Parse ``systemctl show -p Id,ExecStart,FragmentPath <units>``: [{"id", "exec_paths", "fragment"}]."""
    units = []
    for block in re.split(r"\n\s*\n", text or ""):
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                fields[key] = value
        if fields.get("Id"):
            units.append(
                {
                    "id": fields["Id"],
                    "exec_paths": EXEC_PATH.findall(fields.get("ExecStart", "")),
                    "fragment": fields.get("FragmentPath", ""),
                }
            )
    return units


def path_aliases(path):
    """A path and its other spelling on a merged-/usr system (/sbin/x is /usr/sbin/x)."""
    for top in ("/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/"):
        if path.startswith(top):
            return {path, "/usr" + path}
        if path.startswith("/usr" + top):
            return {path, path[len("/usr") :]}
    return {path}


def services_by_package(package_files, units):
    """For each package, the units whose ExecStart binary or unit file it ships.

    ``package_files``: name -> paths (``dpkg-query -L``); ``units``: parse_unit_properties().
    A unit counts for a package when one of its ExecStart paths or its FragmentPath is one of the
    package's files (either spelling of merged /usr). Libraries the binary loads are not followed.
    """
    by_package = {}
    for name, paths in package_files.items():
        owned = set()
        for path in paths:
            owned |= path_aliases(path)
        by_package[name] = sorted(unit["id"] for unit in units if owned & unit_paths(unit))
    return by_package


def unit_paths(unit):
    """Every spelling of a unit's ExecStart paths and unit file."""
    paths = set()
    for path in unit["exec_paths"] + [unit["fragment"]]:
        if path:
            paths |= path_aliases(path)
    return paths


# -- report ----------------------------------------------------------------------------------------


def cut_list(names, limit=5):
    shown = ", ".join(names[:limit])
    return shown + (" and %d more" % (len(names) - limit) if len(names) > limit else "")


def summary(report, check_mode, note=None):
    """The one-line ``msg`` (``note``: a last remark, such as why the package lists were not updated)."""
    kind = "security updates" if report["updates"] == "security" else "all updates"
    upgraded = report["upgraded"]
    if upgraded:
        listed = cut_list(["%s %s -> %s" % (item["name"], item["from"], item["to"]) for item in upgraded])
        parts = [
            "%s: %s %d package(s) (%s)" % (kind, "would upgrade" if check_mode else "upgraded", len(upgraded), listed)
        ]
    else:
        parts = ["%s: nothing to upgrade" % kind]
    if report["held_back"]:
        parts.append(
            "%d held back (%s)"
            % (
                len(report["held_back"]),
                cut_list(["%s: %s" % (item["name"], item["reason"]) for item in report["held_back"]], 3),
            )
        )
    if report["excluded"]:
        parts.append("%d excluded (%s)" % (len(report["excluded"]), cut_list([i["name"] for i in report["excluded"]])))
    if report.get("autoremoved"):
        parts.append(
            "%s %d (%s)"
            % (
                "would autoremove" if check_mode else "autoremoved",
                len(report["autoremoved"]),
                cut_list([item["name"] for item in report["autoremoved"]]),
            )
        )
    if report.get("non_security_updates"):
        parts.append("%d non-security update(s) left" % len(report["non_security_updates"]))
    if report["services_to_restart"]:
        parts.append("services to restart: %s" % cut_list(report["services_to_restart"]))
    if report["reboot_required"]:
        parts.append("reboot required (%s)" % (cut_list(report["reboot_required_packages"]) or "no package named"))
    if note:
        parts.append(note)
    return "; ".join(parts)
