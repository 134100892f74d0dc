# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Windows disks and volumes to EBS volumes, and the cross-check with EC2, on real Get-Disk captures and variants."""

from __future__ import annotations

import copy
import json
import pathlib
import re

import pytest

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import ebs_disks
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.ebs_disks import EbsMappingError, cross_check, map_storage

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "fixtures" / "windows"
NITRO_FIXTURE = "ec2_get_disk_json_nvme_ws2022_3ebs_shortened.txt"
XEN_FIXTURE = "ec2_get_disk_table_xen_pvdisk_offline_01.txt"

# The Nitro capture's shortened serials (vol + 4 hex digits) and the full-length ones the variants use.
FULL_SERIALS = {"vol0284": "vol02840a1b2c3d4e5f6", "vol0aac": "vol0aac1b2c3d4e5f607", "vol05e7": "vol05e72c3d4e5f60718"}
BOOT_VOLUME, DATA_VOLUME, SPARE_VOLUME = "vol-02840a1b2c3d4e5f6", "vol-0aac1b2c3d4e5f607", "vol-05e72c3d4e5f60718"

GUID_C = "\\\\?\\Volume{0f3c5a52-0000-0000-0000-100000000000}\\"
GUID_D = "\\\\?\\Volume{1a2b3c4d-1111-2222-3333-444455556666}\\"
GUID_E = "\\\\?\\Volume{2b3c4d5e-1111-2222-3333-444455556666}\\"
GUID_F = "\\\\?\\Volume{3c4d5e6f-1111-2222-3333-444455556666}\\"
GUID_CD = "\\\\?\\Volume{4d5e6f70-1111-2222-3333-444455556666}\\"
UNBOUNDED = 18446744073709551615


def load(name: str) -> str:
    """A capture without its leading ``#`` provenance lines."""
    lines = (FIXTURES / name).read_text(encoding="utf-8").splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines)


def nitro_disks() -> list[dict]:
    return json.loads(load(NITRO_FIXTURE))


def nitro_disks_full_serials() -> list[dict]:
    """Variant: the capture with real-length serials (vol + 17 hex digits + _00000001.)."""
    disks = nitro_disks()
    for disk in disks:
        short = disk["SerialNumber"].split("_")[0]
        disk["SerialNumber"] = disk["SerialNumber"].replace(short, FULL_SERIALS[short])
    return disks


def table_rows(text: str) -> list[dict]:
    """Rows of a PowerShell table view, split at the columns of its dashes line."""
    lines = [line.rstrip("\n") for line in text.splitlines()]
    index = next(number for number, line in enumerate(lines) if line.startswith("---"))
    starts = [match.start() for match in re.finditer(r"-+", lines[index])]
    bounds = list(zip(starts, starts[1:] + [None]))
    names = [lines[index - 1][start:end].strip() for start, end in bounds]
    return [
        {name: line[start:end].strip() for name, (start, end) in zip(names, bounds)}
        for line in lines[index + 1:]
        if line.strip()
    ]


def xen_disk() -> dict:
    """The Xen capture's row as a Get-Disk record (table columns renamed to properties, "32 GB" in bytes)."""
    (row,) = table_rows(load(XEN_FIXTURE))
    size, unit = row["Total Size"].split()
    return {
        "Number": int(row["Number"]),
        "FriendlyName": row["Friendly Name"],
        "SerialNumber": row["Serial Number"],
        "HealthStatus": row["HealthStatus"],
        "OperationalStatus": row["OperationalStatus"],
        "Size": int(size) * {"GB": 2**30}[unit],
        "PartitionStyle": row["Partition Style"],
    }


