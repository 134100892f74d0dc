# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shadow engine's pre-flight (shadow_plan.py): sizes, the host check, volume selection, the dynamic disk and
diff-area rules, the writer rules, and the EC2 volume metadata of the set, on the test host WIN-SQL-01 (sql_host.py)."""

from __future__ import annotations

import pytest

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import diskshadow, ebs_disks, shadow_plan, vss_writers
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.vss_parse import parse_diskshadow_writers
from unit.plugins.plugin_utils.sql_host import (
    GIB,
    SQL_WRITER,
    ebs_id,
    facts,
    mapping,
    nvme_disk,
    partition,
    paths,
    plan,
    problems,
    storage,
    volume,
    volume_guid,
    writers,
    writers_text,
)


@pytest.mark.parametrize("spec, size, expected", [
    (0, None, 0), (1024, None, 1024), ("1GB", None, GIB), ("1 GiB", None, GIB), ("500MB", None, 500 << 20), ("2t", None, 2 << 40),
    ("1.5G", None, 3 * GIB // 2), ("512", None, 512), ("10%", 50 * GIB, 5 * GIB), ("0.5%", 1000, 5),
])
def test_sizes(spec, size, expected):
    assert shadow_plan.parse_size(spec, size) == expected


@pytest.mark.parametrize("spec, message", [
    ("lots", "is not a number"), ("-1GB", "is not a number"), ("150%", "at most 100%"), ("10%", "volume size is unknown"),
    (True, "is not a number"), (-5, "must not be negative"),
])
def test_bad_sizes(spec, message):
    with pytest.raises(ValueError, match=message):
        shadow_plan.parse_size(spec)


def test_check_host():
    assert shadow_plan.check_host(facts()) == []
    client = shadow_plan.check_host(facts(os_caption="Microsoft Windows 11 Pro", product_type=1, is_server=False))
    assert client == ["Microsoft Windows 11 Pro is client Windows: the shadow engine needs Windows Server (diskshadow ships "
                      "with Windows Server only); use engine crash, or aws_vss with AWS's VSS components"]
    assert "has no diskshadow.exe" in shadow_plan.check_host(facts(diskshadow_present=False))[0]
    assert shadow_plan.check_host(facts(product_type=2)) == [], "a domain controller is a server"


@pytest.mark.parametrize("ref, expected", [
    ("d", "D:"), ("D:", "D:"), ("d:\\", "D:"), ("C:\\mnt\\logs", "C:\\mnt\\logs"), ("c:\\MNT\\logs\\", "C:\\mnt\\logs"),
    (volume_guid("L"), "L:"), (volume_guid("L").rstrip("\\"), "L:"), ("Q:", None), ("C:\\nowhere", None),
])
def test_find_volume(ref, expected):
    found = shadow_plan.find_volume(ref, mapping()["volumes"])
    assert (shadow_plan.volume_path(found) if found else None) == expected


# ------------------------------------------------------------------------------------------------ volume selection


def test_the_data_and_log_volumes_of_a_database_form_a_set_without_the_system_volume():
    result = plan(volumes=["D:", "l"])
    assert paths(result) == ["D:", "L:"]
    assert [(entry["name"], entry["rule"]) for entry in result.required_writers] == [("SqlServerWriter", "component")]
    assert result.verify_writer_ids() == [SQL_WRITER[1]]
    assert result.verify_components() == [(SQL_WRITER[1], "\\WIN-SQL-01\\Sales")], "the database on the set, not master"
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
    metadata, volume_ids, devices = shadow_plan.ec2_volume_metadata(result.volumes, {"P:": "{aaaaaaaa-0000-4000-8000-000000000001}"})
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
    with pytest.raises(shadow_plan.PreflightError) as raised:
        shadow_plan.build_plan(result_mapping, writers(), shadow_plan.SelectionOptions(volumes=["D:", "L:"]))
    assert raised.value.problems == [
        "D:: only 512.0 MiB of shadow storage (diff area) space left on D:, min_diff_area_free asks for 1.0 GiB; grow the "
        "association: vssadmin resize shadowstorage /for=D: /on=D: /maxsize=<larger>, or lower min_diff_area_free"
    ]
    assert shadow_plan.build_plan(result_mapping, writers(), shadow_plan.SelectionOptions(volumes=["D:", "L:"], min_diff_area_free="500MB"))
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
    with pytest.raises(shadow_plan.PreflightError) as raised:
        shadow_plan.build_plan(ebs_disks.map_storage(data), writers(), shadow_plan.SelectionOptions(volumes=["C:\\Program Files\\logs"]))
    assert raised.value.problems == [
        "C:\\Program Files\\logs: diskshadow cannot add a mount point path with spaces; use a drive letter or another path"]
    data["partitions"][-1]["AccessPaths"] = ["C:\\\u30c7\u30fc\u30bf\\", volume_guid("mnt")]
    with pytest.raises(shadow_plan.PreflightError, match="not ASCII"):
        shadow_plan.build_plan(ebs_disks.map_storage(data), writers(), shadow_plan.SelectionOptions(volumes=["C:\\\u30c7\u30fc\u30bf"]))


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
    with pytest.raises(shadow_plan.PreflightError) as raised:
        shadow_plan.build_plan(ebs_disks.map_storage(data), writers(), shadow_plan.SelectionOptions(volumes=["G:"]))
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
    with pytest.raises(shadow_plan.PreflightError) as raised:
        shadow_plan.build_plan(ebs_disks.map_storage(data), writers(),
                               shadow_plan.SelectionOptions(volumes=["C:\\m\\m%02d" % i for i in range(70)]))
    assert raised.value.problems == ["the set would hold 70 volumes; a shadow copy set holds at most 64 "
                                     "(VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED): split the backup"]


def test_many_existing_shadows_earn_a_warning():
    shadows = [{"ID": "{%08x-0000-4000-8000-000000000000}" % n, "VolumeName": volume_guid("L")} for n in range(64)]
    result = shadow_plan.build_plan(mapping(), writers(), shadow_plan.SelectionOptions(volumes=["L:"], required_writers=[]), shadows)
    assert result.volumes[0]["existing_shadows"] == 64
    assert result.warnings == ["L: already has 64 shadow copies; VSS keeps 64 client-accessible ones by default "
                               "(VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED): delete old ones"]


def test_xen_volumes_are_keyed_by_device_when_the_volume_id_is_unknown():
    data = storage()
    data["disks"][1].update(SerialNumber="", FriendlyName="AWS PVDISK", BusType=1)
    data["disk_drives"] = [{"Index": 1, "SCSITargetId": 5, "Model": "AWS PVDISK SCSI Disk Device"}]
    result = shadow_plan.build_plan(ebs_disks.map_storage(data), writers(), shadow_plan.SelectionOptions(volumes=["D:", "L:"]))
    metadata, volume_ids, devices = shadow_plan.ec2_volume_metadata(result.volumes, {"D:": "{d}", "L:": "{l}"})
    assert metadata == {"xvdf": {"paths": ["D:\\"], "shadow_id": "{d}"}, ebs_id(2): {"paths": ["L:\\"], "shadow_id": "{l}"}}
    assert (volume_ids, devices) == ([ebs_id(2)], ["xvdf"])


def test_two_windows_volumes_on_one_ebs_volume_share_its_metadata():
    result = plan(volumes=["G:", "H:"])
    metadata, volume_ids, dummy = shadow_plan.ec2_volume_metadata(result.volumes, {"G:": "{g}", "H:": "{h}"})
    assert metadata == {ebs_id(12): {"paths": ["G:\\", "H:\\"], "shadow_id": "{g}"}}
    assert volume_ids == [ebs_id(12)]


def test_a_writer_required_per_component_is_verified_by_the_components_on_the_set_only():
    script = diskshadow.diskshadow_script(plan(volumes=["D:", "L:"]).session_plan("ss-1"))
    assert [line for line in script.splitlines() if line.startswith("writer verify")] == [
        "writer verify %s:\\WIN-SQL-01\\Sales" % SQL_WRITER[1]]
    whole = diskshadow.diskshadow_script(plan(writers=["SqlServerWriter"]).session_plan("ss-1"))
    assert [line for line in whole.splitlines() if line.startswith("writer verify")] == ["writer verify %s" % SQL_WRITER[1]]


def test_a_component_diskshadow_cannot_name_fails_the_plan_with_the_fix():
    renamed = writers_text().replace("Sales", "Sales%DB")
    described = [vss_writers.describe_writer(writer) for writer in parse_diskshadow_writers(renamed)]
    with pytest.raises(shadow_plan.PreflightError) as raised:
        shadow_plan.build_plan(mapping(), described, shadow_plan.SelectionOptions(volumes=["D:", "L:"]))
    (problem,) = raised.value.problems
    assert problem.startswith("writer 'SqlServerWriter': component '\\\\WIN-SQL-01\\\\Sales%DB' of writer")
    assert problem.endswith("exclude the writer, or name it in required_writers to verify it whole")


def test_include_boot_puts_the_boot_volume_in_the_set():
    result = plan(volumes=["D:", "L:"], include_boot=True)
    assert paths(result) == ["C:", "D:", "L:"]
    assert result.volumes[0]["reasons"] == ["include_boot (its disk is in the EBS snapshot set)"]
    assert [item["unique_id"] for item in result.unshadowed_volumes] == [volume_guid("efi"), volume_guid("recovery")]
    assert ebs_id(0) in shadow_plan.ec2_volume_metadata(result.volumes, {})[1]


def test_volumes_whose_ebs_volume_id_is_unknown_are_named():
    data = storage()
    data["disks"][1].update(SerialNumber="", FriendlyName="AWS PVDISK", BusType=1)
    data["disk_drives"] = [{"Index": 1, "SCSITargetId": 5, "Model": "AWS PVDISK SCSI Disk Device"}]
    result = shadow_plan.build_plan(ebs_disks.map_storage(data), writers(), shadow_plan.SelectionOptions(volumes=["D:", "L:"]))
    assert shadow_plan.unnamed_ebs_volumes(result.volumes) == [
        "D:: the EBS volume id of its disk (xvdf) is not known: on Xen it comes from the instance's block-device mapping, "
        "which lists no volume at that device; see win_ebs_disk_info"]
    attached = ebs_disks.attachments_from_block_device_mappings([{"DeviceName": "xvdf", "Ebs": {"VolumeId": ebs_id(1)}}])
    named = shadow_plan.build_plan(ebs_disks.map_storage(data, attached), writers(), shadow_plan.SelectionOptions(volumes=["D:", "L:"]))
    assert shadow_plan.unnamed_ebs_volumes(named.volumes) == []
    assert shadow_plan.ec2_volume_metadata(named.volumes, {})[1] == [ebs_id(1), ebs_id(2)]
