"""AWX / AAP parity without a controller, a registry or Galaxy.

- awx/controller.yml and the deploy workflow's own playbooks pass ``--syntax-check``; controller.yml
  renders what it would declare (``clinicops_awx_render_file``) from the example inventory;
- every procedure playbook has a job template, and every survey question is an input the procedure
  actually reads (its roles' argument specs and defaults, or the playbook itself), of a matching type;
- the deploy workflow has its shape (name the release, backup, canary, approval, the other clinics, a
  withdraw on failure) and hands one release id to every node;
- the window schedules are the inventory's maintenance windows: one per zone and window allowing the
  procedure, limited to its clinics, whose rule fires on the gate's occurrences; bad window data stops
  controller.yml before anything is declared;
- ``ansible-builder create`` makes the execution environment's build context offline, with the
  collection tarball, and introspection finds the collection's Python and system requirements.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import ansible_runner
import jinja2
import jinja2.nodes
import pytest
import yaml
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.maintenance_windows import (
    occurrences_between,
    to_awx_rrule,
)
from dateutil.rrule import rrulestr

from clinicops.project import collections_root, project_root

ROOT = project_root()
BIN = Path(sys.executable).parent
AWX = ROOT / "awx"
RELEASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Variables a survey must never set: the run id is the job's ("awx-<job id>", playbooks/run_context.yml),
# and the AWX variables are AWX's own.
RESERVED = re.compile(r"^(clinicops_run_id|clinicops_release_id|clinicops_who|awx_.*|tower_.*)$")


def ansible_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CONTROLLER_", "TOWER_"))}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(collections_root(ROOT)),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        PATH=os.pathsep.join([str(BIN), env.get("PATH", "/usr/bin:/bin")]),
    )
    return env


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=ansible_env(), **kwargs)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


# ---- what the procedures read ----------------------------------------------------------------------


def procedure_playbooks() -> set[str]:
    """playbooks/*.yml that are procedures: not building blocks other playbooks import."""
    names = {path.stem for path in (ROOT / "playbooks").glob("*.yml")}
    imported = set()
    for path in (ROOT / "playbooks").glob("*.yml"):
        imported |= set(re.findall(r"import_playbook:\s*clinicops\.runbook\.(\w+)", path.read_text()))
    return {f"playbooks/{name}.yml" for name in names - imported}


def template_variables(value: Any) -> set[str]:
    """Names every Jinja template in a loaded YAML document reads (when/that are bare expressions)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("when", "that", "failed_when", "changed_when") and isinstance(item, str | list):
                for expression in item if isinstance(item, list) else [item]:
                    found |= template_variables("{{ " + str(expression) + " }}")
            else:
                found |= template_variables(item)
    elif isinstance(value, list):
        for item in value:
            found |= template_variables(item)
    elif isinstance(value, str) and "{{" in value:
        # Every name loaded (a few loop and local names too: harmless for "is it read anywhere").
        found |= {node.name for node in jinja2.Environment().parse(value).find_all(jinja2.nodes.Name)}
    return found


def role_specs(role: str) -> dict[str, dict]:
    """Options of every entry point of a role (argument specs), plus its defaults as untyped options."""
    options: dict[str, dict] = {}
    defaults = ROOT / "roles" / role / "defaults" / "main.yml"
    for name, value in (load(defaults) or {}).items() if defaults.is_file() else []:
        options[name] = {"default": value}
    specs = ROOT / "roles" / role / "meta" / "argument_specs.yml"
    for entry in (load(specs) or {}).get("argument_specs", {}).values() if specs.is_file() else []:
        for name, spec in (entry.get("options") or {}).items():
            options.setdefault(name, {}).update(spec)
    return options


def roles_used(text: str) -> set[str]:
    roles = {path.name for path in (ROOT / "roles").iterdir() if path.is_dir()}
    return {name for name in re.findall(r"clinicops\.runbook\.(\w+)", text) if name in roles}


def procedure_inputs(playbook: str) -> dict[str, dict]:
    """Variables a procedure reads: its roles' options (and the roles they include), its playbooks' templates."""
    inputs: dict[str, dict] = {}
    seen_roles: set[str] = set()
    pending = [ROOT / playbook]
    while pending:
        path = pending.pop()
        text = path.read_text()
        for name in template_variables(yaml.safe_load(text)):
            inputs.setdefault(name, {})
        pending += [
            ROOT / "playbooks" / f"{name}.yml"
            for name in re.findall(r"import_playbook:\s*clinicops\.runbook\.(\w+)", text)
        ]
        roles = roles_used(text) - seen_roles
        while roles:
            role = roles.pop()
            seen_roles.add(role)
            for name, spec in role_specs(role).items():
                inputs.setdefault(name, {}).update(spec)
            tasks = "".join(task.read_text() for task in (ROOT / "roles" / role / "tasks").glob("*.yml"))
            roles |= roles_used(tasks) - seen_roles
    return inputs


# ---- what controller.yml declares ------------------------------------------------------------------


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Render controller.yml with the example inventory: no controller, no credentials, no connection."""
    target = tmp_path_factory.mktemp("awx") / "plan.json"
    run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(ROOT / "inventories" / "example"),
            str(AWX / "controller.yml"),
            "-e",
            f"clinicops_awx_render_file={target}",
        ]
    )
    return json.loads(target.read_text())


def templates(plan: dict) -> dict[str, dict]:
    return {template["playbook"]: template for template in plan["job_templates"]}


@pytest.mark.parametrize("playbook", ["controller.yml", "playbooks/name_release.yml", "playbooks/withdraw_release.yml"])
def test_awx_playbooks_pass_syntax_check(playbook: str):
    run([str(BIN / "ansible-playbook"), "--syntax-check", str(AWX / playbook)])


def test_controller_refuses_the_placeholders_before_contacting_anything():
    """Without render_file it declares for real: with vars.yml's example.invalid URLs it must stop first."""
    done = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(ROOT / "inventories" / "example"), str(AWX / "controller.yml")],
        capture_output=True,
        text=True,
        check=False,
        env=ansible_env(),
    )
    assert done.returncode != 0
    assert "nothing was changed in the controller" in done.stdout + done.stderr
    assert "TASK [Organization]" not in done.stdout


def test_every_procedure_playbook_has_a_job_template(plan: dict):
    declared = templates(plan)
    procedures = procedure_playbooks()
    assert "playbooks/run_context.yml" not in procedures
    assert {"playbooks/deploy.yml", "playbooks/rollback.yml", "playbooks/restore_drill.yml"} <= procedures
    missing = procedures - set(declared)
    assert not missing, f"procedure playbooks without an AWX job template (awx/vars.yml): {sorted(missing)}"
    for playbook in declared:
        assert (ROOT / playbook).is_file(), f"a job template runs {playbook}, which does not exist"
        assert playbook in procedures or playbook.startswith("awx/playbooks/"), playbook
    assert len({template["name"] for template in plan["job_templates"]}) == len(plan["job_templates"])


def test_job_templates_leave_the_run_id_to_the_job(plan: dict):
    """No survey or extra var sets the run id: run_context.yml makes it from awx_job_id, one per job."""
    run_context = (ROOT / "playbooks" / "run_context.yml").read_text()
    assert "awx_job_id" in run_context and "awx_user_name" in run_context
    for template in plan["job_templates"]:
        assert template["ask_variables_on_launch"] is False, template["name"]
        if template["playbook"] in procedure_playbooks():
            assert template["ask_limit_on_launch"] is True, template["name"]
        for question in template["survey_spec"].get("spec", []):
            assert not RESERVED.match(question["variable"]), (template["name"], question["variable"])
    deploy = templates(plan)["playbooks/deploy.yml"]
    assert deploy["job_slice_count"] == 1, "slices of a deploy would each make their own release id and waves"


def test_every_survey_question_is_an_input_of_its_procedure(plan: dict):
    for template in plan["job_templates"]:
        questions = template["survey_spec"].get("spec", [])
        assert template["survey_enabled"] is bool(questions), template["name"]
        # awx.awx.job_template deletes a survey given {}; an empty spec list is refused by the controller.
        assert questions or template["survey_spec"] == {}, template["name"]
        if not questions:
            continue
        inputs = procedure_inputs(template["playbook"])
        variables = [question["variable"] for question in questions]
        assert len(set(variables)) == len(variables), template["name"]
        for question in questions:
            where = f"{template['name']}: survey variable {question['variable']}"
            assert question["variable"] in inputs, f"{where} is read by neither {template['playbook']} nor its roles"
            spec = inputs[question["variable"]]
            kind = spec.get("type")
            if kind == "bool":
                assert question["type"] == "multiplechoice", where
                assert sorted(question["choices"]) == ["false", "true"], where
            elif kind == "int":
                assert question["type"] == "integer", where
            elif kind in ("list", "dict"):
                pytest.fail(f"{where}: a survey answer cannot be a {kind}")
            if "default" in question:
                assert question["type"] != "multiplechoice" or question["default"] in question["choices"], where
                role_default = spec.get("default")
                if isinstance(role_default, str | bool | int) and "{{" not in str(role_default):
                    assert str(question["default"]).lower() == str(role_default).lower(), (
                        f"{where}: default {question['default']!r} but the role's is {role_default!r}"
                    )
            elif question["type"] in ("text", "textarea") and not question["required"]:
                # An empty answer may reach the play as "": it must mean what the role's default means.
                role_default = spec.get("default", "")
                assert role_default in ("", None) or "{{" in str(role_default), (
                    f"{where}: an empty answer would replace the role's default {role_default!r}"
                )


def test_deploy_workflow_shape_and_one_release_id(plan: dict):
    workflow = plan["workflow"]
    nodes = {node["identifier"]: node for node in workflow["workflow_nodes"]}
    names = {template["key"]: template["name"] for template in plan["job_templates"]}

    def edges(identifier: str, kind: str) -> list[str]:
        return [child["identifier"] for child in nodes[identifier].get("related", {}).get(kind, [])]

    assert nodes["name-release"]["unified_job_template"]["name"] == names["name_release"]
    assert edges("name-release", "success_nodes") == ["backup"]
    assert nodes["backup"]["unified_job_template"]["name"] == names["backup"]
    assert edges("backup", "success_nodes") == ["canary"]
    assert nodes["canary"]["unified_job_template"]["name"] == names["deploy"]
    assert nodes["canary"]["limit"] == "canary"
    assert edges("canary", "success_nodes") == ["approve"]
    assert nodes["approve"]["unified_job_template"]["type"] == "workflow_approval"
    assert int(nodes["approve"]["unified_job_template"]["timeout"]) > 0
    assert edges("approve", "success_nodes") == ["waves"]
    assert nodes["waves"]["unified_job_template"]["name"] == names["deploy"]
    assert nodes["waves"]["limit"] == "clinics:!canary"
    for parent in ("canary", "approve", "waves"):
        assert edges(parent, "failure_nodes") == ["withdraw"], parent
    assert nodes["withdraw"]["unified_job_template"]["name"] == names["withdraw_release"]
    # Each node is its own job: the release id reaches them all as the name-release node's artifact.
    # Workflow extra vars (survey answers) win over artifacts, so the survey must not ask for it.
    questions = [question["variable"] for question in workflow["survey_spec"]["spec"]]
    assert "deploy_release_id" not in questions
    assert workflow["survey_spec"] == templates(plan)["playbooks/deploy.yml"]["survey_spec"]
    assert "deploy_version" in questions


def test_schedules_follow_the_inventory_time_zones(plan: dict):
    listing = json.loads(
        run([str(BIN / "ansible-inventory"), "-i", str(ROOT / "inventories" / "example"), "--list"]).stdout
    )
    hostvars = listing["_meta"]["hostvars"]
    clinics = [host for group in listing["clinics"]["children"] for host in listing[group].get("hosts", [])]
    zones = {hostvars[host]["clinic_timezone"] for host in clinics}
    by_name = {template["name"]: template for template in plan["job_templates"]}
    drills = [schedule for schedule in plan["schedules"] if "restore drill" in schedule["name"]]
    assert {schedule["rrule"].split(";TZID=")[1].split(":")[0] for schedule in drills} == zones
    for schedule in plan["schedules"]:
        template = by_name[schedule["unified_job_template"]]
        assert template["playbook"] in procedure_playbooks()
        rule = rrulestr(schedule["rrule"].replace(" RRULE:", "\nRRULE:"))
        assert rule.after(rule[0]) is not None, schedule
        if ";TZID=" in schedule["rrule"]:
            ZoneInfo(schedule["rrule"].split(";TZID=")[1].split(":")[0])
        if schedule["limit"]:
            assert template["ask_limit_on_launch"], schedule["name"]
    for schedule in drills:
        zone = schedule["rrule"].split(";TZID=")[1].split(":")[0]
        members = {host for host in clinics if hostvars[host]["clinic_timezone"] == zone}
        limit = schedule["limit"]
        limited = set(listing[limit]["hosts"]) if limit in listing else set(limit.split(","))
        assert limited == members, schedule["name"]


def test_window_schedules_are_the_inventorys_maintenance_windows(plan: dict):
    settings = load(AWX / "vars.yml")
    listing = json.loads(
        run([str(BIN / "ansible-inventory"), "-i", str(ROOT / "inventories" / "example"), "--list"]).stdout
    )
    hostvars = listing["_meta"]["hostvars"]
    clinics = [host for group in listing["clinics"]["children"] for host in listing[group].get("hosts", [])]
    names = {template["key"]: template for template in plan["job_templates"]}
    prefix = f"{settings['clinicops_awx_prefix']} window "
    dtstart = datetime.strptime(settings["clinicops_awx_schedule_start"], "%Y%m%d").date()
    declared = {schedule["name"]: schedule for schedule in plan["schedules"] if schedule["name"].startswith(prefix)}

    # What the gate reads, grouped by hand: (procedure, zone, window) -> the clinics and the window.
    expected: dict[tuple[str, str, str], tuple[set[str], dict]] = {}
    for procedure in settings["clinicops_awx_window_procedures"]:
        for clinic in clinics:
            for window in hostvars[clinic].get("clinic_maintenance_windows") or []:
                if procedure in window.get("procedures", [procedure]):
                    key = (procedure, hostvars[clinic]["clinic_timezone"], window["name"])
                    expected.setdefault(key, (set(), window))[0].add(clinic)
    assert len(expected) == len(declared) == 8  # 4 zones x (weekly, monthly) allow maintenance

    begin = datetime(2026, 11, 26, tzinfo=UTC)
    for schedule in declared.values():
        matches = [
            key
            for key in expected
            if schedule["name"].endswith(f"-{key[2]}") and f"TZID={key[1]}:" in schedule["rrule"]
        ]
        assert len(matches) == 1, schedule["name"]
        (procedure, zone, window_name), (members, window) = matches[0], expected[matches[0]]
        template = names[procedure]
        assert schedule["unified_job_template"] == template["name"]
        assert template["playbook"] == f"playbooks/{procedure}.yml" and template["ask_limit_on_launch"] is True
        assert set(schedule["limit"].split(",")) == members
        assert schedule["rrule"] == to_awx_rrule(zone, window, dtstart)
        # AWX refuses schedule variables its template neither prompts for nor asks in its survey.
        survey = {question["variable"] for question in template["survey_spec"].get("spec", [])}
        assert set(schedule["extra_data"]) <= survey, schedule["name"]
        # No drift: read as AWX reads it, the rule fires at every occurrence of the window, and only then; the
        # gate refuses the excluded ones. On a spring-forward day a 02:00 start is in the gap: the gate opens at
        # its end (03:00), AWX fires that day at a time of its own (docs/maintenance-windows.md), so only the day
        # is compared there.
        rule = rrulestr(schedule["rrule"].replace(" RRULE:", "\nRRULE:"))
        end = begin + timedelta(days=400)
        fired = rule.between(begin, end)
        for member in members:
            occurrences = occurrences_between(
                zone, [window], hostvars[member].get("clinic_maintenance_exclusions"), begin, end, clinic=member
            )
            opens = [datetime.fromisoformat(occurrence["start"]) for occurrence in occurrences]
            assert len(fired) == len(opens) > 10, member
            for when, gate in zip(fired, opens, strict=True):
                if gate.strftime("%H:%M") == window["start"]:
                    # Timestamps: Python never finds an ambiguous (fall-back) time equal to one of another zone.
                    assert when.timestamp() == gate.timestamp(), (member, when, gate)
                else:  # the start is in that day's spring-forward gap
                    assert when.date() == gate.date() and abs(when - gate) <= timedelta(hours=1), (member, when, gate)
            if window_name == "weekly":  # Sunday 2027-12-26 is a Christmas day: it fires, and the gate refuses it
                assert [o["start"][:10] for o in occurrences if o["excluded"]] == ["2027-12-26"], member


def test_bad_window_data_stops_the_declaration_naming_the_clinic(tmp_path: Path):
    target = tmp_path / "plan.json"
    bad = [{"name": "weekly", "rrule": "FREQ=WEEKLY;BYDAY=SU", "start": "02:00", "duration": "2h", "cutoff": "3h"}]
    done = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(ROOT / "inventories" / "example"),
            str(AWX / "controller.yml"),
            "-e",
            json.dumps({"clinicops_awx_render_file": str(target), "clinic_maintenance_windows": bad}),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=ansible_env(),
    )
    assert done.returncode != 0
    output = " ".join((done.stdout + done.stderr).split())
    assert (
        "window_schedules: clinic clinic-brooklyn.example.org: window 'weekly': cutoff 3 h must be shorter than the "
        "duration 2 h" in output
    )
    assert not target.exists()


# ---- the deploy workflow's own playbooks, run for real on a local stand-in clinic ------------------


def run_playbook(tmp_path: Path, playbook: Path, **kwargs: Any) -> ansible_runner.Runner:
    # A directory per run: ansible-runner would read an earlier run's env/extravars from a shared one.
    private = Path(tempfile.mkdtemp(prefix="runner-", dir=tmp_path))
    return ansible_runner.run(
        private_data_dir=str(private),
        playbook=str(playbook),
        envvars=ansible_env(),  # the venv's ansible-playbook first on PATH, this collection
        quiet=True,
        **kwargs,
    )


def stats_artifacts(result: ansible_runner.Runner) -> dict:
    """What AWX keeps as the job's artifacts (set_stats) and hands to the next workflow nodes."""
    for event in result.events:
        if event.get("event") == "playbook_on_stats":
            return event["event_data"].get("artifact_data") or {}
    return {}


def test_name_release_hands_one_release_id_to_the_workflow(tmp_path: Path):
    result = run_playbook(tmp_path, AWX / "playbooks" / "name_release.yml", extravars={"deploy_version": "2.0.0"})
    assert result.rc == 0
    release_id = stats_artifacts(result)["deploy_release_id"]
    assert RELEASE_ID.match(release_id) and re.match(r"^\d{8}T\d{6}Z-2\.0\.0$", release_id), release_id

    refused = run_playbook(tmp_path, AWX / "playbooks" / "name_release.yml", extravars={"deploy_version": "2.0 beta"})
    assert refused.rc != 0
    assert "deploy_release_id" not in stats_artifacts(refused)


def test_withdraw_rolls_back_only_the_clinics_running_the_release(tmp_path: Path):
    """Check mode on two stand-in clinics: the one on the workflow's release would roll back, the other not."""
    old, new = "20260101T000000Z-1.0.0", "20260201T000000Z-2.0.0"
    hosts = {}
    for clinic, releases in (("reached", [old, new]), ("not-reached", [old])):
        app_root = tmp_path / clinic
        (app_root / "releases").mkdir(parents=True)
        (app_root / "shared").mkdir()
        hosts[clinic] = {
            "ansible_connection": "local",
            "ansible_become": False,
            "ansible_python_interpreter": sys.executable,
            "clinic_host_app_root": str(app_root),
            "clinicops_releases": releases,
        }
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"clinics": {"hosts": hosts}}))
    setup = tmp_path / "setup.yml"
    setup.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Two releases on a stand-in clinic",
                    "hosts": "clinics",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "clinicops.runbook.release": {
                                "app_root": "{{ clinic_host_app_root }}",
                                "state": "prepared",
                                "release_id": "{{ item }}",
                                "version": "{{ item.split('-', 1)[1] }}",
                                "who": "test",
                                "run_id": "test",
                            },
                            "loop": "{{ clinicops_releases }}",
                        },
                        {
                            "clinicops.runbook.release": {
                                "app_root": "{{ clinic_host_app_root }}",
                                "state": "active",
                                "release_id": "{{ item }}",
                            },
                            "loop": "{{ clinicops_releases }}",
                        },
                    ],
                }
            ]
        )
    )
    assert run_playbook(tmp_path, setup, inventory=str(inventory)).rc == 0

    result = run_playbook(
        tmp_path,
        AWX / "playbooks" / "withdraw_release.yml",
        inventory=str(inventory),
        extravars={"deploy_release_id": new},
        cmdline="--check",
    )
    assert result.rc == 0
    rollbacks = {
        event["event_data"]["host"]: event["event_data"]["res"]
        for event in result.events
        if event.get("event") == "runner_on_ok"
        and event["event_data"].get("task_action") == "clinicops.runbook.release_rollback"
    }
    assert set(rollbacks) == {"reached"}
    assert rollbacks["reached"]["changed"] is True
    for clinic, current in (("reached", new), ("not-reached", old)):
        assert os.readlink(tmp_path / clinic / "current") == f"releases/{current}", "check mode changed a clinic"

    refused = run_playbook(tmp_path, AWX / "playbooks" / "withdraw_release.yml", inventory=str(inventory))
    assert refused.rc != 0, "without the workflow's release id nothing may be rolled back"


# ---- the execution environment ---------------------------------------------------------------------


def constraint(name: str) -> str:
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        if line.lower().startswith(f"{name.lower()}=="):
            return line
    raise AssertionError(f"{name} is not pinned in requirements/constraints.txt")


def test_execution_environment_definitions_are_valid():
    from ansible_builder.ee_schema import validate_schema

    definition = load(ROOT / "execution-environment.yml")
    assert definition["version"] == 3
    validate_schema(definition)
    meta = load(ROOT / "meta" / "execution-environment.yml")
    validate_schema(meta)
    # Introspection reads only these two from the collection: they must name files that ship in it.
    assert meta["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}
    galaxy = load(ROOT / "galaxy.yml")
    tarball = f"collections/{galaxy['namespace']}-{galaxy['name']}-{galaxy['version']}.tar.gz"
    collections = {entry["name"]: entry for entry in definition["dependencies"]["galaxy"]["collections"]}
    assert collections[tarball]["type"] == "file", "the EE must install the tarball of galaxy.yml's version"
    for name, version in galaxy["dependencies"].items():
        assert collections[name]["version"] == version, name
    assert definition["dependencies"]["ansible_core"]["package_pip"] == constraint("ansible-core")
    assert definition["dependencies"]["ansible_runner"]["package_pip"] == constraint("ansible-runner")
    # The collection's requirements come through introspection; listing them here too would list them twice.
    assert "python" not in definition["dependencies"] and "system" not in definition["dependencies"]


def test_ansible_builder_creates_the_build_context_offline(tmp_path: Path):
    galaxy = load(ROOT / "galaxy.yml")
    name = f"{galaxy['namespace']}-{galaxy['name']}-{galaxy['version']}.tar.gz"
    # A checkout-shaped directory: the EE definition and the tarball where it expects it.
    checkout = tmp_path / "checkout"
    (checkout / "build" / "ee").mkdir(parents=True)
    shutil.copy(ROOT / "execution-environment.yml", checkout)
    run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(checkout / "build" / "ee"), str(ROOT)]
    )
    with tarfile.open(checkout / "build" / "ee" / name) as tar:
        shipped = tar.getnames()
    for required in ("requirements.txt", "bindep.txt", "meta/execution-environment.yml", "playbooks/deploy.yml"):
        assert required in shipped
    assert not [path for path in shipped if path.startswith(("awx/", "execution-environment.yml"))]

    context = tmp_path / "context"
    run(
        [
            str(BIN / "ansible-builder"),
            "create",
            "-f",
            str(checkout / "execution-environment.yml"),
            "--context",
            str(context),
            "--output-filename",
            "Containerfile",
        ],
        cwd=checkout,
    )
    containerfile = (context / "Containerfile").read_text()
    assert "FROM $EE_BASE_IMAGE AS base" in containerfile
    assert f'ARG ANSIBLE_INSTALL_REFS="{constraint("ansible-core")} {constraint("ansible-runner")}"' in containerfile
    assert "introspect.py introspect" in containerfile
    assert (context / "_build" / "collections" / name).read_bytes() == (checkout / "build" / "ee" / name).read_bytes()
    requirements = load(context / "_build" / "requirements.yml")
    installed = {entry["name"] for entry in requirements["collections"]}
    assert f"collections/{name}" in installed
    assert set(galaxy["dependencies"]) <= installed

    # What the builder stage's introspection will find in the installed collection.
    collections = tmp_path / "collections"
    run(
        [
            str(BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--force",  # clinicops.runbook is on ANSIBLE_COLLECTIONS_PATH already (the build tree)
            "--no-deps",
            "-p",
            str(collections),
            str(context / "_build" / "collections" / name),
        ]
    )
    pip_file, bindep_file = tmp_path / "pip.txt", tmp_path / "bindep.txt"
    run(
        [
            str(BIN / "ansible-builder"),
            "introspect",
            str(collections),
            "--write-pip",
            str(pip_file),
            "--write-bindep",
            str(bindep_file),
        ]
    )
    wanted = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line and line[0] != "#"]
    found = [line.split("  #")[0] for line in pip_file.read_text().splitlines()]
    assert sorted(found) == sorted(wanted)

    from bindep.depends import Depends

    rules = Depends(bindep_file.read_text())
    # assemble runs plain `bindep` (profile "default") on the RPM-based image.
    image = {rule[0] for rule in rules.active_rules(["default", "platform:rpm", "platform:redhat", "platform:fedora"])}
    assert image == {"restic", "zstd", "openssh-clients"}
    clinic = {rule[0] for rule in rules.active_rules(["clinic", "platform:dpkg", "platform:debian"])}
    assert {"restic", "postgresql-client", "python3-psycopg", "openssh-client"} <= clinic
