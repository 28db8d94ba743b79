# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fail a molecule ``check`` run whose changes contradict the state of the scenario.

``molecule check`` only runs the converge playbook with ``--check``; it passes whatever the run
reports. This scenario wants more from its two dry runs:

* before the first converge (molecule's state says ``converged: false``) the dry run must report
  changes: a role that reports nothing on a fresh host would hide what it is about to do;
* after the converge it must report none: the dry run of a converged host is how an operator
  checks for drift, so any change it announces is a lie or a non-idempotent task.

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
    converged yet reports no change, or a converged host reports any change.
requirements:
  - enable in configuration (callbacks_enabled)
"""

EXIT_CODE = 3


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "clinicops_check_mode"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._changed_tasks: dict[str, list[str]] = {}

    def _record(self, result) -> None:
        if result.is_changed():
            self._changed_tasks.setdefault(result.host.get_name(), []).append(result.task.get_name())

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
            changed = stats.changed.get(host, 0)
            if not converged and changed == 0:
                problems.append(f"{host}: check mode on a fresh host reported no change")
            elif converged and changed:
                tasks = "; ".join(self._changed_tasks.get(host, [])) or "?"
                problems.append(f"{host}: check mode on a converged host reported {changed} change(s): {tasks}")
        if not hosts:
            problems.append("check mode ran on no host")
        if problems:
            for problem in problems:
                self._display.error(problem)
            # Callback errors are only warnings to ansible-playbook; leaving is the way to fail it.
            sys.exit(EXIT_CODE)
        if not any(stats.failures.get(host) or stats.dark.get(host) for host in hosts):
            expected = "no change on the converged host" if converged else "changes on the fresh host"
            self._display.display(f"clinicops_check_mode: check mode reported {expected}, as it must")
