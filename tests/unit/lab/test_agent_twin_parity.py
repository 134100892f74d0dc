"""The lab's twin of the agent (lab.windows.agent_twin) against the agent itself (shadowsnap_agent.ps1, as the
transport sends it): the same op names and dispatch, the same argument bounds, the same run-directory file names and
constants, the same keys in answers and error documents.

There is no PowerShell here, so every integration test talks to the twin: this is what keeps it the agent's twin.
The script is read with tree-sitter-powershell (functions, their bodies, the ``if ($Op -eq '...')`` dispatch) and its
module-level assignments; each check also runs on a deliberately broken copy of either side, to prove that it fails.
"""

from __future__ import annotations

import copy
import re

import pytest
import tree_sitter
import tree_sitter_powershell

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import agent_transport
from lab.dataplane import BlockStore
from lab.windows import LabWindowsHost, WindowsServer, agent_twin
from lab.windows.agent_twin import protocol
from lab.windows.testing import call_agent, sample_instance

PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
PROGRAM_DATA = "C:\\ProgramData"


def nodes(node):
    yield node
    for child in node.children:
        yield from nodes(child)


class Script:
    """What the agent's script says, read from its text."""

    def __init__(self, source):
        self.source = source
        self.data = source.encode("utf-8")
        self.tree = PARSER.parse(self.data)
        self.functions = {}
        for node in nodes(self.tree.root_node):
            if node.type == "function_statement":
                name = next(self.text(child) for child in node.children if child.type == "function_name")
                self.functions[name] = node
        self.assignments = dict(re.findall(r"^\$(\w+) = (.+?)\s*$", source, flags=re.MULTILINE))

    def text(self, node):
        return self.data[node.start_byte:node.end_byte].decode("utf-8")

    def value(self, token):
        """A literal or a module-level variable: ``900``, ``'x'``, ``$null``, ``$MaxWaitSeconds``, ``@('a', 'b')``,
        ``Join-Path $Var 'name'``."""
        token = token.strip()
        if token == "$null":
            return None
        if token.startswith("$"):
            return self.value(self.assignments[token[1:]])
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        if token.startswith("@("):
            return re.findall(r"'([^']*)'", token)
        join = re.fullmatch(r"Join-Path (\$[\w:]+) '([^']*)'", token)
        if join:
            base = PROGRAM_DATA if join.group(1) == "$env:ProgramData" else self.value(join.group(1))
            return base + "\\" + join.group(2)
        return re.fullmatch(r"'(.*)'", token).group(1)

    def branches(self, function):
        """``{op: branch block}`` of the ``if ($Op -eq '...')`` chain in a function."""
        found = {}
        for node in nodes(self.functions[function]):
            if node.type not in ("if_statement", "elseif_clause"):
                continue
            condition = next(child for child in node.children if child.type == "pipeline")
            match = re.fullmatch(r"\$Op\s+-eq\s+'(\w+)'", self.text(condition).strip())
            if match:
                found[match.group(1)] = next(child for child in node.children if child.type == "statement_block")
        return found

    def handlers(self):
        """``{op: (the function that answers it, the text of the code that does)}``: Invoke-Request's dispatch, and
        Invoke-SessionOp's for the session ops; a branch that is not one call answers in the dispatching function."""
        found = {}
        for function in ("Invoke-Request", "Invoke-SessionOp"):
            for op, block in self.branches(function).items():
                body = self.text(block)
                call = re.fullmatch(r"\{\s*(?:\$result = |return \()?([A-Z][\w-]+)(?: -OpArgs \$OpArgs)?\)?\s*\}", body.strip())
                if call and call.group(1) == "Invoke-SessionOp":
                    continue
                if call:
                    defined = self.functions.get(call.group(1))
                    found[op] = (call.group(1), self.text(defined) if defined is not None else "")
                else:
                    found[op] = (function, body)
        return found

    def int_arguments(self):
        """``{op: {argument: (default, minimum, maximum)}}`` of the Get-IntArgument calls that answer each op."""
        found = {}
        for op, (dummy, body) in self.handlers().items():
            calls = re.findall(r"Get-IntArgument\s+\$OpArgs\s+'(\w+)'\s+([^\s)]+)\s+([^\s)]+)\s+([^\s)]+)", body)
            if calls:
                found[op] = {name: tuple(self.value(token) for token in bounds) for name, *bounds in calls}
        return found

    def run_files(self):
        """The file names the script joins to a run directory."""
        pattern = r"Join-Path (?:\$[Dd]irectory(?:\.FullName)?|\(Get-RunDirectory [^)]*\)) '([\w.]+)'"
        return set(re.findall(pattern, self.source))

    def required_files(self):
        body = self.text(self.functions["Start-Session"])
        return self.value(re.search(r"foreach \(\$required in (@\([^)]*\))\)", body).group(1))

    def hash_keys(self, function, opening):
        """The keys of the ``[ordered]@{...}`` that follows ``opening`` in a function, in order (nested ones skipped)."""
        body = self.text(self.functions[function])
        start = body.index(opening) + len(opening)
        keys, depth = [], 0
        for line in body[start:].split("\n"):
            if depth == 0:
                match = re.match(r"\s*(\w+) = ", line)
                if match:
                    keys.append(match.group(1))
            depth += line.count("@{") - line.count("}")
            if depth < 0:
                break
        return keys

    def writer_sources(self):
        return re.findall(r"\$name -eq '(\w+)'", self.text(self.functions["Get-WritersResult"]))

    def facts(self):
        return {
            "read ops": self.value(self.assignments["ReadOps"]),
            "session ops": self.value(self.assignments["SessionOps"]),
            "dispatch": {op: function for op, (function, dummy) in self.handlers().items()},
            "argument bounds": self.int_arguments(),
            "session files": self.value(self.assignments["SessionFiles"]),
            "required session files": self.required_files(),
            "other run-directory files": sorted(self.run_files() - set(self.value(self.assignments["SessionFiles"]))),
            "run id pattern": self.value(self.assignments["RunIdPattern"]),
            "root": self.value(self.assignments["ShadowsnapRoot"]),
            "run root": self.value(self.assignments["RunRoot"]),
            "task path": self.value(self.assignments["TaskPath"]),
            "task prefix": self.value(self.assignments["TaskPrefix"]),
            "in-progress HRESULT": self.value(self.assignments["InProgressHResult"]),
            "output limit": self.value(self.assignments["OutputLimit"]),
            "log limit": self.value(self.assignments["LogLimit"]),
            "writer sources": self.writer_sources(),
            "error document keys": self.hash_keys("New-ErrorAnswer", "error = [ordered]@{"),
            "answer keys": sorted(set(self.hash_keys("Invoke-Request", "$answer = [ordered]@{"))
                                  | set(self.hash_keys("New-ErrorAnswer", "return [ordered]@{"))),
        }


