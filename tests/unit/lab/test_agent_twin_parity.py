"""The lab's twin of the agent (lab.windows.agent_twin) against the agent itself, as the transport sends it: the same
op names and handlers, the same argument bounds, the same run-directory file names and other shared names, the same
keys in answers, error documents and raw facts; and the agent's PowerShell parts spell none of the names the
controller owns.

There is no PowerShell here, so every integration test talks to the twin: this is what keeps it the agent's twin.
The script is read with tree-sitter-powershell and its generated ``$Shadowsnap`` block (unit.plugins.plugin_utils.
agent_reader); each check also runs on a deliberately broken copy of either side, to prove that it fails.
"""

from __future__ import annotations

import copy
import re

import pytest

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import agent_transport
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import diskshadow as generator
from lab.dataplane import BlockStore
from lab.windows import LabWindowsHost, WindowsServer, agent_twin
from lab.windows.agent_twin import protocol
from lab.windows.testing import call_agent, sample_instance
from unit.plugins.plugin_utils.agent_reader import AgentScript

AGENT_DIRECTORY = agent_transport.AGENT_DIRECTORY
SQL_WRITER_ID = "{a65faa63-5ea8-4ebc-9dbd-a0c4db26912a}"


def agent_facts(source):
    """What the joined script says, by the names the checks compare."""
    script = AgentScript(source)
    constants = script.constants()
    handlers = constants["Handlers"]
    return {
        "read ops": constants["ReadOps"],
        "session ops": constants["SessionOps"],
        "batch op": constants["BatchOp"],
        "sequence op": constants["SequenceOp"],
        "sequence ops": constants["SequenceOps"],
        "a sequence ends at its first failure": bool(re.search(r"if \(-not \$done\.ok\) \{\s*break\s*\}",
                                                               script.body("Invoke-Sequence"))),
        "dispatch": {op: function if function in script.functions else function + " (not defined)"
                     for op, function in handlers.items()},
        "argument bounds": {op: bounds for op, function in handlers.items() if (bounds := script.int_arguments(function))},
        "session files": constants["SessionFiles"],
        "required session files": constants["RequiredSessionFiles"],
        "run-directory files": script.value("$RunFiles"),
        "run id pattern": constants["RunIdPattern"],
        "GUID pattern": constants["GuidPattern"],
        "root": script.value("$ShadowsnapRoot"),
        "run root": script.value("$RunRoot"),
        "task path": constants["TaskPath"],
        "task prefix": constants["TaskPrefix"],
        "in-progress HRESULT": constants["InProgressHResult"],
        "shadow set variable": constants["ShadowSetVariable"],
        "release decisions": constants["ReleaseDecisions"],
        "abort decision": constants["AbortDecision"],
        "active task states": constants["ActiveTaskStates"],
        "task never ran": constants["TaskNeverRan"],
        "SYSTEM": constants["SystemSid"],
        "Administrators": constants["AdministratorsSid"],
        "output limit": script.value("$OutputLimit"),
        "log limit": script.value("$LogLimit"),
        "writer sources": re.findall(r"\$name -eq '(\w+)'", script.body("Get-WritersResult")),
        "error document keys": script.hash_keys("New-ErrorAnswer", "error = [ordered]@{"),
        "answer keys": sorted(set(script.hash_keys("Invoke-Request", "$answer = [ordered]@{"))
                              | set(script.hash_keys("New-ErrorAnswer", "return [ordered]@{"))),
        "run fact keys": script.hash_keys("Get-RunFacts", "$facts = [ordered]@{"),
        "task fact keys": script.hash_keys("Get-TaskFacts", "return [ordered]@{"),
        "folder fact keys": script.hash_keys("Get-FolderFacts", "$facts = [ordered]@{"),
        "access entry keys": script.hash_keys("Get-FolderFacts", "            [ordered]@{"),
        "sessions keys": script.hash_keys("Get-SessionsResult", "return [ordered]@{"),
        "shadow copy keys": script.hash_keys("Get-ShadowCopyIds", "[ordered]@{"),
        "cleaned keys": script.hash_keys("Invoke-RunCleanup", "$entry = [ordered]@{"),
        "start keys": script.added_keys("Start-Session"),
        "release keys": script.added_keys("Invoke-SessionRelease"),
        "disk state keys": script.hash_keys("Get-DiskState", "$facts = [ordered]@{"),
        "service state keys": script.hash_keys("Invoke-ServiceSet", "$services += [ordered]@{"),
        "revert keys": script.hash_keys("Invoke-ShadowRevert", "return [ordered]@{"),
        "expose keys": script.hash_keys("Invoke-ShadowExpose", "return [ordered]@{"),
        "files copy job keys": script.hash_keys("Invoke-FilesCopy", "$answers += [ordered]@{"),
        "files copy jobs": script.value("$FilesCopyMaxJobs"),
    }


