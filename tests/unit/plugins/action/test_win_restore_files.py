# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""win_restore_files end to end on the controller: the real action plugin, transport and decisions, against a host of
the lab answering at the connection boundary (the agent's twin on the lab's model of Windows Server: its files,
shadow copies and robocopy)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.shadowsnap.ec2.plugins.action.win_restore_files import ActionModule
from lab.dataplane import BlockStore
from lab.windows import LabWindowsHost, WindowsServer, agent_twin
from lab.windows.files import ADMINISTRATORS, ace
from lab.windows.testing import call_agent, sample_instance
from unit.plugins.action.agent_fakes import FakeAgentHost, FakeConnection, make_action

FINANCE = "D:\\Shares\\Finance"
CLERK = "S-1-5-21-1-2-3-1104"
TASK_VARS = {"inventory_hostname": "win-sql-01"}


class TwinHost(FakeAgentHost):
    """The connection's far end: every request answered by the lab's twin of the agent."""

    def __init__(self, lab_host):
        super().__init__()
        self.lab_host = lab_host

    def respond(self, request):
        return agent_twin.handle_request(self.lab_host, json.dumps(request))


@pytest.fixture(name="lab_host")
def lab_host_fixture():
    model = WindowsServer(sample_instance("win-sql-01"), BlockStore()).seed()
    model.files.write(FINANCE + "\\q1.xlsx", b"q1-figures")
    model.files.write(FINANCE + "\\2025\\q4.xlsx", b"q4-figures")
    model.files.write("D:\\Shares\\plan.docx", b"plan")
    model.files.set_info(FINANCE, owner=CLERK, protected=True, aces=[ace(CLERK, "Modify"), ace(ADMINISTRATORS)],
                         created="2024-01-02T03:04:05Z", modified="2025-06-01T00:00:00Z")
    host = LabWindowsHost(model)
    shadow_id = model.shadows.create_set(["D:"])["shadows"][0]["id"]
    assert call_agent(host, "shadow_expose", {"shadow_id": shadow_id, "path": "C:\\shadowsnap-restore\\set-1\\D"})["ok"]
    model.files.remove_tree(FINANCE)
    yield host
    model.shutdown()


def run(lab_host, check_mode=False, **args):
    connection = FakeConnection(TwinHost(lab_host))
    options = {"sources": [{"volume_path": "D:", "read_from": "C:\\shadowsnap-restore\\set-1\\D"}], **args}
    return make_action(ActionModule, connection, options, check_mode=check_mode).run(task_vars=TASK_VARS), connection


def test_a_deleted_folder_and_a_wildcard_come_back_into_the_target_with_their_metadata(lab_host, capsys):
    result, connection = run(lab_host, paths=[FINANCE, "D:\\Shares\\*.docx"], target="C:\\Restored", batch_size=1)
    assert not result.get("failed"), result
    model = lab_host.model
    folder, wildcard = result["paths"]
    assert (folder["status"], folder["kind"], folder["files_copied"], folder["bytes_copied"]) == ("copied", "folder", 2, 20)
    assert (wildcard["status"], wildcard["kind"], wildcard["files_copied"]) == ("copied", "files", 1)
    assert folder["destination"] == "C:\\Restored\\D\\Shares\\Finance"
    copied = model.files.info("C:\\Restored\\D\\Shares\\Finance")
    assert (copied["owner"], copied["protected"], copied["created"]) == (CLERK, True, "2024-01-02T03:04:05Z")
    assert model.files.read("C:\\Restored\\D\\Shares\\Finance\\2025\\q4.xlsx") == b"q4-figures"
    assert model.files.info(FINANCE)["exists"] is False, "the live volume is not touched"
    assert result["round_trips"] == 2 and (result["files_copied"], result["changed"]) == (3, True)
    assert [request["op"] for request in connection.host.requests] == ["files_copy", "files_copy"]
    shown = capsys.readouterr().err
    assert "restored 1/2 paths, 2 files, 20 bytes" in shown and "restored 2/2 paths, 3 files, 24 bytes" in shown


def test_in_place_keeps_existing_files_unless_overwriting_and_reports_them_skipped(lab_host):
    model = lab_host.model
    model.files.write("D:\\Shares\\plan.docx", b"edited after the backup")
    kept, dummy = run(lab_host, paths=["D:\\Shares\\plan.docx"], in_place=True)
    assert not kept.get("failed"), kept
    (entry,) = kept["paths"]
    assert entry["skipped"] == [{"files": 1, "bytes": 4, "reason": "already in the destination (overwriting was not asked)"}]
    assert model.files.read("D:\\Shares\\plan.docx") == b"edited after the backup" and kept["changed"] is False
    replaced, dummy = run(lab_host, paths=["D:\\Shares\\plan.docx"], in_place=True, overwrite=True)
    assert replaced["paths"][0]["files_copied"] == 1 and model.files.read("D:\\Shares\\plan.docx") == b"plan"


def test_a_copy_failing_halfway_and_a_path_not_in_the_backup_fail_after_the_rest_is_copied(lab_host):
    lab_host.model.configure(copy_fail_after_files=1)
    result, dummy = run(lab_host, paths=[FINANCE, "D:\\Shares\\gone.txt"], target="C:\\Restored")
    assert result["failed"] and "restore of files is incomplete" in result["msg"] and result["msg"].startswith("win-sql-01: ")
    assert "not enough space on the disk" in result["msg"] and "0x00000070" in result["msg"]
    assert "not in the backup: D:\\Shares\\gone.txt" in result["msg"]
    finance, gone = result["paths"]
    assert (finance["status"], finance["files_copied"], len(finance["failures"])) == ("failed", 1, 1)
    assert gone["status"] == "not_found"


def test_bad_paths_are_refused_before_anything_is_sent_and_check_mode_copies_nothing(lab_host):
    refused, connection = run(lab_host, paths=["F:\\Shares", FINANCE], target="C:\\Restored")
    assert refused["failed"] and "'F:\\\\Shares' is on none of the set's volumes" in refused["msg"]
    assert connection.host.requests == []
    both, dummy = run(lab_host, paths=[FINANCE], target="C:\\R", in_place=True)
    assert both["failed"] and "give either target (a folder) or in_place=true" in both["msg"]
    neither, dummy = run(lab_host, paths=[FINANCE])
    assert neither["failed"] and "give either target" in neither["msg"]
    planned, connection = run(lab_host, check_mode=True, paths=[FINANCE], target="C:\\Restored")
    assert planned["paths"] == [{"path": FINANCE, "destination": "C:\\Restored\\D\\Shares\\Finance", "status": "planned"}]
    assert connection.host.requests == [] and lab_host.model.files.info("C:\\Restored")["exists"] is False