def twin_facts(twin=protocol, operations=None):
    operations = agent_twin.OPERATIONS if operations is None else operations
    return {
        "read ops": list(twin.READ_OPS),
        "session ops": list(twin.SESSION_OPS),
        "dispatch": {op: function for op, (dummy, function) in operations.items()},
        "argument bounds": {op: dict(bounds) for op, bounds in twin.INT_ARGUMENTS.items()},
        "session files": list(twin.SESSION_FILES),
        "required session files": list(twin.REQUIRED_SESSION_FILES),
        "other run-directory files": sorted(twin.RUN_FILES),
        "run id pattern": twin.RUN_ID_PATTERN,
        "root": twin.SHADOWSNAP_ROOT,
        "run root": twin.RUN_ROOT,
        "task path": twin.TASK_PATH,
        "task prefix": twin.TASK_PREFIX,
        "in-progress HRESULT": twin.IN_PROGRESS_HRESULT,
        "output limit": twin.OUTPUT_LIMIT,
        "log limit": twin.LOG_LIMIT,
        "writer sources": list(twin.WRITER_SOURCES),
        "error document keys": list(twin.ERROR_KEYS),
        "answer keys": sorted(twin.ANSWER_KEYS),
    }


def disagreements(agent, twin):
    return ["%s: the agent says %r, its twin %r" % (name, agent[name], twin[name]) for name in agent if agent[name] != twin[name]]


@pytest.fixture(name="agent_source", scope="module")
def agent_source_fixture():
    return agent_transport.agent_script()


def test_the_twin_agrees_with_the_agent(agent_source):
    agent = Script(agent_source).facts()
    assert agent["read ops"] and agent["session ops"] and agent["argument bounds"], "the script was read"
    assert disagreements(agent, twin_facts()) == []