def twin_facts(twin=protocol, operations=None):
    operations = agent_twin.OPERATIONS if operations is None else operations
    return {
        "read ops": list(twin.READ_OPS),
        "session ops": list(twin.SESSION_OPS),
        "batch op": twin.BATCH_OP,
        "sequence op": twin.SEQUENCE_OP,
        "sequence ops": list(twin.SEQUENCE_OPS),
        "a sequence ends at its first failure": sequence_ends_at_a_failure(),
        "dispatch": {op: function for op, (dummy, function) in operations.items()},
        "argument bounds": {op: dict(bounds) for op, bounds in twin.INT_ARGUMENTS.items()},
        "session files": list(twin.SESSION_FILES),
        "required session files": list(twin.REQUIRED_SESSION_FILES),
        "run-directory files": list(twin.RUN_FILES),
        "run id pattern": twin.RUN_ID_PATTERN,
        "GUID pattern": twin.GUID_PATTERN,
        "root": twin.SHADOWSNAP_ROOT,
        "run root": twin.RUN_ROOT,
        "task path": twin.TASK_PATH,
        "task prefix": twin.TASK_PREFIX,
        "in-progress HRESULT": twin.IN_PROGRESS_HRESULT,
        "shadow set variable": twin.SHADOW_SET_VARIABLE,
        "release decisions": list(twin.RELEASE_DECISIONS),
        "abort decision": twin.ABORT_DECISION,
        "active task states": list(twin.ACTIVE_TASK_STATES),
        "task never ran": twin.TASK_NEVER_RAN,
        "SYSTEM": twin.SYSTEM_SID,
        "Administrators": twin.ADMINISTRATORS_SID,
        "output limit": twin.OUTPUT_LIMIT,
        "log limit": twin.LOG_LIMIT,
        "writer sources": list(twin.WRITER_SOURCES),
        "error document keys": list(twin.ERROR_KEYS),
        "answer keys": sorted(twin.ANSWER_KEYS),
        "run fact keys": list(twin.RUN_FACT_KEYS),
        "task fact keys": list(twin.TASK_FACT_KEYS),
        "folder fact keys": list(twin.FOLDER_FACT_KEYS),
        "access entry keys": list(twin.ACCESS_ENTRY_KEYS),
        "sessions keys": list(twin.SESSIONS_KEYS),
        "shadow copy keys": list(twin.SHADOW_COPY_KEYS),
        "cleaned keys": list(twin.CLEANED_KEYS),
        "start keys": list(twin.START_KEYS),
        "release keys": list(twin.RELEASE_KEYS),
        "disk state keys": list(twin.DISK_STATE_KEYS),
        "service state keys": list(twin.SERVICE_STATE_KEYS),
        "revert keys": list(twin.REVERT_KEYS),
        "expose keys": list(twin.EXPOSE_KEYS),
        "files copy job keys": list(twin.FILES_COPY_JOB_KEYS),
        "files copy jobs": twin.FILES_COPY_MAX_JOBS,
    }


def sequence_ends_at_a_failure():
    """Whether the twin runs nothing after a failed op of a sequence (a service set that fails, then a read)."""
    host = LabWindowsHost(WindowsServer(sample_instance("win-sql-01"), BlockStore()).seed())
    try:
        host.replays.arm("service_set", error={"message": "Access is denied.", "hresult": "0x80070005"})
        document = call_agent(host, "sequence", {"requests": [{"op": "service_set", "args": {}}, {"op": "storage"}]})
    finally:
        host.shutdown()
    return [item["op"] for item in document["result"]["answers"]] == ["service_set"]


def disagreements(agent, twin):
    return ["%s: the agent says %r, its twin %r" % (name, agent[name], twin[name]) for name in agent if agent[name] != twin[name]]


@pytest.fixture(name="agent_source", scope="module")
def agent_source_fixture():
    return agent_transport.agent_script()


