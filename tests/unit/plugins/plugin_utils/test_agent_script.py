# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Static checks of the Windows agent and the transport's bootstrap (there is no PowerShell here to run them).

The PowerShell is parsed with tree-sitter-powershell: a syntax error shows as an ERROR or MISSING node. On top of the
grammar: the protocol header, ASCII only (no code page can mangle the script), no PowerShell 6+ syntax, and a dispatch
that answers every read op listed in docs/agent-protocol.md. Each check is also run on a deliberately broken copy, to
prove that it can fail.
"""

from __future__ import annotations

import base64
import pathlib
import re

import pytest
import tree_sitter
import tree_sitter_powershell
from ansible.plugins.loader import shell_loader

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import agent_transport

REPO = pathlib.Path(__file__).resolve().parents[4]
AGENT = REPO / "plugins" / "plugin_utils" / "agent" / "shadowsnap_agent.ps1"
PROTOCOL_DOC = REPO / "docs" / "agent-protocol.md"
SESSION_DOC = REPO / "docs" / "vss-session.md"

PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))

# Parameters that Windows PowerShell 5.1 does not have.
POWERSHELL_6_PARAMETERS = {"-ashashtable", "-skipnullonfalse", "-enumsasstrings", "-escapehandling"}


def parse(source: str):
    return PARSER.parse(source.encode("utf-8"))


def nodes(node):
    yield node
    for child in node.children:
        yield from nodes(child)


def text(node, source: bytes) -> str:
    return source[node.start_byte:node.end_byte].decode("utf-8")


def syntax_errors(source: str) -> list[str]:
    """ERROR and MISSING nodes with their line, and constructs Windows PowerShell 5.1 cannot run."""
    data = source.encode("utf-8")
    problems = []
    for node in nodes(parse(source).root_node):
        line = node.start_point[0] + 1
        if node.type == "ERROR":
            problems.append(f"line {line}: syntax error near {text(node, data)[:60]!r}")
        elif node.is_missing:
            problems.append(f"line {line}: missing {node.type}")
        elif node.type == "pipeline_chain_tail":
            problems.append(f"line {line}: && / || pipeline chains need PowerShell 7")
        elif node.type == "command_parameter" and text(node, data).lower() in POWERSHELL_6_PARAMETERS:
            problems.append(f"line {line}: {text(node, data)} needs PowerShell 6+")
    return problems


def non_ascii(source: str) -> list[str]:
    return [
        f"line {number}: {line.strip()[:60]!r}"
        for number, line in enumerate(source.split("\n"), 1)
        if any(ord(char) > 127 for char in line)
    ]


def documented_read_ops() -> list[str]:
    """The ``### `op``` headings of the "Read operations" section of the protocol document."""
    doc = PROTOCOL_DOC.read_text(encoding="utf-8")
    section = doc.split("## Read operations", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^### `(\w+)`", section, flags=re.MULTILINE)


def function_names(source: str) -> set[str]:
    data = source.encode("utf-8")
    return {
        text(node.child_by_field_name("function_name") or node.children[1], data)
        for node in nodes(parse(source).root_node)
        if node.type == "function_statement"
    }


def dispatch(source: str) -> dict[str, str]:
    """op -> the command its branch runs, from the ``if ($Op -eq '...')`` chain of Invoke-Request."""
    data = source.encode("utf-8")
    tree = parse(source)
    function = next(
        node
        for node in nodes(tree.root_node)
        if node.type == "function_statement" and "Invoke-Request" in [text(child, data) for child in node.children]
    )
    handlers = {}
    for node in nodes(function):
        if node.type not in ("if_statement", "elseif_clause"):
            continue
        condition = next(child for child in node.children if child.type == "pipeline")
        match = re.fullmatch(r"\$Op\s+-eq\s+'(\w+)'", text(condition, data).strip())
        block = next(child for child in node.children if child.type == "statement_block")
        command = next((item for item in nodes(block) if item.type == "command_name"), None)
        if match and command is not None:
            handlers[match.group(1)] = text(command, data)
    return handlers


def read_ops_array(source: str) -> list[str]:
    match = re.search(r"^\$ReadOps = @\((?P<items>[^)]*)\)", source, flags=re.MULTILINE)
    return re.findall(r"'(\w+)'", match.group("items")) if match else []


def script_problems(source: str) -> list[str]:
    """Everything the tests require of an agent script, as messages (empty: fine)."""
    problems = []
    if source.split("\n", 1)[0] != agent_transport.AGENT_HEADER:
        problems.append(f"first line is not {agent_transport.AGENT_HEADER!r}")
    problems.extend(f"not ASCII: {item}" for item in non_ascii(source))
    problems.extend(syntax_errors(source))
    if problems:
        return problems
    handlers = dispatch(source)
    defined = function_names(source)
    for op in documented_read_ops():
        if op not in handlers:
            problems.append(f"read op {op!r} of docs/agent-protocol.md is not dispatched by Invoke-Request")
        elif handlers[op] not in defined:
            problems.append(f"read op {op!r} runs {handlers[op]}, which the script does not define")
    if sorted(read_ops_array(source)) != sorted(documented_read_ops()):
        problems.append(f"$ReadOps {read_ops_array(source)} differs from the documented read ops {documented_read_ops()}")
    return problems


@pytest.fixture(name="agent_source", scope="module")
def agent_source_fixture():
    return AGENT.read_text(encoding="ascii")


def test_the_protocol_document_lists_the_read_ops():
    assert documented_read_ops() == ["facts", "storage", "writers", "shadows"]


def test_the_agent_script_passes_every_check(agent_source):
    assert script_problems(agent_source) == []


def test_the_agent_dispatches_every_documented_read_op_to_a_defined_function(agent_source):
    assert dispatch(agent_source) == {
        "facts": "Get-FactsResult",
        "storage": "Get-StorageResult",
        "writers": "Get-WritersResult",
        "shadows": "Get-ShadowsResult",
    }
    assert {"Invoke-Batch", "Invoke-Native", "Invoke-DiskShadow", "New-ErrorAnswer"} <= function_names(agent_source)


def test_the_agent_starts_like_the_protocol_says(agent_source):
    lines = agent_source.split("\n")
    assert lines[0] == "# shadowsnap-agent protocol=1"
    code = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert code[:3] == ["param($RequestJson)", "Set-StrictMode -Version 2.0", "$ErrorActionPreference = 'Stop'"]


def test_the_agent_serializes_with_compress_and_decodes_native_output_with_the_oem_code_page(agent_source):
    assert "ConvertTo-Json -InputObject $Answer -Depth $JsonDepth -Compress" in agent_source
    assert "[Console]::OutputEncoding = [System.Text.Encoding]::GetEncoding([int]$CodePage)" in agent_source
    assert "'/latest/api/token'" in agent_source and "X-aws-ec2-metadata-token-ttl-seconds" in agent_source


def test_agent_script_is_what_the_transport_sends(agent_source):
    assert agent_transport.agent_script() == agent_source.replace("\r\n", "\n")


@pytest.mark.parametrize(
    "mutate, expected",
    [
        pytest.param(lambda s: s.replace("# shadowsnap-agent protocol=1", "# shadowsnap agent", 1), "first line", id="header"),
        pytest.param(lambda s: s.replace("# Joining, mapping", "# Joining \u2013 mapping", 1), "not ASCII", id="non-ascii"),
        pytest.param(lambda s: s.replace("function Get-Property {", "function Get-Property ", 1), "syntax error", id="brace"),
        pytest.param(lambda s: s.replace("$text = [string]$DriveType", "$text = $DriveType ?? ''", 1), "syntax error", id="null-coalescing"),
        pytest.param(
            lambda s: s.replace("$request = ConvertFrom-Json -InputObject ([string]$RequestJson)",
                                "$request = ConvertFrom-Json -InputObject ([string]$RequestJson) -AsHashtable", 1),
            "needs PowerShell 6+",
            id="as-hashtable",
        ),
        pytest.param(
            lambda s: s.replace("        elseif ($Op -eq 'shadows') {\n            $result = Get-ShadowsResult\n        }\n", "", 1),
            "'shadows' of docs/agent-protocol.md is not dispatched",
            id="missing-op",
        ),
        pytest.param(
            lambda s: s.replace("$result = Get-ShadowsResult", "$result = Get-ShadowResult", 1),
            "runs Get-ShadowResult, which the script does not define",
            id="undefined-handler",
        ),
        pytest.param(lambda s: s.replace("'writers', 'shadows')", "'writers')", 1), "$ReadOps", id="read-ops-array"),
    ],
)
def test_each_check_catches_a_broken_copy(agent_source, mutate, expected):
    broken = mutate(agent_source)
    assert broken != agent_source, "the mutation did not apply: update the test"
    problems = script_problems(broken)
    assert any(expected in problem for problem in problems), problems


def test_the_bootstrap_parses_and_survives_the_shell_plugins_line_stripping():
    assert syntax_errors(agent_transport.BOOTSTRAP) == []
    assert non_ascii(agent_transport.BOOTSTRAP) == []
    encoded = agent_transport.build_command(shell_loader.get("powershell"))
    sent = base64.b64decode(encoded.split()[-1]).decode("utf-16-le")
    assert syntax_errors(sent) == []
    assert "foreach ($shadowsnapLine in $input)" in sent
    assert "[ScriptBlock]::Create(" in sent


def test_a_broken_bootstrap_is_caught():
    assert syntax_errors(agent_transport.BOOTSTRAP.replace("catch {", "catch ", 1))


# ------------------------------------------------------------------------------------------------ session ops


def session_dispatch(source: str) -> dict:
    """op -> the function its branch of Invoke-SessionOp calls."""
    data = source.encode("ascii")
    tree = PARSER.parse(data)
    function = next(node for node in nodes(tree.root_node) if node.type == "function_statement"
                    and "Invoke-SessionOp" in [data[c.start_byte:c.end_byte].decode() for c in node.children])
    handlers = {}
    for node in nodes(function):
        if node.type not in ("if_statement", "elseif_clause"):
            continue
        condition = next(child for child in node.children if child.type == "pipeline")
        match = re.fullmatch(r"\$Op\s+-eq\s+'(\w+)'", data[condition.start_byte:condition.end_byte].decode().strip())
        block = next(child for child in node.children if child.type == "statement_block")
        commands = [data[item.start_byte:item.end_byte].decode() for item in nodes(block) if item.type == "command_name"]
        if match:
            handlers[match.group(1)] = commands[0]
    return handlers


def documented_session_ops() -> list[str]:
    doc = SESSION_DOC.read_text(encoding="utf-8")
    section = doc.split("## Agent operations", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)


def test_the_agent_answers_every_session_op_of_the_contract_with_a_function_it_defines():
    source = AGENT.read_text(encoding="ascii")
    tree = PARSER.parse(source.encode("ascii"))
    assert not any(node.type == "ERROR" or node.is_missing for node in nodes(tree.root_node))
    defined = set(re.findall(r"^function ([\w-]+) \{", source, flags=re.MULTILINE))
    handlers = session_dispatch(source)
    ops = documented_session_ops()
    assert ops == ["session_start", "session_status", "session_release", "shadow_delete", "session_cleanup",
                   "service_restart", "file_read"]
    assert sorted(handlers) == sorted(ops)
    assert all(handlers[op] in defined for op in ops), handlers
    listed = re.search(r"^\$SessionOps = @\(([^)]*)\)", source, flags=re.MULTILINE).group(1)
    assert sorted(re.findall(r"'(\w+)'", listed)) == sorted(ops)
    assert "elseif ($SessionOps -contains $Op) {" in source


def test_the_agent_runs_diskshadow_as_system_with_a_time_limit_and_refuses_a_second_session():
    source = AGENT.read_text(encoding="ascii")
    assert "New-ScheduledTaskPrincipal -UserId $system -LogonType ServiceAccount -RunLevel Highest" in source
    assert "'S-1-5-18').Translate([System.Security.Principal.NTAccount])" in source
    assert "New-ScheduledTaskSettingsSet -ExecutionTimeLimit (New-TimeSpan -Seconds $TimeLimitSeconds)" in source
    assert "$InProgressHResult = '0x80042316'" in source and "-HResult $InProgressHResult" in source
    assert "[System.Text.Encoding]::GetEncoding([int](Get-OemCodePage))" in source, "the log is decoded with the OEM code page"
    assert "'delete shadows set ' + (ConvertTo-BracedGuid $SetId)" in source
    assert "$MaxWaitSeconds = 900" in source and "$FileReadMaxLimit = 134217728" in source
