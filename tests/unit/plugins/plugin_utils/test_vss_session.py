# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shadow engine's session logic: selection, the dynamic disk and diff-area rules, writer rules, health, the state
machine with its retries, and the release verdicts.

The host is a SQL Server on Nitro described by agent answers in the protocol's real shapes (``storage`` with the raw
numbers Windows PowerShell 5.1 serializes, diskshadow ``list writers status`` + ``list writers detailed`` text in
diskshadow's layout) and real captures where one exists (the restic diskshadow transcript with excluded components,
the provider-veto failure). ``TEST_HOST`` and the helpers are shared with test_win_vss_snapshot_set.py.
"""

from __future__ import annotations

import copy
import pathlib
import re
from datetime import datetime, timezone

import pytest
import tree_sitter
import tree_sitter_powershell

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import diskshadow, ebs_disks, vss, vss_session
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import agent_transport
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_transport import AgentOperationError
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.vss_parse import parse_diskshadow_writers

REPO = pathlib.Path(__file__).resolve().parents[4]
CAPTURES = pathlib.Path(__file__).resolve().parents[3] / "fixtures" / "windows"
AGENT = REPO / "plugins" / "plugin_utils" / "agent" / "shadowsnap_agent.ps1"
SESSION_DOC = REPO / "docs" / "vss-session.md"
TROUBLESHOOTING_DOC = REPO / "docs" / "troubleshooting.md"

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
    return [vss_session.describe_writer(writer) for writer in parse_diskshadow_writers(writers_text(**kwargs))]


def plan(**options):
    return vss_session.build_plan(mapping(), writers(), vss_session.SelectionOptions(**options))


def problems(**options) -> list[str]:
    with pytest.raises(vss_session.PreflightError) as raised:
        plan(**options)
    return raised.value.problems


def paths(result) -> list[str]:
    return [entry["path"] for entry in result.volumes]


def capture(name: str) -> str:
    lines = (CAPTURES / name).read_text(encoding="utf-8").splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines)


# ------------------------------------------------------------------------------------------------ small pieces


@pytest.mark.parametrize("spec, size, expected", [
    (0, None, 0), (1024, None, 1024), ("1GB", None, GIB), ("1 GiB", None, GIB), ("500MB", None, 500 << 20), ("2t", None, 2 << 40),
    ("1.5G", None, 3 * GIB // 2), ("512", None, 512), ("10%", 50 * GIB, 5 * GIB), ("0.5%", 1000, 5),
])
def test_sizes(spec, size, expected):
    assert vss_session.parse_size(spec, size) == expected


@pytest.mark.parametrize("spec, message", [
    ("lots", "is not a number"), ("-1GB", "is not a number"), ("150%", "at most 100%"), ("10%", "volume size is unknown"),
    (True, "is not a number"), (-5, "must not be negative"),
])
def test_bad_sizes(spec, message):
    with pytest.raises(ValueError, match=message):
        vss_session.parse_size(spec)


def test_run_ids_follow_the_contract_and_are_valid_for_diskshadow_py():
    run_id = vss_session.new_run_id(datetime(2026, 11, 25, 1, 2, 3, tzinfo=timezone.utc), "0a1b2c3d")
    assert run_id == "ss-20261125T010203-0a1b2c3d"
    assert re.fullmatch(r"ss-\d{8}T\d{6}-[0-9a-f]{8}", vss_session.new_run_id())
    assert vss_session.new_run_id() != vss_session.new_run_id()
    diskshadow.validate(diskshadow.SessionPlan(run_id=vss_session.new_run_id(), volumes=["D:"]))


def test_check_host():
    assert vss_session.check_host(facts()) == []
    client = vss_session.check_host(facts(os_caption="Microsoft Windows 11 Pro", product_type=1, is_server=False))
    assert client == ["Microsoft Windows 11 Pro is client Windows: the shadow engine needs Windows Server (diskshadow ships "
                      "with Windows Server only); use engine crash, or aws_vss with AWS's VSS components"]
    assert "has no diskshadow.exe" in vss_session.check_host(facts(diskshadow_present=False))[0]
    assert vss_session.check_host(facts(product_type=2)) == [], "a domain controller is a server"


@pytest.mark.parametrize("ref, expected", [
    ("d", "D:"), ("D:", "D:"), ("d:\\", "D:"), ("C:\\mnt\\logs", "C:\\mnt\\logs"), ("c:\\MNT\\logs\\", "C:\\mnt\\logs"),
    (volume_guid("L"), "L:"), (volume_guid("L").rstrip("\\"), "L:"), ("Q:", None), ("C:\\nowhere", None),
])
def test_find_volume(ref, expected):
    found = vss_session.find_volume(ref, mapping()["volumes"])
    assert (vss_session.volume_path(found) if found else None) == expected


def test_writers_are_found_by_name_or_id_and_classified():
    listed = writers()
    found, unknown = vss_session.find_writers(["sqlserverwriter", SYSTEM_WRITER[1].upper().strip("{}"), SQL_WRITER[2], "Nope"], listed)
    assert [writer["name"] for writer in found] == ["SqlServerWriter", "System Writer"]
    assert unknown == ["Nope"]
    by_name = {writer["name"]: writer for writer in listed}
    assert by_name["System Writer"]["infrastructure"] and not by_name["SqlServerWriter"]["infrastructure"]
    assert by_name["MSMQ Writer (MSMQ)"]["service"] is None
    assert by_name["SqlServerWriter"]["service"] == "SQLWriter"
    assert by_name["SqlServerWriter"]["volumes"] == [volume_guid(name) for name in ("C", "D", "L", "G")]


# ------------------------------------------------------------------------------------------------ volume selection


def test_the_data_and_log_volumes_of_a_database_form_a_set_without_the_system_volume():
    result = plan(volumes=["D:", "l"])
    assert paths(result) == ["D:", "L:"]
    assert [(entry["name"], entry["rule"]) for entry in result.required_writers] == [("SqlServerWriter", "component")]
    assert result.verify_writer_ids() == [SQL_WRITER[1]]
    assert result.exclude_writer_ids() == []
    assert result.touching_writers == ["SqlServerWriter", "System Writer"]
    assert {(item["writer"], item["component"]) for item in result.excluded_components} == {
        ("SqlServerWriter", "\\WIN-SQL-01\\master"), ("SqlServerWriter", "\\WIN-SQL-01\\Archive"),
    }
    d = result.volumes[0]
    assert (d["reasons"], d["ebs_volume_ids"], d["paths"], d["layout"], d["label"]) == (["selected"], [ebs_id(1)], ["D:\\"], "basic", "SQLData")
    assert d["diff_area"] == {"storage_volume": volume_guid("D"), "storage_path": "D:", "same_volume": True, "association": True,
                              "used_space": GIB, "max_space": 10 * GIB, "free_bytes": 9 * GIB, "required_bytes": GIB}
    assert result.volumes[1]["diff_area"]["association"] is False, "L: has no association yet: VSS makes one on L:"
    assert result.warnings == []


def test_a_database_component_split_across_the_set_boundary_fails_up_front():
    (problem,) = problems(volumes=["D:"])
    assert problem == (
        "component '\\WIN-SQL-01\\Sales' of writer 'SqlServerWriter' touches D: in the set and L: outside it: its shadow "
        "copy would be inconsistent (VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT); add the missing volume, or exclude the writer"
    )


def test_an_excluded_writer_is_neither_required_nor_checked_and_gets_writer_exclude():
    result = plan(volumes=["D:"], exclude_writers=["SqlServerWriter", "Not A Writer"])
    assert result.required_writers == []
    assert result.exclude_writer_ids() == [SQL_WRITER[1]]
    assert result.warnings == ["exclude_writers: writer 'Not A Writer' is not listed on this host"]
    script = diskshadow.diskshadow_script(result.session_plan("ss-1"))
    assert "writer exclude %s" % SQL_WRITER[1] in script and "writer verify" not in script


def test_a_named_required_writer_needs_every_volume_it_touches():
    (problem,) = problems(volumes=["D:", "L:"], required_writers=["SqlServerWriter"])
    assert problem == (
        "required writer 'SqlServerWriter' (required_writers) also touches C:, G:, which the set leaves out: add them to "
        "volumes, select by writers: [SqlServerWriter], or exclude the writer"
    )
    result = plan(volumes=["D:", "L:"], required_writers=[])
    assert result.required_writers == [], "required_writers: [] switches writer verification off"
    assert problems(volumes=["D:"], required_writers=["Exchange"]) == ["required writer 'Exchange' is not listed on this host"]
    assert problems(volumes=["D:"], required_writers=["SqlServerWriter"], exclude_writers=["SqlServerWriter"])[0] == (
        "writer 'SqlServerWriter' is both required (required_writers) and in exclude_writers")


def test_selecting_by_writer_takes_all_its_volumes_their_disk_companions_and_leaves_system_partitions_unshadowed():
    result = plan(writers=["SqlServerWriter"])
    assert paths(result) == ["C:", "D:", "G:", "H:", "L:"]
    reasons = {entry["path"]: entry["reasons"] for entry in result.volumes}
    assert reasons["C:"] == ["touched by writer SqlServerWriter"]
    assert reasons["H:"] == [f"shares {ebs_id(12)} with G:"]
    assert [(item["unique_id"], item["file_system"]) for item in result.unshadowed_volumes] == [
        (volume_guid("efi"), "FAT32"), (volume_guid("recovery"), "NTFS")]
    assert result.unshadowed_volumes[0]["reason"] == f"shares {ebs_id(0)} with C:; no drive letter or mount point (a system partition)"
    required = {entry["name"]: entry["rule"] for entry in result.required_writers}
    assert required == {"SqlServerWriter": "writer"}, "infrastructure writers are never required by default"
    assert "Task Scheduler Writer" in result.touching_writers


def test_unknown_volumes_and_writers_are_named_with_what_the_host_has():
    found = problems(volumes=["Q:"], writers=["Exchange Writer"])
    assert found[0] == ("volume 'Q:' is not on this host (its volumes: C:, C:\\mnt\\logs, D:, E:, F:, G:, H:, L:, P:, R:, S:, "
                        "T:, Z:)")
    assert found[1].startswith("writer 'Exchange Writer' is not listed on this host (listed: MSMQ Writer (MSMQ), Registry Writer")
    assert problems() == ["no volume selected: set volumes, writers or all_data_volumes: true"]


def test_a_spanned_dynamic_volume_brings_the_volumes_sharing_its_disks():
    result = plan(volumes=["S:"], exclude_writers=["MSMQ Writer (MSMQ)"])
    assert paths(result) == ["S:", "T:"]
    assert result.volumes[0]["ebs_volume_ids"] == [ebs_id(5), ebs_id(6)]
    assert result.volumes[1]["reasons"] == [f"shares {ebs_id(6)} with S:"]
    (problem,) = problems(volumes=["S:"], add_companion_volumes=False)
    assert problem == (f"T: shares {ebs_id(6)} with S:: the EBS snapshot of that disk captures it, so it must be in the shadow "
                       f"set; add it to volumes (or set add_companion_volumes: true)")


def test_a_storage_spaces_volume_spans_every_pool_disk():
    result = plan(volumes=["P:"])
    (pool,) = result.volumes
    assert (pool["layout"], pool["storage_pool"], pool["ebs_volume_ids"]) == ("storage_pool", "Pool1", [ebs_id(7), ebs_id(8)])
    metadata, volume_ids, devices = vss_session.ec2_volume_metadata(result.volumes, {"P:": "{aaaaaaaa-0000-4000-8000-000000000001}"})
    assert volume_ids == [ebs_id(7), ebs_id(8)] and devices == []
    assert metadata == {ebs_id(7): {"paths": ["P:\\"], "shadow_id": "{aaaaaaaa-0000-4000-8000-000000000001}"},
                        ebs_id(8): {"paths": ["P:\\"], "shadow_id": "{aaaaaaaa-0000-4000-8000-000000000001}"}}


def test_a_diff_area_on_another_volume_fails_with_the_fix_or_brings_that_volume():
    (problem,) = problems(volumes=["E:"])
    assert problem == (
        "the shadow storage (diff area) of E: is on F:, outside the set: the EBS snapshot of E: would not hold its shadow "
        "copy; keep the diff area on the volume itself: vssadmin delete shadowstorage /for=E: (this deletes E:'s shadow "
        "copies), then vssadmin add shadowstorage /for=E: /on=E: /maxsize=10%; or set add_storage_volumes: true to add F: "
        "to the set"
    )
    result = plan(volumes=["E:"], add_storage_volumes=True)
    assert paths(result) == ["E:", "F:"]
    assert result.volumes[1]["reasons"] == ["holds the shadow storage of E:"]
    assert result.volumes[0]["diff_area"]["storage_path"] == "F:" and not result.volumes[0]["diff_area"]["same_volume"]
    assert result.volumes[0]["diff_area"]["free_bytes"] == 40 * GIB


def test_too_little_diff_area_space_names_the_volume_the_numbers_and_the_fix():
    data = storage()
    data["shadow_storage"][0]["UsedSpace"] = 19 * GIB // 2
    result_mapping = ebs_disks.map_storage(data)
    with pytest.raises(vss_session.PreflightError) as raised:
        vss_session.build_plan(result_mapping, writers(), vss_session.SelectionOptions(volumes=["D:", "L:"]))
    assert raised.value.problems == [
        "D:: only 512.0 MiB of shadow storage (diff area) space left on D:, min_diff_area_free asks for 1.0 GiB; grow the "
        "association: vssadmin resize shadowstorage /for=D: /on=D: /maxsize=<larger>, or lower min_diff_area_free"
    ]
    assert vss_session.build_plan(result_mapping, writers(), vss_session.SelectionOptions(volumes=["D:", "L:"], min_diff_area_free="500MB"))
    (problem,) = problems(volumes=["L:"], min_diff_area_free="90%", required_writers=[])
    assert problem.startswith("L:: only 40.0 GiB of shadow storage (diff area) space left on L:, min_diff_area_free asks for 45.0 GiB; free space on L:")
    assert problems(volumes=["L:"], min_diff_area_free="much", required_writers=[]) == [
        "min_diff_area_free for L:: size 'much' is not a number of bytes, a size such as 1GB, or a percentage such as 10%"]


@pytest.mark.parametrize("ref, expected", [
    ("R:", "R: is ReFS, not NTFS: persistent shadow copies need NTFS; leave it out or snapshot it with engine crash"),
    ("Z:", "Z: is on instance store: no EBS snapshot can hold it; leave it out of the set"),
])
def test_only_ntfs_volumes_on_ebs(ref, expected):
    assert problems(volumes=[ref]) == [expected]


def test_a_mount_point_volume_is_added_by_its_path():
    result = plan(volumes=["C:\\mnt\\logs\\"])
    (entry,) = result.volumes
    assert (entry["path"], entry["paths"], entry["drive_letter"]) == ("C:\\mnt\\logs", ["C:\\mnt\\logs\\"], None)
    assert "add volume C:\\mnt\\logs alias vol_c_mnt_logs" in diskshadow.diskshadow_script(result.session_plan("ss-1"))


def test_a_mount_point_that_diskshadow_cannot_read_is_refused():
    data = storage()
    data["partitions"][-1]["AccessPaths"] = ["C:\\Program Files\\logs\\", volume_guid("mnt")]
    with pytest.raises(vss_session.PreflightError) as raised:
        vss_session.build_plan(ebs_disks.map_storage(data), writers(), vss_session.SelectionOptions(volumes=["C:\\Program Files\\logs"]))
    assert raised.value.problems == [
        "C:\\Program Files\\logs: diskshadow cannot add a mount point path with spaces; use a drive letter or another path"]
    data["partitions"][-1]["AccessPaths"] = ["C:\\\u30c7\u30fc\u30bf\\", volume_guid("mnt")]
    with pytest.raises(vss_session.PreflightError, match="not ASCII"):
        vss_session.build_plan(ebs_disks.map_storage(data), writers(), vss_session.SelectionOptions(volumes=["C:\\\u30c7\u30fc\u30bf"]))


def test_all_data_volumes_leaves_out_what_cannot_be_shadowed_and_says_why():
    result = plan(all_data_volumes=True, add_storage_volumes=True, exclude_writers=["MSMQ Writer (MSMQ)"])
    assert paths(result) == ["C:\\mnt\\logs", "D:", "E:", "F:", "G:", "H:", "L:", "P:", "S:", "T:"]
    assert {item["path"]: item["reason"] for item in result.skipped_volumes} == {
        None: "no drive letter or mount point",
        "C:": "the boot or system volume (name it in volumes to include it)",
        "Z:": "on instance store",
        "R:": "file system ReFS, not NTFS",
    }


def test_a_companion_that_cannot_be_shadowed_fails_the_plan_with_why_it_is_there():
    data = storage()
    data["volumes"][13]["FileSystem"] = "FAT32"   # H:, on G:'s disk
    with pytest.raises(vss_session.PreflightError) as raised:
        vss_session.build_plan(ebs_disks.map_storage(data), writers(), vss_session.SelectionOptions(volumes=["G:"]))
    assert raised.value.problems == [
        f"H: (in the set: shares {ebs_id(12)} with G:) is FAT32, not NTFS: persistent shadow copies need NTFS; leave it out "
        f"or snapshot it with engine crash"]


def test_at_most_64_volumes():
    data = storage()
    for index in range(70):
        name = "m%02d" % index
        data["partitions"].append(partition(20 + index, 2, name, None, ["C:\\m\\%s\\" % name]))
        data["volumes"].append(volume(name, None))
        data["disks"].append(nvme_disk(20 + index))
    with pytest.raises(vss_session.PreflightError) as raised:
        vss_session.build_plan(ebs_disks.map_storage(data), writers(),
                               vss_session.SelectionOptions(volumes=["C:\\m\\m%02d" % i for i in range(70)]))
    assert raised.value.problems == ["the set would hold 70 volumes; a shadow copy set holds at most 64 "
                                     "(VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED): split the backup"]


def test_many_existing_shadows_earn_a_warning():
    shadows = [{"ID": "{%08x-0000-4000-8000-000000000000}" % n, "VolumeName": volume_guid("L")} for n in range(64)]
    result = vss_session.build_plan(mapping(), writers(), vss_session.SelectionOptions(volumes=["L:"], required_writers=[]), shadows)
    assert result.volumes[0]["existing_shadows"] == 64
    assert result.warnings == ["L: already has 64 shadow copies; VSS keeps 64 client-accessible ones by default "
                               "(VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED): delete old ones"]


def test_xen_volumes_are_keyed_by_device_when_the_volume_id_is_unknown():
    data = storage()
    data["disks"][1].update(SerialNumber="", FriendlyName="AWS PVDISK", BusType=1)
    data["disk_drives"] = [{"Index": 1, "SCSITargetId": 5, "Model": "AWS PVDISK SCSI Disk Device"}]
    result = vss_session.build_plan(ebs_disks.map_storage(data), writers(), vss_session.SelectionOptions(volumes=["D:", "L:"]))
    metadata, volume_ids, devices = vss_session.ec2_volume_metadata(result.volumes, {"D:": "{d}", "L:": "{l}"})
    assert metadata == {"xvdf": {"paths": ["D:\\"], "shadow_id": "{d}"}, ebs_id(2): {"paths": ["L:\\"], "shadow_id": "{l}"}}
    assert (volume_ids, devices) == ([ebs_id(2)], ["xvdf"])


def test_two_windows_volumes_on_one_ebs_volume_share_its_metadata():
    result = plan(volumes=["G:", "H:"])
    metadata, volume_ids, dummy = vss_session.ec2_volume_metadata(result.volumes, {"G:": "{g}", "H:": "{h}"})
    assert metadata == {ebs_id(12): {"paths": ["G:\\", "H:\\"], "shadow_id": "{g}"}}
    assert volume_ids == [ebs_id(12)]


# ------------------------------------------------------------------------------------------------ writer health


def test_a_failed_required_writer_blocks_and_names_its_state_error_and_service():
    listed = writers(states={"SqlServerWriter": 8}, failure_codes={"SqlServerWriter": "0x800423f3 (VSS_E_WRITERERROR_RETRYABLE)"})
    result = vss_session.build_plan(mapping(), listed, vss_session.SelectionOptions(volumes=["D:", "L:"]))
    health = vss_session.writer_health(listed, result)
    assert [writer["problem"] for writer in health["blocking"]] == [
        "required writer 'SqlServerWriter' is FAILED_AT_PREPARE_SNAPSHOT [8], last error: 0x800423f3 "
        "(VSS_E_WRITERERROR_RETRYABLE); restart the service SQLWriter when no backup is running (or set "
        "restart_failed_writers: true)"]
    assert health["services"] == ["SQLWriter"]


def test_waiting_and_unrequired_failed_writers_only_warn():
    listed = writers(states={"SqlServerWriter": 5, "System Writer": 9, "Registry Writer": 7})
    result = vss_session.build_plan(mapping(), listed, vss_session.SelectionOptions(volumes=["D:", "L:"]))
    health = vss_session.writer_health(listed, result)
    assert health["blocking"] == [] and health["services"] == []
    assert health["warnings"] == [
        "writer 'SqlServerWriter' is WAITING_FOR_BACKUP_COMPLETE [5], last error: 0x00000000 (S_OK) (a backup is running or "
        "a requester left its session open: wait, do not restart anything)",
        "writer 'System Writer' is FAILED_AT_FREEZE [9], last error: 0x00000000 (S_OK); restart the service CryptSvc when "
        "no backup is running (or set restart_failed_writers: true)",
    ], "Registry Writer touches only C:, which is not in the set"


def test_an_application_writer_on_a_selected_volume_is_required_and_one_without_a_known_service_says_so():
    listed = writers(states={"MSMQ Writer (MSMQ)": 7})
    result = vss_session.build_plan(mapping(), listed, vss_session.SelectionOptions(volumes=["S:"]))
    health = vss_session.writer_health(listed, result)
    assert [writer["name"] for writer in health["blocking"]] == ["MSMQ Writer (MSMQ)"]
    assert health["blocking"][0]["problem"].endswith("no known service for this writer: see its application's documentation")
    assert health["services"] == []


def test_a_writer_without_metadata_cannot_be_selected_and_warns_when_failed():
    listed = writers(states={"SqlServerWriter": 6}, drop_components=("SqlServerWriter",))
    assert "components" not in listed[0] or listed[0].get("components") is None
    with pytest.raises(vss_session.PreflightError, match="'SqlServerWriter' lists no components"):
        vss_session.build_plan(mapping(), listed, vss_session.SelectionOptions(writers=["SqlServerWriter"]))
    result = vss_session.build_plan(mapping(), listed, vss_session.SelectionOptions(volumes=["D:", "L:"]))
    assert result.warnings == ["writer 'SqlServerWriter' lists no components, so the set cannot be checked against it "
                               "('SqlServerWriter' is FAILED_AT_IDENTIFY [6], last error: 0x00000000 (S_OK); restart the "
                               "service SQLWriter when no backup is running (or set restart_failed_writers: true))"]


# ------------------------------------------------------------------------------------------------ diskshadow log


def test_exclusions_in_a_real_verbose_create_transcript():
    log = capture("diskshadow_script_sql_writer_excluded_restic340_partial.txt")
    found = vss_session.log_exclusions(log, ["SqlServerWriter", "Task Scheduler Writer", "Shadow Copy Optimization Writer"])
    assert found["writers"] == [{"writer": "Shadow Copy Optimization Writer",
                                 "text": 'Excluding writer "Shadow Copy Optimization Writer", because all of its components have been excluded.'}]
    assert [(item["writer"], item["component"], item["volume"]) for item in found["components"]] == [
        ("Task Scheduler Writer", "\\TasksStore", "C:\\"), ("SqlServerWriter", "\\HOSTNAME\\master", "C:\\")]
    assert found["components"][0]["text"] == ('Component "\\TasksStore" from writer "Task Scheduler Writer" is excluded from '
                                              'backup, because it requires volume C:\\ which is not in the shadow copy set.')
    assert not vss_session.is_full_backup_log(log.replace("-> BEGIN BACKUP", "-> ADD VOLUME f:"))
    assert vss_session.is_full_backup_log(log)


def test_exclusions_are_read_by_structure_in_any_language():
    log = ("-> create\r\n"
           "\u30b3\u30f3\u30dd\u30fc\u30cd\u30f3\u30c8 \"\\TasksStore\" (\u30e9\u30a4\u30bf\u30fc \"Task Scheduler Writer\") \u306f\u3001"
           "\u30dc\u30ea\u30e5\u30fc\u30e0 C:\\ \u304c\r\n\u5fc5\u8981\u306a\u305f\u3081\u9664\u5916\u3055\u308c\u307e\u3059\u3002\r\n"
           "\u30e9\u30a4\u30bf\u30fc \"System Writer\" \u3092\u9664\u5916\u3057\u3066\u3044\u307e\u3059\u3002\r\n"
           "-> exec C:\\ProgramData\\shadowsnap\\runs\\x\\record.cmd\r\n"
           "Writer \"SqlServerWriter\" after the create section is not read\r\n")
    found = vss_session.log_exclusions(log, ["Task Scheduler Writer", "System Writer", "SqlServerWriter"])
    assert [(item["writer"], item["component"], item["volume"]) for item in found["components"]] == [
        ("Task Scheduler Writer", "\\TasksStore", "C:\\")]
    assert [item["writer"] for item in found["writers"]] == ["System Writer"]
    assert vss_session.log_exclusions("no create here", ["System Writer"]) == {"components": [], "writers": [], "included": []}


def test_an_including_line_with_its_component_bullets_is_not_an_exclusion():
    log = ("-> create\r\n"
           'Excluding writer "Shadow Copy Optimization Writer", because all of its components have been excluded.\r\n'
           'Including writer "SqlServerWriter":\r\n'
           "        + Adding component: \\WIN-SQL-01\\master\r\n"
           "        + Adding component: \\WIN-SQL-01\\Sales\r\n"
           'Including writer "System Writer":\r\n'
           "        + Adding component: \\System Files\r\n"
           "Alias vol_d for shadow ID {7bdeaad3-bbf1-4d9b-903a-4a7d82d5875f} set as environment variable.\r\n")
    names = ["SqlServerWriter", "System Writer", "Shadow Copy Optimization Writer"]
    found = vss_session.log_exclusions(log, names)
    assert [item["writer"] for item in found["writers"]] == ["Shadow Copy Optimization Writer"]
    assert [(item["writer"], item["components"]) for item in found["included"]] == [
        ("SqlServerWriter", ["\\WIN-SQL-01\\master", "\\WIN-SQL-01\\Sales"]), ("System Writer", ["\\System Files"])]
    results = {item["name"]: item for item in vss_session.writer_results(plan(volumes=["D:", "L:"]), writers(), log)}
    assert (results["System Writer"]["included"], results["System Writer"]["reason"]) == (True, 'Including writer "System Writer":')
    assert results["SqlServerWriter"]["included_components"] == ["\\WIN-SQL-01\\master", "\\WIN-SQL-01\\Sales"]


def test_writer_results_say_included_or_excluded_and_why():
    result = plan(volumes=["D:", "L:"], exclude_writers=["Registry Writer"])
    log = ("-> create\r\n"
           'Component "\\System Files" from writer "System Writer" is excluded from backup,\r\n'
           "because it requires volume C:\\ which is not in the shadow copy set.\r\n"
           'Excluding writer "System Writer", because all of its components have been excluded.\r\n')
    results = {item["name"]: item for item in vss_session.writer_results(result, writers(), log)}
    assert set(results) == {"SqlServerWriter", "System Writer", "Registry Writer"}
    log_only = {item["name"]: item for item in vss_session.writer_results(
        plan(volumes=["D:", "L:"]), writers(), log.replace("System Files", "TasksStore").replace('"System Writer"', '"Task Scheduler Writer"', 1))}
    assert (log_only["Task Scheduler Writer"]["included"], log_only["Task Scheduler Writer"]["reason"]) == (
        False, "none of its components is on the set's volumes")
    assert results["SqlServerWriter"] == {
        "name": "SqlServerWriter", "writer_id": SQL_WRITER[1], "state_name": "STABLE", "required": True, "rule": "component",
        "included": True, "reason": "writer verify: diskshadow fails rather than drop it", "included_components": [],
        "excluded_components": []}
    assert (results["System Writer"]["included"], results["System Writer"]["reason"]) == (
        False, 'Excluding writer "System Writer", because all of its components have been excluded.')
    assert results["System Writer"]["excluded_components"][0]["volume"] == "C:\\"
    assert (results["Registry Writer"]["included"], results["Registry Writer"]["reason"]) == (False, "writer exclude (exclude_writers)")


def test_failure_from_a_real_provider_veto():
    failure = vss_session.failure_from_log(capture("diskshadow_create_failed_provider_veto_openzfs406.txt"))
    assert (failure["hresult"], failure["name"], failure["hresult_text"]) == (0x80042306, "VSS_E_PROVIDER_VETO",
                                                                              "0x80042306 (VSS_E_PROVIDER_VETO)")
    assert failure["advice"].startswith("Read the System and Application logs")
    assert vss_session.failure_from_log("-> create\r\nAlias vol_d for shadow ID {x} set as environment variable.") is None


# ------------------------------------------------------------------------------------------------ the state machine


SET_ID = "{11111111-2222-4333-8444-555555555555}"


def shadow_ids(files: dict) -> dict:
    """alias -> shadow id for every alias record.cmd echoes (what diskshadow puts in its environment)."""
    aliases = re.findall(r"^echo (vol_\w+)=%\1%", files["record.cmd"], flags=re.MULTILINE)
    return {alias: "{aaaaaaaa-0000-4000-8000-%012d}" % (index + 1) for index, alias in enumerate(aliases)}


class ScriptedHost:
    """``send`` for a SessionRunner: each op answers from its queue (a dict built from the request, or an exception)."""

    def __init__(self, **queues):
        self.queues = {op: list(items) for op, items in queues.items()}
        self.requests = []
        self.files = {}

    def __call__(self, op, args):
        self.requests.append((op, copy.deepcopy(args)))
        if op == "session_start":
            self.files[args["run_id"]] = args["files"]
        item = self.queues[op].pop(0)
        if isinstance(item, BaseException):
            raise item
        return item(args, self) if callable(item) else item


def status(state, log="", exit_code=None, with_shadows=None):
    """A session_status answer builder; ``with_shadows`` (default: created/completed) fills created.txt's ids."""
    def build(args, host):
        run_id = args["run_id"]
        shadows = with_shadows if with_shadows is not None else state in ("created", "completed")
        answer = {"run_id": run_id, "run_dir": diskshadow.RUN_ROOT + "\\" + run_id, "state": state, "shadow_set_id": None,
                  "shadows": {}, "exit_code": exit_code, "log": log, "log_truncated": False,
                  "task_running": state in ("starting", "created"), "task_state": "Running", "release": None, "cleaned": []}
        if shadows:
            answer.update(shadow_set_id=SET_ID, shadows=shadow_ids(host.files[run_id]))
        return answer
    return build


