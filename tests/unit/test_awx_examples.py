"""The AWX examples in docs/awx/ agree with what the role and playbooks accept, so a user can import them as they are."""

import json
import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AWX = os.path.join(ROOT, "docs", "awx")


def load_yaml(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def survey(name):
    with open(os.path.join(AWX, name), encoding="utf-8") as handle:
        return json.load(handle)


def playbook_inputs(name):
    """Variables a playbook reads with a default or declares in a play's vars."""
    text = open(os.path.join(ROOT, "playbooks", name), encoding="utf-8").read()
    declared = {key for play in yaml.safe_load(text) for key in (play.get("vars") or {})}
    return declared | {var for var in ("target_hosts", "aws_region") if var + " | default(" in text}


ROLE_OPTIONS = load_yaml("roles", "backup", "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
RESTORE_OPTIONS = load_yaml("roles", "restore", "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]


SURVEYS = [("backup-survey.json", "backup.yml"), ("fleet-health-survey.json", "fleet_health.yml"),
           ("rpo-survey.json", "rpo_report.yml"), ("drill-survey.json", "restore_drill.yml")]


@pytest.mark.parametrize("name, playbook", SURVEYS)
def test_every_survey_question_is_an_input_of_its_playbook(name, playbook):
    known = playbook_inputs(playbook) | (set(ROLE_OPTIONS) if playbook == "backup.yml" else set()) | (
        set(RESTORE_OPTIONS) if playbook == "restore_drill.yml" else set())
    questions = [q["variable"] for q in survey(name)["spec"]]
    assert questions and set(questions) <= known, set(questions) - known
    assert len(questions) == len(set(questions))


def test_backup_survey_answers_fit_the_role_options():
    for question in survey("backup-survey.json")["spec"]:
        option = ROLE_OPTIONS.get(question["variable"])
        if option is None:
            continue
        choices = question.get("choices", "").split("\n") if question["type"] == "multiplechoice" else None
        if option["type"] == "bool":
            assert sorted(choices) == ["false", "true"], question["variable"]
        elif option["type"] == "int":
            assert question["type"] == "integer", question["variable"]
        elif "choices" in option:
            assert choices and set(choices) <= set(option["choices"]), question["variable"]
        if choices:
            assert question["default"] in choices, question["variable"]


@pytest.mark.parametrize("name, playbook", [survey for survey in SURVEYS if survey[1] != "backup.yml"])
def test_playbooks_read_numbers_and_booleans_from_survey_text_with_their_filter(name, playbook):
    """Survey answers arrive as text: a playbook that compares or computes with one reads it with int, float or bool."""
    text = open(os.path.join(ROOT, "playbooks", playbook), encoding="utf-8").read()
    for question in survey(name)["spec"]:
        variable = question["variable"]
        if question["type"] in ("integer", "float"):
            assert re.search(r"\b%s \| (int|float)\b" % variable, text), variable
        elif question["type"] == "multiplechoice" and sorted(question["choices"].split("\n")) == ["false", "true"]:
            assert re.search(r"\b%s \| bool\b" % variable, text), variable


def test_the_project_requirements_match_the_collection_dependencies():
    galaxy = load_yaml("galaxy.yml")
    listed = {entry["name"]: entry.get("version") for entry in load_yaml("docs", "awx", "requirements.yml")["collections"]}
    assert listed.pop(galaxy["namespace"] + "." + galaxy["name"]) is None
    assert listed == galaxy["dependencies"]


def test_the_execution_environment_definition_is_ansible_builder_v3_and_installs_the_collection():
    definition = load_yaml("docs", "awx", "execution-environment.yml")
    assert definition["version"] == 3
    assert definition["dependencies"]["galaxy"] == "requirements.yml"
    assert os.path.exists(os.path.join(AWX, definition["dependencies"]["galaxy"]))
