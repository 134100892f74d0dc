"""ec2_vss_snapshot_set (the aws_vss engine) through real ansible-playbook runs against the lab (lab.aws.ssm_models)."""

import boto3
import pytest

pytestmark = pytest.mark.integration

VSS_SET = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: vss set
      shadowsnap.ec2.ec2_vss_snapshot_set: "{{ vss_args }}"
      register: vss_set
      ignore_errors: "{{ expect_failure | default(false) }}"
"""


def ec2(lab):
    environment = lab.state["environment"]
    return boto3.client("ec2", region_name=lab.state["region"], endpoint_url=lab.state["moto_endpoint_url"],
                        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"])


def instance_snapshots(lab, name):
    volume_ids = [v["volume_id"] for v in lab.instance(name)["volumes"]]
    return ec2(lab).describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": volume_ids}])["Snapshots"]


def tags_of(snapshot):
    return {t["Key"]: t["Value"] for t in snapshot.get("Tags", [])}


def attempts(lab, action):
    return lab.counts()["actions"].get(action, {}).get("attempts", 0)


def run_vss(ansible_playbook, lab, check=False, expect_failure=False, **args):
    run = ansible_playbook(lab, VSS_SET, {"vss_args": args, "expect_failure": expect_failure}, check=check)
    return run, run.result("vss set")


def test_success_is_tagged_application_with_one_create_tags_and_consistent_images(lab, ansible_playbook):
    instance = lab.instance("win-sql-01")
    lab.start_application("win-sql-01")
    try:
        run, result = run_vss(ansible_playbook, lab, instance_id=instance["instance_id"], set_id="sql-vss-1", policy="daily")
    finally:
        lab.stop_application("win-sql-01")
    assert run.rc == 0, run.stdout
    assert result["changed"] is True and result["command_id"]
    assert result["app_consistent"] is True and result["consistency"] == "application"
    assert result["engine"] == "aws_vss" and result["backup_type"] == "copy"
    assert "SnapshotSetId=" in result["aws_vss_config"] and result["vss_set_id"]
    assert set(result["volume_snapshot_map"]) == {v["volume_id"] for v in instance["volumes"]}
    assert attempts(lab, "CreateTags") == 1
    assert attempts(lab, "SendCommand") == 1
    assert attempts(lab, "CreateSnapshots") == 0, "the document's CreateSnapshots runs on the instance, not through us"
    stored = instance_snapshots(lab, "win-sql-01")
    assert len(stored) == 4
    for snapshot in stored:
        tags = tags_of(snapshot)
        assert tags["AppConsistent"] == "true"
        assert tags["shadowsnap:engine"] == "aws_vss" and tags["shadowsnap:consistency"] == "application"
        assert tags["shadowsnap:set-id"] == "sql-vss-1" and tags["shadowsnap:policy"] == "daily"
        assert "device=%s" % tags["Device"] in tags["shadowsnap:volume:" + snapshot["VolumeId"]]
    by_device = {s["device"]: s["snapshot_id"] for s in result["snapshots"]}
    check = lab.check_consistency({"snapshot_id": by_device["xvdb"]}, {"snapshot_id": by_device["xvdc"]})
    assert check["consistent"] is True, check
    events = [e["event"] for e in lab.vss_events("win-sql-01", writer="SqlServerWriter")]
    assert events[-5:] == ["PrepareForSnapshot", "Freeze", "Thaw", "PostSnapshot", "BackupShutdown"]


def test_components_missing_fails_clearly_and_tags_nothing(lab, ansible_playbook):
    instance = lab.instance("win-web-01")
    run, result = run_vss(ansible_playbook, lab, expect_failure=True, instance_id=instance["instance_id"], set_id="web-vss")
    assert result["failed"] is True
    assert "Failed" in result["msg"] and "AwsVssComponents is not installed" in result["msg"]
    assert result["command_id"]
    assert instance_snapshots(lab, "win-web-01") == []
    assert attempts(lab, "CreateTags") == 0


def test_rerun_with_the_same_set_id_sends_no_command(lab, ansible_playbook):
    instance = lab.instance("win-sql-01")
    first, created = run_vss(ansible_playbook, lab, instance_id=instance["instance_id"], set_id="sql-vss-once")
    again, existing = run_vss(ansible_playbook, lab, instance_id=instance["instance_id"], set_id="sql-vss-once")
    assert first.rc == 0 and again.rc == 0, again.stdout
    assert existing["changed"] is False and existing["command_id"] == ""
    assert existing["volume_snapshot_map"] == created["volume_snapshot_map"]
    assert existing["app_consistent"] is True
    assert attempts(lab, "SendCommand") == 1
    assert len(instance_snapshots(lab, "win-sql-01")) == 4


def test_exclude_boot_volume_and_full_backup(lab, ansible_playbook):
    instance = lab.instance("win-sql-01")
    run, result = run_vss(ansible_playbook, lab, instance_id=instance["instance_id"], set_id="sql-vss-data",
                          exclude_boot_volume=True, copy_only=False)
    assert run.rc == 0, run.stdout
    boot = next(v["volume_id"] for v in instance["volumes"] if v["device"] == "/dev/sda1")
    assert set(result["volume_snapshot_map"]) == {v["volume_id"] for v in instance["volumes"]} - {boot}
    assert result["backup_type"] == "full"
    events = [e["event"] for e in lab.vss_events("win-sql-01", writer="SqlServerWriter")]
    assert events[-1] == "BackupComplete"


def test_no_writers_is_tagged_crash_with_a_warning(lab, ansible_playbook):
    instance = lab.instance("win-sql-01")
    run, result = run_vss(ansible_playbook, lab, instance_id=instance["instance_id"], set_id="sql-vss-nw", no_writers=True)
    assert run.rc == 0, run.stdout
    assert result["app_consistent"] is True, "AWS still tags AppConsistent=true"
    assert result["consistency"] == "crash"
    assert any("no_writers" in warning for warning in result.get("warnings", []))
    for snapshot in instance_snapshots(lab, "win-sql-01"):
        assert tags_of(snapshot)["shadowsnap:consistency"] == "crash"


def test_a_verdict_that_is_not_true_is_tagged_crash_with_a_warning(lab, ansible_playbook):
    instance = lab.instance("win-sql-01")
    lab.ssm(on_writer_failure="crash_fallback")
    lab.set_writer_state("win-sql-01", "SqlServerWriter", "failed_at_freeze")
    run, result = run_vss(ansible_playbook, lab, instance_id=instance["instance_id"], set_id="sql-vss-fb")
    assert run.rc == 0, run.stdout
    assert result["app_consistent"] is False and result["consistency"] == "crash"
    assert any("not report" in warning for warning in result.get("warnings", []))


def test_a_failed_writer_fails_the_command_by_default(lab, ansible_playbook):
    instance = lab.instance("win-sql-01")
    lab.set_writer_state("win-sql-01", "SqlServerWriter", "failed_at_freeze")
    run, result = run_vss(ansible_playbook, lab, expect_failure=True, instance_id=instance["instance_id"], set_id="sql-w")
    assert result["failed"] is True and "SqlServerWriter" in result["msg"]
    assert instance_snapshots(lab, "win-sql-01") == []


def test_check_mode_sends_nothing_and_refuses_unmanaged_instances(lab, ansible_playbook):
    instance = lab.instance("win-sql-01")
    run, result = run_vss(ansible_playbook, lab, check=True, instance_id=instance["instance_id"], set_id="sql-check")
    assert run.rc == 0, run.stdout
    assert result["status"] == "planned" and len(result["snapshots"]) == 4
    assert attempts(lab, "SendCommand") == 0 and attempts(lab, "DescribeInstanceInformation") == 1
    lab.ssm(unmanaged=[instance["instance_id"]])
    run, result = run_vss(ansible_playbook, lab, check=True, expect_failure=True, instance_id=instance["instance_id"])
    assert result["failed"] is True and "not a managed instance" in result["msg"]


def test_reserved_tags_are_refused(lab, ansible_playbook):
    instance = lab.instance("win-sql-01")
    run, result = run_vss(ansible_playbook, lab, expect_failure=True, instance_id=instance["instance_id"],
                          tags={"AppConsistent": "true"})
    assert result["failed"] is True and "reserved" in result["msg"]
    assert attempts(lab, "SendCommand") == 0