def refused(hresult="0x80042316"):
    return AgentOperationError(host="win-sql-01", op="session_start", error={
        "message": "another shadowsnap session is running on this host (shadowsnap-ss-x)", "hresult": hresult})


class Clock:
    def __init__(self, step=0.0):
        self.now = 1000.0
        self.step = step
        self.sleeps = []

    def __call__(self):
        self.now += self.step
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def runner(host, clock=None, **kwargs):
    clock = clock or Clock()
    counter = iter(range(1, 100))
    kwargs.setdefault("run_id_factory", lambda: "ss-20261125T013700-%08x" % next(counter))
    return vss_session.SessionRunner(host, sleep=clock.sleep, clock=clock, **kwargs), clock


def data_plan():
    return plan(volumes=["D:", "L:"])


def test_a_session_that_creates_its_set_within_the_first_wait_costs_one_request():
    host = ScriptedHost(session_start=[status("created")])
    session, clock = runner(host)
    outcome = session.create(data_plan(), "full", 900)
    ((op, args),) = host.requests
    assert op == "session_start"
    assert args["run_id"] == "ss-20261125T013700-00000001"
    assert args["run_dir"] == "C:\\ProgramData\\shadowsnap\\runs\\ss-20261125T013700-00000001"
    assert args["wait_seconds"] == 120 and args["time_limit_seconds"] == 900 + 300 + 300
    assert args["cleanup_older_than_seconds"] == 1500 + 600
    assert sorted(args["files"]) == ["hold.cmd", "record.cmd", "run.cmd", "snapshot.dsh"]
    assert "writer verify %s" % SQL_WRITER[1] in args["files"]["snapshot.dsh"]
    assert "rem shadowsnap-hold protocol=1 timeout=900" in args["files"]["hold.cmd"]
    assert outcome.shadow_set_id == SET_ID
    assert outcome.shadows == {"D:": "{aaaaaaaa-0000-4000-8000-000000000001}", "L:": "{aaaaaaaa-0000-4000-8000-000000000002}"}
    assert outcome.attempts == [{"run_id": "ss-20261125T013700-00000001", "outcome": "created"}]
    assert clock.sleeps == []


