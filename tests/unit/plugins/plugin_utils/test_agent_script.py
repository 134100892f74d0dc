# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Static checks of the Windows agent as the transport sends it, and of the transport's bootstrap (there is no
PowerShell here to run them).

The script is joined from its parts (agent_transport.agent_script) and parsed with tree-sitter-powershell: a syntax
error shows as an ERROR or MISSING node. On top of the grammar: the protocol header, ASCII only (no code page can mangle
the script), no PowerShell 6+ syntax, the generated ``$Shadowsnap`` block reads back as the controller's constants,
every op of the controller's table is answered by a function the script defines, every command it calls is one it
defines or a Windows PowerShell 5.1 cmdlet, and what is sent fits the budget. Each check is also run on a deliberately
broken copy, to prove that it can fail.
"""

from __future__ import annotations

import base64
import pathlib
import re
import shutil

import pytest
from ansible.errors import AnsibleError
from ansible.plugins.loader import shell_loader

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import agent_transport, diskshadow
from unit.plugins.plugin_utils.agent_reader import AgentScript, nodes

REPO = pathlib.Path(__file__).resolve().parents[4]
AGENT_DIRECTORY = REPO / "plugins" / "plugin_utils" / "agent"
PROTOCOL_DOC = REPO / "docs" / "agent-protocol.md"
SESSION_DOC = REPO / "docs" / "vss-session.md"
RESTORE_DOC = REPO / "docs" / "restore.md"

# Parameters that Windows PowerShell 5.1 does not have.
POWERSHELL_6_PARAMETERS = {"-ashashtable", "-skipnullonfalse", "-enumsasstrings", "-escapehandling"}
# The cmdlets the agent calls, all in Windows PowerShell 5.1 on Windows Server 2016+ (ScheduledTasks, Storage, CIM).
CMDLETS = {
    "Add-Type", "ConvertFrom-Json", "ConvertTo-Json", "ForEach-Object", "Get-ChildItem", "Get-CimInstance", "Get-Command",
    "Get-Disk", "Get-Item", "Get-ItemProperty", "Get-Partition", "Get-PhysicalDisk", "Get-ScheduledTask",
    "Get-ScheduledTaskInfo", "Get-Service", "Get-StoragePool", "Get-VirtualDisk", "Get-Volume", "Join-Path", "Move-Item",
    "New-Item", "New-Object", "New-ScheduledTaskAction", "New-ScheduledTaskPrincipal", "New-ScheduledTaskSettingsSet",
    "New-TimeSpan", "Register-ScheduledTask", "Remove-Item", "Select-Object", "Set-StrictMode", "Start-ScheduledTask",
    "Start-Sleep", "Stop-Process", "Stop-ScheduledTask", "Test-Path", "Unregister-ScheduledTask", "Where-Object",
    "Write-Output", "Set-Disk", "Set-Partition", "Add-PartitionAccessPath", "Sort-Object", "Start-Service", "Stop-Service",
}
# What one round trip may send on stdin: one Send of Ansible's winrm connection (it cuts stdin into 200,000 bytes).
STDIN_BUDGET = 200000


def syntax_errors(source: str) -> list[str]:
    """ERROR and MISSING nodes with their line, and constructs Windows PowerShell 5.1 cannot run."""
    script = AgentScript(source)
    problems = script.syntax_errors()
    for node in nodes(script.tree.root_node):
        line = node.start_point[0] + 1
        if node.type == "pipeline_chain_tail":
            problems.append(f"line {line}: && / || pipeline chains need PowerShell 7")
        elif node.type == "command_parameter" and script.text(node).lower() in POWERSHELL_6_PARAMETERS:
            problems.append(f"line {line}: {script.text(node)} needs PowerShell 6+")
    return problems


def non_ascii(source: str) -> list[str]:
    return [
        f"line {number}: {line.strip()[:60]!r}"
        for number, line in enumerate(source.split("\n"), 1)
        if any(ord(char) > 127 for char in line)
    ]


def documented_ops(doc: pathlib.Path, section: str, pattern: str) -> list[str]:
    text = doc.read_text(encoding="utf-8")
    return re.findall(pattern, text.split(section, 1)[1].split("\n## ", 1)[0], flags=re.MULTILINE)


def documented_read_ops() -> list[str]:
    """The ``### `op``` headings of the "Read operations" section of the protocol document."""
    return documented_ops(PROTOCOL_DOC, "## Read operations", r"^### `(\w+)`")


