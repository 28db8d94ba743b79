# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fail a molecule ``check`` run whose changes contradict the state of the scenario.

The clinic_host scenario's plugin of the same name, plus one rule for procedures that act on every
run by design (a backup makes a new snapshot, a drill restores again, the clinic lock is taken and
released, an audit record is appended): their tasks carry molecule's standard tag
``molecule-idempotence-notest``, which the idempotence run skips, and a dry run of a converged host
may announce them too. Any other change is still a failure.

``molecule check`` only runs the converge playbook with ``--check``; it passes whatever the run
reports. This scenario wants more from its two dry runs:

* before the first converge (molecule's state says ``converged: false``) the dry run must report
  changes: a role that reports nothing on a fresh host would hide what it is about to do;
* after the converge it must report none but those of the tagged tasks: the dry run of a converged
  host is how an operator checks for drift, so any other change it announces is a lie or a
  non-idempotent task.

Runs that are not in check mode, and runs outside molecule, are left alone.
"""

from __future__ import annotations

import os
import sys

import yaml
from ansible import context
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: clinicops_check_mode
type: aggregate
short_description: Assert what a molecule check run reports
description:
  - In check mode under molecule, fails the run (exit code 3) when a host that molecule has not
    converged yet reports no change, or a converged host reports a change of a task that is not
    tagged molecule-idempotence-notest.
requirements:
  - enable in configuration (callbacks_enabled)
"""

EXIT_CODE = 3
ACTS_EVERY_RUN = "molecule-idempotence-notest"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "clinicops_check_mode"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # host -> names of the changed tasks, split by whether they act on every run by design
        self._drift: dict[str, list[str]] = {}
        self._by_design: dict[str, list[str]] = {}

    def _record(self, result) -> None:
        if not result.is_changed():
            return
        by_design = ACTS_EVERY_RUN in (result.task.tags or [])
        found = self._by_design if by_design else self._drift
        found.setdefault(result.host.get_name(), []).append(result.task.get_name())

    def v2_runner_on_ok(self, result) -> None:
        self._record(result)

    def v2_playbook_on_stats(self, stats) -> None:
        state_file = os.environ.get("MOLECULE_STATE_FILE")
        if not context.CLIARGS.get("check") or not state_file or not os.path.isfile(state_file):
            return
        with open(state_file, encoding="utf-8") as handle:
            converged = bool((yaml.safe_load(handle) or {}).get("converged"))
        hosts = sorted(stats.processed)
        problems = []
        for host in hosts:
            drift = self._drift.get(host, [])
            if not converged and stats.changed.get(host, 0) == 0:
                problems.append(f"{host}: check mode on a fresh host reported no change")
            elif converged and drift:
                problems.append(
                    f"{host}: check mode on a converged host reported {len(drift)} change(s): {'; '.join(drift)}"
                )
        if not hosts:
            problems.append("check mode ran on no host")
        if problems:
            for problem in problems:
                self._display.error(problem)
            # Callback errors are only warnings to ansible-playbook; leaving is the way to fail it.
            sys.exit(EXIT_CODE)
        if not any(stats.failures.get(host) or stats.dark.get(host) for host in hosts):
            if converged:
                acting = sorted({task for tasks in self._by_design.values() for task in tasks})
                expected = "no change on the converged host" + (
                    f" but the tasks that act on every run ({'; '.join(acting)})" if acting else ""
                )
            else:
                expected = "changes on the fresh host"
            self._display.display(f"clinicops_check_mode: check mode reported {expected}, as it must")
