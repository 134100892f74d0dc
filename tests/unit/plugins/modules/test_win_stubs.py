# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each win_* documentation stub (plugins/modules/win_*.py) documents exactly its action plugin's argument spec.

ansible-test's validate-modules compares a module's documentation with its argument spec, but these stubs have no
code: the spec lives in the action plugin. The documentation is read the way ansible-doc reads it (Ansible's docstring
reader, the doc fragments merged by Ansible's add_fragments), then compared option by option, suboptions included: names, aliases, types,
defaults, choices, required and list elements.
"""

from __future__ import annotations

import importlib
import pathlib

import pytest
from ansible.parsing.plugin_docs import read_docstring
from ansible.utils.plugin_docs import add_fragments

REPO = pathlib.Path(__file__).resolve().parents[4]
STUBS = sorted((REPO / "plugins" / "modules").glob("win_*.py"))


class FragmentLoader:
    """Ansible's ``fragment_loader`` contract (``get`` by fully qualified name: an instance carrying ``ansible_name``)
    over plain imports: the collections are importable here, but Ansible's collection finder is installed only by the
    ansible-* commands, not in this process."""

    def get(self, name: str):
        parts = name.split(".")
        if len(parts) != 3:
            return None
        if parts[:2] == ["ansible", "builtin"]:
            module = f"ansible.plugins.doc_fragments.{parts[2]}"
        else:
            module = f"ansible_collections.{parts[0]}.{parts[1]}.plugins.doc_fragments.{parts[2]}"
        try:
            fragment = importlib.import_module(module).ModuleDocFragment
        except ImportError:
            return None
        return type("ModuleDocFragment", (fragment,), {"ansible_name": name})()


def plugin_docs(stub: pathlib.Path) -> dict:
    """DOCUMENTATION of a stub with its fragments merged by Ansible's own code, as ansible-doc shows it."""
    doc = read_docstring(str(stub))["doc"]
    add_fragments(doc, str(stub), FragmentLoader(), is_module=True)
    return doc


def _spec_of(option: dict) -> dict:
    """An option of an argument spec or of DOCUMENTATION in one shape (what ansible-core assumes when a key is absent)."""
    nested = option.get("options") if "options" in option else option.get("suboptions")
    return {
        "aliases": sorted(option.get("aliases") or []),
        "type": option.get("type") or "str",
        "default": option.get("default"),
        "choices": list(option.get("choices") or []),
        "required": bool(option.get("required", False)),
        "elements": option.get("elements"),
        "options": {name: _spec_of(sub) for name, sub in (nested or {}).items()},
    }


def differences(documented: dict, spec: dict, prefix: str = "") -> list[str]:
    found = []
    for name in sorted(set(documented) | set(spec)):
        where = prefix + name
        if name not in spec:
            found.append(f"{where}: documented, not in the argument spec")
            continue
        if name not in documented:
            found.append(f"{where}: in the argument spec, not documented")
            continue
        doc, code = _spec_of(documented[name]), _spec_of(spec[name])
        for key in ("aliases", "type", "default", "choices", "required", "elements"):
            if doc[key] != code[key]:
                found.append(f"{where}: {key} is {doc[key]!r} in the documentation, {code[key]!r} in the argument spec")
        found += differences(doc["options"], code["options"], where + ".")
    return found


def action_of(stub: pathlib.Path):
    return importlib.import_module(f"ansible_collections.shadowsnap.ec2.plugins.action.{stub.stem}").ActionModule


def test_every_win_stub_has_an_action_plugin():
    assert [stub.stem for stub in STUBS] == ["win_ebs_disk", "win_ebs_disk_info", "win_ebs_handover", "win_restore_files",
                                             "win_service_set", "win_vss_shadow_restore", "win_vss_snapshot_set",
                                             "win_vss_writer_info"]


@pytest.mark.parametrize("stub", STUBS, ids=[stub.stem for stub in STUBS])
def test_the_stub_documents_the_argument_spec_of_its_action(stub):
    doc = plugin_docs(stub)
    assert differences(doc["options"], action_of(stub).ARGUMENT_SPEC) == []


@pytest.mark.parametrize("stub", STUBS, ids=[stub.stem for stub in STUBS])
def test_the_stub_carries_the_shared_attributes_and_notes(stub):
    doc = plugin_docs(stub)
    attributes = doc["attributes"]
    assert {name: attributes[name]["support"] for name in ("action", "async", "become", "connection", "delegation")} == {
        "action": "full", "async": "none", "become": "none", "connection": "full", "delegation": "none"}
    assert attributes["platform"]["platforms"] == "windows"
    assert all(attribute.get("description") for attribute in attributes.values()), "ansible-core's fragments describe them"
    assert any("ansible.windows.win_reboot" in note for note in doc["notes"])


def test_a_difference_is_named_with_the_option_and_the_key():
    spec = {"state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
            "set": {"type": "dict", "options": {"set_id": {"type": "str", "required": True}}}}
    documented = {"state": {"type": "str", "default": "present", "choices": ["present"]},
                  "set": {"type": "dict", "suboptions": {"set_id": {"type": "str"}, "extra": {"type": "int"}}},
                  "gone": {"type": "bool"}}
    assert differences(documented, spec) == [
        "gone: documented, not in the argument spec",
        "set.extra: documented, not in the argument spec",
        "set.set_id: required is False in the documentation, True in the argument spec",
        "state: choices is ['present'] in the documentation, ['present', 'absent'] in the argument spec",
    ]
