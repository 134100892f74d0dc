"""ec2_snapshot_set and ec2_snapshot_set_info through real ansible-playbook runs against the lab's moto server."""

import pytest

pytestmark = pytest.mark.integration

SNAPSHOT_SET = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: snapshot set
      shadowsnap.ec2.ec2_snapshot_set: "{{ snapshot_args }}"
      register: snapshot_set
      ignore_errors: "{{ expect_failure | default(false) }}"
"""

SNAPSHOT_SET_INFO = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: sets
      shadowsnap.ec2.ec2_snapshot_set_info: "{{ info_args }}"
      register: sets
"""


def snapshots_of_set(lab, set_id):
    response = lab.ec2().describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:shadowsnap:set-id", "Values": [set_id]}])
    return response["Snapshots"]


def all_snapshots(lab):
    """Snapshots of the lab's instance volumes (moto also owns the snapshots behind its stock AMIs)."""
    volume_ids = [v["volume_id"] for instance in lab.state["instances"] for v in instance["volumes"]]
    return lab.ec2().describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": volume_ids}])["Snapshots"]


def action_counts(lab, action):
    return lab.counts()["actions"].get(action, {"attempts": 0, "ok": 0, "throttled": 0, "faults": 0, "errors": 0})


def run_set(ansible_playbook, lab, check=False, expect_failure=False, **args):
    run = ansible_playbook(lab, SNAPSHOT_SET, {"snapshot_args": args, "expect_failure": expect_failure}, check=check)
    return run, run.result("snapshot set")


def test_subset_by_device_is_one_create_snapshots_call_with_all_tags_and_no_create_tags(lab, ansible_playbook):
    instance = lab.instance("win-sql-01")
    volumes = {v["device"]: v["volume_id"] for v in instance["volumes"]}
    run, result = run_set(
        ansible_playbook, lab, instance_id=instance["instance_id"], set_id="sql-nightly-1",
        device_names=["xvdb", "/dev/xvdc"], engine="shadow", consistency="unverified", backup_type="copy",
        shadow_set_id="{11111111-2222-4333-8444-555555555555}", policy="daily", tags={"Owner": "dba"},
        volume_metadata={
            "xvdb": {"paths": ["D:\\"], "shadow_id": "{aaaaaaaa-0000-4000-8000-000000000001}"},
            volumes["xvdc"]: {"paths": ["E:\\", "C:\\mnt\\logs;archive"], "shadow_id": "{aaaaaaaa-0000-4000-8000-000000000002}"},
        },
    )
    assert run.rc == 0, run.stdout
    assert result["changed"] is True
    assert set(result["volume_snapshot_map"]) == {volumes["xvdb"], volumes["xvdc"]}
    assert action_counts(lab, "CreateSnapshots")["attempts"] == 1
    assert action_counts(lab, "CreateTags")["attempts"] == 0
    assert lab.counts()["unfiltered_describes"] == 0

    stored = {s["VolumeId"]: s for s in snapshots_of_set(lab, "sql-nightly-1")}
    assert set(stored) == {volumes["xvdb"], volumes["xvdc"]}, "only the selected volumes were snapshotted"
    assert len(all_snapshots(lab)) == 2
    tags = {t["Key"]: t["Value"] for t in stored[volumes["xvdc"]]["Tags"]}
    assert tags["shadowsnap:set-id"] == "sql-nightly-1"
    assert tags["shadowsnap:instance-id"] == instance["instance_id"]
    assert tags["shadowsnap:engine"] == "shadow"
    assert tags["shadowsnap:consistency"] == "unverified"
    assert tags["shadowsnap:backup-type"] == "copy"
    assert tags["shadowsnap:policy"] == "daily"
    assert tags["shadowsnap:version"] == "0.1.0"
    assert tags["Owner"] == "dba"
    by_volume = {s["volume_id"]: s for s in result["snapshots"]}
    assert by_volume[volumes["xvdc"]]["paths"] == ["E:\\", "C:\\mnt\\logs;archive"]
    assert by_volume[volumes["xvdc"]]["shadow_id"] == "{aaaaaaaa-0000-4000-8000-000000000002}"
    assert by_volume[volumes["xvdb"]]["device"] == "xvdb"
    assert result["start_time"]
    assert set(result["timings"]) == {"preflight", "create", "wait", "total"}