def documented_session_ops() -> list[str]:
    """The ops of the table of the "Agent operations" section of docs/vss-session.md."""
    return documented_ops(SESSION_DOC, "## Agent operations", r"^\| `(\w+)` \|")


def documented_restore_ops() -> list[str]:
    """The ops of the table of the "Agent operations" section of docs/restore.md."""
    return documented_ops(RESTORE_DOC, "## Agent operations", r"^\| `(\w+)` \|")


def script_problems(source: str) -> list[str]:
    """Everything the tests require of a joined agent script, as messages (empty: fine)."""
    problems = []
    if source.split("\n", 1)[0] != agent_transport.AGENT_HEADER:
        problems.append(f"first line is not {agent_transport.AGENT_HEADER!r}")
    problems.extend(f"not ASCII: {item}" for item in non_ascii(source))
    problems.extend(syntax_errors(source))
    if problems:
        return problems
    script = AgentScript(source)
    constants = script.constants()
    if constants != agent_transport.script_constants():
        problems.append("the $Shadowsnap block does not read back as agent_transport.script_constants()")
    handlers = constants.get("Handlers", {})
    for op in documented_read_ops() + documented_session_ops():
        if op not in handlers:
            problems.append(f"op {op!r} of the docs has no handler in $Shadowsnap.Handlers")
        elif handlers[op] not in script.functions:
            problems.append(f"op {op!r} runs {handlers[op]}, which the script does not define")
    if constants.get("ReadOps") != documented_read_ops():
        problems.append(f"$Shadowsnap.ReadOps {constants.get('ReadOps')} differs from the documented read ops")
    commands = {script.text(node) for node in nodes(script.tree.root_node) if node.type == "command_name"}
    problems.extend(f"the script calls {command}, which it does not define and is no cmdlet it may use"
                    for command in sorted(commands - set(script.functions) - CMDLETS))
    used = set(re.findall(r"\$Shadowsnap\.(\w+)", source))
    problems.extend(f"the script reads $Shadowsnap.{name}, which the block does not have" for name in sorted(used - set(constants)))
    return problems


@pytest.fixture(name="agent_source", scope="module")
def agent_source_fixture():
    return agent_transport.agent_script()


def test_the_documents_list_the_ops_of_the_controllers_table():
    assert documented_read_ops() == ["facts", "storage", "writers", "shadows", "sessions"] == list(agent_transport.READ_OPS)
    assert documented_session_ops() + documented_restore_ops() == list(agent_transport.SESSION_OPS) == [
        "session_start", "session_status", "session_release", "shadow_delete", "session_cleanup", "service_restart",
        "file_read", "disk_online", "disk_offline", "shadow_revert", "shadow_expose", "shadow_unexpose",
        "service_set", "files_copy"]
    assert list(agent_transport.AGENT_OPS) == documented_read_ops() + documented_session_ops() + documented_restore_ops()


def test_the_joined_agent_script_passes_every_check(agent_source):
    assert script_problems(agent_source) == []


def test_every_op_is_answered_by_the_function_the_table_names(agent_source):
    script = AgentScript(agent_source)
    assert script.constants()["Handlers"] == agent_transport.AGENT_OPS
    assert set(agent_transport.AGENT_OPS.values()) <= set(script.functions)
    assert {"Invoke-Batch", "Invoke-Native", "Invoke-DiskShadow", "New-ErrorAnswer", "Get-RunFacts", "Get-FolderFacts",
            "Wait-Run", "Invoke-RunCleanup"} <= set(script.functions)
    dispatch = script.body("Invoke-Request")
    assert "$handler = $Shadowsnap.Handlers[$Op]" in dispatch and "$result = & $handler $OpArgs" in dispatch


def test_every_constant_of_the_block_is_read_by_the_script(agent_source):
    used = set(re.findall(r"\$Shadowsnap\.(\w+)", agent_source))
    assert used == set(agent_transport.script_constants())


def test_the_agent_starts_like_the_protocol_says(agent_source):
    lines = agent_source.split("\n")
    assert lines[0] == "# shadowsnap-agent protocol=1"
    code = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert code[:4] == ["param($RequestJson)", "Set-StrictMode -Version 2.0", "$ErrorActionPreference = 'Stop'",
                        "$ProgressPreference = 'SilentlyContinue'"]
    assert code[4] == "$Shadowsnap = [pscustomobject][ordered]@{", "the constants come first, before any part uses them"