def test_the_twin_agrees_with_the_agent(agent_source):
    agent = agent_facts(agent_source)
    assert agent["read ops"] and agent["session ops"] and agent["argument bounds"] and agent["run fact keys"], "the script was read"
    assert disagreements(agent, twin_facts()) == []


def test_the_twin_dispatches_what_it_declares_and_answers_with_the_declared_keys(host_model):
    assert list(agent_twin.OPERATIONS) == list(protocol.READ_OPS + protocol.SESSION_OPS)
    host = LabWindowsHost(host_model("win-xen-01"))
    ok = call_agent(host, "facts")
    failed = call_agent(host, "session_status", {"run_id": "not valid!"})
    assert set(ok) | set(failed) == set(protocol.ANSWER_KEYS)
    assert list(failed["error"]) == list(protocol.ERROR_KEYS) and failed["error"]["where"] == "at Get-RunId, <No file>"
    clamped = call_agent(host, "session_status", {"run_id": "ss-1", "wait_seconds": -5})
    assert clamped["ok"] and clamped["result"]["exists"] is False
    refused = call_agent(host, "file_read", {"path": "C:\\Windows\\System32\\config\\SYSTEM", "max_bytes": "many"})
    assert "must be a whole number" in refused["error"]["message"]


def test_the_twins_raw_facts_have_the_keys_it_declares(host_model):
    """The twin's tables, which the script is compared with, are what the twin answers."""
    host = LabWindowsHost(host_model())
    host.model.files.make_hostile("extra_ace", protocol.SHADOWSNAP_ROOT)
    session_plan = generator.SessionPlan(run_id="ss-keys", volumes=["D:", "E:"], verify_writer_ids=[SQL_WRITER_ID])
    started = call_agent(host, "session_start", {"run_id": "ss-keys", "files": generator.session_files(session_plan),
                                                 "wait_seconds": 30, "wait_for": ["exit.txt"]})["result"]
    assert tuple(started) == protocol.RUN_FACT_KEYS + protocol.START_KEYS
    assert tuple(started["task"]) == protocol.TASK_FACT_KEYS
    tree = call_agent(host, "sessions")["result"]
    assert tuple(tree) == protocol.SESSIONS_KEYS and [tuple(run) for run in tree["runs"]] == [protocol.RUN_FACT_KEYS]
    assert {tuple(folder) for folder in tree["folders"]} == {protocol.FOLDER_FACT_KEYS}
    entries = [entry for folder in tree["folders"] for entry in folder["explicit_access"]]
    assert entries and {tuple(entry) for entry in entries} == {protocol.ACCESS_ENTRY_KEYS}
    released = call_agent(host, "session_release", {"run_id": "ss-keys", "decision": "ok", "wait_seconds": 30})["result"]
    assert tuple(released) == protocol.RUN_FACT_KEYS + protocol.RELEASE_KEYS
    assert released["shadow_copies"] and {tuple(item) for item in released["shadow_copies"]} == {protocol.SHADOW_COPY_KEYS}
    cleaned = call_agent(host, "session_cleanup", {"runs": [{"run_id": "ss-keys", "shadow_set_id": None}]})["result"]["cleaned"]
    assert [tuple(entry) for entry in cleaned] == [protocol.CLEANED_KEYS]