def nitro_storage() -> dict:
    """Variant: the full-serial Nitro disks with the partitions, volumes and shadow storage a host would have."""
    return {
        "disks": nitro_disks_full_serials(),
        "disk_drives": [],
        "partitions": [
            {"DiskNumber": 0, "PartitionNumber": 1, "DriveLetter": "C", "AccessPaths": ["C:\\", GUID_C], "Size": 64000000000,
             "Type": "IFS", "IsBoot": True, "IsSystem": True},
            {"DiskNumber": 1, "PartitionNumber": 2, "DriveLetter": "D",
             "AccessPaths": ["D:\\", "C:\\mnt\\sqldata\\", GUID_D], "Size": 10600000000, "Type": "Basic",
             "IsBoot": False, "IsSystem": False},
        ],
        "volumes": [
            {"UniqueId": GUID_C, "DriveLetter": "C", "FileSystem": "NTFS", "FileSystemLabel": "", "DriveType": 3,
             "Size": 64000000000, "SizeRemaining": 30000000000},
            {"UniqueId": GUID_D, "DriveLetter": "D", "FileSystem": "NTFS", "FileSystemLabel": "SQLData", "DriveType": 3,
             "Size": 10600000000, "SizeRemaining": 9000000000},
            {"UniqueId": GUID_CD, "DriveLetter": "Z", "FileSystem": "CDFS", "DriveType": 5, "Size": 0, "SizeRemaining": 0},
        ],
        "shadow_storage": [
            {"Volume": GUID_C, "DiffVolume": GUID_C, "UsedSpace": 0, "AllocatedSpace": 0, "MaxSpace": 6400000000},
            {"Volume": GUID_D, "DiffVolume": GUID_C, "UsedSpace": 1024, "AllocatedSpace": 2048, "MaxSpace": UNBOUNDED},
        ],
        "dynamic_disks": [],
        "storage_pools": [],
    }


NITRO_ATTACHMENTS = [
    {"device": "/dev/sda1", "volume_id": BOOT_VOLUME, "status": "attached", "boot": True},
    {"device": "xvdb", "volume_id": DATA_VOLUME, "status": "attached", "boot": False},
    {"device": "xvdc", "volume_id": SPARE_VOLUME, "status": "attached", "boot": False},
]


def by_number(mapping: dict) -> dict:
    return {disk["number"]: disk for disk in mapping["disks"]}


def by_letter(mapping: dict) -> dict:
    return {volume["drive_letter"]: volume for volume in mapping["volumes"]}


# ------------------------------------------------------------------------------------------------- fixtures


def test_every_storage_fixture_is_accounted_for_and_carries_its_provenance():
    files = {path.name for path in FIXTURES.iterdir() if path.name.startswith("ec2_get_disk_")}
    assert files == {NITRO_FIXTURE, XEN_FIXTURE}
    for name in files:
        header = (FIXTURES / name).read_text(encoding="utf-8").split("\n")[:2]
        assert header[0].startswith("# source: "), name
        assert header[1].startswith("# notes: "), name
        assert load(name).strip(), name


def test_the_nitro_capture_as_published_maps_its_disks_but_its_shortened_serials_name_no_volume():
    mapping = map_storage({"disks": nitro_disks()})
    disks = by_number(mapping)
    assert [disk["number"] for disk in mapping["disks"]] == [0, 1, 2], "Windows lists disks out of order; output is sorted"
    assert mapping["platform"] == "nitro"
    assert {number: (disk["kind"], disk["bus_type"], disk["partition_style"]) for number, disk in disks.items()} == {
        0: ("ebs", "NVMe", "MBR"),
        1: ("ebs", "NVMe", "GPT"),
        2: ("ebs", "NVMe", "RAW"),
    }
    assert disks[0]["is_boot"] and disks[0]["is_system"] and not disks[1]["is_boot"]
    assert disks[0]["operational_status"] == ["Online"] and not disks[0]["offline"]
    assert disks[0]["size"] == 64424509440
    assert all(disk["ebs_volume_id"] is None for disk in disks.values())
    assert disks[2]["problems"] == [
        "EBS NVMe disk 2: serial number 'vol05e7_00000001.' does not carry a volume id "
        "(expected vol + 17 hex digits, e.g. vol0123456789abcdef0_00000001.)"
    ]
    check = cross_check(mapping, [], "i-0123456789abcdef0")
    assert not check["ok"]
    assert len(check["errors"]) == 3
    assert check["errors"][0].startswith("Windows disk 0 (NVMe Amazon Elastic B) is an EBS disk whose volume id is unknown")


