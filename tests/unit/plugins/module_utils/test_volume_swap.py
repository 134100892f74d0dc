"""Planning attaches, swaps, rollbacks and cleanups from an instance's mapping and the volumes' tags, and carrying the
moves out: tags before detaching, waits on the attachments' own states, a lost answer checked before it is sent
again, and what a failed run changed put back (EC2 stubbed with botocore's own Stubber; the waits recorded)."""

import datetime

import boto3
import botocore.waiter
import pytest
from botocore.stub import ANY, Stubber

from ansible_collections.amazon.aws.plugins.module_utils import cloud
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags, volume_swap

AT = datetime.datetime(2026, 11, 25, 3, 0, tzinfo=datetime.timezone.utc)


def instance(state="running", **devices):
    mappings = {"/dev/sda1": "vol-root", "xvdb": "vol-d", "xvdc": "vol-e"}
    mappings.update(devices)
    return {"InstanceId": "i-1", "RootDeviceName": "/dev/sda1", "State": {"Name": state},
            "Placement": {"AvailabilityZone": "us-east-1a"},
            "BlockDeviceMappings": [{"DeviceName": name, "Ebs": {"VolumeId": volume_id, "Status": "attached"}}
                                    for name, volume_id in mappings.items() if volume_id]}


def restored(volume_id, source, device, source_instance="i-1", zone="us-east-1a", state="available", attached=None):
    tags = snapshot_tags.build_restored_volume_tags(
        restore_id="r", set_id="set-1", snapshot_id="snap-" + source, source_instance_id=source_instance,
        source_volume_id=source, device=device, paths=[], shadow_id=None, engine="crash", set_consistency="crash",
        consistency="crash", created_at=AT, version="0.2.0")
    return volume(volume_id, zone, state, attached, tags)