def test_a_slow_session_is_polled_until_created_with_bounded_waits():
    host = ScriptedHost(session_start=[status("starting")], session_status=[status("starting"), status("completed", exit_code=0)])
    session, dummy = runner(host, Clock(step=50), session_timeout=400)
    outcome = session.create(data_plan(), "copy", 600, cleanup=False)
    assert [op for op, dummy in host.requests] == ["session_start", "session_status", "session_status"]
    assert "cleanup_older_than_seconds" not in host.requests[0][1]
    assert "hold.cmd" not in host.requests[0][1]["files"]
    assert [args["wait_seconds"] for dummy, args in host.requests] == [120, 120, 120]
    assert all(args["until"] == "created" for op, args in host.requests if op == "session_status")
    assert outcome.status["state"] == "completed"


def test_a_session_that_never_creates_its_set_is_aborted_at_the_timeout():
    host = ScriptedHost(session_start=[status("starting")], session_status=[status("starting")] * 5,
                        session_release=[{"state": "failed", "deleted_shadow_ids": []}])
    session, dummy = runner(host, Clock(step=40), session_timeout=100)
    with pytest.raises(vss_session.SessionError, match=r"did not create the shadow set of D:, L: within session_timeout \(100 s\)"):
        session.create(data_plan(), "copy", 600)
    ops = [op for op, dummy in host.requests]
    assert ops[0] == "session_start" and ops[-1] == "session_release"
    assert host.requests[-1][1] == {"run_id": "ss-20261125T013700-00000001", "decision": "abort", "wait_seconds": 60, "delete_shadows": True}


