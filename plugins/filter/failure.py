# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reason a task failed, in one line, for rescues, audit records and run reports."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

MAX_REASON = 500


def _one_line(value):
    return " ".join(str(value).split())


def _label(value):
    if isinstance(value, dict):
        return str(value.get("name") or value.get("id") or "")
    return "" if value is None else str(value)


def failure_reason(result, default="failed"):
    """The failed loop items' messages (named by item), else msg, stderr; bounded to one line.

    A failed loop's own message is "One or more items failed", which names nothing.
    """
    if not isinstance(result, dict):
        return default
    reasons = []
    for item in result.get("results") or []:
        if isinstance(item, dict) and item.get("failed"):
            reason = failure_reason(item, "")
            label = item.get("_ansible_item_label", item.get("item"))
            # subelements, zip: name each part
            label = " ".join(_label(part) for part in label) if isinstance(label, (list, tuple)) else _label(label)
            reasons.append("%s: %s" % (label, reason) if label not in (None, "") and reason else reason)
    reasons = [reason for reason in reasons if reason]
    if reasons:
        return _one_line("; ".join(reasons))[:MAX_REASON]
    for key in ("msg", "stderr", "reason", "message"):
        if result.get(key):
            return _one_line(result[key])[:MAX_REASON]
    return default


class FilterModule(object):
    def filters(self):
        return {"failure_reason": failure_reason}