@pytest.mark.parametrize("volumes, expect_boot", [("all", True), ("data", False)])
def test_all_or_data_volumes(lab, ansible_playbook, volumes, expect_boot):
    instance = lab.instance("win-xen-01")
    run, result = run_set(ansible_playbook, lab, instance_id=instance["instance_id"], set_id="xen-" + volumes, volumes=volumes)
    assert run.rc == 0, run.stdout
    boot = next(v["volume_id"] for v in instance["volumes"] if v["device"] == "/dev/sda1")
    expected = {v["volume_id"] for v in instance["volumes"] if expect_boot or v["volume_id"] != boot}
    assert set(result["volume_snapshot_map"]) == expected
    assert {s["VolumeId"] for s in all_snapshots(lab)} == expected


def test_throttling_is_retried_and_creates_exactly_one_set(lab, ansible_playbook):
    instance = lab.instance("win-web-01")
    lab.faults(rules=[
        {"action": "DescribeInstances", "error": "RequestLimitExceeded", "count": 2},
        {"action": "CreateSnapshots", "error": "RequestLimitExceeded", "count": 3},
    ])
    run, result = run_set(ansible_playbook, lab, instance_id=instance["instance_id"], set_id="web-throttled")
    assert run.rc == 0, run.stdout
    assert [r["error"] for r in result["retries"]] == ["RequestLimitExceeded"] * 3
    counts = action_counts(lab, "CreateSnapshots")
    assert counts["faults"] == 3 and counts["ok"] == 1
    assert action_counts(lab, "DescribeInstances")["faults"] == 2
    assert len(snapshots_of_set(lab, "web-throttled")) == 2


def test_lost_answer_is_reconciled_without_a_second_set(lab, ansible_playbook):
    instance = lab.instance("win-web-01")
    lab.faults(rules=[{"action": "CreateSnapshots", "lose_response": True, "count": 1}])
    run, result = run_set(ansible_playbook, lab, instance_id=instance["instance_id"], set_id="web-lost")
    assert run.rc == 0, run.stdout
    assert [r["error"] for r in result["retries"]] == ["InternalError", "reconciled"]
    assert action_counts(lab, "CreateSnapshots")["attempts"] == 1
    assert len(all_snapshots(lab)) == 2
    assert set(result["volume_snapshot_map"]) == {v["volume_id"] for v in instance["volumes"]}


def test_server_error_before_processing_is_retried(lab, ansible_playbook):
    instance = lab.instance("win-web-01")
    lab.faults(rules=[{"action": "CreateSnapshots", "error": "InternalError", "count": 1}])
    run, result = run_set(ansible_playbook, lab, instance_id=instance["instance_id"], set_id="web-500")
    assert run.rc == 0, run.stdout
    assert [r["error"] for r in result["retries"]] == ["InternalError"]
    assert action_counts(lab, "CreateSnapshots")["ok"] == 1
    assert len(all_snapshots(lab)) == 2


def test_per_volume_rate_limit_waits_at_least_fifteen_seconds(lab, ansible_playbook):
    instance = lab.instance("win-web-01")
    first = run_set(ansible_playbook, lab, instance_id=instance["instance_id"], set_id="web-a")[0]
    assert first.rc == 0, first.stdout
    second, result = run_set(ansible_playbook, lab, instance_id=instance["instance_id"], set_id="web-b")
    assert second.rc == 0, second.stdout
    assert result["retries"][0]["error"] == "SnapshotCreationPerVolumeRateExceeded"
    assert result["retries"][0]["wait_seconds"] >= 15
    assert action_counts(lab, "CreateSnapshots")["ok"] == 2
    assert len(snapshots_of_set(lab, "web-b")) == 2


def test_concurrent_snapshot_limit_is_waited_out(lab, ansible_playbook):
    instance = lab.instance("win-web-01")
    lab.faults(rules=[{"action": "CreateSnapshots", "error": "ConcurrentSnapshotLimitExceeded", "count": 1}])
    run, result = run_set(ansible_playbook, lab, instance_id=instance["instance_id"], set_id="web-concurrent")
    assert run.rc == 0, run.stdout
    assert result["retries"][0]["error"] == "ConcurrentSnapshotLimitExceeded"
    assert result["retries"][0]["wait_seconds"] >= 15
    assert len(snapshots_of_set(lab, "web-concurrent")) == 2


