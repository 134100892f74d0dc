"""Whole-instance restore through the role (restore_mode: instance): playbooks/restore.yml through real ansible-playbook
runs against the lab, where a simulated Windows Server boots on the new instance from its restored root volume.

Proven on the data: the SQL-like host writes its journal lazily during a shadow backup of every volume (the EBS
snapshots' crash image is not consistent); the new instance, in another zone and subnet with another type, carries
every volume of the set, and its D: and E: pass the application invariant check - because the role reverted them to
the shadow copies stored in them. The original is untouched; a failure after the launch removes exactly this run's
instance and volumes; a bad input fails before anything exists.
"""

import pytest

from test_backup import SQL, backup, inventory  # noqa: F401 pylint: disable=unused-import
from test_instance_restore import calls, describe, other_subnet, whole_set
from test_restore_volumes import contents, run_module, tags, volumes_of
from test_restore_windows import restore

pytestmark = pytest.mark.integration

RESTORED_IP = "172.31.200.10"


def whole_shadow_backup(lab, ansible_playbook, inventory, tmp_path):
    """A shadow set of every volume of the SQL host (root included) taken while the application writes lazily, then
    more transactions: the journal before the restore."""
    lab.start_application(SQL, interval=0.005, checkpoint_every=100000)
    try:
        run, report = backup(lab, ansible_playbook, inventory, tmp_path, backup_volumes=["D:", "E:", "F:"], backup_include_boot=True)
    finally:
        lab.stop_application(SQL)
    assert run.rc == 0 and report["hosts"][0]["consistency"] == "application", run.stdout
    lab.application_transactions(SQL, count=5)
    return lab.journal_check(SQL)


def instance_restore(lab, ansible_playbook, inventory, tmp_path, check=False, **variables):
    """playbooks/restore.yml in instance mode into ``variables``' subnet, the new instance reached at the lab's
    loopback address of its private IP (lab.windows.restored)."""
    extra = {"restore_mode": "instance", "restore_volumes": [], "restore_instance_private_ip": RESTORED_IP,
             "restore_instance_host_vars": {"ansible_host": "127." + RESTORED_IP.split(".", 1)[1]},
             "restore_instance_boot_timeout": 30}
    extra.update(variables)
    return restore(lab, ansible_playbook, inventory, tmp_path, check=check, **extra)


def instance_ids(lab):
    return {i["InstanceId"]: i["State"]["Name"] for r in lab.ec2().describe_instances()["Reservations"] for i in r["Instances"]}


def test_a_shadow_set_becomes_a_new_instance_elsewhere_with_its_data_volumes_reverted(
        lab, ansible_playbook, inventory, tmp_path):
    journal_before = whole_shadow_backup(lab, ansible_playbook, inventory, tmp_path)
    lab.instances(pending_seconds=0.2, stopping_seconds=0.2)
    lab.volumes(creating_seconds=0.2, attaching_seconds=0.2, detaching_seconds=0.2)
    original = lab.instance(SQL)
    original_before = describe(lab, original["instance_id"])
    volumes_before = volumes_of(lab)
    content_before = contents(lab, [v["volume_id"] for v in original["volumes"]])
    subnet = other_subnet(lab)

    run, report = instance_restore(lab, ansible_playbook, inventory, tmp_path, restore_instance_subnet_id=subnet["SubnetId"],
                                   restore_instance_type="m5.2xlarge")
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    assert (result["status"], result["consistency"], result["root_consistency"]) == ("ok", "application", "crash"), result
    new_id = result["new_instance_id"]
    new = describe(lab, new_id)
    assert (new["SubnetId"], new["Placement"]["AvailabilityZone"], new["InstanceType"], new["PrivateIpAddress"]) == (
        subnet["SubnetId"], subnet["AvailabilityZone"], "m5.2xlarge", RESTORED_IP)
    assert new["State"]["Name"] == "running" and result["launched"] is True

    # every volume of the set on the new instance; the data volumes reverted, the root crash-consistent
    assert sorted(a["device"] for a in lab.attachments(new_id)[new_id]) == sorted(v["device"] for v in original["volumes"])
    by_device = {v["source_device"]: v for v in result["volumes"]}
    assert by_device["/dev/sda1"]["consistency"] == "crash"
    assert all(by_device[d]["consistency"] == "application" for d in ("xvdb", "xvdc", "xvdd")), result["volumes"]
    assert sorted(s["outcome"] for s in result["shadows"]) == ["reverted"] * 3
    stored = volumes_of(lab)
    assert all(tags(stored[by_device[d]["volume_id"]])["shadowsnap:restore:consistency"] == "application"
               for d in ("xvdb", "xvdc", "xvdd"))

    # Windows on the new instance: the original's computer, its disks at their paths, SQL Server running on the
    # reverted volumes, whose journal passes the invariant check at the backup's point
    lab.refresh()
    state = lab.host_state(new_id)
    assert state["hostname"] == "WIN-SQL-01" and state["instance_id"] == new_id
    letters = {v["drive_letter"]: v["volume_ids"] for v in state["volumes"] if v["drive_letter"]}
    assert {letter: ids[0] for letter, ids in letters.items()} == {
        "C": by_device["/dev/sda1"]["volume_id"], "D": by_device["xvdb"]["volume_id"],
        "E": by_device["xvdc"]["volume_id"], "F": by_device["xvdd"]["volume_id"]}
    assert {s["Name"]: s["Status"] for s in state["services"]}["MSSQLSERVER"] == "Running"
    check = lab.check_consistency({"host": new_id, "volume": "D:"}, {"host": new_id, "volume": "E:"})
    assert check["consistent"] is True, check
    assert check["last_log_lsn"] < journal_before["last_log_lsn"], "the new instance is at the backup's point"

    # the original is untouched
    after = describe(lab, original["instance_id"])
    assert after["State"]["Name"] == "running" and after["BlockDeviceMappings"] == original_before["BlockDeviceMappings"]
    assert tags(after) == tags(original_before)
    assert all(tags(stored[v]) == tags(volumes_before[v]) for v in volumes_before)
    assert contents(lab, [v["volume_id"] for v in original["volumes"]]) == content_before