def test_the_agent_serializes_with_compress_and_decodes_native_output_with_the_oem_code_page(agent_source):
    assert "ConvertTo-Json -InputObject $Answer -Depth $JsonDepth -Compress" in agent_source
    assert "[Console]::OutputEncoding = [System.Text.Encoding]::GetEncoding([int]$CodePage)" in agent_source
    assert "'/latest/api/token'" in agent_source and "X-aws-ec2-metadata-token-ttl-seconds" in agent_source


def test_the_joined_script_is_the_frame_with_the_parts_in_place_of_its_marker(agent_source):
    frame = (AGENT_DIRECTORY / agent_transport.AGENT_FRAME).read_text(encoding="ascii")
    before, after = frame.split(agent_transport.PARTS_MARKER + "\n")
    assert agent_source.startswith(before) and agent_source.endswith(after)
    for name in agent_transport.AGENT_PARTS:
        assert (AGENT_DIRECTORY / name).read_text(encoding="ascii").rstrip("\n") in agent_source
    source = (AGENT_DIRECTORY / agent_transport.VOLUME_EXTENTS_SOURCE).read_text(encoding="ascii")
    assert "$VolumeExtentsSource = @'\n" + source.rstrip("\n") + "\n'@\n" in agent_source
    assert agent_transport.PARTS_MARKER not in agent_source
    assert sorted(path.name for path in AGENT_DIRECTORY.iterdir()) == sorted(
        (agent_transport.AGENT_FRAME, *agent_transport.AGENT_PARTS, agent_transport.VOLUME_EXTENTS_SOURCE))


def test_the_largest_request_fits_the_stdin_budget(agent_source):
    session_plan = diskshadow.SessionPlan(run_id="ss-20261125T010203-0a1b2c3d", backup_type="full",
                                          volumes=["C:\\Mounts\\Data%02d" % number for number in range(diskshadow.MAX_VOLUMES_PER_SET)])
    request = agent_transport.build_request("session_start", {"run_id": session_plan.run_id,
                                                              "files": diskshadow.session_files(session_plan)})
    size = len(agent_transport.build_stdin(request, agent_source))
    assert size < STDIN_BUDGET, f"{size} bytes on stdin"