def test_ec2_token_buckets_are_survived_across_a_fleet(lab, ansible_playbook):
    """EC2's buckets scaled to 1%: burst 1 and 0.2 Describe calls a second, so the DescribeInstances that follows the
    set lookup in the same run is throttled whatever the machine's speed; and the second CreateSnapshots waits out
    its bucket (0.05 a second). Every run still succeeds, each with one set."""
    lab.faults(rate_limits=0.01)
    playbook = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: snapshot sets
      shadowsnap.ec2.ec2_snapshot_set:
        instance_id: "{{ item }}"
        set_id: "fleet-{{ item }}"
        volumes: data
      loop: "{{ instance_ids }}"
"""
    instance_ids = [i["instance_id"] for i in lab.state["instances"]][:2]
    run = ansible_playbook(lab, playbook, {"instance_ids": instance_ids})
    assert run.rc == 0, run.stdout
    counts = lab.counts()["actions"]
    assert sum(entry["throttled"] for entry in counts.values()) > 0
    assert counts["DescribeInstances"]["throttled"] > 0
    assert counts["CreateSnapshots"]["ok"] == 2
    for instance_id in instance_ids:
        assert snapshots_of_set(lab, "fleet-" + instance_id)


def test_pending_snapshots_are_returned_at_once_and_waited_for_on_request(lab, ansible_playbook):
    lab.ebs(pending_seconds=60)  # pending for longer than two playbook runs take on a loaded machine
    instance = lab.instance("win-sql-01")
    run, result = run_set(ansible_playbook, lab, instance_id=instance["instance_id"], set_id="sql-pending", volumes="data")
    assert run.rc == 0, run.stdout
    assert result["status"] == "pending"
    assert {s["state"] for s in result["snapshots"]} == {"pending"}
    info = ansible_playbook(lab, SNAPSHOT_SET_INFO, {"info_args": {"set_ids": ["sql-pending"]}}).result("sets")
    assert info["sets"][0]["status"] == "pending" and info["sets"][0]["complete"] is False

    lab.ebs(pending_seconds=3)
    instance = lab.instance("win-web-01")
    run, result = run_set(ansible_playbook, lab, instance_id=instance["instance_id"], set_id="web-waited", wait=True)
    assert run.rc == 0, run.stdout
    assert result["status"] == "completed"
    assert {s["state"] for s in result["snapshots"]} == {"completed"}
    assert result["timings"]["wait"] > 0


def test_check_mode_creates_nothing(lab, ansible_playbook):
    instance = lab.instance("win-sql-01")
    run, result = run_set(ansible_playbook, lab, check=True, instance_id=instance["instance_id"], set_id="sql-check",
                          device_names=["xvdb"])
    assert run.rc == 0, run.stdout
    assert result["changed"] is True
    assert result["status"] == "planned"
    assert [s["device"] for s in result["snapshots"]] == ["xvdb"]
    assert action_counts(lab, "CreateSnapshots")["attempts"] == 0
    assert all_snapshots(lab) == []


def test_rerun_with_the_same_set_id_changes_nothing(lab, ansible_playbook):
    instance = lab.instance("win-sql-01")
    first, created = run_set(ansible_playbook, lab, instance_id=instance["instance_id"], set_id="sql-once")
    again, existing = run_set(ansible_playbook, lab, instance_id=instance["instance_id"], set_id="sql-once")
    assert first.rc == 0 and again.rc == 0, again.stdout
    assert created["changed"] is True and existing["changed"] is False
    assert existing["volume_snapshot_map"] == created["volume_snapshot_map"]
    assert action_counts(lab, "CreateSnapshots")["attempts"] == 1
    assert len(all_snapshots(lab)) == 4


def test_set_id_of_another_instance_is_refused(lab, ansible_playbook):
    first = run_set(ansible_playbook, lab, instance_id=lab.instance("win-web-01")["instance_id"], set_id="shared")[0]
    assert first.rc == 0
    run, result = run_set(ansible_playbook, lab, expect_failure=True,
                          instance_id=lab.instance("win-xen-01")["instance_id"], set_id="shared")
    assert result["failed"] is True
    assert "already belongs to instance" in result["msg"]
    assert len(all_snapshots(lab)) == 2


def _terminated_instance(lab):
    instance_id = lab.instance("win-xen-01")["instance_id"]
    lab.ec2().terminate_instances(InstanceIds=[instance_id])
    return instance_id


@pytest.mark.parametrize("case", ["foreign volume", "unknown device", "missing instance", "terminated instance"])
def test_bad_input_fails_clearly_and_creates_nothing(lab, ansible_playbook, case):
    sql = lab.instance("win-sql-01")
    web = lab.instance("win-web-01")
    args, expected = {
        "foreign volume": ({"instance_id": sql["instance_id"], "volume_ids": [web["volumes"][1]["volume_id"]]},
                           "is not attached to %s" % sql["instance_id"]),
        "unknown device": ({"instance_id": sql["instance_id"], "device_names": ["xvdq"]},
                           "no EBS volume is attached to %s at device xvdq" % sql["instance_id"]),
        "missing instance": ({"instance_id": "i-0123456789abcdef0"}, "instance i-0123456789abcdef0 does not exist"),
        "terminated instance": ({"instance_id": None}, "is terminated"),
    }[case]
    if case == "terminated instance":
        args["instance_id"] = _terminated_instance(lab)
    run, result = run_set(ansible_playbook, lab, expect_failure=True, set_id="bad", **args)
    assert result["failed"] is True
    assert expected in result["msg"]
    assert action_counts(lab, "CreateSnapshots")["attempts"] == 0
    assert all_snapshots(lab) == []


def test_too_many_tags_fail_before_any_call(lab, ansible_playbook):
    instance = lab.instance("win-sql-01")
    tags = {"Tag%02d" % n: "x" for n in range(40)}
    run, result = run_set(ansible_playbook, lab, expect_failure=True, instance_id=instance["instance_id"], tags=tags)
    assert result["failed"] is True
    assert "EC2 allows 50" in result["msg"]
    assert action_counts(lab, "CreateSnapshots")["attempts"] == 0


def test_info_lists_sets_with_members_filters_and_completeness(lab, ansible_playbook):
    sql = lab.instance("win-sql-01")
    web = lab.instance("win-web-01")
    for instance, set_id, policy in ((sql, "sql-1", "daily"), (web, "web-1", "weekly")):
        run = run_set(ansible_playbook, lab, instance_id=instance["instance_id"], set_id=set_id, policy=policy)[0]
        assert run.rc == 0
    lab.ec2().create_snapshot(VolumeId=lab.instance("win-xen-01")["volumes"][1]["volume_id"], Description="loose")
    lab.reset_counts()

    everything = ansible_playbook(lab, SNAPSHOT_SET_INFO, {"info_args": {}}).result("sets")["sets"]
    assert sorted(s["set_id"] for s in everything) == ["sql-1", "web-1"], "loose snapshots are not sets"
    sql_set = next(s for s in everything if s["set_id"] == "sql-1")
    assert sql_set["complete"] is True and sql_set["volume_count"] == 4
    assert sorted(m["device"] for m in sql_set["snapshots"]) == ["/dev/sda1", "xvdb", "xvdc", "xvdd"]
    assert lab.counts()["unfiltered_describes"] == 0

    by_policy = ansible_playbook(lab, SNAPSHOT_SET_INFO, {"info_args": {"policy": "weekly"}}).result("sets")["sets"]
    assert [s["set_id"] for s in by_policy] == ["web-1"]
    by_instance = ansible_playbook(lab, SNAPSHOT_SET_INFO, {"info_args": {"instance_ids": [sql["instance_id"]]}})
    assert [s["set_id"] for s in by_instance.result("sets")["sets"]] == ["sql-1"]
    young = ansible_playbook(lab, SNAPSHOT_SET_INFO, {"info_args": {"older_than": "1h"}}).result("sets")["sets"]
    assert young == []
    recent = ansible_playbook(lab, SNAPSHOT_SET_INFO, {"info_args": {"newer_than": "1h", "consistency": "crash"}})
    assert len(recent.result("sets")["sets"]) == 2

    lost = sql_set["volume_snapshot_map"][sql["volumes"][2]["volume_id"]]
    lab.ec2().delete_snapshot(SnapshotId=lost)
    after = ansible_playbook(lab, SNAPSHOT_SET_INFO, {"info_args": {"set_ids": ["sql-1"]}}).result("sets")["sets"][0]
    assert after["status"] == "incomplete" and after["complete"] is False
    assert after["missing_volume_ids"] == [sql["volumes"][2]["volume_id"]]


def test_info_rejects_a_malformed_age(lab, ansible_playbook):
    playbook = SNAPSHOT_SET_INFO.replace("register: sets", "register: sets\n      ignore_errors: true")
    result = ansible_playbook(lab, playbook, {"info_args": {"older_than": "soon"}}).result("sets")
    assert result["failed"] is True
    assert "older_than must be a number" in result["msg"]


def test_our_module_defaults_group_covers_our_modules_and_amazon_aws(lab, ansible_playbook):
    """group/shadowsnap.ec2.aws extends amazon.aws's aws group: one module_defaults entry serves both collections."""
    playbook = """
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/shadowsnap.ec2.aws:
      region: us-east-1
  tasks:
    - name: sets
      shadowsnap.ec2.ec2_snapshot_set_info: {}
      register: sets
    - name: volumes
      amazon.aws.ec2_vol_info:
        filters:
          attachment.instance-id: "{{ instance_id }}"
      register: volumes
"""
    instance = lab.instance("win-sql-01")
    run = ansible_playbook(lab, playbook, {"instance_id": instance["instance_id"]},
                           environment={"AWS_REGION": None, "AWS_DEFAULT_REGION": None})
    assert run.rc == 0, run.stdout
    assert run.result("sets")["sets"] == []
    assert len(run.result("volumes")["volumes"]) == 4