def test_the_nitro_capture_with_full_serials_maps_every_disk_to_its_volume():
    mapping = map_storage({"disks": nitro_disks_full_serials()}, NITRO_ATTACHMENTS)
    disks = by_number(mapping)
    assert {number: (disk["ebs_volume_id"], disk["device"], disk["volume_id_source"]) for number, disk in disks.items()} == {
        0: (BOOT_VOLUME, "/dev/sda1", "serial"),
        1: (DATA_VOLUME, "xvdb", "serial"),
        2: (SPARE_VOLUME, "xvdc", "serial"),
    }
    check = cross_check(mapping, NITRO_ATTACHMENTS, "i-0123456789abcdef0")
    assert check["ok"], check["errors"]
    assert [(item["volume_id"], item["seen_by_windows"], item["disk_number"]) for item in check["attachments"]] == [
        (BOOT_VOLUME, True, 0),
        (DATA_VOLUME, True, 1),
        (SPARE_VOLUME, True, 2),
    ]


def test_the_xen_capture_maps_its_disk_through_the_scsi_target_and_the_block_device_mapping():
    storage = {
        "disks": [xen_disk()],
        "disk_drives": [{"Index": 1, "SCSITargetId": 5, "Model": "AWS PVDISK SCSI Disk Device"}],
    }
    attachments = [{"device": "xvdf", "volume_id": "vol-0318528261ed8ca45", "status": "attached"}]
    mapping = map_storage(storage, attachments)
    (disk,) = mapping["disks"]
    assert mapping["platform"] == "xen"
    assert (disk["number"], disk["kind"], disk["device"], disk["scsi_target_id"]) == (1, "ebs", "xvdf", 5)
    assert (disk["ebs_volume_id"], disk["volume_id_source"]) == ("vol-0318528261ed8ca45", "block_device_mapping")
    assert disk["offline"] and disk["operational_status"] == ["Offline"] and disk["partition_style"] == "RAW"
    assert disk["size"] == 32 * 2**30
    assert disk["problems"] == []
    assert cross_check(mapping, attachments)["ok"]


def test_a_xen_serial_that_contradicts_the_block_device_mapping_is_an_error():
    storage = {"disks": [xen_disk()], "disk_drives": [{"Index": 1, "SCSITargetId": 5}]}
    attachments = [{"device": "/dev/xvdf", "volume_id": "vol-0aaaaaaaaaaaaaaaa", "status": "attached"}]
    mapping = map_storage(storage, attachments)
    check = cross_check(mapping, attachments, "i-0123456789abcdef0")
    assert not check["ok"]
    assert check["errors"] == [
        "Xen PV disk 1 at xvdf: its serial names vol-0318528261ed8ca45, but EC2 has vol-0aaaaaaaaaaaaaaaa attached at /dev/xvdf"
    ]


def test_a_xen_disk_at_a_device_ec2_does_not_list_is_missing_in_ec2():
    storage = {"disks": [xen_disk()], "disk_drives": [{"Index": 1, "SCSITargetId": 5}]}
    mapping = map_storage(storage, [])
    (disk,) = mapping["disks"]
    assert (disk["ebs_volume_id"], disk["volume_id_source"]) == ("vol-0318528261ed8ca45", "serial")
    check = cross_check(mapping, [], "i-0123456789abcdef0")
    assert check["missing_in_ec2"] == [{"volume_id": "vol-0318528261ed8ca45", "device": "xvdf", "disk_number": 1}]
    assert check["errors"] == [
        "Windows disk 1 is EBS volume vol-0318528261ed8ca45 at xvdf, which is missing in EC2: EC2 does not list it as "
        "attached to i-0123456789abcdef0 (wrong instance or region, or a stale block-device mapping)"
    ]


