"""Restore of files and folders (restore_mode files): playbooks/restore.yml through real ansible-playbook runs against
the lab.

Proven on the data: a folder deleted after a shadow backup comes back from the shadow copy stored in the restored
volume, byte for byte, with its owner, explicit and inherited entries and times; the live files are overwritten only
when asked; the temporary volumes are detached and deleted afterwards, also when the copy fails halfway; and bad inputs
(paths on none of the set's volumes, a worker in another zone, clones that would collide) are refused with nothing
created.
"""

import base64

import pytest

from lab.topology import DEFAULT_TOPOLOGY, copy_topology
from test_backup import SQL, backup, inventory  # noqa: F401 pylint: disable=unused-import
from test_restore_volumes import crash_set, volumes_of
from test_restore_windows import WEB, restore

pytestmark = pytest.mark.integration

FINANCE = "D:\\Shares\\Finance"
TARGET = "C:\\shadowsnap-restore\\files\\sql-backup\\D\\Shares\\Finance"
CLERK = "S-1-5-21-1-2-3-1104"
AUDITORS = "S-1-5-21-1-2-3-1105"
ADMINISTRATORS = "S-1-5-32-544"
FILES = ("\\q1.xlsx", "\\2025\\q4.xlsx", "\\2025\\audit\\notes.txt")
FOLDERS = ("", "\\2025", "\\2025\\audit")


def entry(identity, rights="FullControl", inheritance="ContainerInherit, ObjectInherit"):
    return {"identity": identity, "rights": rights, "type": "Allow", "inheritance": inheritance}


def seed_finance(lab, host):
    """D:\\Shares\\Finance: protected (its own entries only), a subfolder inheriting them, a protected sub-subfolder
    with an entry of its own, files with explicit entries and their own times."""
    for index, relative in enumerate(FILES):
        lab.write_file(host, FINANCE + relative, "%s-figures" % relative.rsplit("\\", 1)[1].split(".")[0] * (index + 1))
    lab.set_file_info(host, FINANCE, owner=CLERK, protected=True, aces=[entry(CLERK, "Modify"), entry(ADMINISTRATORS)],
                      created="2024-01-02T03:04:05Z", modified="2025-06-01T00:00:00Z")
    lab.set_file_info(host, FINANCE + "\\2025", created="2025-01-01T08:00:00Z", modified="2025-12-31T17:00:00Z")
    lab.set_file_info(host, FINANCE + "\\2025\\audit", owner=AUDITORS, protected=True, aces=[entry(AUDITORS, "Read")],
                      created="2025-03-01T08:00:00Z", modified="2025-03-02T08:00:00Z")
    lab.set_file_info(host, FINANCE + "\\q1.xlsx", owner=CLERK, aces=[entry("S-1-5-32-545", "Read", "None")],
                      created="2025-01-05T10:00:00Z", modified="2025-04-01T09:30:00Z")
    lab.set_file_info(host, FINANCE + "\\2025\\q4.xlsx", created="2025-10-01T10:00:00Z", modified="2025-12-20T11:00:00Z")


def finance_as_it_is(lab, host, root):
    """Every folder and file of Finance under ``root``: owner, inheritance, entries (with ``inherited``), times, and
    the files' bytes."""
    def described(relative):
        info = lab.file_info(host, root + relative)
        assert info["exists"], (host, root + relative)
        return {key: value for key, value in info.items() if key != "path"}
    return {"folders": {relative: described(relative) for relative in FOLDERS},
            "files": {relative: dict(described(relative), data=lab.read_file(host, root + relative)["base64"])
                      for relative in FILES}}


def files_restore(lab, ansible_playbook, inventory, tmp_path, **variables):
    options = {"restore_mode": "files", "restore_files": [FINANCE], "restore_volumes": []}
    options.update(variables)
    return restore(lab, ansible_playbook, inventory, tmp_path, **options)


