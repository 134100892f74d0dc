"""The lab's Windows half of a restore: disks that come and go with EBS attachments, their identity cloned with the
volume, signature collisions and re-signing, shadow copies found on a restored volume, revert and expose as FACTS.md
documents them, copy-on-write filling the diff area, services, and the restore ops of the agent's twin."""

import pytest

from lab.windows import LabWindowsHost
from lab.windows.agent_twin import protocol
from lab.windows.storage import OFFLINE_COLLISION
from lab.windows.testing import call_agent
from test_aws_ebs import collection_ec2
from test_aws_volumes import wait_for

UNSUPPORTED_CONTEXT = "0x8004231B"


def backed_up_volume(model, drive="D:", snapshot_id="snap-lab-1"):
    """An EBS snapshot of ``drive`` taken while a persistent shadow copy of it existed (the shadow engine's backup),
    the live shadow deleted afterwards; returns (snapshot id, shadow id, the shadow's frozen files)."""
    volume = model.storage.find_volume(drive)
    created = model.shadows.create_set([drive], persistent=True)
    shadow_id = created["shadows"][0]["id"]
    frozen = model.shadows.content(shadow_id)
    model.blockstore.capture_snapshot(snapshot_id, volume.volume_ids[0])
    model.shadows.delete(shadow_id)
    return snapshot_id, shadow_id, frozen


def restored_disk(model, snapshot_id, volume_id="vol-0restored00000001", device="xvdp"):
    model.blockstore.restore_volume(volume_id, snapshot_id)
    model.volume_attached(volume_id, device)
    return model.storage.disk_of(volume_id)


def test_a_clone_attached_beside_its_online_source_stays_offline_and_onlining_it_re_signs_it(host_model):
    model = host_model()
    host = LabWindowsHost(model)
    source = model.storage.disk_of(model.storage.find_volume("D:").volume_ids[0])
    snapshot_id, shadow_id, dummy = backed_up_volume(model)
    disk = restored_disk(model, snapshot_id)
    described = disk.describe()
    assert described["IsOffline"] and described["OfflineReason"] == OFFLINE_COLLISION
    assert described["Guid"] == source.describe()["Guid"]
    assert model.storage.volume_on(disk) is None and model.shadows.record(shadow_id) is None

    answer = call_agent(host, "disk_online", {"disks": [{"number": disk.number}]})
    assert answer["ok"], answer
    state = answer["result"]["disks"][0]
    assert list(state) == list(protocol.DISK_STATE_KEYS)
    assert not state["is_offline"] and state["guid"] != "{%s}" % source.disk_guid
    assert state["drive_letter"] == "G"
    volume = model.storage.volume_on(disk)
    assert volume.guid != model.storage.find_volume("D:").guid
    assert model.shadows.record(shadow_id)["VolumeName"] == volume.unique_id


def test_in_place_the_clone_comes_back_with_its_source_id_and_drive_letter_and_its_shadow_copies(host_model):
    model = host_model()
    original = model.storage.find_volume("D:")
    snapshot_id, shadow_id, dummy = backed_up_volume(model)
    model.volume_detached(original.volume_ids[0])
    assert model.storage.find_volume("D:") is None
    disk = restored_disk(model, snapshot_id, device="xvdb")
    volume = model.storage.volume_on(disk)
    assert not disk.offline and volume.drive_letter == "D" and volume.guid == original.guid
    assert model.shadows.record(shadow_id)["VolumeName"] == original.unique_id


def test_shadow_copies_of_an_offline_or_read_only_disk_are_not_listed(host_model):
    model = host_model(windows={"san_policy": "offline_all"})
    host = LabWindowsHost(model)
    snapshot_id, shadow_id, dummy = backed_up_volume(model)
    model.volume_detached(model.storage.find_volume("D:").volume_ids[0])
    disk = restored_disk(model, snapshot_id, device="xvdb")
    assert disk.offline and disk.describe()["OfflineReason"] == 1 and model.shadows.record(shadow_id) is None
    call_agent(host, "disk_online", {"disks": [{"number": disk.number, "read_only": True}]})
    assert model.shadows.record(shadow_id) is None
    call_agent(host, "disk_online", {"disks": [{"number": disk.number, "read_only": False}]})
    assert model.shadows.record(shadow_id) is not None