def test_a_set_in_progress_is_retried_as_microsoft_advises_then_gives_up():
    host = ScriptedHost(session_start=[refused(), refused(), status("created")])
    session, clock = runner(host)
    outcome = session.create(data_plan(), "copy", 600)
    assert clock.sleeps == [vss.SNAPSHOT_SET_RETRY_AFTER_SECONDS] * 2
    assert [attempt["outcome"] for attempt in outcome.attempts] == ["refused", "refused", "created"]
    assert outcome.attempts[0]["hresult_name"] == "VSS_E_SNAPSHOT_SET_IN_PROGRESS"
    starts = [args for op, args in host.requests if op == "session_start"]
    assert len({args["run_id"] for args in starts}) == 3, "every attempt is a new run"
    assert "cleanup_older_than_seconds" in starts[0] and "cleanup_older_than_seconds" not in starts[1]

    host = ScriptedHost(session_start=[refused()] * 3)
    session, clock = runner(host, policy=vss_session.RetryPolicy(in_progress_retries=2, in_progress_delay=5))
    with pytest.raises(AgentOperationError, match="VSS_E_SNAPSHOT_SET_IN_PROGRESS"):
        session.create(data_plan(), "copy", 600)
    assert clock.sleeps == [5, 5] and len(session.attempts) == 3