def shadow_backup_of_finance(lab, ansible_playbook, inventory, tmp_path):
    """Finance on D:, a shadow set of D:+E:, then Finance deleted and a file of Shares changed: what it was."""
    seed_finance(lab, SQL)
    before = finance_as_it_is(lab, SQL, FINANCE)
    run, report = backup(lab, ansible_playbook, inventory, tmp_path)
    assert run.rc == 0 and report["hosts"][0]["consistency"] == "application", run.stdout
    lab.remove_files(SQL, FINANCE)
    assert lab.file_info(SQL, FINANCE)["exists"] is False
    lab.volumes(creating_seconds=0.2, attaching_seconds=0.2, detaching_seconds=0.2)
    return before


def assert_no_volume_left(lab, volumes_before, attachments_before):
    assert set(volumes_of(lab)) == volumes_before, "the temporary volumes are deleted"
    assert lab.attachments() == attachments_before


def test_a_deleted_folder_comes_back_byte_for_byte_with_its_acls_and_times_into_the_target(
        lab, ansible_playbook, inventory, tmp_path):
    before = shadow_backup_of_finance(lab, ansible_playbook, inventory, tmp_path)
    volumes, attachments = set(volumes_of(lab)), lab.attachments()
    run, report = files_restore(lab, ansible_playbook, inventory, tmp_path, restore_allow_resign=True)
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    assert (result["status"], result["consistency"], result["worker"]) == ("ok", "application", SQL), result
    (copied,) = result["files"]
    assert (copied["status"], copied["kind"], copied["destination"]) == ("copied", "folder", TARGET)
    assert copied["files_copied"] == len(FILES) and copied["bytes_copied"] == sum(
        len(base64.b64decode(f["data"])) for f in before["files"].values())
    assert [s["outcome"] for s in result["shadows"]] == ["exposed"], "only D: was restored: it holds the path"
    assert finance_as_it_is(lab, SQL, TARGET) == before, "data, owner, entries (explicit and inherited) and times"
    assert lab.file_info(SQL, FINANCE)["exists"] is False, "the live volume is left alone"
    assert_no_volume_left(lab, volumes, attachments)
    assert result["cleanup"]["left_volume_ids"] == [] and len(result["cleanup"]["deleted_volume_ids"]) == 1


def crash_backup_of_finance(lab, ansible_playbook):
    """Finance on D:, a crash set of D:+E: (faster than a shadow backup; its files are read from the read-only volume):
    what Finance was."""
    seed_finance(lab, SQL)
    before = finance_as_it_is(lab, SQL, FINANCE)
    crash_set(lab, ansible_playbook, "sql-backup", device_names=["xvdb", "xvdc"],
              volume_metadata={"xvdb": {"paths": ["D:\\"]}, "xvdc": {"paths": ["E:\\"]}})
    lab.volumes(creating_seconds=0.2, attaching_seconds=0.2, detaching_seconds=0.2)
    return before


def test_in_place_with_the_flag_overwrites_the_live_files(lab, ansible_playbook, inventory, tmp_path):
    """Without the flag nothing goes in place (the first test: the live folder stays deleted); with it, the paths go
    back where they were, overwriting."""
    before = crash_backup_of_finance(lab, ansible_playbook)
    lab.write_file(SQL, FINANCE + "\\q1.xlsx", "edited after the backup")
    lab.remove_files(SQL, FINANCE + "\\2025")
    lab.set_file_info(SQL, FINANCE, modified="2026-11-30T00:00:00Z")
    volumes, attachments = set(volumes_of(lab)), lab.attachments()
    run, report = files_restore(lab, ansible_playbook, inventory, tmp_path, restore_allow_resign=True,
                                restore_files_overwrite=True)
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    assert (result["status"], result["consistency"], result["target"]) == ("ok", "crash", ""), result
    (copied,) = result["files"]
    assert (copied["status"], copied["destination"], copied["files_copied"]) == ("copied", FINANCE, len(FILES))
    after = finance_as_it_is(lab, SQL, FINANCE)
    for relative, wanted in before["files"].items():
        got = after["files"][relative]
        assert got["data"] == wanted["data"], "the edited file is overwritten, the deleted ones are back"
        for field in ("owner", "protected", "created", "modified", "size"):
            assert got[field] == wanted[field], (relative, field)
        assert [e for e in got["access"] if not e["inherited"]] == [e for e in wanted["access"] if not e["inherited"]]
    assert after["folders"]["\\2025"] == before["folders"]["\\2025"], "a folder that was gone comes back with its own"
    assert after["folders"][""]["modified"] == "2026-11-30T00:00:00Z", "a folder that exists keeps its own metadata"
    assert [e["inherited"] for e in after["files"]["\\q1.xlsx"]["access"]][-1] is True, "inherited from where it lands"
    assert_no_volume_left(lab, volumes, attachments)


