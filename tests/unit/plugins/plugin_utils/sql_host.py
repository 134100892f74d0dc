# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""WIN-SQL-01, the test host of the shadow engine's unit tests: a SQL Server on Nitro described by agent answers.

``storage`` is the agent's answer with the raw numbers Windows PowerShell 5.1 serializes; ``writers_text`` is
diskshadow's ``list writers status`` + ``list writers detailed`` in diskshadow's layout; ``capture`` reads the real
tool output under tests/fixtures/windows. Shared by the tests of shadow_plan, vss_writers, diskshadow_log,
shadow_session and the win_vss_snapshot_set action plugin.
"""

from __future__ import annotations

import pathlib

import pytest

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import ebs_disks, shadow_plan, vss, vss_writers
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.vss_parse import parse_diskshadow_writers

CAPTURES = pathlib.Path(__file__).resolve().parents[3] / "fixtures" / "windows"

GIB = 1 << 30
UNBOUNDED = 18446744073709551615


def volume_guid(letter_or_name: str) -> str:
    """A stable ``\\\\?\\Volume{guid}\\`` per volume name (as Get-Volume prints it)."""
    number = int.from_bytes(letter_or_name.encode("ascii").ljust(6, b"\0")[:6], "big")
    return "\\\\?\\Volume{%08x-0000-4000-8000-%012x}\\" % (number & 0xFFFFFFFF, number)


def ebs_id(number: int) -> str:
    return "vol-0%016x" % (0xABC0000000000 + number)


def nvme_disk(number: int, boot: bool = False) -> dict:
    return {"Number": number, "SerialNumber": ebs_id(number).replace("-", "") + "_00000001.",
            "FriendlyName": "NVMe Amazon Elastic B", "Model": "Amazon Elastic Block Store", "BusType": 17,
            "PartitionStyle": 2, "OperationalStatus": [53264], "IsOffline": False, "IsReadOnly": False, "IsBoot": boot,
            "IsSystem": boot, "Size": 100 * GIB}


def partition(disk: int, number: int, name: str, letter: str | None, extra_paths=(), **flags) -> dict:
    paths = ([letter + ":\\"] if letter else []) + list(extra_paths) + [volume_guid(name)]
    record = {"DiskNumber": disk, "PartitionNumber": number, "DriveLetter": letter, "AccessPaths": paths,
              "Size": 50 * GIB, "Type": "Basic", "IsBoot": False, "IsSystem": False}
    record.update(flags)
    return record


def volume(name: str, letter: str | None, file_system="NTFS", size=50 * GIB, free=40 * GIB, label="") -> dict:
    return {"UniqueId": volume_guid(name), "Path": volume_guid(name), "DriveLetter": letter, "FileSystem": file_system,
            "FileSystemLabel": label, "DriveType": 3, "HealthStatus": 0, "Size": size, "SizeRemaining": free}


def pool_disk(number: int) -> dict:
    """A Storage Spaces member as Get-PhysicalDisk shows it (hidden from Get-Disk)."""
    return {"DeviceId": str(number), "SerialNumber": ebs_id(number).replace("-", "") + "_00000001.",
            "FriendlyName": "NVMe Amazon Elastic B", "BusType": 17, "Size": 100 * GIB}


def storage() -> dict:
    """The agent's ``storage`` answer of WIN-SQL-01 (see the module docstring of the test host)."""
    return {
        "disks": [nvme_disk(0, boot=True)] + [nvme_disk(n) for n in (1, 2, 3, 4, 5, 6, 11, 12, 13)] + [
            {"Number": 9, "SerialNumber": None, "FriendlyName": "VDisk1", "Model": "Storage Space", "BusType": 16,
             "PartitionStyle": 2, "OperationalStatus": [53264], "IsOffline": False, "Size": 200 * GIB},
            {"Number": 10, "SerialNumber": "AWS1234567890ABCDEF", "FriendlyName": "NVMe Amazon EC2 NVMe", "BusType": 17,
             "PartitionStyle": 2, "OperationalStatus": [53264], "IsOffline": False, "Size": 100 * GIB},
        ],
        "disk_drives": [],
        "partitions": [
            partition(0, 1, "efi", None, GptType="{c12a7328-f81f-11d2-ba4b-00a0c93ec93b}", IsSystem=True),
            partition(0, 3, "C", "C", IsBoot=True),
            partition(0, 4, "recovery", None, IsHidden=True),
            partition(1, 2, "D", "D"),
            partition(2, 2, "L", "L"),
            partition(3, 2, "E", "E"),
            partition(4, 2, "F", "F"),
            partition(9, 2, "P", "P"),
            partition(10, 2, "Z", "Z"),
            partition(11, 2, "R", "R"),
            partition(12, 2, "G", "G"),
            partition(12, 3, "H", "H"),
            partition(13, 2, "mnt", None, ["C:\\mnt\\logs\\"]),
        ],
        "volumes": [
            volume("efi", None, "FAT32", size=100 << 20, free=70 << 20),
            volume("C", "C", size=80 * GIB, free=30 * GIB),
            volume("recovery", None, size=600 << 20, free=100 << 20),
            volume("D", "D", label="SQLData", size=100 * GIB, free=60 * GIB),
            volume("L", "L", label="SQLLogs"),
            volume("E", "E"),
            volume("F", "F"),
            volume("S", "S", label="Spanned", size=150 * GIB),
            volume("T", "T", label="Queue"),
            volume("P", "P", label="Pool", size=200 * GIB),
            volume("Z", "Z", label="Scratch"),
            volume("R", "R", "ReFS"),
            volume("G", "G"),
            volume("H", "H"),
            volume("mnt", None, label="Logs2"),
        ],
        "shadow_storage": [
            {"Volume": volume_guid("D"), "DiffVolume": volume_guid("D"), "UsedSpace": GIB, "AllocatedSpace": 2 * GIB,
             "MaxSpace": 10 * GIB},
            {"Volume": volume_guid("E"), "DiffVolume": volume_guid("F"), "UsedSpace": 0, "AllocatedSpace": 0, "MaxSpace": UNBOUNDED},
            {"Volume": volume_guid("C"), "DiffVolume": volume_guid("C"), "UsedSpace": 0, "AllocatedSpace": 0, "MaxSpace": UNBOUNDED},
        ],
        "dynamic_disks": [
            {"DiskNumber": 5, "VolumeUniqueIds": [volume_guid("S")]},
            {"DiskNumber": 6, "VolumeUniqueIds": [volume_guid("S"), volume_guid("T")]},
        ],
        "storage_pools": [
            {"FriendlyName": "Pool1", "UniqueId": "{pool}", "PhysicalDiskNumbers": [7, 8],
             "PhysicalDisks": [pool_disk(7), pool_disk(8)],
             "VirtualDisks": ["VDisk1"], "VirtualDiskNumbers": [9], "VolumeUniqueIds": [volume_guid("P")]},
        ],
    }