def test_an_agent_error_that_is_not_in_progress_is_not_retried():
    host = ScriptedHost(session_start=[refused("0x80070005")])
    session, clock = runner(host)
    with pytest.raises(AgentOperationError, match="E_ACCESSDENIED"):
        session.create(data_plan(), "copy", 600)
    assert clock.sleeps == []


FAILED_LOG = ("-> create\r\n"
              'Component "\\WIN-SQL-01\\Sales" from writer "SqlServerWriter" is excluded from backup,\r\n'
              "because it requires volume L:\\ which is not in the shadow copy set.\r\n"
              'Excluding writer "SqlServerWriter", because all of its components have been excluded.\r\n'
              "\r\nThe last operation failed.\r\n        - Returned HRESULT: 800423f0\r\n"
              "        - Error text: VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT\r\n")


def test_a_diskshadow_failure_names_the_hresult_the_advice_and_the_dropped_required_writer():
    host = ScriptedHost(session_start=[status("failed", log=FAILED_LOG, exit_code=1)])
    session, clock = runner(host)
    with pytest.raises(vss_session.SessionError) as raised:
        session.create(data_plan(), "copy", 600)
    assert str(raised.value) == (
        "diskshadow failed to create the shadow set of D:, L: (run ss-20261125T013700-00000001): HRESULT 0x800423F0 "
        "(VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT): The shadow copy set holds only some of the volumes a selected writer "
        "component needs. Add every volume the writer's components touch to the set (see the writer's component volumes).; "
        "required writers left out by diskshadow: Excluding writer \"SqlServerWriter\", because all of its components have "
        "been excluded.")
    assert raised.value.hresult == 0x800423F0 and raised.value.run_id == "ss-20261125T013700-00000001"
    assert [op for op, dummy in host.requests] == ["session_start"], "no shadows were recorded: nothing to abort"
    assert clock.sleeps == []