def test_a_xen_disk_without_serial_or_attachment_has_an_unknown_volume_named_by_its_device():
    record = dict(xen_disk(), SerialNumber="")
    mapping = map_storage({"disks": [record], "disk_drives": [{"Index": 1, "SCSITargetId": 7}]}, [])
    check = cross_check(mapping, [])
    assert check["errors"] == [
        "Windows disk 1 (AWS PVDISK, device xvdh) is an EBS disk whose volume id is unknown: no volume id in its "
        "serial number and none attached at its device"
    ]


def test_a_xen_disk_without_its_scsi_target_says_why_its_device_is_unknown():
    mapping = map_storage({"disks": [dict(xen_disk(), SerialNumber=None)], "disk_drives": []}, [])
    assert mapping["disks"][0]["problems"] == [
        "Xen PV disk 1: no Win32_DiskDrive SCSITargetId, so its EC2 device name is unknown"
    ]


# ------------------------------------------------------------------------------------------------- volumes


def test_volumes_get_letters_mount_points_disks_and_ebs_volumes():
    mapping = map_storage(nitro_storage(), NITRO_ATTACHMENTS)
    volumes = by_letter(mapping)
    assert set(volumes) == {"C", "D"}, "the CD-ROM drive is left out"
    c_drive, d_drive = volumes["C"], volumes["D"]
    assert (c_drive["unique_id"], c_drive["layout"], c_drive["disk_numbers"]) == (GUID_C, "basic", [0])
    assert (c_drive["ebs_volume_ids"], c_drive["devices"]) == ([BOOT_VOLUME], ["/dev/sda1"])
    assert c_drive["is_boot"] and c_drive["is_system"] and c_drive["all_ebs"] and not c_drive["instance_store"]
    assert d_drive["mount_points"] == ["C:\\mnt\\sqldata\\"]
    assert d_drive["access_paths"] == ["D:\\", "C:\\mnt\\sqldata\\", GUID_D]
    assert (d_drive["file_system"], d_drive["label"], d_drive["size"], d_drive["size_remaining"]) == (
        "NTFS", "SQLData", 10600000000, 9000000000
    )
    assert (d_drive["ebs_volume_ids"], d_drive["devices"]) == ([DATA_VOLUME], ["xvdb"])
    assert by_number(mapping)[1]["volumes"] == [GUID_D]
    assert by_number(mapping)[2]["volumes"] == [], "the RAW disk holds no volume"
    assert mapping["problems"] == []


def test_shadow_storage_per_volume_with_the_diff_area_on_another_volume():
    mapping = map_storage(nitro_storage(), NITRO_ATTACHMENTS)
    volumes = by_letter(mapping)
    assert volumes["C"]["shadow_storage"] == {
        "volume": GUID_C, "diff_volume": GUID_C, "same_volume": True, "used_space": 0, "allocated_space": 0,
        "max_space": 6400000000, "max_space_unbounded": False,
    }
    assert volumes["D"]["shadow_storage"]["diff_volume"] == GUID_C
    assert volumes["D"]["shadow_storage"]["same_volume"] is False
    assert volumes["D"]["shadow_storage"]["max_space"] is None
    assert volumes["D"]["shadow_storage"]["max_space_unbounded"] is True
    assert volumes["C"]["hosts_shadow_storage_for"] == sorted([GUID_C, GUID_D])
    assert volumes["D"]["hosts_shadow_storage_for"] == []
    assert len(mapping["shadow_storage"]) == 2