def test_a_failure_after_the_launch_removes_only_what_this_run_created(lab, ansible_playbook, inventory, tmp_path):
    whole_set(lab, ansible_playbook)
    subnet = other_subnet(lab)
    earlier_run, earlier = run_module("ec2_snapshot_set_volumes", lab, ansible_playbook, set_id="sql-whole",
                                      availability_zone=subnet["AvailabilityZone"], volumes=["D:"])
    assert earlier_run.rc == 0, earlier_run.stdout
    instances_before, volumes_before = instance_ids(lab), set(volumes_of(lab))

    # Windows on the new instance never answers at the address given
    run, report = instance_restore(lab, ansible_playbook, inventory, tmp_path, restore_set_id="sql-whole",
                                   restore_instance_subnet_id=subnet["SubnetId"],
                                   restore_instance_host_vars={"ansible_host": "127.31.200.11"},
                                   restore_instance_boot_timeout=1)
    assert run.rc != 0
    (result,) = report["hosts"]
    assert result["status"] == "failed" and result["consistency"] == "", result
    terminated = result["terminated_instance_id"]
    assert terminated not in instances_before and instance_ids(lab)[terminated] == "terminated"
    assert "terminated " + terminated in result["error"] and len(result["deleted_volume_ids"]) == 4, result["error"]
    assert set(volumes_of(lab)) == volumes_before, "this run's volumes deleted, the earlier restore's D: kept"
    assert earlier["volume_map"][lab.instance(SQL)["volumes"][1]["volume_id"]] in volumes_of(lab)
    assert {i: s for i, s in instance_ids(lab).items() if i != terminated} == instances_before, "nothing else touched"


def test_an_ami_that_is_gone_with_no_replacement_fails_clearly_and_creates_nothing(
        lab, ansible_playbook, inventory, tmp_path):
    whole_set(lab, ansible_playbook)
    lab.ec2().deregister_image(ImageId=describe(lab, lab.instance(SQL)["instance_id"])["ImageId"])
    instances_before, volumes_before = instance_ids(lab), set(volumes_of(lab))
    run, report = instance_restore(lab, ansible_playbook, inventory, tmp_path, restore_set_id="sql-whole")
    assert run.rc != 0
    (result,) = report["hosts"]
    assert result["status"] == "failed" and "no longer exists; give image_id" in result["error"], result
    assert calls(lab, "RunInstances") == 0 and calls(lab, "CreateVolume") == 0
    assert instance_ids(lab) == instances_before and set(volumes_of(lab)) == volumes_before


def test_check_mode_plans_the_instance_and_creates_nothing(lab, ansible_playbook, inventory, tmp_path):
    whole_set(lab, ansible_playbook)
    subnet = other_subnet(lab)
    instances_before, volumes_before = instance_ids(lab), set(volumes_of(lab))
    run, report = instance_restore(lab, ansible_playbook, inventory, tmp_path, check=True, restore_set_id="sql-whole",
                                   restore_instance_subnet_id=subnet["SubnetId"])
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    assert result["status"] == "planned" and result["plan"]["launch"]["subnet_id"] == subnet["SubnetId"]
    assert len(result["plan"]["create"]) == 4 and len(result["plan"]["revert"]) == 3
    assert calls(lab, "RunInstances") == 0 and calls(lab, "CreateVolume") == 0
    assert instance_ids(lab) == instances_before and set(volumes_of(lab)) == volumes_before
