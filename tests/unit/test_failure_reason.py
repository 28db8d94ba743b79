"""failure_reason: the one line a rescue, an audit record and a run report say about a failed task."""

from __future__ import annotations

from ansible_collections.clinicops.runbook.plugins.filter.failure import MAX_REASON, failure_reason


def test_a_failed_loop_names_each_failed_item_by_its_label():
    result = {
        "msg": "One or more items failed",
        "results": [
            {"failed": False, "item": {"name": "app"}},
            {
                "failed": True,
                "msg": "refused: open files unreadable",
                "_ansible_item_label": "nginx: /var/log/nginx",
                "item": [{"name": "nginx", "paths": ["/var/log/nginx/*.log"]}, "/var/log/nginx"],
            },
        ],
    }

    assert failure_reason(result) == "nginx: /var/log/nginx: refused: open files unreadable"


def test_a_subelements_item_without_a_label_is_named_by_its_parts_not_dumped():
    item = [{"name": "audit", "options": {"rotate": 1}}, "/var/log/x"]
    result = {"results": [{"failed": True, "msg": "boom", "item": item}]}

    assert failure_reason(result) == "audit /var/log/x: boom"


def test_a_plain_failure_gives_its_message_on_one_bounded_line():
    assert failure_reason({"msg": "line one\n  line two"}) == "line one line two"
    assert len(failure_reason({"stderr": "x" * 2000})) == MAX_REASON
    assert failure_reason("not a result", "fallback") == "fallback"
