"""Restore, the AWS side: ec2_snapshot_set_volumes and ec2_volume_swap through real ansible-playbook runs against the
lab (moto with EC2's volume rules, the fault proxy, the data plane).

What is proven on the data, not assumed: a restored volume holds its snapshot's image byte for byte (files and the
shadow copies stored in it), the original volumes keep their content and are never deleted, and the instance's
attachments are what the result says. Bad inputs and faults fail before anything exists, or delete exactly what the
failing run created.
"""

import boto3
import pytest

from lab.control import LAB_CREDENTIALS
from test_backup import SQL, backup

pytestmark = pytest.mark.integration


def one_task(module):
    """A playbook of one task, named after the module, with its arguments and ``expect_failure`` as variables."""
    return """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: %s
      shadowsnap.ec2.%s: "{{ arguments }}"
      ignore_errors: "{{ expect_failure | default(false) }}"
""" % (module, module)


@pytest.fixture
def inventory(lab, tmp_path):
    path = tmp_path / "windows.ini"
    lab.write_inventory(str(path))
    return str(path)


def run_module(module, lab, ansible_playbook, check=False, expect_failure=False, **args):
    run = ansible_playbook(lab, one_task(module), {"arguments": args, "expect_failure": expect_failure}, check=check)
    return run, run.result(module)


def run_restore(lab, ansible_playbook, **args):
    return run_module("ec2_snapshot_set_volumes", lab, ansible_playbook, **args)


def run_swap(lab, ansible_playbook, **args):
    return run_module("ec2_volume_swap", lab, ansible_playbook, **args)


def crash_set(lab, ansible_playbook, set_id, host=SQL, **args):
    """A set made by ec2_snapshot_set (the crash engine unless told), with the paths the backup would record."""
    instance = lab.instance(host)
    metadata = {v["device"]: {"paths": [v["drive"] + "\\"]} for v in instance["volumes"] if v["device"] != "/dev/sda1"}
    arguments = dict(instance_id=instance["instance_id"], set_id=set_id, volumes="data", volume_metadata=metadata,
                     wait=True)
    arguments.update(args)
    run, result = run_module("ec2_snapshot_set", lab, ansible_playbook, **arguments)
    assert run.rc == 0, run.stdout
    return result


def volumes_of(lab):
    return {v["VolumeId"]: v for v in lab.ec2().describe_volumes()["Volumes"]}


def tags(volume):
    return {t["Key"]: t["Value"] for t in volume.get("Tags", [])}


def originals(lab, host=SQL):
    """{drive: volume id} of a host's seeded volumes."""
    return {v["drive"]: v["volume_id"] for v in lab.instance(host)["volumes"]}


def device_map(lab, host=SQL):
    instance_id = lab.instance(host)["instance_id"]
    return {a["device"]: a["volume_id"] for a in lab.attachments(instance_id)[instance_id]}


def contents(lab, volume_ids):
    return {volume_id: lab.volume_content(volume_id) for volume_id in volume_ids}


def assert_holds_snapshot_image(lab, volume_id, snapshot_id):
    """The restored volume's files and stored shadow copies are the snapshot's, byte for byte."""
    restored = lab.volume_content(volume_id)
    image = lab.snapshot_content(snapshot_id, include_system=True)
    assert restored["files"] == image["files"]
    assert restored["shadows"] == image["shadows"]
    return restored


def live_state(lab):
    """(instance id, {drive: original volume id}, their content, the device map) of the SQL host before a restore,
    with EC2's volume states lasting long enough for the modules to wait on them."""
    live = originals(lab)
    lab.volumes(creating_seconds=1.5, attaching_seconds=1, detaching_seconds=1)
    return lab.instance(SQL)["instance_id"], live, contents(lab, live.values()), device_map(lab)


def create_volume_calls(lab):
    return lab.counts()["actions"].get("CreateVolume", {"attempts": 0, "ok": 0, "throttled": 0, "faults": 0, "errors": 0})


def instance_in_another_region(lab, region="eu-west-1"):
    ec2 = boto3.client("ec2", region_name=region, endpoint_url=lab.state["moto_endpoint_url"],
                       aws_access_key_id=LAB_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=LAB_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]