def test_a_session_that_failed_after_creating_shadows_is_cleaned_up_and_in_progress_failures_are_retried():
    log = "-> create\r\nThe last operation failed.\r\n        - Returned HRESULT: 80042316\r\n        - Error text: VSS_E_SNAPSHOT_SET_IN_PROGRESS\r\n"
    host = ScriptedHost(session_start=[status("failed", log=log, exit_code=1, with_shadows=True), status("created")],
                        session_release=[{"state": "failed", "deleted_shadow_ids": ["{x}"]}])
    session, clock = runner(host)
    outcome = session.create(data_plan(), "copy", 600)
    assert [op for op, dummy in host.requests] == ["session_start", "session_release", "session_start"]
    assert clock.sleeps == [60]
    assert outcome.attempts[0]["outcome"] == "failed" and outcome.attempts[0]["hresult_name"] == "VSS_E_SNAPSHOT_SET_IN_PROGRESS"


def test_transient_writer_errors_are_retried_only_when_asked():
    log = "-> create\r\nThe last operation failed.\r\n        - Returned HRESULT: 800423f3\r\n        - Error text: VSS_E_WRITERERROR_RETRYABLE\r\n"
    host = ScriptedHost(session_start=[status("failed", log=log, exit_code=1)])
    session, dummy = runner(host)
    with pytest.raises(vss_session.SessionError, match="Wait about 10 minutes and retry"):
        session.create(data_plan(), "copy", 600)
    host = ScriptedHost(session_start=[status("failed", log=log, exit_code=1), status("created")])
    session, clock = runner(host, policy=vss_session.RetryPolicy(writer_error_retries=1))
    session.create(data_plan(), "copy", 600)
    assert clock.sleeps == [vss.WRITER_RETRY_AFTER_SECONDS]