@pytest.mark.parametrize("setting, reverted", [("accept", True), ("refuse", False)])
def test_vssadmin_revert_of_a_persistent_shadow_answers_as_the_lab_setting_says(host_model, setting, reverted):
    model = host_model(windows={"vssadmin_revert": setting})
    host = LabWindowsHost(model)
    snapshot_id, shadow_id, frozen = backed_up_volume(model)
    model.volume_detached(model.storage.find_volume("D:").volume_ids[0])
    disk = restored_disk(model, snapshot_id, device="xvdb")
    model.storage.volume_on(disk).content.write("after-the-shadow.txt", b"crash image only")
    answer = call_agent(host, "shadow_revert", {"shadow_id": shadow_id, "tool": "vssadmin"})
    files = model.storage.volume_on(disk).content.files()
    if reverted:
        assert answer["ok"] and list(answer["result"]) == list(protocol.REVERT_KEYS)
        assert files == frozen and model.shadows.record(shadow_id) is None
    else:
        assert not answer["ok"] and answer["error"]["hresult"] == UNSUPPORTED_CONTEXT
        assert "after-the-shadow.txt" in files and model.shadows.record(shadow_id) is not None


def test_diskshadow_reverts_client_accessible_shadows_only_and_nothing_reverts_the_system_volume(host_model):
    model = host_model()
    host = LabWindowsHost(model)
    persistent = model.shadows.create_set(["D:"], persistent=True)["shadows"][0]["id"]
    refused = call_agent(host, "shadow_revert", {"shadow_id": persistent, "tool": "diskshadow"})
    assert not refused["ok"] and refused["error"]["hresult"] == UNSUPPORTED_CONTEXT
    accessible = model.shadows.create_set(["E:"], persistent=True, client_accessible=True)["shadows"][0]["id"]
    assert call_agent(host, "shadow_revert", {"shadow_id": accessible, "tool": "diskshadow"})["ok"]
    system = model.shadows.create_set(["C:"], persistent=True)["shadows"][0]["id"]
    answer = call_agent(host, "shadow_revert", {"shadow_id": system, "tool": "vssadmin"})
    assert not answer["ok"] and answer["error"]["hresult"] == "0x8004230C"


def test_revert_needs_windows_server(host_model):
    model = host_model(windows={"os": "win11"})
    shadow_id = model.shadows.create_set(["D:"], persistent=True)["shadows"][0]["id"]
    answer = call_agent(LabWindowsHost(model), "shadow_revert", {"shadow_id": shadow_id, "tool": "vssadmin"})
    assert not answer["ok"] and model.shadows.record(shadow_id) is not None


def test_writes_before_the_revert_fill_the_diff_area_and_vss_deletes_the_shadow(host_model):
    model = host_model()
    snapshot_id, shadow_id, frozen = backed_up_volume(model)
    model.volume_detached(model.storage.find_volume("D:").volume_ids[0])
    volume = model.storage.volume_on(restored_disk(model, snapshot_id, device="xvdb"))
    model.shadows.set_storage("D:", "D:", max_space=2048)
    small, large = sorted(frozen, key=lambda path: len(frozen[path]))[0], "data\\file-002.bin"
    volume.content.write(small, b"x")
    assert model.shadows.record(shadow_id) is not None, "a small change fits the diff area"
    volume.content.write(large, b"y")
    assert model.shadows.record(shadow_id) is None
    assert any(event["event"] == "shadow_deleted" for event in model.vss_events.select())


def test_an_exposed_shadow_is_read_only_and_holds_the_frozen_files(host_model):
    model = host_model()
    host = LabWindowsHost(model)
    snapshot_id, shadow_id, frozen = backed_up_volume(model)
    model.volume_detached(model.storage.find_volume("D:").volume_ids[0])
    restored_disk(model, snapshot_id, device="xvdb")
    answer = call_agent(host, "shadow_expose", {"shadow_id": shadow_id, "path": "S:"})
    assert answer["ok"] and list(answer["result"]) == list(protocol.EXPOSE_KEYS)
    for path, data in frozen.items():
        assert model.files.read("S:\\" + path) == data
    with pytest.raises(ValueError):
        model.files.write("S:\\new.txt", b"no")
    given_back = call_agent(host, "shadow_unexpose", {"path": "S:"})
    assert given_back["ok"] and list(given_back["result"]) == list(protocol.UNEXPOSE_KEYS)
    assert model.shadows.exposure_of(shadow_id) is None and model.shadows.record(shadow_id) is not None
    again = call_agent(host, "shadow_unexpose", {"path": "S:"})
    assert not again["ok"] and again["error"]["hresult"] == "0x80042308", again


def test_volume_loss_on_attach_setting_drops_the_embedded_shadows(host_model):
    model = host_model(windows={"shadow_loss_on_attach": True})
    snapshot_id, shadow_id, dummy = backed_up_volume(model)
    model.volume_detached(model.storage.find_volume("D:").volume_ids[0])
    restored_disk(model, snapshot_id, device="xvdb")
    assert model.shadows.record(shadow_id) is None