def test_volume_ids_compare_whatever_their_case_and_trailing_backslash():
    storage = nitro_storage()
    storage["volumes"][1]["UniqueId"] = GUID_D.upper().replace("\\\\?\\VOLUME", "\\\\?\\Volume").rstrip("\\")
    storage["shadow_storage"][1]["Volume"] = GUID_D.upper().replace("\\\\?\\VOLUME", "\\\\?\\Volume")
    volumes = by_letter(map_storage(storage, NITRO_ATTACHMENTS))
    assert volumes["D"]["unique_id"] == GUID_D
    assert volumes["D"]["ebs_volume_ids"] == [DATA_VOLUME]
    assert volumes["D"]["shadow_storage"]["diff_volume"] == GUID_C


def test_windows_powershell_array_wrappers_and_char_drive_letters_are_read():
    storage = nitro_storage()
    storage["partitions"][1]["AccessPaths"] = {"value": ["D:\\", GUID_D], "Count": 2}
    storage["volumes"][1]["DriveLetter"] = "\u0000"
    storage["partitions"][1]["DriveLetter"] = "d"
    volumes = by_letter(map_storage(storage, NITRO_ATTACHMENTS))
    assert volumes["D"]["ebs_volume_ids"] == [DATA_VOLUME]


def test_enumerations_are_accepted_as_names_too():
    storage = nitro_storage()
    for disk in storage["disks"]:
        disk.update(BusType="NVMe", PartitionStyle="GPT", OperationalStatus="Online")
    mapping = map_storage(storage, NITRO_ATTACHMENTS)
    assert all(disk["bus_type"] == "NVMe" and disk["operational_status"] == ["Online"] for disk in mapping["disks"])
    assert cross_check(mapping, NITRO_ATTACHMENTS)["ok"]


def test_a_volume_on_no_known_disk_is_reported():
    storage = nitro_storage()
    storage["volumes"].append({"UniqueId": GUID_E, "DriveLetter": "E", "FileSystem": "NTFS", "DriveType": 3})
    mapping = map_storage(storage, NITRO_ATTACHMENTS)
    volume = by_letter(mapping)["E"]
    assert (volume["layout"], volume["ebs_volume_ids"], volume["all_ebs"]) == ("unknown", [], False)
    assert mapping["problems"] == [
        f"volume {GUID_E} (E:) is on no partition, dynamic disk or storage pool the agent reported: its EBS volumes "
        f"are unknown"
    ]


def test_a_volume_on_instance_store_is_flagged():
    storage = nitro_storage()
    storage["disks"].append({"Number": 3, "FriendlyName": "NVMe Amazon EC2 NVMe", "SerialNumber": "AWS1F2E3D4C5B6A7980",
                             "BusType": 17, "PartitionStyle": 2, "Size": 75000000000})
    storage["partitions"].append({"DiskNumber": 3, "PartitionNumber": 1, "DriveLetter": "T", "AccessPaths": ["T:\\", GUID_E]})
    storage["volumes"].append({"UniqueId": GUID_E, "DriveLetter": "T", "FileSystem": "NTFS", "DriveType": 3})
    mapping = map_storage(storage, NITRO_ATTACHMENTS)
    disk = by_number(mapping)[3]
    assert (disk["kind"], disk["platform"], disk["instance_store"], disk["ebs_volume_id"]) == (
        "instance_store", "nitro", True, None
    )
    volume = by_letter(mapping)["T"]
    assert volume["instance_store"] and not volume["all_ebs"] and volume["ebs_volume_ids"] == []
    assert cross_check(mapping, NITRO_ATTACHMENTS)["ok"], "instance store is not an EBS attachment"


