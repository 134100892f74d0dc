"""The model of a Windows Server: disks tied to EC2 volumes (Nitro and Xen), volumes, writers, services, shadow copies,
shadow storage, and volume content in the lab's BlockStore (with the SQL "application" journal)."""

import json
import pathlib
import re

import pytest

from lab.dataplane import BlockStore
from lab.windows import catalog
from lab.windows.agent_twin import read_ops
from lab.windows.application import Journal
from lab.windows.model import WindowsServer
from lab.windows.routes import sql_application
from lab.windows.storage import SPAN_HEADER, scsi_target_id
from lab.windows.testing import sample_instance

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "windows"
GUID = r"\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}"


def load(name):
    lines = (FIXTURES / name).read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.startswith("#")) + "\n"


def host(name="win-sql-01", blockstore=None, **options):
    return WindowsServer(sample_instance(name, **options), blockstore or BlockStore()).seed()


def volume_id_of_disk(disk, style):
    """What the controller does (FACTS.md): Nitro serial -> vol-<hex>; Xen: SCSI target -> device -> mapping."""
    if style == "nitro":
        match = re.fullmatch(r"vol([0-9a-f]{17})_00000001\.", disk["SerialNumber"])
        return "vol-" + match.group(1)
    return None


# ------------------------------------------------------------------------------------------------ storage
def test_nitro_disks_carry_the_volume_ids_in_the_captured_format():
    model = host("win-sql-01")
    storage = read_ops.storage(model)
    instance = sample_instance("win-sql-01")
    capture = json.loads(load("ec2_get_disk_json_nvme_ws2022_3ebs_shortened.txt"))
    for disk in storage["disks"]:
        assert set(capture[0]) <= set(disk)
        assert disk["FriendlyName"] == capture[0]["FriendlyName"] == "NVMe Amazon Elastic B"
        hex_id = disk["SerialNumber"][3:20]
        assert disk["UniqueId"] == "vol%s0001Amazon Elastic Block Store              1D0F" % hex_id
        assert disk["BusType"] == capture[0]["BusType"] == 17 and disk["Model"] == "Amazon Elastic Block Store"
        assert disk["OperationalStatus"] == capture[0]["OperationalStatus"] == [53264] and disk["HealthStatus"] == 0
    by_number = {disk["Number"]: volume_id_of_disk(disk, "nitro") for disk in storage["disks"]}
    assert by_number == {index: volume["volume_id"] for index, volume in enumerate(instance["volumes"])}
    root = next(disk for disk in storage["disks"] if disk["Number"] == 0)
    assert root["IsBoot"] and root["PartitionStyle"] == 1


def test_xen_disks_map_scsi_target_ids_to_device_names():
    model = host("win-xen-01")
    instance = sample_instance("win-xen-01")
    storage = read_ops.storage(model)
    capture = load("ec2_get_disk_table_xen_pvdisk_offline_01.txt")
    assert "AWS PVDISK" in capture
    devices = {volume["device"]: volume["volume_id"] for volume in instance["volumes"]}
    serials = {disk["Number"]: disk["SerialNumber"] for disk in storage["disks"]}
    for drive in storage["disk_drives"]:
        assert drive["Model"] == "AWS PVDISK SCSI Disk Device"
        device = "/dev/sda1" if drive["SCSITargetId"] == 0 else "xvd" + chr(ord("a") + drive["SCSITargetId"])
        assert serials[drive["Index"]] == devices[device].replace("-", "")
        assert re.fullmatch(r"vol[0-9a-f]{17}", serials[drive["Index"]])
    assert sorted(drive["SCSITargetId"] for drive in storage["disk_drives"]) == [0, 5, 6]
    assert {disk["FriendlyName"] for disk in storage["disks"]} == {"AWS PVDISK"}
    assert {disk["BusType"] for disk in storage["disks"]} == {1}


@pytest.mark.parametrize("device, target", [("/dev/sda1", 0), ("xvdb", 1), ("/dev/xvdf", 5), ("xvdz", 25), ("sdc", 2)])
def test_scsi_target_ids(device, target):
    assert scsi_target_id(device) == target