def test_the_twin_dispatches_what_it_declares_and_answers_with_the_declared_keys():
    assert list(agent_twin.OPERATIONS) == list(protocol.READ_OPS + protocol.SESSION_OPS)
    host = LabWindowsHost(WindowsServer(sample_instance("win-xen-01"), BlockStore()).seed())
    ok = call_agent(host, "facts")
    failed = call_agent(host, "session_status", {"run_id": "not valid!"})
    assert set(ok) | set(failed) == set(protocol.ANSWER_KEYS)
    assert list(failed["error"]) == list(protocol.ERROR_KEYS) and failed["error"]["where"] == "at Get-RunId, <No file>"
    clamped = call_agent(host, "session_status", {"run_id": "ss-1", "wait_seconds": -5})
    assert clamped["ok"] and clamped["result"]["state"] == "missing"
    refused = call_agent(host, "file_read", {"path": "C:\\Windows\\System32\\config\\SYSTEM", "max_bytes": "many"})
    assert "must be a whole number" in refused["error"]["message"]


AGENT_MUTATIONS = [
    pytest.param(lambda s: s.replace("'shadow_delete', 'session_cleanup'", "'shadow_remove', 'session_cleanup'", 1),
                 "session ops", id="session-op-renamed"),
    pytest.param(lambda s: s.replace("elseif ($Op -eq 'session_release') {", "elseif ($Op -eq 'session_free') {", 1),
                 "dispatch", id="dispatch-renamed"),
    pytest.param(lambda s: s.replace("$result = Get-FactsResult", "$result = Get-HostFacts", 1), "dispatch", id="handler"),
    pytest.param(lambda s: s.replace("$MaxWaitSeconds = 900", "$MaxWaitSeconds = 600", 1), "argument bounds", id="max-wait"),
    pytest.param(lambda s: s.replace("'max_bytes' $FileReadDefaultLimit 1", "'max_bytes' $FileReadDefaultLimit 0", 1),
                 "argument bounds", id="minimum"),
    pytest.param(lambda s: s.replace("'release.txt'", "'released.txt'"), "other run-directory files", id="file-renamed"),
    pytest.param(lambda s: s.replace("'snapshot.dsh', 'record.cmd', 'run.cmd')", "'snapshot.dsh', 'run.cmd')", 1),
                 "required session files", id="required-file"),
    pytest.param(lambda s: s.replace("            where = [string]$ErrorRecord.ScriptStackTrace\n", "", 1),
                 "error document keys", id="error-key"),
    pytest.param(lambda s: s.replace("$RunIdPattern = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'",
                                     "$RunIdPattern = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'", 1), "run id pattern", id="run-id"),
    pytest.param(lambda s: s.replace("$TaskPrefix = 'shadowsnap-'", "$TaskPrefix = 'shadowsnap_'", 1), "task prefix", id="task-prefix"),
]


@pytest.mark.parametrize("mutate, expected", AGENT_MUTATIONS)
def test_each_check_catches_an_agent_that_drifted(agent_source, mutate, expected):
    broken = mutate(agent_source)
    assert broken != agent_source, "the mutation did not apply: update the test"
    problems = disagreements(Script(broken).facts(), twin_facts())
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
    pytest.param(lambda t: setattr(t, "READ_OPS", ("facts", "storage", "writer", "shadows")), None, "read ops", id="read-op"),
    pytest.param(None, lambda o: rename_op(o, "session_start", "session_begin"), "dispatch", id="twin-dispatch"),
    pytest.param(lambda t: t.INT_ARGUMENTS["session_release"].update(wait_seconds=(0, 0, 600)), None, "argument bounds",
                 id="twin-bound"),
    pytest.param(lambda t: setattr(t, "RUN_FILES", ("created.txt", "exit.txt", "release.txt")), None,
                 "other run-directory files", id="twin-file"),
    pytest.param(lambda t: setattr(t, "ERROR_KEYS", t.ERROR_KEYS[:-1]), None, "error document keys", id="twin-error-key"),
    pytest.param(lambda t: setattr(t, "RUN_ROOT", "C:\\ProgramData\\shadowsnap\\run"), None, "run root", id="twin-root"),
]


@pytest.mark.parametrize("mutate_tables, mutate_operations, expected", TWIN_MUTATIONS)
def test_each_check_catches_a_twin_that_drifted(agent_source, mutate_tables, mutate_operations, expected):
    twin = TwinCopy()
    if mutate_tables:
        mutate_tables(twin)
    operations = mutate_operations(dict(agent_twin.OPERATIONS)) if mutate_operations else None
    problems = disagreements(Script(agent_source).facts(), twin_facts(twin, operations))
    assert any(problem.startswith(expected + ":") for problem in problems), problems
