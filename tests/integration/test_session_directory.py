r"""The session directory trusted only when it is safe, through the real backup playbook against the lab.

SYSTEM runs what the agent writes under ``%ProgramData%\shadowsnap``, and any local user can create folders in
``%ProgramData%``. The lab's win-sql-01 presents the folder a non-admin user (``lab-user``) could leave there before
the agent ever ran: owned by them, as a junction to a folder of theirs, or with an explicit entry of theirs below the
root. The agent's twin reports what it finds in the pre-flight, and the controller refuses to start a session: the
error says what it found and how to fix it, and nothing is created - no shadow copy, no EBS snapshot, no scheduled
task, not even the root's ACL changed.
"""

import json

import pytest

pytestmark = pytest.mark.integration

BACKUP = "- ansible.builtin.import_playbook: shadowsnap.ec2.backup\n"
SQL = "win-sql-01"
ROOT = "C:\\ProgramData\\shadowsnap"
REFUSED = "the session directory is not safe for SYSTEM to run files from, so no session was started: "


@pytest.fixture
def inventory(lab, tmp_path):
    path = tmp_path / "windows.ini"
    lab.write_inventory(str(path))
    return str(path)


def backup(lab, ansible_playbook, inventory, tmp_path, set_id="sql-backup"):
    report_path = tmp_path / "report.json"
    extra = {"target_hosts": SQL, "backup_volumes": ["D:", "E:"], "backup_report_path": str(report_path),
             "backup_set_id": set_id, "backup_type": "full"}
    run = ansible_playbook(lab, BACKUP, extra, inventory=inventory)
    return run, json.loads(report_path.read_text(encoding="utf-8"))


def lab_snapshots(lab):
    volume_ids = [v["volume_id"] for instance in lab.state["instances"] for v in instance["volumes"]]
    return lab.ec2().describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": volume_ids}])["Snapshots"]


@pytest.mark.parametrize("kind, found", [
    ("foreign_owner", "C:\\ProgramData\\shadowsnap is owned by WIN-SQL-01\\lab-user and has an explicit Allow entry for "
                      "WIN-SQL-01\\lab-user (FullControl): remove C:\\ProgramData\\shadowsnap and let the agent create it"),
    ("junction", "C:\\ProgramData\\shadowsnap is owned by WIN-SQL-01\\lab-user and is a junction to "
                 "C:\\Users\\Public\\shadowsnap: remove C:\\ProgramData\\shadowsnap and let the agent create it (rmdir "
                 "\"C:\\ProgramData\\shadowsnap\" removes the link, not its target)"),
    ("extra_ace", "C:\\ProgramData\\shadowsnap\\runs has an explicit Allow entry for WIN-SQL-01\\lab-user (Modify): remove "
                  "C:\\ProgramData\\shadowsnap\\runs and let the agent create it, or remove the entries (icacls "
                  "\"C:\\ProgramData\\shadowsnap\\runs\" /remove \"WIN-SQL-01\\lab-user\")"),
])
def test_a_hostile_session_directory_is_refused_before_anything_is_created(
        lab, ansible_playbook, inventory, tmp_path, kind, found):
    planted = lab.hostile_session_directory(SQL, kind)
    run, report = backup(lab, ansible_playbook, inventory, tmp_path)
    assert run.rc != 0
    (result,) = report["hosts"]
    assert result["status"] == "failed"
    assert result["error"] == SQL + ": " + REFUSED + found
    assert report["counts"] == {"ok": 0, "fallback": 0, "failed": 1}
    state = lab.host_state(SQL)
    assert state["shadows"] == 0, "no shadow copy"
    assert lab.sessions(SQL) == [], "no scheduled task"
    assert lab.vss_events(SQL, event="Freeze") == [] and lab.vss_events(SQL, event="SnapshotSetCreated") == []
    assert lab_snapshots(lab) == [], "no EBS snapshot"
    assert lab.folder_security(SQL) == planted, "the agent changed nothing in the tree, not even the root's ACL"
    counters = lab.host_counters(SQL)["agent"]["ops"]
    assert counters.get("sessions") == 1 and "session_start" not in counters, "refused on the pre-flight's facts"


def test_a_tree_the_agent_made_is_used_again(lab, ansible_playbook, inventory, tmp_path):
    """The control case: the agent's own tree passes the same check on the next backup, and every folder in it is the
    agent's."""
    first, report = backup(lab, ansible_playbook, inventory, tmp_path, "sql-first")
    assert first.rc == 0, first.stdout
    assert report["hosts"][0]["consistency"] == "application"
    run, report = backup(lab, ansible_playbook, inventory, tmp_path, "sql-second")
    assert run.rc == 0, run.stdout
    assert report["hosts"][0]["consistency"] == "application"
    tree = lab.folder_security(SQL)
    assert tree["root"]["owner_name"] == "BUILTIN\\Administrators" and not tree["root"]["inherits"]
    assert [entry["name"] for entry in tree["root"]["explicit_aces"]] == ["NT AUTHORITY\\SYSTEM", "BUILTIN\\Administrators"]
    assert len(tree["folders"]) == 3, "runs and the two run directories"
    assert all(folder["owner_name"] == "BUILTIN\\Administrators" and not folder["explicit_aces"]
               and not folder["reparse_point"] for folder in tree["folders"])