def test_scsi_target_id_refuses_instance_store_names():
    with pytest.raises(ValueError):
        scsi_target_id("xvdca")


def test_partitions_join_volumes_and_disks_through_access_paths():
    model = host("win-sql-01")
    storage = read_ops.storage(model)
    volumes = {volume["UniqueId"]: volume for volume in storage["volumes"]}
    letters = {}
    for partition in storage["partitions"]:
        unique = [path for path in partition["AccessPaths"] if path.startswith("\\\\?\\Volume")]
        if partition["Type"] == "Reserved":
            assert not partition["AccessPaths"] and partition["PartitionNumber"] == 1
            continue
        assert unique and re.fullmatch(r"\\\\\?\\Volume" + GUID + r"\\", unique[0])
        assert partition["AccessPaths"][0] == "%s:\\" % partition["DriveLetter"]
        letters[partition["DriveLetter"]] = partition["DiskNumber"]
        assert volumes[unique[0]]["DriveLetter"] == partition["DriveLetter"]
        assert volumes[unique[0]]["FileSystem"] == "NTFS" and volumes[unique[0]]["DriveType"] == 3
    assert letters == {"C": 0, "D": 1, "E": 2, "F": 3}
    assert volumes[model.storage.find_volume("D:").unique_id]["FileSystemLabel"] == "SQLData"


def test_volume_guids_are_stable_per_volume_id():
    first = host("win-sql-01").storage.find_volume("D:").unique_id
    assert host("win-sql-01").storage.find_volume("D:").unique_id == first
    other = WindowsServer(sample_instance("win-sql-01", volumes=[
        {"device": "/dev/sda1", "size": 60, "drive": "C:", "volume_id": "vol-0fffffffffffffff1"},
        {"device": "xvdb", "size": 100, "drive": "D:", "volume_id": "vol-0fffffffffffffff2"},
        {"device": "xvdc", "size": 50, "drive": "E:", "volume_id": "vol-0fffffffffffffff3"},
    ]), BlockStore())
    assert other.storage.find_volume("D:").unique_id != first


def test_mount_folder_unlettered_and_offline_volumes():
    volumes = [
        {"device": "/dev/sda1", "size": 60, "drive": "C:"},
        {"device": "xvdb", "size": 20, "drive": "C:\\Mounts\\Data", "label": "Data"},
        {"device": "xvdc", "size": 20},
        {"device": "xvdd", "size": 20, "drive": "G:", "offline": True},
    ]
    model = host("win-app-01", volumes=volumes, windows={})
    storage = read_ops.storage(model)
    mounted = model.storage.find_volume("C:\\Mounts\\Data\\file.txt")
    assert mounted.drive_letter is None and mounted.mount_paths == ["C:\\Mounts\\Data\\"]
    assert model.storage.find_volume("C:\\Windows").is_root
    partition = next(p for p in storage["partitions"] if p["DiskNumber"] == 1 and p["Type"] == "Basic")
    assert partition["DriveLetter"] is None and partition["AccessPaths"][0] == "C:\\Mounts\\Data\\"
    disks = {disk["Number"]: disk for disk in storage["disks"]}
    assert disks[2]["PartitionStyle"] == 0
    assert disks[3]["OperationalStatus"] == [53267] and disks[3]["IsOffline"]
    assert len(storage["volumes"]) == 2