def test_a_dynamic_volume_depends_on_every_member_disk():
    storage = nitro_storage()
    for number, serial in ((3, "vol0dd0000000000000a_00000001."), (4, "vol0dd0000000000000b_00000001.")):
        storage["disks"].append({"Number": number, "FriendlyName": "NVMe Amazon Elastic B", "SerialNumber": serial,
                                 "BusType": 17, "PartitionStyle": 2})
        storage["partitions"].append({"DiskNumber": number, "PartitionNumber": 1, "AccessPaths": None,
                                      "GptType": "{af9b60a0-1431-4f62-bc68-3311714a69ad}"})
    storage["volumes"].append({"UniqueId": GUID_E, "DriveLetter": "E", "FileSystem": "NTFS", "DriveType": 3})
    storage["dynamic_disks"] = [{"DiskNumber": 3, "VolumeUniqueIds": [GUID_E]}, {"DiskNumber": 4, "VolumeUniqueIds": [GUID_E]}]
    attachments = NITRO_ATTACHMENTS + [
        {"device": "xvdd", "volume_id": "vol-0dd0000000000000a", "status": "attached"},
        {"device": "xvde", "volume_id": "vol-0dd0000000000000b", "status": "attached"},
    ]
    mapping = map_storage(storage, attachments)
    volume = by_letter(mapping)["E"]
    assert (volume["layout"], volume["disk_numbers"]) == ("dynamic", [3, 4])
    assert volume["ebs_volume_ids"] == ["vol-0dd0000000000000a", "vol-0dd0000000000000b"]
    assert volume["devices"] == ["xvdd", "xvde"]
    assert by_number(mapping)[3]["dynamic"] and by_number(mapping)[4]["volumes"] == [GUID_E]
    assert cross_check(mapping, attachments)["ok"]


def storage_with_pool() -> dict:
    storage = nitro_storage()
    storage["disks"].append({"Number": 5, "FriendlyName": "DataVDisk", "SerialNumber": "{f00d}", "BusType": 16,
                             "PartitionStyle": 2})
    storage["partitions"].append({"DiskNumber": 5, "PartitionNumber": 2, "DriveLetter": "F", "AccessPaths": ["F:\\", GUID_F]})
    storage["volumes"].append({"UniqueId": GUID_F, "DriveLetter": "F", "FileSystem": "NTFS", "DriveType": 3})
    storage["storage_pools"] = [{
        "FriendlyName": "DataPool",
        "PhysicalDiskNumbers": [6, 7],
        "PhysicalDisks": [
            {"DeviceId": "6", "SerialNumber": "vol0ee0000000000000a_00000001.", "FriendlyName": "NVMe Amazon Elastic B",
             "BusType": 17},
            {"DeviceId": "7", "SerialNumber": "vol0ee0000000000000b_00000001.", "FriendlyName": "NVMe Amazon Elastic B",
             "BusType": 17},
        ],
        "VirtualDisks": ["DataVDisk"],
        "VirtualDiskNumbers": [5],
        "VolumeUniqueIds": [GUID_F],
    }]
    return storage


POOL_ATTACHMENTS = NITRO_ATTACHMENTS + [
    {"device": "xvdf", "volume_id": "vol-0ee0000000000000a", "status": "attached"},
    {"device": "xvdg", "volume_id": "vol-0ee0000000000000b", "status": "attached"},
]


def test_a_storage_spaces_volume_depends_on_every_pool_member():
    mapping = map_storage(storage_with_pool(), POOL_ATTACHMENTS)
    volume = by_letter(mapping)["F"]
    assert (volume["layout"], volume["storage_pool"], volume["disk_numbers"]) == ("storage_pool", "DataPool", [6, 7])
    assert volume["ebs_volume_ids"] == ["vol-0ee0000000000000a", "vol-0ee0000000000000b"]
    disks = by_number(mapping)
    assert disks[5]["kind"] == "storage_space"
    assert (disks[6]["pool_member"], disks[6]["storage_pool"], disks[6]["device"]) == (True, "DataPool", "xvdf")
    assert mapping["storage_pools"] == [{
        "name": "DataPool",
        "member_disk_numbers": [6, 7],
        "virtual_disks": ["DataVDisk"],
        "virtual_disk_numbers": [5],
        "volumes": [GUID_F],
        "ebs_volume_ids": ["vol-0ee0000000000000a", "vol-0ee0000000000000b"],
    }]
    assert cross_check(mapping, POOL_ATTACHMENTS)["ok"]