@pytest.mark.parametrize(
    "mutate, expected",
    [
        pytest.param(lambda s: s.replace("# shadowsnap-agent protocol=1", "# shadowsnap agent", 1), "first line", id="header"),
        pytest.param(lambda s: s.replace("# It stays thin", "# It stays \u2013 thin", 1), "not ASCII", id="non-ascii"),
        pytest.param(lambda s: s.replace("function Get-Property {", "function Get-Property ", 1), "syntax error", id="brace"),
        pytest.param(lambda s: s.replace("$text = [string]$DriveType", "$text = $DriveType ?? ''", 1), "syntax error", id="null-coalescing"),
        pytest.param(
            lambda s: s.replace("$request = ConvertFrom-Json -InputObject ([string]$RequestJson)",
                                "$request = ConvertFrom-Json -InputObject ([string]$RequestJson) -AsHashtable", 1),
            "needs PowerShell 6+",
            id="as-hashtable",
        ),
        pytest.param(lambda s: s.replace("function Get-ShadowsResult {", "function Get-ShadowResult {", 1),
                     "runs Get-ShadowsResult, which the script does not define", id="undefined-handler"),
        pytest.param(lambda s: s.replace("shadows = 'Get-ShadowsResult'; ", "", 1), "'shadows' of the docs has no handler",
                     id="missing-op"),
        pytest.param(lambda s: s.replace("'writers', 'shadows', 'sessions')", "'writers', 'shadows')", 1), "$Shadowsnap.ReadOps",
                     id="read-ops-array"),
        pytest.param(lambda s: s.replace("$runId = Get-RunId $OpArgs", "$runId = Get-RunIdentifier $OpArgs", 1),
                     "calls Get-RunIdentifier", id="undefined-helper"),
        pytest.param(lambda s: s.replace("$Shadowsnap.ExitFile", "$Shadowsnap.ExitCodeFile", 1),
                     "reads $Shadowsnap.ExitCodeFile", id="undefined-constant"),
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


# ------------------------------------------------------------------------------------------------ joining the parts


@pytest.fixture(name="parts")
def parts_fixture(tmp_path):
    directory = tmp_path / "agent"
    shutil.copytree(AGENT_DIRECTORY, directory)
    return directory


@pytest.mark.parametrize("part, change, message", [
    (agent_transport.AGENT_FRAME, lambda text: text.replace("# shadowsnap-agent protocol=1", "# agent", 1), "must start with the line"),
    (agent_transport.AGENT_FRAME, lambda text: text.replace(agent_transport.PARTS_MARKER + "\n", ""), "must hold the line"),
    (agent_transport.AGENT_FRAME, lambda text: text + agent_transport.PARTS_MARKER + "\n", "must hold the line"),
    ("session_ops.ps1", lambda text: text.replace("# The session ops", "# The s\u00e9ssion ops", 1), "must be ASCII only"),
    (agent_transport.VOLUME_EXTENTS_SOURCE, lambda text: text + "'@\n", "must not have a line starting with '@"),
])
def test_a_part_the_script_cannot_be_joined_from_is_refused(parts, part, change, message):
    path = parts / part
    path.write_bytes(change(path.read_text(encoding="ascii")).encode("utf-8"))
    with pytest.raises(AnsibleError, match=message):
        agent_transport.agent_script(parts)


def test_parts_with_crlf_line_ends_join_to_the_same_script(parts, agent_source):
    for path in parts.iterdir():
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert agent_transport.agent_script(parts) == agent_source


def test_constants_are_written_as_powershell_literals():
    assert agent_transport.powershell_literal("it's") == "'it''s'"
    assert agent_transport.powershell_literal(["a", 1, True]) == "@('a', 1, $true)"
    assert agent_transport.powershell_literal({"x": "y", "n": []}) == "[ordered]@{ x = 'y'; n = @() }"
    with pytest.raises(ValueError, match="not ASCII"):
        agent_transport.powershell_literal("caf\u00e9")
    with pytest.raises(ValueError, match="plain identifier"):
        agent_transport.constants_block({"not a name": 1})
    with pytest.raises(TypeError):
        agent_transport.powershell_literal(1.5)


# ------------------------------------------------------------------------------------------------ session ops


def test_the_session_ops_run_diskshadow_as_system_with_a_time_limit_and_refuse_a_second_session(agent_source):
    script = AgentScript(agent_source)
    register = script.body("Register-SessionTask")
    assert "New-ScheduledTaskPrincipal -UserId $system -LogonType ServiceAccount -RunLevel Highest" in register
    assert "-ArgumentList $Shadowsnap.SystemSid).Translate([System.Security.Principal.NTAccount])" in register
    assert "New-ScheduledTaskSettingsSet -ExecutionTimeLimit (New-TimeSpan -Seconds $TimeLimitSeconds)" in register
    assert "-HResult $Shadowsnap.InProgressHResult" in script.body("Start-Session")
    assert "[System.Text.Encoding]::GetEncoding([int](Get-OemCodePage))" in script.body("Read-SessionLog")
    assert "'delete shadows set ' + (Assert-Guid $SetId)" in script.body("Remove-Shadows")
    assert script.value("$MaxWaitSeconds") == 900 and script.value("$FileReadMaxLimit") == 134217728


def test_the_session_ops_decide_no_state(agent_source):
    """The run facts are raw: no state, no parsed record; the agent reads one value of created.txt, the set it deletes."""
    script = AgentScript(agent_source)
    assert script.hash_keys("Get-RunFacts", "$facts = [ordered]@{") == [
        "run_id", "run_dir", "exists", "created", "task", "files", "log", "log_truncated"]
    session_part = (AGENT_DIRECTORY / "session_ops.ps1").read_text(encoding="ascii")
    assert re.findall(r"(?<!\[)'(starting|created|completed|failed|missing)'", session_part) == [], "a state as a value"
    assert "shadows = " not in session_part and "$facts['state']" not in session_part
    assert session_part.count("$Shadowsnap.CreatedFile") == 3, "listed with the run files, read as a run file, read for the set id"


def test_the_session_directory_is_created_only_where_the_controller_found_nothing(agent_source):
    script = AgentScript(agent_source)
    initialize = script.body("Initialize-SessionFolders")
    assert "if ($CreateFolders -contains $path) {" in initialize and "New-SessionFolder $path" in initialize
    assert initialize.index("New-SessionFolder $path") < initialize.index("Protect-SessionRoot")
    create = script.body("New-SessionFolder")
    assert "New-Item -ItemType Directory -Path $Path" in create and "-Force" not in create
    start = script.body("Start-Session")
    assert start.index("$others.Count -gt 0") < start.index("Initialize-SessionFolders") < start.index("Register-SessionTask")
