"""A lab for the retention tests of module_utils and modules: started as its own process (the lab's tests run another
one in the test process), reset per test; EC2 clients that reach it through the fault proxy as the collection does,
and sets made by the collection's own code (snapshot_sets), cloned at other times by the lab."""

import datetime

import boto3
import botocore.config
import pytest

from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_sets
from ansible_collections.shadowsnap.ec2.plugins.module_utils.collection_version import COLLECTION_VERSION
from lab.control import LAB_CREDENTIALS, LabClient, start_detached, stop_detached

HOST = "win-sql-01"
OTHER_ACCOUNT = "210987654321"
UTC = datetime.timezone.utc


@pytest.fixture(scope="module", name="lab_process")
def lab_process_fixture(tmp_path_factory):
    directory = tmp_path_factory.mktemp("lab")
    state_file = str(directory / "state.json")
    client = LabClient(start_detached(state_file, str(directory / "lab.log")))
    try:
        yield client
    finally:
        stop_detached(state_file)


@pytest.fixture(name="lab")
def lab_fixture(lab_process):
    """A freshly seeded lab, with no wait between snapshots of a volume (sets are made back to back)."""
    lab_process.reset()
    lab_process.ebs(per_volume_interval=0)
    return lab_process


def ec2(lab, **config):
    """EC2 through the fault proxy, as ``aws_client.ec2_client`` builds it (``config`` as it passes it)."""
    return boto3.client("ec2", region_name=lab.state["region"], endpoint_url=lab.state["aws_endpoint_url"],
                        aws_access_key_id=LAB_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=LAB_CREDENTIALS["AWS_SECRET_ACCESS_KEY"], **config)


def make_set(lab, set_id, host=HOST, created_at=None, consistency="crash", policy="nightly"):
    """A set made as ec2_snapshot_set makes it (snapshot_sets' plan and create), back-dated when ``created_at``."""
    client = ec2(lab)
    instance = snapshot_sets.describe_instance(client, lab.instance(host)["instance_id"])
    now = datetime.datetime.now(UTC)
    specification, dummy, tags = snapshot_sets.plan_snapshot_set(
        instance, {"volumes": "data"}, {}, set_id=set_id, engine="crash", consistency=consistency, created_at=now,
        version=COLLECTION_VERSION, policy=policy)
    created, dummy = snapshot_sets.create_snapshot_set(client, client, specification, "lab set", tags, set_id)
    if created_at:
        lab.backdate_set(set_id, created_at.isoformat())
    return sorted(snapshot["SnapshotId"] for snapshot in created)


def register_image_using(lab, snapshot_id):
    """An AMI of this account whose root mapping is the snapshot (EC2 then refuses to delete it); its id."""
    return ec2(lab).register_image(Name="from-set", RootDeviceName="/dev/sda1", BlockDeviceMappings=[
        {"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": snapshot_id}}])["ImageId"]


def found_set(lab, set_id):
    return snapshot_sets.find_existing_set(ec2(lab), set_id)


def present(lab, snapshot_ids):
    """Which of these snapshots moto still holds (read directly, not through the proxy)."""
    listed = lab.ec2().describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "snapshot-id", "Values": list(snapshot_ids)}])
    return sorted(snapshot["SnapshotId"] for snapshot in listed["Snapshots"])


class ModuleFailed(Exception):
    def __init__(self, result):
        super().__init__(result.get("msg"))
        self.result = result


class Module:
    """Stands in for amazon.aws's AnsibleAWSModule: the task's params and check mode, warnings, and clients of the lab
    as AnsibleAWSModule.client builds them (a ``retry_decorator`` wraps the client as amazon.aws does)."""

    def __init__(self, lab, params, check_mode=False):
        self.lab = lab
        self.params = params
        self.check_mode = check_mode
        self.warnings = []

    def client(self, service, retry_decorator=None, config=None):
        client = boto3.client(service, region_name=self.lab.state["region"], endpoint_url=self.lab.state["aws_endpoint_url"],
                              aws_access_key_id=LAB_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=LAB_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                              config=botocore.config.Config(**config) if config else None)
        return RetryingBotoClientWrapper(client, retry_decorator) if retry_decorator else client

    def warn(self, message):
        self.warnings.append(message)

    def fail_json(self, **result):
        raise ModuleFailed(result)