def test_pool_volumes_are_found_by_virtual_disk_number_without_volume_ids():
    storage = storage_with_pool()
    del storage["storage_pools"][0]["VolumeUniqueIds"]
    assert by_letter(map_storage(storage, POOL_ATTACHMENTS))["F"]["storage_pool"] == "DataPool"


def test_pool_members_hidden_from_windows_are_still_cross_checked():
    mapping = map_storage(storage_with_pool(), NITRO_ATTACHMENTS)
    check = cross_check(mapping, NITRO_ATTACHMENTS, "i-0123456789abcdef0")
    assert [item["volume_id"] for item in check["missing_in_ec2"]] == ["vol-0ee0000000000000a", "vol-0ee0000000000000b"]


# ------------------------------------------------------------------------------------------------- cross-check


def test_an_attached_volume_windows_does_not_see_is_missing_in_windows():
    attachments = NITRO_ATTACHMENTS + [{"device": "xvdd", "volume_id": "vol-0fff0000000000000", "status": "attached"}]
    check = cross_check(map_storage(nitro_storage(), attachments), attachments, "i-0123456789abcdef0")
    assert not check["ok"]
    assert check["missing_in_windows"] == [{"volume_id": "vol-0fff0000000000000", "device": "xvdd"}]
    assert check["errors"] == [
        "EBS volume vol-0fff0000000000000 attached at xvdd is missing in Windows: EC2 lists it as attached to "
        "i-0123456789abcdef0, but Windows lists no disk with that volume (check Disk Management / Get-Disk, the NVMe or "
        "PV drivers, and that it is the same instance)"
    ]
    assert check["attachments"][-1]["seen_by_windows"] is False


def test_a_disk_windows_sees_that_ec2_does_not_list_is_missing_in_ec2():
    attachments = [item for item in NITRO_ATTACHMENTS if item["volume_id"] != DATA_VOLUME]
    mapping = map_storage(nitro_storage(), attachments)
    check = cross_check(mapping, attachments, "i-0123456789abcdef0")
    assert check["missing_in_ec2"] == [{"volume_id": DATA_VOLUME, "device": None, "disk_number": 1}]
    assert check["errors"] == [
        f"Windows disk 1 is EBS volume {DATA_VOLUME}, which is missing in EC2: EC2 does not list it as attached to "
        f"i-0123456789abcdef0 (wrong instance or region, or a stale block-device mapping)"
    ]


def test_an_attachment_that_has_not_settled_is_an_error():
    attachments = copy.deepcopy(NITRO_ATTACHMENTS)
    attachments[2]["status"] = "detaching"
    check = cross_check(map_storage(nitro_storage(), attachments), attachments, "i-0123456789abcdef0")
    assert check["errors"] == [
        f"EBS volume {SPARE_VOLUME} at xvdc is detaching on i-0123456789abcdef0, not attached: wait for it to settle"
    ]


def test_one_volume_seen_as_two_disks_is_an_error():
    storage = nitro_storage()
    boot_disk = next(disk for disk in storage["disks"] if disk["Number"] == 0)
    storage["disks"].append(dict(boot_disk, Number=9, IsBoot=False))
    check = cross_check(map_storage(storage, NITRO_ATTACHMENTS), NITRO_ATTACHMENTS)
    assert f"EBS volume {BOOT_VOLUME} appears as several Windows disks (0, 9)" in check["errors"]