@pytest.mark.parametrize("kind", ["storage_pool", "dynamic"])
def test_a_volume_spanning_two_ebs_volumes(kind):
    blockstore = BlockStore()
    volumes = [
        {"device": "/dev/sda1", "size": 60, "drive": "C:"},
        {"device": "xvdb", "size": 20, "drive": "D:", "label": "Pool", "span": {"name": "Pool1", "kind": kind}},
        {"device": "xvdc", "size": 20, "drive": "D:", "span": {"name": "Pool1", "kind": kind}},
    ]
    model = host("win-pool-01", blockstore, volumes=volumes, windows={})
    instance = sample_instance("win-pool-01", volumes=volumes, windows={})
    members = [volume["volume_id"] for volume in instance["volumes"][1:]]
    storage = read_ops.storage(model)
    pooled = model.storage.find_volume("D:")
    assert pooled.volume_ids == members
    if kind == "storage_pool":
        pool = storage["storage_pools"][0]
        assert pool["FriendlyName"] == "Pool1" and pool["PhysicalDiskNumbers"] == [1, 2]
        assert pool["VolumeUniqueIds"] == [pooled.unique_id] and pool["VirtualDiskNumbers"] == [3]
        assert ["vol-" + disk["SerialNumber"][3:20] for disk in pool["PhysicalDisks"]] == members
        assert [disk["DeviceId"] for disk in pool["PhysicalDisks"]] == ["1", "2"]
        assert sorted(disk["Number"] for disk in storage["disks"]) == [0, 3], "pool members are hidden from Get-Disk"
        virtual = next(disk for disk in storage["disks"] if disk["BusType"] == 16)
        assert virtual["Number"] == 3 and virtual["FriendlyName"] == "Pool1-VDisk"
        assert any(p["DiskNumber"] == 3 and pooled.unique_id in p["AccessPaths"] for p in storage["partitions"])
        assert not storage["dynamic_disks"]
    else:
        assert storage["dynamic_disks"] == [{"DiskNumber": 1, "VolumeUniqueIds": [pooled.unique_id]},
                                            {"DiskNumber": 2, "VolumeUniqueIds": [pooled.unique_id]}]
        assert {p["GptType"] for p in storage["partitions"] if p["DiskNumber"] == 1} == {
            "{e3c9e316-0b5c-4db8-817d-f92df00215ae}", "{5808c8aa-7e8f-42e0-85d2-e1e90434cfb3}", "{af9b60a0-1431-4f62-bc68-3311714a69ad}"}
        assert not any(pooled.unique_id in p["AccessPaths"] for p in storage["partitions"])
        assert not storage["storage_pools"]
    for index in range(20):
        model.files.write("D:\\archive\\%02d.txt" % index, "row %d" % index)
    per_member = [{path for path in blockstore.volume(v).files if path.startswith("archive")} for v in members]
    assert per_member[0] and per_member[1] and not per_member[0] & per_member[1]
    headers = [json.loads(blockstore.volume(v).files[SPAN_HEADER]) for v in members]
    assert headers[0]["generation"] == headers[1]["generation"] > 0
    assert model.files.read("D:\\archive\\07.txt") == b"row 7"


# ------------------------------------------------------------------------------------------- shadow storage
def test_shadow_storage_defaults_to_the_same_volume_and_can_point_elsewhere():
    model = host("win-sql-01", windows={"applications": ["sql"], "shadow_storage": {"E:": "F:"}})
    associations = {a["Volume"]: a["DiffVolume"] for a in read_ops.storage(model)["shadow_storage"]}
    for letter in "CD":
        unique = model.storage.find_volume(letter + ":").unique_id
        assert associations[unique] == unique
    assert associations[model.storage.find_volume("E:").unique_id] == model.storage.find_volume("F:").unique_id
    model.shadows.set_storage("D:", "F:", max_space=1 << 30)
    entry = next(a for a in read_ops.storage(model)["shadow_storage"] if a["Volume"] == model.storage.find_volume("D:").unique_id)
    assert entry["DiffVolume"] == model.storage.find_volume("F:").unique_id and entry["MaxSpace"] == 1 << 30


# ----------------------------------------------------------------------------------------------- writers
def test_standard_writers_with_real_ids_and_application_writers():
    sql = host("win-sql-01")
    names = [writer.name for writer in sql.writers.visible()]
    assert names[:4] == ["Task Scheduler Writer", "VSS Metadata Store Writer", "Performance Counters Writer", "System Writer"]
    assert "SqlServerWriter" in names and "IIS Config Writer" not in names
    assert sql.writers.get("SqlServerWriter").writer_id == "{a65faa63-5ea8-4ebc-9dbd-a0c4db26912a}"
    assert sql.writers.get("{e8132975-6f93-4464-a53e-1050253ae220}").name == "System Writer"
    web = host("win-web-01")
    assert {"IIS Config Writer", "IIS Metabase Writer"} <= {writer.name for writer in web.writers.visible()}
    for writer in list(sql.writers) + list(web.writers):
        assert re.fullmatch(GUID, writer.writer_id) and re.fullmatch(GUID, writer.instance_id)
        assert writer.service in sql.services or writer.service in web.services