def test_an_unverified_set_is_settled_once_with_one_create_tags_call(lab, ansible_playbook):
    instance = lab.instance("win-sql-01")
    common = {"instance_id": instance["instance_id"], "set_id": "sql-verify", "volumes": "data", "engine": "shadow"}
    run, created = run_set(ansible_playbook, lab, consistency="unverified", **common)
    assert run.rc == 0 and created["consistency"] == "unverified"
    lab.reset_counts()
    run, settled = run_set(ansible_playbook, lab, consistency="application", **common)
    assert run.rc == 0, run.stdout
    assert settled["changed"] is True and settled["consistency"] == "application"
    assert action_counts(lab, "CreateTags")["attempts"] == 1
    assert action_counts(lab, "CreateSnapshots")["attempts"] == 0
    for snapshot in snapshots_of_set(lab, "sql-verify"):
        assert {"Key": "shadowsnap:consistency", "Value": "application"} in snapshot["Tags"]
    run, again = run_set(ansible_playbook, lab, consistency="application", **common)
    assert again["changed"] is False
    run, refused = run_set(ansible_playbook, lab, expect_failure=True, consistency="crash", **common)
    assert refused["failed"] is True and "only an unverified set can be settled" in refused["msg"]


def test_a_crash_engine_set_is_never_settled_as_application(lab, ansible_playbook):
    instance = lab.instance("win-web-01")
    common = {"instance_id": instance["instance_id"], "set_id": "web-crash"}
    run, created = run_set(ansible_playbook, lab, **common)
    assert run.rc == 0 and created["consistency"] == "crash"
    run, refused = run_set(ansible_playbook, lab, expect_failure=True, engine="shadow", consistency="application", **common)
    assert refused["failed"] is True
    snapshots = snapshots_of_set(lab, "web-crash")
    assert snapshots and all({t["Key"]: t["Value"] for t in s["Tags"]}["shadowsnap:consistency"] == "crash" for s in snapshots)