# ------------------------------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    "serial, volume_id",
    [
        ("vol0123456789abcdef0_00000001.", "vol-0123456789abcdef0"),
        ("vol0123456789abcdef0_00000001", "vol-0123456789abcdef0"),
        ("vol0123456789abcdef0", "vol-0123456789abcdef0"),
        ("  vol0123456789abcdef0_00000001. . ", "vol-0123456789abcdef0"),
        ("VOL0123456789ABCDEF0_00000001.", "vol-0123456789abcdef0"),
        ("vol-0123456789abcdef0", "vol-0123456789abcdef0"),
        ("vol1a2b3c4d", "vol-1a2b3c4d"),
        ("vol0318528261ed8ca45", "vol-0318528261ed8ca45"),
        ("vol05e7_00000001.", None),
        ("vol0123456789abcdef0123", None),
        ("vol0123456789abcdefg", None),
        ("AWS1F2E3D4C5B6A7980", None),
        ("", None),
        (None, None),
        (17, None),
    ],
)
def test_ebs_volume_id_from_serial(serial, volume_id):
    assert ebs_disks.ebs_volume_id_from_serial(serial) == volume_id


@pytest.mark.parametrize(
    "target, expected",
    [
        (0, ("/dev/sda1", False)),
        (1, ("xvdb", False)),
        (5, ("xvdf", False)),
        (25, ("xvdz", False)),
        (26, (None, False)),
        (77, (None, False)),
        (78, ("xvdca", True)),
        (79, ("xvdcb", True)),
        (-1, (None, False)),
        (None, (None, False)),
        (True, (None, False)),
    ],
)
def test_xen_device_from_target_id(target, expected):
    assert ebs_disks.xen_device_from_target_id(target) == expected


def test_device_names_compare_in_one_spelling():
    assert ebs_disks.device_key("/dev/xvdf") == ebs_disks.device_key("xvdf") == ebs_disks.device_key("/dev/sdf") == "xvdf"
    assert ebs_disks.device_key("/dev/sda1") == ebs_disks.device_key("xvda") == "sda1"
    assert ebs_disks.device_key("xvdf") != ebs_disks.device_key("xvdg")


def test_block_device_mappings_in_every_spelling():
    boto3_style = [
        {"DeviceName": "/dev/sda1", "Ebs": {"VolumeId": "vol-0a", "Status": "attached", "DeleteOnTermination": True}},
        {"DeviceName": "xvdf", "Ebs": {"VolumeId": "vol-0b", "Status": "attaching"}},
    ]
    module_style = [
        {"device_name": "/dev/sda1", "ebs": {"volume_id": "vol-0a", "status": "attached", "delete_on_termination": True}},
        {"device_name": "xvdf", "ebs": {"volume_id": "vol-0b", "status": "attaching"}},
    ]
    flat = [
        {"device": "/dev/sda1", "volume_id": "vol-0a", "status": "attached"},
        {"device": "xvdf", "volume_id": "vol-0b", "status": "attaching"},
    ]
    expected = [
        {"device": "/dev/sda1", "volume_id": "vol-0a", "status": "attached"},
        {"device": "xvdf", "volume_id": "vol-0b", "status": "attaching"},
    ]
    for mappings in (boto3_style, module_style, flat):
        assert ebs_disks.attachments_from_block_device_mappings(mappings) == expected
    assert ebs_disks.attachments_from_block_device_mappings([{"DeviceName": "xvdca", "VirtualName": "ephemeral0"}]) == []
    with pytest.raises(EbsMappingError, match="item 0 is not a dict"):
        ebs_disks.attachments_from_block_device_mappings(["vol-0a"])


def test_a_storage_result_truncated_by_the_json_depth_is_rejected():
    with pytest.raises(EbsMappingError, match="'disks' must be a list of objects, got str"):
        map_storage({"disks": "System.Object[]"})
    with pytest.raises(EbsMappingError, match="must be an object"):
        map_storage(["disks"])


def test_a_single_object_instead_of_a_list_is_read_as_one_item():
    record = next(disk for disk in nitro_disks_full_serials() if disk["Number"] == 0)
    mapping = map_storage({"disks": record})
    assert [disk["ebs_volume_id"] for disk in mapping["disks"]] == [BOOT_VOLUME]