@pytest.mark.parametrize("state, number, error", [
    ("failed_at_identify", 6, "out_of_resources"),
    ("failed_at_prepare_backup", 7, "retryable"),
    ("FAILED_AT_PREPARE_SNAPSHOT", 8, "inconsistent"),
    ("VSS_WS_FAILED_AT_FREEZE", 9, "timed_out"),
    (10, 10, "timed_out"),
    ("11", 11, "retryable"),
    ("failed_at_backup_complete", 12, "retryable"),
    ("failed_at_pre_restore", 13, "non_retryable"),
    ("failed_at_post_restore", 14, "non_retryable"),
    ("failed_at_backupshutdown", 15, "non_retryable"),
    ("timed_out", 9, "timed_out"),
    ("not_responding", 0, "not_responding"),
    ("waiting_for_completion", 5, "no_error"),
    ("healthy", 1, "no_error"),
])
def test_writer_states_settable_at_run_time(state, number, error):
    model = host("win-sql-01")
    described = model.writers.set_state("SqlServerWriter", state)
    assert described[0]["state"] == number and described[0]["error"] == error
    assert described[0]["failure_code"] == "0x%08x" % catalog.ERROR_HRESULTS[error]


def test_writer_error_override_and_bad_input():
    model = host("win-sql-01")
    assert model.writers.set_state("SqlServerWriter", 7, error="non_retryable")[0]["error"] == "non_retryable"
    with pytest.raises(ValueError):
        model.writers.set_state("SqlServerWriter", 16)
    with pytest.raises(ValueError):
        model.writers.set_state("SqlServerWriter", "sleepy")
    with pytest.raises(ValueError):
        model.writers.set_state("SqlServerWriter", 9, error="bad")
    with pytest.raises(KeyError):
        model.writers.set_state("No Such Writer", 1)


def test_initial_writer_states_from_the_topology():
    model = host("win-sql-01", windows={"applications": ["sql"], "writer_states": {"SqlServerWriter": "failed_at_freeze",
                                                                                   "WMI Writer": {"state": 7, "error": "retryable"}}})
    assert model.writers.get("SqlServerWriter").state == 9
    assert (model.writers.get("WMI Writer").state, model.writers.get("WMI Writer").error) == (7, "retryable")


def test_missing_writers_and_services():
    model = host("win-sql-01")
    model.writers.set_state("BITS Writer", "missing")
    assert "BITS Writer" not in [w.name for w in model.writers.visible()]
    model.writers.set_state("BITS Writer", "present")
    before = model.writers.get("SqlServerWriter").instance_id
    model.services.set_state("SQLWriter", "Stopped")
    assert "SqlServerWriter" not in [w.name for w in model.writers.visible()]
    model.writers.set_state("SqlServerWriter", "failed_at_freeze")
    model.services.set_state("SQLWriter", "Running")
    restarted = model.writers.get("SqlServerWriter")
    assert restarted.state == 1 and restarted.instance_id != before
    model.writers.set_state("*", "missing")
    assert model.writers.visible() == [] and model.services["EventSystem"].status == "Stopped"
    model.services.restart("EventSystem")
    assert len(model.writers.visible()) == len(model.writers)
    assert model.services["VSS"].status == "Stopped"
    model.services.start_vss()
    assert model.services["VSS"].status == "Running"