SQL_WRITER = ("SqlServerWriter", "{a65faa63-5ea8-4ebc-9dbd-a0c4db26912a}", "{2a1f8a5c-9c34-4d33-8a55-7c1f3c3f0001}")
SYSTEM_WRITER = ("System Writer", "{e8132975-6f93-4464-a53e-1050253ae220}", "{7e631031-c695-4229-9da1-a7de057e64cb}")
REGISTRY_WRITER = ("Registry Writer", "{afbab4a2-367d-4d15-a586-71dbb18f8485}", "{e87ba7e3-f8d8-42d8-b2ee-c76ae26b98e8}")
TASK_WRITER = ("Task Scheduler Writer", "{d61d61c8-d73a-4eee-8cdd-f6f9786b7124}", "{1bddd48e-5052-49db-9b07-b96f96727e6b}")
MSMQ_WRITER = ("MSMQ Writer (MSMQ)", "{7e47b561-971a-46e6-96b9-696eeaa53b2a}", "{c4f6d8e0-1111-4aaa-8bbb-2a2b2c2d2e2f}")

# writer -> components: (logical path, name, [(path, volume name, display)])
COMPONENTS = {
    SQL_WRITER: [
        ("WIN-SQL-01", "master", [("C:\\Program Files\\Microsoft SQL Server\\MSSQL16.MSSQLSERVER\\MSSQL\\DATA", "C", "C:\\")]),
        ("WIN-SQL-01", "Sales", [("D:\\SQLData", "D", "D:\\"), ("L:\\SQLLogs", "L", "L:\\")]),
        ("WIN-SQL-01", "Archive", [("G:\\Archive", "G", "G:\\")]),
    ],
    SYSTEM_WRITER: [("", "System Files", [("C:\\Windows\\System32", "C", "C:\\"), ("D:\\Program Files\\Agent", "D", "D:\\")])],
    REGISTRY_WRITER: [("", "Registry", [("C:\\Windows\\System32\\config", "C", "C:\\")])],
    TASK_WRITER: [("", "TasksStore", [("C:\\Windows\\System32\\Tasks", "C", "C:\\")])],
    MSMQ_WRITER: [("", "MSMQ", [("T:\\MSMQ\\storage", "T", "T:\\")])],
}