def test_a_stopped_task_without_hresult_reports_the_log_tail():
    host = ScriptedHost(session_start=[status("failed", log="-> create\r\nsomething odd\r\n")])
    session, dummy = runner(host)
    with pytest.raises(vss_session.SessionError, match=r"exit code None without creating.*log tail: -> create \| something odd"):
        session.create(data_plan(), "copy", 600)


def test_an_incomplete_created_record_aborts_the_session():
    def incomplete(args, host):
        answer = status("created")(args, host)
        answer["shadows"].pop("vol_l")
        return answer
    host = ScriptedHost(session_start=[incomplete], session_release=[{"state": "failed"}])
    session, dummy = runner(host)
    with pytest.raises(vss_session.SessionError, match=r"created.txt holds no shadow id for L: \(alias vol_l\)"):
        session.create(data_plan(), "copy", 600)
    assert host.requests[-1][0] == "session_release"


def test_an_unknown_state_is_an_error_and_a_failed_abort_is_kept_not_raised():
    with pytest.raises(vss_session.SessionError, match="session state 'exploded'"):
        vss_session.session_state({"state": "exploded"})
    host = ScriptedHost(session_release=[AgentOperationError(host="h", op="session_release", error={"message": "no"})])
    session, dummy = runner(host)
    assert session.abort("ss-1") is None
    assert session.cleanup_errors == ["aborting session ss-1 failed: h: agent op 'session_release' failed: no"]


# ------------------------------------------------------------------------------------------------ release verdicts


def released(state="completed", log="-> create\r\n", **overrides):
    answer = {"run_id": "ss-1", "state": state, "shadow_set_id": SET_ID, "exit_code": 0 if state == "completed" else 1,
              "shadows": {"vol_d": "{AAAAAAAA-0000-4000-8000-000000000001}"}, "log": log, "task_running": state == "created",
              "decision": "ok", "released_before": False, "present_shadow_ids": ["{aaaaaaaa-0000-4000-8000-000000000001}"],
              "deleted_shadow_ids": ["{aaaaaaaa-0000-4000-8000-000000000001}"]}
    answer.update(overrides)
    return answer


def test_a_copy_release_verifies_the_shadows_were_there():
    verdict = vss_session.judge_release(released(), "ok", "ss-1")
    assert verdict == {"ok": True, "message": None, "changed": True, "verified": True, "backup_type": "copy",
                       "backup_complete_sent": None, "missing_shadow_ids": [], "state": "completed"}