# --------------------------------------------------------------------------------------- shadows and content
def test_shadow_copies_live_in_the_storage_volume_image():
    blockstore = BlockStore()
    model = host("win-sql-01", blockstore, windows={"applications": ["sql"], "shadow_storage": {"E:": "F:"}})
    created = model.shadows.create_set(["D:", "E:"])
    shadows = read_ops.shadows(model)["shadows"]
    assert [s["VolumeName"] for s in shadows] == [model.storage.find_volume("D:").unique_id, model.storage.find_volume("E:").unique_id]
    capture = load("wmi_win32_shadowcopy_get_wmiobject_table_01.txt")
    assert "HarddiskVolumeShadowCopy4 20240531130959.884752+120    12" in capture
    for shadow in shadows:
        assert re.fullmatch(r"\{[0-9A-F-]{36}\}", shadow["ID"]) and shadow["SetID"] == created["set_id"].upper()
        assert re.fullmatch(r"\d{14}\.\d{6}[+-]\d{3}", shadow["InstallDate"])
        assert re.fullmatch(r"\\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopy\d+", shadow["DeviceObject"])
        assert shadow["State"] == 12 and shadow["Persistent"] and shadow["NoAutoRelease"] and not shadow["ClientAccessible"]
    d_shadow, e_shadow = (entry["id"] for entry in created["shadows"])
    d_volume, e_volume, f_volume = (model.storage.find_volume(x).volume_ids[0] for x in ("D:", "E:", "F:"))
    assert d_shadow in blockstore.volume(d_volume).shadows
    assert e_shadow in blockstore.volume(f_volume).shadows and e_shadow not in blockstore.volume(e_volume).shadows
    model.application.write_transaction()
    frozen = model.shadows.content(d_shadow)
    assert Journal.read(frozen, model.shadows.content(e_shadow)).applied_lsn == 0
    assert model.application.journal.state().applied_lsn == 1
    used = {a["Volume"]: a["UsedSpace"] for a in read_ops.storage(model)["shadow_storage"]}
    assert used[model.storage.find_volume("D:").unique_id] > 0
    assert model.shadows.delete(d_shadow) and not model.shadows.delete(d_shadow)
    assert len(read_ops.shadows(model)["shadows"]) == 1


def test_seeded_files_and_the_sql_journal():
    blockstore = BlockStore()
    model = host("win-sql-01", blockstore)
    data_id, log_id = model.storage.find_volume("D:").volume_ids[0], model.storage.find_volume("E:").volume_ids[0]
    assert "README.txt" in blockstore.volume(model.storage.find_volume("F:").volume_ids[0]).files
    assert {"SQLData\\master.mdf", "SQLData\\shop.mdf"} <= set(blockstore.volume(data_id).files)
    assert {"SQLLogs\\master_log.ldf", "SQLLogs\\shop_log.ldf"} <= set(blockstore.volume(log_id).files)
    lsns = [model.application.write_transaction() for dummy in range(3)]
    assert lsns == [1, 2, 3]
    state = Journal.read(blockstore.volume(data_id).files, blockstore.volume(log_id).files)
    assert state.applied_lsn == state.last_log_lsn == 3 and state.rows == state.log_rows
    assert model.application.write_transaction({"customer-1": "gold"}) == 4
    assert model.application.journal.state().rows["customer-1"] == "gold"
    assert host("win-xen-01").application is None
    with pytest.raises(ValueError, match="runs no SQL application"):
        sql_application(host("win-xen-01"))


def test_facts_of_server_client_and_imds():
    model = host("win-web-01")
    facts = read_ops.facts(model)
    assert facts["os_caption"] == "Microsoft Windows Server 2019 Standard" and facts["os_build"] == "17763"
    assert (facts["ui_culture"], facts["oem_code_page"], facts["ansi_code_page"]) == ("ja-JP", 932, 932)
    assert facts["is_server"] and facts["product_type"] == 3 and facts["diskshadow_present"]
    assert facts["ec2"] == {"instance_id": model.instance_id, "region": "us-east-1", "availability_zone": "us-east-1a",
                            "account_id": "123456789012", "instance_type": "m5.large"}
    assert facts["os_edition"] == "ServerStandard"
    assert read_ops.facts(host("win-sql-01"))["aws_vss_components_version"] == "2.3.1"
    client = host("win-pc-01", volumes=[{"device": "/dev/sda1", "size": 60, "drive": "C:"}], windows={"os": "win11", "imds": False})
    facts = read_ops.facts(client)
    assert not facts["is_server"] and facts["product_type"] == 1 and not facts["diskshadow_present"]
    assert facts["os_caption"] == "Microsoft Windows 11 Pro" and facts["ec2"] is None
    with pytest.raises(ValueError):
        host("win-sql-01", windows={"os": "2003"})
    with pytest.raises(ValueError):
        host("win-sql-01", windows={"locale": "xx-XX"})