AGENT_MUTATIONS = [
    pytest.param(lambda s: s.replace("'shadow_delete', 'session_cleanup'", "'shadow_remove', 'session_cleanup'", 1),
                 "session ops", id="session-op-renamed"),
    pytest.param(lambda s: s.replace("session_release = 'Invoke-SessionRelease'", "session_free = 'Invoke-SessionRelease'", 1),
                 "dispatch", id="dispatch-renamed"),
    pytest.param(lambda s: s.replace("function Get-FactsResult {", "function Get-HostFacts {", 1), "dispatch", id="handler"),
    pytest.param(lambda s: s.replace("$MaxWaitSeconds = 900", "$MaxWaitSeconds = 600", 1), "argument bounds", id="max-wait"),
    pytest.param(lambda s: s.replace("'max_bytes' $FileReadDefaultLimit 1", "'max_bytes' $FileReadDefaultLimit 0", 1),
                 "argument bounds", id="minimum"),
    pytest.param(lambda s: s.replace("ReleaseFile = 'release.txt'", "ReleaseFile = 'released.txt'", 1), "run-directory files",
                 id="file-renamed"),
    pytest.param(lambda s: s.replace("RequiredSessionFiles = @('snapshot.dsh', 'record.cmd', 'run.cmd')",
                                     "RequiredSessionFiles = @('snapshot.dsh', 'run.cmd')", 1),
                 "required session files", id="required-file"),
    pytest.param(lambda s: s.replace("            where = [string]$ErrorRecord.ScriptStackTrace\n", "", 1),
                 "error document keys", id="error-key"),
    pytest.param(lambda s: s.replace("RunIdPattern = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'",
                                     "RunIdPattern = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'", 1), "run id pattern", id="run-id"),
    pytest.param(lambda s: s.replace("TaskPrefix = 'shadowsnap-'", "TaskPrefix = 'shadowsnap_'", 1), "task prefix", id="task-prefix"),
    pytest.param(lambda s: s.replace("        exists = $false\n        created = $null\n        task = $null",
                                     "        present = $false\n        created = $null\n        task = $null", 1),
                 "run fact keys", id="run-fact-key"),
    pytest.param(lambda s: s.replace("        owner_name = $null\n", "", 1), "folder fact keys", id="folder-fact-key"),
    pytest.param(lambda s: s.replace("        if (-not $done.ok) {\n            break\n        }\n", "", 1),
                 "a sequence ends at its first failure", id="sequence-goes-on"),
    pytest.param(lambda s: s.replace("$answer['shadow_copies']", "$answer['shadows_present']", 1), "release keys", id="release-key"),
    pytest.param(lambda s: s.replace("                propagation = [string]$rule.PropagationFlags\n", "", 1),
                 "access entry keys", id="access-entry-key"),
    pytest.param(lambda s: s.replace("            exit_code = $run['exit_code']\n", "", 1), "files copy job keys",
                 id="files-copy-key"),
    pytest.param(lambda s: s.replace("$FilesCopyMaxJobs = 64", "$FilesCopyMaxJobs = 128", 1), "files copy jobs",
                 id="files-copy-jobs"),
    pytest.param(lambda s: s.replace("files_copy = 'Invoke-FilesCopy'", "files_copy = 'Invoke-FileCopy'", 1), "dispatch",
                 id="files-copy-dispatch"),
]


@pytest.mark.parametrize("mutate, expected", AGENT_MUTATIONS)
def test_each_check_catches_an_agent_that_drifted(agent_source, mutate, expected):
    broken = mutate(agent_source)
    assert broken != agent_source, "the mutation did not apply: update the test"
    problems = disagreements(agent_facts(broken), twin_facts())
    assert any(problem.startswith(expected + ":") for problem in problems), problems


class TwinCopy:  # pylint: disable=too-few-public-methods
    """The twin's protocol tables, copied, to be broken one at a time."""

    def __init__(self):
        for name in dir(protocol):
            if name.isupper():
                setattr(self, name, copy.deepcopy(getattr(protocol, name)))


def rename_op(operations, old, new):
    return {new if op == old else op: entry for op, entry in operations.items()}


TWIN_MUTATIONS = [
    pytest.param(lambda t: setattr(t, "READ_OPS", ("facts", "storage", "writer", "shadows", "sessions")), None, "read ops",
                 id="read-op"),
    pytest.param(None, lambda o: rename_op(o, "session_start", "session_begin"), "dispatch", id="twin-dispatch"),
    pytest.param(lambda t: t.INT_ARGUMENTS["session_release"].update(wait_seconds=(0, 0, 600)), None, "argument bounds",
                 id="twin-bound"),
    pytest.param(lambda t: setattr(t, "RUN_FILES", ("created.txt", "exit.txt", "release.txt")), None,
                 "run-directory files", id="twin-file"),
    pytest.param(lambda t: setattr(t, "ERROR_KEYS", t.ERROR_KEYS[:-1]), None, "error document keys", id="twin-error-key"),
    pytest.param(lambda t: setattr(t, "RUN_ROOT", "C:\\ProgramData\\shadowsnap\\run"), None, "run root", id="twin-root"),
    pytest.param(lambda t: setattr(t, "RUN_FACT_KEYS", t.RUN_FACT_KEYS + ("state",)), None, "run fact keys",
                 id="twin-decides-a-state"),
    pytest.param(lambda t: setattr(t, "RELEASE_KEYS", ("released_before", "present_shadow_ids", "deleted_shadow_ids")), None,
                 "release keys", id="twin-release-key"),
    pytest.param(lambda t: setattr(t, "ACTIVE_TASK_STATES", ("Running",)), None, "active task states", id="twin-active-states"),
]