def test_service_set_stops_and_starts_and_sql_server_opens_the_volumes_it_finds(host_model):
    model = host_model()
    host = LabWindowsHost(model)
    stopped = call_agent(host, "service_set", {"names": ["MSSQLSERVER"], "state": "stopped"})
    assert stopped["ok"] and stopped["result"]["services"] == [
        {"name": "MSSQLSERVER", "previous_status": "Running", "status": "Stopped"}]
    assert list(stopped["result"]["services"][0]) == list(protocol.SERVICE_STATE_KEYS)
    snapshot_id, dummy, dummy2 = backed_up_volume(model, "D:", "snap-d")
    model.volume_detached(model.storage.find_volume("D:").volume_ids[0])
    disk = restored_disk(model, snapshot_id, device="xvdb")
    assert call_agent(host, "service_set", {"names": ["MSSQLSERVER"], "state": "running"})["ok"]
    assert model.application.journal.data_volume.volume_ids == [disk.volume_id]
    assert not call_agent(host, "service_set", {"names": ["NoSuchService"], "state": "running"})["ok"]
    assert not call_agent(host, "service_set", {"names": ["MSSQLSERVER"], "state": "paused"})["ok"]


def test_service_set_with_a_record_remembers_what_a_stop_found_running_until_a_start(host_model):
    model = host_model()
    host = LabWindowsHost(model)
    stop = {"names": ["MSSQLSERVER"], "state": "stopped", "record": "restore-abc"}
    first = call_agent(host, "service_set", stop)
    assert first["ok"] and first["result"]["recorded"] == ["MSSQLSERVER"]
    assert model.files.read(r"C:\ProgramData\shadowsnap\restores\restore-abc.txt") == b"MSSQLSERVER\r\n"
    assert model.files.folder(r"C:\ProgramData\shadowsnap").protected, "the record is under the agent's own folder"
    again = call_agent(host, "service_set", stop)
    assert again["result"]["recorded"] == ["MSSQLSERVER"], "a stop that finds it stopped keeps the record"
    assert again["result"]["services"][0]["previous_status"] == "Stopped"
    started = call_agent(host, "service_set", {"names": [], "state": "running", "record": "restore-abc"})
    assert started["ok"] and started["result"]["services"] == [
        {"name": "MSSQLSERVER", "previous_status": "Stopped", "status": "Running"}]
    assert model.files.read(r"C:\ProgramData\shadowsnap\restores\restore-abc.txt") is None, "a start removes it"
    nothing = call_agent(host, "service_set", {"names": [], "state": "running", "record": "restore-abc"})
    assert nothing["ok"] and nothing["result"]["services"] == []
    assert not call_agent(host, "service_set", {"names": ["MSSQLSERVER"], "state": "stopped", "record": "..\\x"})["ok"]


def test_disk_offline_takes_the_volume_away_and_the_drive_letter_comes_back(host_model):
    model = host_model()
    host = LabWindowsHost(model)
    disk = model.storage.disk_of(model.storage.find_volume("E:").volume_ids[0])
    answer = call_agent(host, "disk_offline", {"numbers": [disk.number]})
    assert answer["ok"] and answer["result"]["disks"][0]["is_offline"]
    assert model.storage.find_volume("E:") is None
    back = call_agent(host, "disk_online", {"disks": [{"number": disk.number, "drive_letter": "E"}]})
    assert back["result"]["disks"][0]["drive_letter"] == "E"
    assert not call_agent(host, "disk_online", {"disks": [{"number": "x"}]})["ok"]


def test_the_host_sees_the_disks_ec2_attaches_and_detaches(client):
    """The whole lab: the Windows half hears the AWS half's attach and detach events."""
    ec2 = collection_ec2(client)
    instance = client.instance("win-sql-01")
    source = next(v["volume_id"] for v in instance["volumes"] if v["drive"] == "D:")
    snapshot_id = ec2.create_snapshot(VolumeId=source)["SnapshotId"]
    volume_id = ec2.create_volume(SnapshotId=snapshot_id, AvailabilityZone=instance["availability_zone"])["VolumeId"]
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance["instance_id"], Device="xvdp")

    def disk():
        return next((d for d in client.host_state("win-sql-01")["disks"] if d["VolumeId"] == volume_id), None)

    assert wait_for(lambda: disk() is not None)
    assert disk()["IsOffline"] and disk()["OfflineReason"] == OFFLINE_COLLISION
    assert disk()["SerialNumber"] == volume_id.replace("-", "") + "_00000001."
    ec2.detach_volume(VolumeId=volume_id, InstanceId=instance["instance_id"])
    assert wait_for(lambda: disk() is None)
