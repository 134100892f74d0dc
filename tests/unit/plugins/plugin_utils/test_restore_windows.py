"""The controller's decisions for the Windows side of a restore, on agent answers of the lab's simulated hosts: which
disk holds which EBS volume, collisions, drive letters in use, the boot disk, the revert tool, the services that own
volumes."""

import pytest

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import restore_windows, vss_writers
from lab.dataplane import BlockStore
from lab.windows import LabWindowsHost, WindowsServer
from lab.windows.testing import call_agent, sample_instance

CLONE = "vol-0c10e000000000001"


@pytest.fixture(name="host")
def host_fixture():
    model = WindowsServer(sample_instance("win-sql-01"), BlockStore()).seed()
    yield LabWindowsHost(model)
    model.shutdown()


def storage(host):
    return call_agent(host, "storage")["result"]


def volume_id(host, drive):
    return host.model.storage.find_volume(drive).volume_ids[0]


def attach_clone(host, drive="D:", device="xvdp"):
    host.model.blockstore.capture_snapshot("snap-x", volume_id(host, drive))
    host.model.blockstore.restore_volume(CLONE, "snap-x")
    host.model.volume_attached(CLONE, device)


@pytest.mark.parametrize("paths, expected", [
    (["D:\\"], ("D", [])), (["d:"], ("D", [])), (["C:\\Mounts\\Data"], (None, ["C:\\Mounts\\Data\\"])),
    (["E:\\", "C:/Mounts/Logs/"], ("E", ["C:\\Mounts\\Logs\\"])), ([], (None, [])),
])
def test_paths_split_into_a_drive_letter_and_mount_folders(paths, expected):
    assert restore_windows.split_paths(paths) == expected


def test_a_clone_beside_its_online_source_is_refused_naming_both_unless_a_re_sign_is_allowed(host):
    attach_clone(host)
    answer = storage(host)
    with pytest.raises(restore_windows.RestorePlanError) as raised:
        restore_windows.plan_online(answer, [{"volume_id": CLONE, "paths": ["D:\\"]}], allow_resign=False, read_only=False)
    assert CLONE in str(raised.value) and volume_id(host, "D:") in str(raised.value) and "re-sign" in str(raised.value)
    requests, entries = restore_windows.plan_online(answer, [{"volume_id": CLONE, "paths": ["D:\\"]}], True, False)
    assert entries[0]["collides_with"] == volume_id(host, "D:") and entries[0]["resigned"]
    assert entries[0]["drive_letter_in_use"] == "D" and requests[0]["drive_letter"] is None, "D: stays with the live volume"


def test_an_online_disk_at_its_paths_needs_nothing_and_a_missing_disk_fails(host):
    answer = storage(host)
    requests, entries = restore_windows.plan_online(answer, [{"volume_id": volume_id(host, "E:"), "paths": ["E:\\"]}], False, False)
    assert requests == [] and entries[0]["changed"] is False
    with pytest.raises(restore_windows.RestorePlanError, match="has no disk on this host"):
        restore_windows.plan_online(answer, [{"volume_id": "vol-0000000000000dead"}], False, False)


def test_offline_skips_absent_volumes_and_never_takes_the_boot_disk(host):
    numbers, entries = restore_windows.plan_offline(storage(host), [volume_id(host, "D:"), "vol-0000000000000dead"])
    assert numbers == [host.model.storage.disk_of(volume_id(host, "D:")).number]
    assert entries[1] == {"volume_id": "vol-0000000000000dead", "disk_number": None, "present": False, "changed": False}
    with pytest.raises(restore_windows.RestorePlanError, match="running Windows"):
        restore_windows.plan_offline(storage(host), [volume_id(host, "C:")])


def test_diskshadow_reverts_client_accessible_shadows_vssadmin_the_others():
    assert restore_windows.revert_tool({"ClientAccessible": True}) == "diskshadow"
    assert restore_windows.revert_tool({"ClientAccessible": False, "Persistent": True}) == "vssadmin"


def test_the_sql_engine_owns_d_and_e_and_nothing_owns_f(host):
    answer = call_agent(host, "writers", {"sources": ["diskshadow_detailed"]})["result"]
    writers = vss_writers.read_writers(answer, "diskshadow_detailed")
    assert restore_windows.services_for_volumes(writers, storage(host), ["D:", "E:"]) == (["MSSQLSERVER"], [])
    assert restore_windows.services_for_volumes(writers, storage(host), ["F:"]) == ([], [])