def test_a_rerun_with_wait_waits_for_the_existing_set(lab, ansible_playbook):
    lab.ebs(pending_seconds=4)
    instance = lab.instance("win-web-01")
    first, created = run_set(ansible_playbook, lab, instance_id=instance["instance_id"], set_id="web-rewait")
    assert first.rc == 0 and created["status"] == "pending"
    again, existing = run_set(ansible_playbook, lab, instance_id=instance["instance_id"], set_id="web-rewait", wait=True)
    assert again.rc == 0, again.stdout
    assert existing["changed"] is False
    assert existing["status"] == "completed"
    assert {s["state"] for s in existing["snapshots"]} == {"completed"}
    assert existing["timings"]["wait"] > 0
    assert action_counts(lab, "CreateSnapshots")["attempts"] == 1


def test_the_tag_budget_is_checked_before_any_api_call(lab, ansible_playbook):
    instance = lab.instance("win-sql-01")
    tags = {"Tag%02d" % n: "x" for n in range(41)}
    run, result = run_set(ansible_playbook, lab, expect_failure=True, instance_id=instance["instance_id"],
                          set_id="sql-budget", device_names=["xvdb", "xvdc"], tags=tags)
    assert result["failed"] is True
    assert "EC2 allows 50" in result["msg"]
    assert sum(entry["attempts"] for entry in lab.counts()["actions"].values()) == 0