def test_alongside_restore_of_a_shadow_backup_holds_the_snapshot_images_and_leaves_the_live_volumes_alone(
        lab, ansible_playbook, inventory, tmp_path):
    lab.start_application(SQL, interval=0.005, checkpoint_every=100000)
    try:
        run, report = backup(lab, ansible_playbook, inventory, tmp_path)
    finally:
        lab.stop_application(SQL)
    assert run.rc == 0, run.stdout and report["hosts"][0]["consistency"] == "application"
    instance_id, live, before, devices_before = live_state(lab)

    run, result = run_restore(lab, ansible_playbook, set_id="sql-backup", instance_id=instance_id, volumes=["d:", "E:\\"])
    assert run.rc == 0, run.stdout
    assert (result["engine"], result["set_consistency"], result["consistency"]) == ("shadow", "application", "crash")
    assert result["needs_shadow_revert"] is True
    assert result["timings"]["wait"] >= 1, "CreateVolume answers creating; the module waited for available"
    by_source = {v["source_volume_id"]: v for v in result["volumes"]}
    assert set(by_source) == {live["D:"], live["E:"]}
    assert [v["paths"] for v in result["volumes"]] == [["D:\\"], ["E:\\"]]
    assert result["volume_map"] == {source: v["volume_id"] for source, v in by_source.items()}
    snapshots = {s["VolumeId"]: s for s in lab.ec2().describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:shadowsnap:set-id", "Values": ["sql-backup"]}])["Snapshots"]}
    stored = volumes_of(lab)
    for source, entry in by_source.items():
        snapshot = snapshots[source]
        assert entry["snapshot_id"] == snapshot["SnapshotId"] and entry["state"] == "available" and entry["created"]
        restored = assert_holds_snapshot_image(lab, entry["volume_id"], snapshot["SnapshotId"])
        assert restored["shadows"] == [entry["shadow_id"]], "the embedded shadow copy came with the volume"
        volume = stored[entry["volume_id"]]
        assert volume["AvailabilityZone"] == lab.instance(SQL)["availability_zone"]
        assert volume["KmsKeyId"] == snapshot["KmsKeyId"], "an encrypted snapshot gives a volume with its key"
        assert tags(volume)["shadowsnap:restore:shadow-id"] == entry["shadow_id"]
        assert tags(volume)["shadowsnap:restore:snapshot-id"] == snapshot["SnapshotId"]
        assert tags(volume)["shadowsnap:restore:consistency"] == "crash"
        assert tags(volume)["shadowsnap:restore:set-consistency"] == "application"
    data, log = (by_source[live[drive]] for drive in ("D:", "E:"))
    embedded = lab.check_consistency({"snapshot_id": data["snapshot_id"], "shadow_id": data["shadow_id"]},
                                     {"snapshot_id": log["snapshot_id"], "shadow_id": log["shadow_id"]})
    assert embedded["consistent"] is True, "the images the restored volumes hold embed a consistent shadow copy"

    run, attached = run_swap(lab, ansible_playbook, instance_id=instance_id, state="attached",
                             volume_ids=[data["volume_id"], log["volume_id"]])
    assert run.rc == 0, run.stdout
    assert [(m["device"], m["attach"], m["detach"]) for m in attached["moves"]] == [
        ("xvdf", data["volume_id"], None), ("xvdg", log["volume_id"], None)]
    assert device_map(lab) == dict(devices_before, xvdf=data["volume_id"], xvdg=log["volume_id"])
    assert {a["device"]: a["status"] for a in attached["attachments"]}["xvdf"] == "attached"
    events = lab.attachment_events(instance_id)
    assert [(e["event"], e["device"]) for e in events] == [("attached", "xvdf"), ("attached", "xvdg")]
    assert contents(lab, live.values()) == before, "the live volumes are untouched"

    rerun, again = run_swap(lab, ansible_playbook, instance_id=instance_id, state="attached",
                            volume_ids=[data["volume_id"], log["volume_id"]])
    assert rerun.rc == 0 and again["changed"] is False and again["moves"] == []
    run, detached = run_swap(lab, ansible_playbook, instance_id=instance_id, state="detached",
                             volume_ids=[data["volume_id"], log["volume_id"]])
    assert run.rc == 0, run.stdout
    assert device_map(lab) == devices_before
    assert set(volumes_of(lab)) >= set(live.values())


def test_in_place_swap_and_rollback_never_lose_or_change_an_original(lab, ansible_playbook, inventory, tmp_path):
    run, dummy = backup(lab, ansible_playbook, inventory, tmp_path)
    assert run.rc == 0, run.stdout
    lab.write_transactions(SQL, count=5)
    instance_id, live, before, devices_before = live_state(lab)
    run, result = run_restore(lab, ansible_playbook, set_id="sql-backup", instance_id=instance_id, volumes=["D:", "E:"])
    assert run.rc == 0, run.stdout
    restored = {v["source_volume_id"]: v["volume_id"] for v in result["volumes"]}

    run, swap = run_swap(lab, ansible_playbook, check=True, instance_id=instance_id, state="swapped",
                         volume_ids=list(restored.values()))
    assert run.rc == 0 and swap["changed"] is True and device_map(lab) == devices_before, "check mode changes nothing"
    assert sorted((m["device"], m["detach"], m["attach"]) for m in swap["moves"]) == [
        ("xvdb", live["D:"], restored[live["D:"]]), ("xvdc", live["E:"], restored[live["E:"]])]

    run, swap = run_swap(lab, ansible_playbook, instance_id=instance_id, state="swapped",
                         volume_ids=list(restored.values()))
    assert run.rc == 0, run.stdout
    assert device_map(lab) == dict(devices_before, xvdb=restored[live["D:"]], xvdc=restored[live["E:"]])
    stored = volumes_of(lab)
    for drive, device in (("D:", "xvdb"), ("E:", "xvdc")):
        original = stored[live[drive]]
        assert original["State"] == "available", "the original is detached and kept"
        entry = tags(original)["shadowsnap:replaced-by:" + live[drive]]
        assert entry.startswith("volume=%s;device=%s;instance=%s;at=" % (restored[live[drive]], device, instance_id))
        assert tags(original)["shadowsnap:replaced-on"] == instance_id
        assert_holds_snapshot_image(lab, restored[live[drive]], next(
            v["snapshot_id"] for v in result["volumes"] if v["source_volume_id"] == live[drive]))
    assert contents(lab, live.values()) == before, "the originals keep the data written after the backup"
    assert [e["event"] for e in lab.attachment_events(instance_id)] == ["detached", "detached", "attached", "attached"]

    rerun, again = run_swap(lab, ansible_playbook, instance_id=instance_id, state="swapped",
                            volume_ids=list(restored.values()))
    assert rerun.rc == 0 and again["changed"] is False and len(again["unchanged"]) == 2

    run, back = run_swap(lab, ansible_playbook, instance_id=instance_id, state="rolled_back")
    assert run.rc == 0, run.stdout
    assert sorted((m["device"], m["detach"], m["attach"]) for m in back["moves"]) == [
        ("xvdb", restored[live["D:"]], live["D:"]), ("xvdc", restored[live["E:"]], live["E:"])]
    assert device_map(lab) == devices_before
    assert contents(lab, live.values()) == before
    rerun, again = run_swap(lab, ansible_playbook, instance_id=instance_id, state="rolled_back")
    assert rerun.rc == 0 and again["changed"] is False

    run, refused = run_swap(lab, ansible_playbook, expect_failure=True, instance_id=instance_id, state="cleaned")
    assert refused["failed"] is True and "confirm_delete" in refused["msg"]
    assert sorted(refused["would_delete_volume_ids"]) == sorted(restored.values())
    run, cleaned = run_swap(lab, ansible_playbook, instance_id=instance_id, state="cleaned", confirm_delete=True)
    assert run.rc == 0, run.stdout
    assert sorted(cleaned["deleted_volume_ids"]) == sorted(restored.values()), "after a rollback: the restored ones"
    remaining = volumes_of(lab)
    assert set(live.values()) <= set(remaining) and not set(restored.values()) & set(remaining)
    assert contents(lab, live.values()) == before


def test_cleanup_after_a_swap_deletes_the_replaced_originals_only_when_confirmed(lab, ansible_playbook):
    crash_set(lab, ansible_playbook, "sql-crash")
    live = originals(lab)
    instance_id = lab.instance(SQL)["instance_id"]
    run, result = run_restore(lab, ansible_playbook, set_id="sql-crash", instance_id=instance_id, volumes=["F:"])
    assert run.rc == 0, run.stdout
    (restored,) = result["volume_map"].values()
    run, dummy = run_swap(lab, ansible_playbook, instance_id=instance_id, state="swapped", volume_ids=[restored])
    assert run.rc == 0, run.stdout
    run, plan = run_swap(lab, ansible_playbook, check=True, instance_id=instance_id, state="cleaned")
    assert run.rc == 0 and plan["deleted_volume_ids"] == [live["F:"]] and live["F:"] in volumes_of(lab)
    run, cleaned = run_swap(lab, ansible_playbook, instance_id=instance_id, state="cleaned", confirm_delete=True)
    assert run.rc == 0 and cleaned["deleted_volume_ids"] == [live["F:"]]
    assert live["F:"] not in volumes_of(lab) and device_map(lab)["xvdd"] == restored
    run, refused = run_swap(lab, ansible_playbook, expect_failure=True, instance_id=instance_id, state="rolled_back")
    assert refused["failed"] is True and "nothing to roll back" in refused["msg"]
    assert device_map(lab)["xvdd"] == restored


def test_a_rerun_finds_the_volumes_instead_of_creating_more_and_check_mode_creates_nothing(lab, ansible_playbook):
    crash_set(lab, ansible_playbook, "sql-crash")
    instance_id = lab.instance(SQL)["instance_id"]
    run, plan = run_restore(lab, ansible_playbook, check=True, set_id="sql-crash", instance_id=instance_id)
    assert run.rc == 0 and plan["changed"] is True
    assert [v["state"] for v in plan["volumes"]] == ["planned"] * 3 and create_volume_calls(lab)["attempts"] == 0
    first_run, first = run_restore(lab, ansible_playbook, set_id="sql-crash", instance_id=instance_id)
    assert first_run.rc == 0 and first["changed"] is True and len(first["created_volume_ids"]) == 3
    rerun, again = run_restore(lab, ansible_playbook, set_id="sql-crash", instance_id=instance_id)
    assert rerun.rc == 0 and again["changed"] is False and again["created_volume_ids"] == []
    assert again["volume_map"] == first["volume_map"] and create_volume_calls(lab)["attempts"] == 3
    assert all(not v["created"] for v in again["volumes"])
    fresh_run, fresh = run_restore(lab, ansible_playbook, set_id="sql-crash", instance_id=instance_id, volumes=["D:"],
                                   restore_id="second-look")
    assert fresh_run.rc == 0 and fresh["volume_map"][originals(lab)["D:"]] not in first["volume_map"].values()


def test_a_lost_create_volume_answer_is_repeated_with_its_client_token_not_duplicated(lab, ansible_playbook):
    crash_set(lab, ansible_playbook, "sql-crash")
    lab.faults(rules=[{"action": "CreateVolume", "lose_response": True, "count": 1}])
    run, result = run_restore(lab, ansible_playbook, set_id="sql-crash", instance_id=lab.instance(SQL)["instance_id"],
                              volumes=["D:", "E:"])
    assert run.rc == 0, run.stdout
    assert create_volume_calls(lab)["faults"] == 1 and create_volume_calls(lab)["attempts"] == 3
    restored = [v for v in volumes_of(lab).values() if "shadowsnap:restore:id" in tags(v)]
    assert sorted(v["VolumeId"] for v in restored) == sorted(result["volume_map"].values())


def test_create_volume_throttled_then_failing_halfway_deletes_only_this_runs_volumes(lab, ansible_playbook):
    crash_set(lab, ansible_playbook, "sql-crash")
    instance_id = lab.instance(SQL)["instance_id"]
    first_run, first = run_restore(lab, ansible_playbook, set_id="sql-crash", instance_id=instance_id, volumes=["D:"],
                                   restore_id="sql-crash-restore")
    assert first_run.rc == 0, first_run.stdout
    used = sum(v["Size"] for v in volumes_of(lab).values())
    lab.volumes(storage_limit_gib=used + 60)
    lab.faults(rules=[{"action": "CreateVolume", "error": "RequestLimitExceeded", "count": 2}])
    before = set(volumes_of(lab))
    run, failed = run_restore(lab, ansible_playbook, expect_failure=True, set_id="sql-crash", instance_id=instance_id,
                              volumes=["D:", "E:", "F:"], restore_id="sql-crash-restore")
    assert failed["failed"] is True
    assert "VolumeLimitExceeded" in failed["msg"] and "deleted the volumes this run created" in failed["msg"]
    calls = create_volume_calls(lab)
    assert calls["throttled"] + calls["faults"] == 2 and calls["ok"] == 2, "E: created after throttling, F: refused"
    (deleted,) = failed["deleted_volume_ids"]
    assert deleted not in before and set(volumes_of(lab)) == before, "E: deleted again, D: of the first run kept"
    assert first["volume_map"][originals(lab)["D:"]] in volumes_of(lab)


def test_attach_to_an_occupied_device_fails_clearly_and_attaches_nothing(lab, ansible_playbook):
    crash_set(lab, ansible_playbook, "sql-crash")
    instance_id = lab.instance(SQL)["instance_id"]
    run, result = run_restore(lab, ansible_playbook, set_id="sql-crash", instance_id=instance_id, volumes=["D:", "E:"])
    assert run.rc == 0, run.stdout
    data, log = (result["volume_map"][originals(lab)[drive]] for drive in ("D:", "E:"))
    devices_before = device_map(lab)
    run, failed = run_swap(lab, ansible_playbook, expect_failure=True, instance_id=instance_id, state="attached",
                           volume_ids=[data, log], devices={data: "xvdh", log: "/dev/xvdb"})
    assert failed["failed"] is True and "device /dev/xvdb" in failed["msg"] and originals(lab)["D:"] in failed["msg"]
    assert device_map(lab) == devices_before and lab.counts()["actions"].get("AttachVolume") is None


def test_a_restored_volume_in_another_zone_is_refused_before_any_attach(lab, ansible_playbook):
    crash_set(lab, ansible_playbook, "sql-crash")
    instance = lab.instance(SQL)
    other_zone = "us-east-1b" if instance["availability_zone"] != "us-east-1b" else "us-east-1c"
    run, result = run_restore(lab, ansible_playbook, set_id="sql-crash", availability_zone=other_zone, volumes=["D:"])
    assert run.rc == 0 and result["availability_zone"] == other_zone
    (restored,) = result["volume_map"].values()
    run, failed = run_swap(lab, ansible_playbook, expect_failure=True, instance_id=instance["instance_id"],
                           state="swapped", volume_ids=[restored])
    assert failed["failed"] is True and "zone" in failed["msg"] and lab.counts()["actions"].get("DetachVolume") is None
    assert device_map(lab)["xvdb"] == originals(lab)["D:"]


@pytest.mark.parametrize("case, expected", [
    ("unknown set", "no snapshot set nothing-here"),
    ("incomplete set", "is incomplete"),
    ("drive letter not in the set", "drive letter or mount point G: is not in set"),
    ("crash set with application required", "application consistency is required"),
    ("zone of another Region", "is not in Region us-east-1"),
    ("instance of another Region", "does not exist in Region us-east-1"),
    ("archived snapshot", "restore-snapshot-tier"),
    ("size below the snapshot's", "smaller than the snapshots"),
])
def test_bad_inputs_fail_clearly_and_create_nothing(lab, ansible_playbook, case, expected):
    found = crash_set(lab, ansible_playbook, "sql-crash")
    instance_id = lab.instance(SQL)["instance_id"]
    args = dict(set_id="sql-crash", instance_id=instance_id)
    if case == "unknown set":
        args["set_id"] = "nothing-here"
    elif case == "incomplete set":
        lab.ec2().delete_snapshot(SnapshotId=found["volume_snapshot_map"][originals(lab)["E:"]])
    elif case == "drive letter not in the set":
        args["volumes"] = ["D:", "G:"]
    elif case == "crash set with application required":
        args["require_consistency"] = "application"
    elif case == "zone of another Region":
        args = dict(set_id="sql-crash", availability_zone="eu-west-1a")
    elif case == "instance of another Region":
        args["instance_id"] = instance_in_another_region(lab)
    elif case == "archived snapshot":
        lab.set_snapshot_tier(found["volume_snapshot_map"][originals(lab)["E:"]], "archive")
    elif case == "size below the snapshot's":
        args.update(volumes=["D:", "E:"], size=60)
    before = set(volumes_of(lab))
    run, failed = run_restore(lab, ansible_playbook, expect_failure=True, **args)
    assert failed["failed"] is True
    assert expected in failed["msg"], failed["msg"]
    assert create_volume_calls(lab)["attempts"] == 0 and set(volumes_of(lab)) == before


def test_the_newest_complete_set_at_or_before_a_point_in_time(lab, ansible_playbook):
    lab.ebs(per_volume_interval=0)
    instance_id = lab.instance(SQL)["instance_id"]
    older = crash_set(lab, ansible_playbook, "sql-older", engine="shadow", consistency="application")
    newer = crash_set(lab, ansible_playbook, "sql-newer")
    pending = crash_set(lab, ansible_playbook, "sql-newest-incomplete")
    lab.ec2().delete_snapshot(SnapshotId=pending["snapshots"][0]["snapshot_id"])
    newest = {"instance_id": instance_id}
    run, chosen = run_restore(lab, ansible_playbook, check=True, **newest)
    assert run.rc == 0 and chosen["set_id"] == "sql-newer", "the incomplete newest set is passed over"
    run, chosen = run_restore(lab, ansible_playbook, check=True, require_consistency="application", **newest)
    assert run.rc == 0 and chosen["set_id"] == "sql-older" and chosen["consistency"] == "crash"
    run, chosen = run_restore(lab, ansible_playbook, check=True, point_in_time=older["start_time"], **newest)
    assert run.rc == 0 and chosen["set_id"] == "sql-older"
    run, failed = run_restore(lab, ansible_playbook, expect_failure=True, point_in_time="2000-01-01T00:00:00Z", **newest)
    assert failed["failed"] is True and "no complete set at or before 2000-01-01T00:00:00Z" in failed["msg"]
    assert newer["start_time"] >= older["start_time"]