def test_a_full_release_sends_backup_complete_or_says_it_did_not():
    log = "-> begin backup\r\n-> create\r\n-> exec hold.cmd\r\n-> end backup\r\n"
    assert vss_session.judge_release(released(log=log), "ok", "ss-1")["backup_complete_sent"] is True
    verdict = vss_session.judge_release(released("failed", log=log), "ok", "ss-1")
    assert not verdict["ok"] and verdict["backup_complete_sent"] is False
    assert verdict["message"] == ("session ss-1: diskshadow ended with exit code 1 before or at the release; BackupComplete "
                                  "was not sent (did the hold time out before the release?)")
    stopped = vss_session.judge_release(released("failed", log=log, exit_code=None), "ok", "ss-1")
    assert "no exit code (its task ended without writing exit.txt" in stopped["message"]
    verdict = vss_session.judge_release(released("created", log=log, deleted_shadow_ids=[]), "ok", "ss-1")
    assert not verdict["ok"] and "end backup still running" in verdict["message"]


def test_a_shadow_gone_before_the_release_means_crash_consistent():
    verdict = vss_session.judge_release(released(present_shadow_ids=[]), "ok", "ss-1")
    assert not verdict["ok"] and verdict["verified"] is False
    assert verdict["missing_shadow_ids"] == ["{aaaaaaaa-0000-4000-8000-000000000001}"]
    assert "treat this backup as crash-consistent" in verdict["message"]


def test_release_is_idempotent_and_refuses_to_complete_an_aborted_session():
    again = vss_session.judge_release(released(released_before=True, present_shadow_ids=[], deleted_shadow_ids=[]), "ok", "ss-1")
    assert again["ok"] and not again["changed"] and again["verified"] is None
    verdict = vss_session.judge_release(released(decision="abort", released_before=True), "ok", "ss-1")
    assert not verdict["ok"] and verdict["message"] == "session ss-1 was already released with 'abort': it cannot be completed"
    assert vss_session.judge_release(released("failed", decision="abort"), "abort", "ss-1")["ok"]
    missing = {"run_id": "ss-1", "state": "missing"}
    assert not vss_session.judge_release(missing, "ok", "ss-1")["ok"]
    assert vss_session.judge_release(missing, "abort", "ss-1") == {
        "ok": True, "message": None, "changed": False, "verified": None, "backup_type": "copy", "backup_complete_sent": None,
        "missing_shadow_ids": [], "state": "missing"}


# ------------------------------------------------------------------------------------------------ agent and docs


PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def _nodes(node):
    yield node
    for child in node.children:
        yield from _nodes(child)


def session_dispatch(source: str) -> dict:
    """op -> the function its branch of Invoke-SessionOp calls."""
    data = source.encode("ascii")
    tree = PARSER.parse(data)
    function = next(node for node in _nodes(tree.root_node) if node.type == "function_statement"
                    and "Invoke-SessionOp" in [data[c.start_byte:c.end_byte].decode() for c in node.children])
    handlers = {}
    for node in _nodes(function):
        if node.type not in ("if_statement", "elseif_clause"):
            continue
        condition = next(child for child in node.children if child.type == "pipeline")
        match = re.fullmatch(r"\$Op\s+-eq\s+'(\w+)'", data[condition.start_byte:condition.end_byte].decode().strip())
        block = next(child for child in node.children if child.type == "statement_block")
        commands = [data[item.start_byte:item.end_byte].decode() for item in _nodes(block) if item.type == "command_name"]
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
    assert not any(node.type == "ERROR" or node.is_missing for node in _nodes(tree.root_node))
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


def hresult_table() -> str:
    """The HRESULT table of docs/troubleshooting.md, generated from vss.py (paste it there when vss.py changes)."""
    rows = ["| HRESULT | name | what it means | what to do | retried by `win_vss_snapshot_set` |", "|---|---|---|---|---|"]
    for code, info in vss.HRESULTS.items():
        if code == vss_session.IN_PROGRESS_HRESULT:
            retry = (f"yes: `in_progress_retries` (default {vss.SNAPSHOT_SET_MAX_RETRIES}) after `in_progress_delay` "
                     f"(default {vss.SNAPSHOT_SET_RETRY_AFTER_SECONDS} s)")
        elif info.retryable:
            retry = (f"when asked: `writer_error_retries` (default 0; Microsoft: up to {info.max_retries}) after "
                     f"`writer_error_delay` (default {info.retry_after_seconds} s)")
        else:
            retry = "no"
        rows.append(f"| 0x{code:08X} | `{info.name}` | {info.meaning} | {info.advice} | {retry} |")
    return "\n".join(rows)


def service_table() -> str:
    """The writer-to-service table of docs/troubleshooting.md, generated from vss.py."""
    rows = ["| writer | service to restart |", "|---|---|"]
    rows += [f"| {writer} | `{service}` |" for writer, service in vss.WRITER_SERVICES.items()]
    return "\n".join(rows)


def test_the_troubleshooting_guide_carries_the_tables_generated_from_vss_py():
    text = TROUBLESHOOTING_DOC.read_text(encoding="utf-8")
    assert hresult_table() in text, "regenerate the HRESULT table of docs/troubleshooting.md with hresult_table()"
    assert service_table() in text, "regenerate the writer table of docs/troubleshooting.md with service_table()"
    for code, info in vss.HRESULTS.items():
        assert f"| 0x{code:08X} | `{info.name}` |" in text, info.name
    for state, name in vss.VSS_WRITER_STATE.items():
        assert f"| {state} | `{name}` |" in text, name


def test_status_and_file_reads_are_retried_but_never_batched():
    assert agent_transport.is_read_request("session_status") and agent_transport.is_read_request("file_read")
    for op in ("session_start", "session_release", "shadow_delete", "session_cleanup", "service_restart"):
        assert not agent_transport.is_read_request(op), op
    with pytest.raises(ValueError, match="read ops only"):
        agent_transport.build_batch_request([("facts", None), ("session_status", {"run_id": "ss-1"})])