def volume(volume_id, zone="us-east-1a", state="available", attached=None, tags=None):
    attachments = [{"InstanceId": attached[0], "Device": attached[1], "State": "attached"}] if attached else []
    return {"VolumeId": volume_id, "AvailabilityZone": zone, "State": "in-use" if attached else state,
            "Attachments": attachments, "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()]}


def replaced(volume_id, by, device, at=AT, state="available", attached=None):
    tags = {snapshot_tags.replaced_by_key(volume_id): snapshot_tags.encode_replaced(by, device, "i-1", at),
            snapshot_tags.KEY_REPLACED_ON: "i-1"}
    entry = snapshot_tags.decode_replaced(tags, volume_id)
    return dict(entry, volume=volume(volume_id, state=state, attached=attached, tags=tags))


def moves_of(moves):
    return [(m.device, m.out_id, m.in_id) for m in moves]


def test_a_swap_takes_off_whatever_is_at_the_recorded_device_and_resumes_where_it_stopped():
    volumes = {"vol-rd": restored("vol-rd", "vol-d", "xvdb"), "vol-re": restored("vol-re", "vol-e", "/dev/xvdc")}
    moves, unchanged = volume_swap.plan_swap(instance(), volumes, {})
    assert moves_of(moves) == [("xvdb", "vol-d", "vol-rd"), ("xvdc", "vol-e", "vol-re")] and unchanged == []
    volumes["vol-rd"] = restored("vol-rd", "vol-d", "xvdb", attached=("i-1", "xvdb"))
    moves, unchanged = volume_swap.plan_swap(instance(xvdb="vol-rd", xvdc=None), volumes, {})
    assert moves_of(moves) == [("/dev/xvdc", None, "vol-re")], "E: was detached before the run stopped"
    assert unchanged == [{"device": "xvdb", "volume_id": "vol-rd"}]


@pytest.mark.parametrize("volumes, devices, message", [
    ({"vol-rd": restored("vol-rd", "vol-d", "xvdb", source_instance="i-9")}, {}, "restored from a set of i-9"),
    ({"vol-rd": restored("vol-rd", "vol-d", "xvdb", zone="us-east-1b")}, {}, "is in us-east-1b"),
    ({"vol-rd": restored("vol-rd", "vol-d", "xvdb", attached=("i-2", "xvdf"))}, {}, "attached to i-2"),
    ({"vol-rd": restored("vol-rd", "vol-d", "xvdb", state="creating")}, {}, "is creating, not available"),
    ({"vol-rr": restored("vol-rr", "vol-root", "/dev/sda1")}, {}, "root device of running instance"),
    ({"vol-rd": restored("vol-rd", "vol-d", "xvdb"), "vol-re": restored("vol-re", "vol-e", "xvdc")},
     {"vol-re": "/dev/xvdb"}, "two volumes would go to device"),
    ({"vol-x": volume("vol-x")}, {}, "was not restored from a snapshot set"),
])
def test_a_swap_that_cannot_be_carried_out_is_refused_before_any_change(volumes, devices, message):
    with pytest.raises(volume_swap.SwapError, match=message):
        volume_swap.plan_swap(instance(), volumes, devices)


def test_an_instance_between_states_has_its_volumes_left_alone():
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(client) as stubber:
        stubber.add_response("describe_instances", {"Reservations": [{"Instances": [instance("stopping")]}]})
        with pytest.raises(volume_swap.SwapError, match="i-1 is stopping; volumes can be moved only while"):
            volume_swap.read_instance(client, "i-1")


def test_the_root_of_a_stopped_instance_and_another_servers_disk_when_allowed_are_swapped():
    moves, dummy = volume_swap.plan_swap(instance("stopped"), {"vol-rr": restored("vol-rr", "vol-root", "/dev/sda1")}, {})
    assert moves_of(moves) == [("/dev/sda1", "vol-root", "vol-rr")]
    other = {"vol-rd": restored("vol-rd", "vol-d", "xvdb", source_instance="i-9")}
    assert moves_of(volume_swap.plan_swap(instance(), other, {}, allow_other_source=True)[0]) == [("xvdb", "vol-d", "vol-rd")]


def test_attach_uses_the_given_or_the_next_free_devices():
    volumes = {"vol-r1": restored("vol-r1", "vol-d", "xvdb"), "vol-r2": restored("vol-r2", "vol-e", "xvdc"),
               "vol-r3": restored("vol-r3", "vol-e", "xvdc")}
    moves, dummy = volume_swap.plan_attach(instance(xvdf="vol-other"), volumes, {"vol-r2": "xvdg"})
    assert moves_of(moves) == [("xvdh", None, "vol-r1"), ("xvdg", None, "vol-r2"), ("xvdi", None, "vol-r3")]
    with pytest.raises(volume_swap.SwapError, match="device /dev/xvdb of i-1 is in use by vol-d"):
        volume_swap.plan_attach(instance(), {"vol-r1": volumes["vol-r1"]}, {"vol-r1": "/dev/xvdb"})
    full = dict(("xvd%s" % letter, "vol-%s" % letter) for letter in "fghijklmnopqrstuvwxyz")
    with pytest.raises(volume_swap.SwapError, match="no free device"):
        volume_swap.plan_attach(instance(**full), {"vol-r1": volumes["vol-r1"]}, {})


def test_a_detach_moves_only_what_is_attached_here_and_a_deleted_volume_counts_as_detached():
    volumes = {"vol-r1": restored("vol-r1", "vol-d", "xvdb", attached=("i-1", "xvdf")),
               "vol-r2": restored("vol-r2", "vol-e", "xvdc")}
    moves, unchanged = volume_swap.plan_detach(instance(xvdf="vol-r1"), volumes, ["vol-r3"])
    assert moves_of(moves) == [("xvdf", "vol-r1", None)]
    assert unchanged == [{"device": None, "volume_id": "vol-r3", "gone": True}, {"device": None, "volume_id": "vol-r2"}]
    elsewhere = {"vol-r1": restored("vol-r1", "vol-d", "xvdb", attached=("i-2", "xvdf"))}
    with pytest.raises(volume_swap.SwapError, match="attached to i-2, not i-1"):
        volume_swap.plan_detach(instance(), elsewhere)


def test_a_rollback_undoes_the_newest_swap_of_each_device():
    later = AT + datetime.timedelta(hours=1)
    entries = sorted([replaced("vol-d", "vol-r1", "xvdb"), replaced("vol-r1", "vol-r2", "xvdb", at=later),
                      replaced("vol-e", "vol-r3", "xvdc")], key=lambda e: e["at"], reverse=True)
    moves, dummy = volume_swap.plan_rollback(instance(xvdb="vol-r2", xvdc="vol-r3"), entries)
    assert moves_of(moves) == [("xvdb", "vol-r2", "vol-r1"), ("xvdc", "vol-r3", "vol-e")]
    moves, dummy = volume_swap.plan_rollback(instance(xvdb="vol-r2", xvdc="vol-r3"), entries, ["vol-r3"])
    assert moves_of(moves) == [("xvdc", "vol-r3", "vol-e")]
    moves, unchanged = volume_swap.plan_rollback(instance(xvdb="vol-r1", xvdc=None), entries)
    assert moves_of(moves) == [("xvdc", None, "vol-e")] and unchanged == [{"device": "xvdb", "volume_id": "vol-r1"}]
    with pytest.raises(volume_swap.SwapError, match="xvdc of i-1 holds vol-x, neither vol-r3"):
        volume_swap.plan_rollback(instance(xvdb="vol-r2", xvdc="vol-x"), entries)
    with pytest.raises(volume_swap.SwapError, match="nothing to roll back"):
        volume_swap.plan_rollback(instance(), entries, ["vol-unknown"])


def test_a_cleanup_deletes_only_what_a_device_no_longer_needs():
    entries = [replaced("vol-d", "vol-rd", "xvdb"), replaced("vol-e", "vol-re", "xvdc")]
    known = {"vol-rd": restored("vol-rd", "vol-d", "xvdb", attached=("i-1", "xvdb")),
             "vol-re": restored("vol-re", "vol-e", "xvdc"),
             "vol-alongside": restored("vol-alongside", "vol-d", "xvdb")}
    deletable, kept = volume_swap.plan_cleanup(instance(xvdb="vol-rd", xvdc=None), entries, known)
    assert deletable == ["vol-d"], "xvdb's swap stands: its original goes"
    assert set(kept) == {"vol-e", "vol-re"} and "holds no volume of its swaps" in kept["vol-e"]
    deletable, kept = volume_swap.plan_cleanup(instance(xvdb="vol-rd", xvdc="vol-e"), entries, known,
                                               ["vol-re", "vol-alongside"])
    assert deletable == ["vol-re", "vol-alongside"] and kept == {}, "xvdc rolled back: the restored one goes"


def test_the_replaced_volumes_are_tagged_in_one_call_or_one_each_when_the_tags_would_not_fit():
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    moves = [volume_swap.Move("xvdb", "vol-d", "vol-rd", "swap"), volume_swap.Move("xvdc", "vol-e", "vol-re", "swap"),
             volume_swap.Move("xvdf", None, "vol-rf", "swap")]
    entries = {snapshot_tags.replaced_by_key("vol-d"): snapshot_tags.encode_replaced("vol-rd", "xvdb", "i-1", AT),
               snapshot_tags.replaced_by_key("vol-e"): snapshot_tags.encode_replaced("vol-re", "xvdc", "i-1", AT)}
    with Stubber(client) as stubber:
        stubber.add_response("create_tags", {}, {"Resources": ["vol-d", "vol-e"], "Tags": [
            {"Key": k, "Value": v} for k, v in sorted(dict(entries, **{snapshot_tags.KEY_REPLACED_ON: "i-1"}).items())]})
        assert volume_swap.tag_replaced(client, moves, "i-1", AT, {"vol-d": {"Name": "data"}}) == 1
        crowded = {"vol-d": dict(("user-%d" % n, "x") for n in range(48))}
        for volume_id in ("vol-d", "vol-e"):
            key = snapshot_tags.replaced_by_key(volume_id)
            stubber.add_response("create_tags", {}, {"Resources": [volume_id], "Tags": [
                {"Key": k, "Value": v} for k, v in sorted({key: entries[key], snapshot_tags.KEY_REPLACED_ON: "i-1"}.items())]})
        assert volume_swap.tag_replaced(client, moves, "i-1", AT, crowded) == 2
        stubber.assert_no_pending_responses()
    parsed = snapshot_tags.decode_replaced(entries, "vol-e")
    assert parsed == {"volume_id": "vol-re", "device": "xvdc", "instance_id": "i-1", "at": "2026-11-25T03:00:00Z"}


@pytest.fixture(name="clients")
def clients_fixture(monkeypatch):
    sleeps = []
    monkeypatch.setattr(cloud.time, "sleep", sleeps.append)
    monkeypatch.setattr(botocore.waiter.time, "sleep", sleeps.append)
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(client) as stubber:
        yield (client, client), stubber


def attachment_answer(volume_id, state, device="xvdb", instance_id="i-1"):
    attachments = [{"VolumeId": volume_id, "InstanceId": instance_id, "Device": device, "State": state}] if state else []
    return {"Volumes": [{"VolumeId": volume_id, "State": "in-use" if state else "available",
                         "Attachments": attachments}]}


def test_detach_waits_for_available_then_attach_waits_for_the_attachment_itself(clients):
    pair, stubber = clients
    stubber.add_response("detach_volume", {}, {"VolumeId": "vol-d", "InstanceId": "i-1"})
    stubber.add_response("describe_volumes", attachment_answer("vol-d", "detaching"))
    stubber.add_response("describe_volumes", attachment_answer("vol-d", None))
    stubber.add_response("attach_volume", {}, {"VolumeId": "vol-rd", "InstanceId": "i-1", "Device": "xvdb"})
    stubber.add_response("describe_volumes", attachment_answer("vol-rd", "attaching"))
    stubber.add_response("describe_volumes", attachment_answer("vol-rd", "attached"))
    volume_swap.carry_out(pair, "i-1", [volume_swap.Move("xvdb", "vol-d", "vol-rd", "swap")], 60)
    stubber.assert_no_pending_responses()


def test_a_lost_attach_answer_is_checked_before_it_is_sent_again(clients):
    pair, stubber = clients
    stubber.add_client_error("attach_volume", "InternalError", http_status_code=500)
    stubber.add_response("describe_volumes", attachment_answer("vol-rd", None))
    stubber.add_response("attach_volume", {}, {"VolumeId": "vol-rd", "InstanceId": "i-1", "Device": "xvdb"})
    stubber.add_response("describe_volumes", attachment_answer("vol-rd", "attached"))
    stubber.add_client_error("attach_volume", "InternalError", http_status_code=500)
    stubber.add_response("describe_volumes", attachment_answer("vol-re", "attaching", device="xvdc"))
    stubber.add_response("describe_volumes", {"Volumes": attachment_answer("vol-rd", "attached")["Volumes"]
                                              + attachment_answer("vol-re", "attached", device="xvdc")["Volumes"]})
    volume_swap.carry_out(pair, "i-1", [volume_swap.Move("xvdb", None, "vol-rd", "attach"),
                                        volume_swap.Move("xvdc", None, "vol-re", "attach")], 60)
    stubber.assert_no_pending_responses()


def test_a_refused_attach_of_a_volume_still_detaching_there_is_not_taken_for_done(clients):
    pair, stubber = clients
    stubber.add_client_error("attach_volume", "VolumeInUse", "vol-d is already attached to an instance")
    stubber.add_response("describe_volumes", attachment_answer("vol-d", "detaching"))
    with pytest.raises(volume_swap.MoveFailed) as raised:
        volume_swap.carry_out(pair, "i-1", [volume_swap.Move("xvdb", None, "vol-d", "roll back")], 60)
    assert "VolumeInUse" in str(raised.value.error.exception)
    stubber.assert_no_pending_responses()


def test_a_failed_attach_puts_back_what_the_run_changed(clients):
    pair, stubber = clients
    moves = [volume_swap.Move("xvdb", "vol-d", "vol-rd", "swap"), volume_swap.Move("xvdc", "vol-e", "vol-re", "swap")]
    for volume_id in ("vol-d", "vol-e"):
        stubber.add_response("detach_volume", {}, {"VolumeId": volume_id, "InstanceId": "i-1"})
    stubber.add_response("describe_volumes", {"Volumes": attachment_answer("vol-d", None)["Volumes"]
                                              + attachment_answer("vol-e", None)["Volumes"]})
    stubber.add_response("attach_volume", {}, {"VolumeId": "vol-rd", "InstanceId": "i-1", "Device": "xvdb"})
    stubber.add_client_error("attach_volume", "InvalidParameterValue",
                             "Invalid value 'xvdc' for unixDevice. Attachment point xvdc is already in use")
    stubber.add_response("describe_volumes", attachment_answer("vol-re", None))
    stubber.add_response("detach_volume", {}, {"VolumeId": "vol-rd", "InstanceId": "i-1"})
    stubber.add_response("describe_volumes", attachment_answer("vol-rd", None))
    stubber.add_response("describe_volumes", {"Volumes": attachment_answer("vol-d", None)["Volumes"]
                                              + attachment_answer("vol-e", None)["Volumes"]})
    for volume_id, device in (("vol-d", "xvdb"), ("vol-e", "xvdc")):
        stubber.add_response("attach_volume", {}, {"VolumeId": volume_id, "InstanceId": "i-1", "Device": device})
    stubber.add_response("describe_volumes", {"Volumes": attachment_answer("vol-d", "attached")["Volumes"]
                                              + attachment_answer("vol-e", "attached", device="xvdc")["Volumes"]})
    with pytest.raises(volume_swap.MoveFailed) as raised:
        volume_swap.carry_out(pair, "i-1", moves, 60)
    assert raised.value.undone is True and "already in use" in str(raised.value.error.exception)
    stubber.assert_no_pending_responses()


def test_a_failure_before_any_change_changes_nothing_and_a_failed_undo_is_reported(clients):
    pair, stubber = clients
    stubber.add_client_error("detach_volume", "IncorrectState", "Unable to detach root volume")
    stubber.add_response("describe_volumes", attachment_answer("vol-d", "attached"))
    with pytest.raises(volume_swap.MoveFailed) as raised:
        volume_swap.carry_out(pair, "i-1", [volume_swap.Move("xvdb", "vol-d", "vol-rd", "swap")], 60)
    assert raised.value.undone is False and raised.value.undo_error is None
    stubber.add_response("detach_volume", {}, {"VolumeId": "vol-d", "InstanceId": "i-1"})
    stubber.add_response("describe_volumes", attachment_answer("vol-d", None))
    stubber.add_client_error("attach_volume", "UnauthorizedOperation", "no")
    stubber.add_response("describe_volumes", attachment_answer("vol-rd", None))
    stubber.add_response("describe_volumes", attachment_answer("vol-d", None))
    stubber.add_client_error("attach_volume", "UnauthorizedOperation", "no")
    stubber.add_response("describe_volumes", attachment_answer("vol-d", None))
    with pytest.raises(volume_swap.MoveFailed) as raised:
        volume_swap.carry_out(pair, "i-1", [volume_swap.Move("xvdb", "vol-d", "vol-rd", "swap")], 60)
    assert raised.value.undone is False and raised.value.undo_error is not None
    stubber.assert_no_pending_responses()


def test_volumes_are_read_by_filter_so_one_unknown_id_does_not_hide_the_others(clients):
    (client, dummy), stubber = clients
    stubber.add_response("describe_volumes", {"Volumes": [volume("vol-a")]}, {
        "Filters": [{"Name": "volume-id", "Values": ["vol-a", "vol-gone"]}], "MaxResults": ANY})
    with pytest.raises(volume_swap.SwapError, match="volumes vol-gone do not exist"):
        volume_swap.read_volumes(client, ["vol-gone", "vol-a"])


def test_the_replaced_volumes_of_an_instance_are_read_newest_swap_first(clients):
    (client, dummy), stubber = clients
    later = AT + datetime.timedelta(hours=1)
    old, new = replaced("vol-d", "vol-r1", "xvdb"), replaced("vol-r1", "vol-r2", "xvdb", at=later)
    elsewhere = replaced("vol-x", "vol-r9", "xvdb")
    elsewhere["volume"]["Tags"] = [{"Key": snapshot_tags.replaced_by_key("vol-x"),
                                    "Value": snapshot_tags.encode_replaced("vol-r9", "xvdb", "i-2", AT)},
                                   {"Key": snapshot_tags.KEY_REPLACED_ON, "Value": "i-1"}]
    stubber.add_response("describe_volumes", {"Volumes": [old["volume"], elsewhere["volume"], new["volume"]]}, {
        "Filters": [{"Name": "tag:" + snapshot_tags.KEY_REPLACED_ON, "Values": ["i-1"]}], "MaxResults": ANY})
    entries = volume_swap.replaced_on(client, "i-1")
    assert [(e["volume"]["VolumeId"], e["volume_id"]) for e in entries] == [("vol-r1", "vol-r2"), ("vol-d", "vol-r1")]
    moves, dummy = volume_swap.plan_rollback(instance(xvdb="vol-r2"), entries)
    assert moves_of(moves) == [("xvdb", "vol-r2", "vol-r1")], "one step back: the newest swap of the device"