def test_a_copy_failing_halfway_fails_and_still_deletes_the_temporary_volumes(lab, ansible_playbook, inventory, tmp_path):
    crash_backup_of_finance(lab, ansible_playbook)
    lab.remove_files(SQL, FINANCE)
    volumes, attachments = set(volumes_of(lab)), lab.attachments()
    lab.configure_host(SQL, copy_fail_after_files=1)
    run, report = files_restore(lab, ansible_playbook, inventory, tmp_path, restore_allow_resign=True)
    assert run.rc != 0
    (result,) = report["hosts"]
    assert result["status"] == "failed" and "not enough space on the disk" in result["error"], result
    (failed,) = result["files"]
    assert (failed["status"], failed["files_copied"]) == ("failed", 1) and len(failed["failures"]) == len(FILES) - 1
    assert result["consistency"] == "", "a failed restore claims no consistency"
    assert_no_volume_left(lab, volumes, attachments)
    assert len(result["cleanup"]["deleted_volume_ids"]) == 1


@pytest.mark.parametrize("variables, expected", [
    ({"restore_files": ["F:\\Backup\\x.bak", "D:\\Shares"]}, "'F:\\\\Backup\\\\x.bak' is on none of the set's volumes"),
    ({"restore_allow_resign": False}, "would have the same disk ids"),
])
def test_bad_inputs_are_refused_with_nothing_created(lab, ansible_playbook, inventory, tmp_path, variables, expected):
    crash_backup_of_finance(lab, ansible_playbook)
    volumes, attachments = set(volumes_of(lab)), lab.attachments()
    run, report = files_restore(lab, ansible_playbook, inventory, tmp_path, **dict({"restore_allow_resign": True}, **variables))
    assert run.rc != 0
    (result,) = report["hosts"]
    assert result["status"] == "failed" and expected in result["error"] and "cleanup" not in result, result
    assert_no_volume_left(lab, volumes, attachments)


def test_a_worker_in_another_zone_is_refused_without_the_option_and_copies_with_it(lab, ansible_playbook, tmp_path):
    topology = copy_topology(DEFAULT_TOPOLOGY)
    next(host for host in topology if host["name"] == WEB)["availability_zone"] = "us-east-1b"
    lab.reset(topology=topology)
    inventory_path = tmp_path / "windows.ini"
    lab.write_inventory(str(inventory_path))
    seed_finance(lab, SQL)
    crash_set(lab, ansible_playbook, "sql-backup")
    before = finance_as_it_is(lab, SQL, FINANCE)
    volumes, attachments = set(volumes_of(lab)), lab.attachments()
    run, report = files_restore(lab, ansible_playbook, str(inventory_path), tmp_path, restore_worker=WEB)
    assert run.rc != 0
    (result,) = report["hosts"]
    assert "worker win-web-01 is in us-east-1b" in result["error"] and "nothing was created" in result["error"], result
    assert_no_volume_left(lab, volumes, attachments)

    run, report = files_restore(lab, ansible_playbook, str(inventory_path), tmp_path, restore_worker=WEB,
                                restore_worker_other_zone=True)
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    assert (result["status"], result["consistency"], result["worker"]) == ("ok", "crash", WEB), result
    assert {v["availability_zone"] for v in result["volumes"]} == {"us-east-1b"}
    assert finance_as_it_is(lab, WEB, TARGET) == before, "copied on the worker, from the read-only volume"
    assert lab.file_info(SQL, FINANCE)["owner"] == CLERK
    assert_no_volume_left(lab, volumes, attachments)
