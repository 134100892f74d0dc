"""The lab's faster read of a resource's tags gives what moto's own describe_tags gives for that resource."""

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends


def test_a_resources_tags_are_moto_s_own_answer_for_it(client):
    ec2 = client.ec2()
    instance = client.instance("win-sql-01")
    volume_id = instance["volumes"][1]["volume_id"]
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id, TagSpecifications=[
        {"ResourceType": "snapshot", "Tags": [{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "1"}]}])["SnapshotId"]
    ec2.create_tags(Resources=[volume_id, instance["instance_id"]], Tags=[{"Key": "Owner", "Value": "dba"}])
    backend = ec2_backends[DEFAULT_ACCOUNT_ID][client.state["region"]]
    resources = [backend.snapshots[snapshot_id], backend.get_volume(volume_id), backend.get_instance(instance["instance_id"]),
                 backend.get_volume(instance["volumes"][2]["volume_id"])]
    for resource in resources:
        assert resource.get_tags() == backend.describe_tags(filters={"resource-id": [resource.id]})
    assert [tag["key"] for tag in resources[0].get_tags()] == ["b", "a"], "in the order they were set"
    assert resources[3].get_tags() == [] and "resource_type" in resources[1].get_tags()[0]