def writers_text(states=None, failure_codes=None, drop_components=()) -> str:
    """A ``diskshadow_detailed`` log: ``list writers status`` then ``list writers detailed`` in diskshadow's layout."""
    states = states or {}
    failure_codes = failure_codes or {}
    lines = ["Microsoft DiskShadow version 1.0", "Copyright (C) 2013 Microsoft Corporation",
             "On computer:  WIN-SQL-01,  11/25/2026 1:37:00 AM", "", "-> list writers status", "Listing writer status ..."]
    for writer in COMPONENTS:
        name, writer_id, instance_id = writer
        state = states.get(name, 1)
        lines += [
            f'* WRITER "{name}"',
            f"        - Status: {state} (VSS_WS_{vss.VSS_WRITER_STATE[state]})",
            f"        - Writer Failure code: {failure_codes.get(name, '0x00000000 (S_OK)')}",
            f"        - Writer ID: {writer_id}",
            f"        - Instance ID: {instance_id}",
        ]
    lines += [f"{len(COMPONENTS)} writers listed.", "", "-> list writers detailed", "Listing writer metadata ..."]
    for writer, components in COMPONENTS.items():
        name, writer_id, instance_id = writer
        lines += [f'* WRITER "{name}"', f"        - Writer ID   = {writer_id}", f"        - Writer instance ID = {instance_id}",
                  "        - Supports restore events = TRUE", "        - Excluded files:", ""]
        if name in drop_components:
            continue
        for logical_path, component, files in components:
            full_path = "\\" + "\\".join(part for part in (logical_path, component) if part)
            lines += [f'        + Component "{name}:{full_path}"', f"                - Name: {component}",
                      f"                - Logical path: {logical_path}", f"                - Full path: {full_path}",
                      "                - Paths affected by this component:"]
            lines += [f"                        - {path}" for path, dummy, dummy2 in files]
            lines.append("                - Volumes affected by this component:")
            lines += [f"                        - {volume_guid(vol)} [{display}]" for dummy, vol, display in files]
            lines += ["                - Component Dependencies:", ""]
    lines += [f"{len(COMPONENTS)} writers listed.", ""]
    return "\r\n".join(lines)


def facts(**overrides) -> dict:
    value = {"hostname": "WIN-SQL-01", "os_caption": "Microsoft Windows Server 2022 Datacenter", "os_version": "10.0.20348",
             "product_type": 3, "is_server": True, "powershell_version": "5.1.20348.2849", "ui_culture": "en-US",
             "oem_code_page": 437, "ansi_code_page": 1252, "diskshadow_present": True, "aws_vss_components_version": None,
             "ec2": {"instance_id": "i-0123456789abcdef0", "region": "eu-west-1", "availability_zone": "eu-west-1a"}}
    value.update(overrides)
    return value


def mapping() -> dict:
    return ebs_disks.map_storage(storage())


def writers(**kwargs) -> list[dict]:
    return [vss_writers.describe_writer(writer) for writer in parse_diskshadow_writers(writers_text(**kwargs))]


def plan(**options):
    return shadow_plan.build_plan(mapping(), writers(), shadow_plan.SelectionOptions(**options))


def problems(**options) -> list[str]:
    with pytest.raises(shadow_plan.PreflightError) as raised:
        plan(**options)
    return raised.value.problems


def paths(result) -> list[str]:
    return [entry["path"] for entry in result.volumes]


def capture(name: str) -> str:
    lines = (CAPTURES / name).read_text(encoding="utf-8").splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines)