@pytest.mark.parametrize("mutate_tables, mutate_operations, expected", TWIN_MUTATIONS)
def test_each_check_catches_a_twin_that_drifted(agent_source, mutate_tables, mutate_operations, expected):
    twin = TwinCopy()
    if mutate_tables:
        mutate_tables(twin)
    operations = mutate_operations(dict(agent_twin.OPERATIONS)) if mutate_operations else None
    problems = disagreements(agent_facts(agent_source), twin_facts(twin, operations))
    assert any(problem.startswith(expected + ":") for problem in problems), problems


# ------------------------------------------------------------------------------------------------ one owner per name


# Lines that spell the value of a shared name with another meaning: (the name, the line).
COINCIDENCES = {
    ("ReadOps", "$run = Invoke-Native -FilePath (Join-Path $SystemDir 'vssadmin.exe') -ArgumentList @('list', 'writers') "
                "-CodePage $codePage"): "vssadmin's own command",
    ("SequenceOps", "$run = Invoke-Native -FilePath (Join-Path $SystemDir 'vssadmin.exe') -ArgumentList @('list', 'writers') "
                    "-CodePage $codePage"): "vssadmin's own command",
    ("TaskPrefix", "$name = 'shadowsnap-' + [guid]::NewGuid().ToString('N') + '.dsh'"): "diskshadow's temporary scripts",
    ("ReleaseDecisions", "$answer = '{\"protocol\":' + $Shadowsnap.Protocol + ',\"op\":\"' + $Op + "
                         "'\",\"ok\":true,\"result\":{\"answers\":['"): "the answer's key ok",
    ("RunsFolder", "$runs = Get-Property $OpArgs 'runs' $null"): "session_cleanup's argument",
    ("ActiveTaskStates", "$dependents = @($service.DependentServices | Where-Object { [string]$_.Status -eq 'Running' })"):
        "a service's status",
    ("ActiveTaskStates", "$service.WaitForStatus('Running', $timeout)"): "a service's status",
    ("ActiveTaskStates", "if ([string]$dependent.Status -ne 'Running') {"): "a service's status",
    ("ActiveTaskStates", "$dependent.WaitForStatus('Running', $timeout)"): "a service's status",
}


def spelled_names(text):
    """The names the controller owns (the values of agent_transport.script_constants()) that a PowerShell part spells
    itself, as a quoted literal or as the number, on lines that are not COINCIDENCES."""
    found = []
    for line in text.split("\n"):
        for name, value in agent_transport.script_constants().items():
            if (name, line.strip()) in COINCIDENCES:
                continue
            values = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
            for item in values:
                if isinstance(item, str) and re.search(r"""(['"])%s\1""" % re.escape(item), line):
                    found.append("%s: %r" % (name, item))
                elif isinstance(item, int) and item > 255 and re.search(r"(?<![\w.])%d(?![\w.])" % item, line):
                    found.append("%s: %d" % (name, item))
    return found


PARTS = (agent_transport.AGENT_FRAME, *agent_transport.AGENT_PARTS)


@pytest.mark.parametrize("part", PARTS)
def test_the_powershell_parts_do_not_spell_the_names_the_controller_owns(part):
    assert spelled_names((AGENT_DIRECTORY / part).read_text(encoding="ascii")) == []


@pytest.mark.parametrize("spelled, expected", [
    ("$path = Join-Path $Directory 'created.txt'", "CreatedFile: 'created.txt'"),
    ('if ($Op -eq "session_start") {', "SessionOps: 'session_start'"),
    ("$InProgressHResult = '0x80042316'", "InProgressHResult: '0x80042316'"),
    ("$RunIdPattern = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'", "RunIdPattern"),
    ("return ($result -eq 267011)", "TaskNeverRan: 267011"),
    ("$identity = 'S-1-5-32-544'", "AdministratorsSid: 'S-1-5-32-544'"),
])
def test_a_part_that_spells_a_shared_name_is_caught(spelled, expected):
    text = (AGENT_DIRECTORY / "session_ops.ps1").read_text(encoding="ascii") + "\n" + spelled + "\n"
    assert any(problem.startswith(expected) for problem in spelled_names(text)), spelled_names(text)
