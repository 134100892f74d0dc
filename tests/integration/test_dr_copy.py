"""DR copies through real ansible-playbook runs of ec2_snapshot_set_copy against the lab: a second Region, a second
account (STS AssumeRole), copies pending for a while under a per-destination cap the lab counts.

What is proven on the lab's data, not assumed: the copies are complete sets in their destination, restored there by
ec2_snapshot_set_volumes from their tags alone, onto volumes that hold the source snapshots' images; the cap is never
exceeded and kept busy; a re-run copies nothing; a run stopped with members queued is finished by the next one with
no second copy of anything; a set encrypted with aws/ebs is refused before anything is shared; and the destination's
own retention policy acts on the copies there and nowhere else.
"""

import boto3
import pytest

from lab.control import LAB_CREDENTIALS
from test_restore_volumes import assert_holds_snapshot_image, crash_set, run_module

pytestmark = pytest.mark.integration

SOURCE_REGION = "us-east-1"
DR_REGION = "us-west-2"
VAULT_ACCOUNT = "222222222222"
VAULT_ROLE = "arn:aws:iam::%s:role/shadowsnap-dr" % VAULT_ACCOUNT
HOSTS = ("win-sql-01", "win-web-01", "win-xen-01")
CAP = 3


def aws(lab, service, region=SOURCE_REGION, credentials=None):
    keys = credentials or {"aws_access_key_id": LAB_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                           "aws_secret_access_key": LAB_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
    return boto3.client(service, region_name=region, endpoint_url=lab.state["aws_endpoint_url"], **keys)


def vault_credentials(lab):
    answer = aws(lab, "sts").assume_role(RoleArn=VAULT_ROLE, RoleSessionName="dr-test")["Credentials"]
    return {"aws_access_key_id": answer["AccessKeyId"], "aws_secret_access_key": answer["SecretAccessKey"],
            "aws_session_token": answer["SessionToken"]}


def module_credentials(credentials):
    return {"access_key": credentials["aws_access_key_id"], "secret_key": credentials["aws_secret_access_key"],
            "session_token": credentials["aws_session_token"]}


def copy_sets(lab, ansible_playbook, set_ids, check=False, expect_failure=False, **args):
    arguments = dict(set_ids=list(set_ids), destination_region=DR_REGION, poll_interval=0.2,
                     max_concurrent_copies=CAP)
    arguments.update(args)
    return run_module("ec2_snapshot_set_copy", lab, ansible_playbook, check=check, expect_failure=expect_failure,
                      **arguments)


def snapshots_of(ec2, set_id):
    return ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag:shadowsnap:set-id", "Values": [set_id]}])[
        "Snapshots"]


def tags(item):
    return {tag["Key"]: tag["Value"] for tag in item.get("Tags", [])}


@pytest.fixture(name="sets")
def sets_fixture(lab, ansible_playbook):
    """One crash set of each lab host (6 members in all); copies stay pending 1.5 s, the cap is 3 per destination."""
    lab.ebs(per_volume_interval=0)
    lab.copy_settings(copy_seconds=1.5, max_concurrent_copies=CAP)
    made = {}
    for host in HOSTS:
        result = crash_set(lab, ansible_playbook, "dr-%s" % host, host=host, policy="nightly")
        made[result["set_id"]] = result
    return made


def test_sets_copied_to_another_region_and_account_are_complete_sets_there_restored_from_their_tags_alone(
        lab, ansible_playbook, sets):
    """Second Region in this account, then the same sets to the vault account (shared, copied as its role, with its
    own key); both runs keep at most CAP copies in flight, and the restore in the vault Region needs only the set id."""
    set_ids = sorted(sets)
    members = sum(len(found["snapshots"]) for found in sets.values())
    run, result = copy_sets(lab, ansible_playbook, set_ids, policy="dr-west")
    assert run.rc == 0, run.stdout
    assert result["changed"] and result["copies_started"] == members
    assert [found["status"] for found in result["sets"]] == ["copied"] * len(set_ids)
    assert result["max_in_flight"] == CAP and result["capacity_refusals"] == 0
    assert lab.copies()["max_in_flight"] == {"123456789012/%s" % DR_REGION: CAP}

    key = aws(lab, "kms").create_key(Description="backups")["KeyMetadata"]["Arn"]
    for set_id in set_ids:
        lab.encrypt_set(set_id, key, region=SOURCE_REGION)
    vault = vault_credentials(lab)
    vault_key = aws(lab, "kms", DR_REGION, vault).create_key(Description="vault")["KeyMetadata"]
    run, result = copy_sets(lab, ansible_playbook, set_ids, destination_role_arn=VAULT_ROLE, kms_key_id=vault_key["Arn"],
                            policy="vault")
    assert run.rc == 0, run.stdout
    assert (result["destination_account"], result["source_account"]) == (VAULT_ACCOUNT, "123456789012")
    assert result["copies_started"] == members and result["max_in_flight"] == CAP
    assert sorted(result["shared_snapshot_ids"]) == sorted(result["unshared_snapshot_ids"])
    seen = lab.copies()["max_in_flight"]
    assert seen["%s/%s" % (VAULT_ACCOUNT, DR_REGION)] == CAP, seen

    vault_ec2 = aws(lab, "ec2", DR_REGION, vault)
    for set_id, source in sets.items():
        copies = snapshots_of(vault_ec2, set_id)
        assert len(copies) == len(source["snapshots"])
        assert {c["KmsKeyId"] for c in copies} == {vault_key["Arn"]}
        assert {tags(c)["shadowsnap:policy"] for c in copies} == {"vault"}
        assert {tags(c)["shadowsnap:copy:source-region"] for c in copies} == {SOURCE_REGION}
        permissions = aws(lab, "ec2").describe_snapshot_attribute(
            SnapshotId=source["snapshots"][0]["snapshot_id"], Attribute="createVolumePermission")
        assert permissions["CreateVolumePermissions"] == []

    run, again = copy_sets(lab, ansible_playbook, set_ids, destination_role_arn=VAULT_ROLE, kms_key_id=vault_key["Arn"],
                           policy="vault")
    assert run.rc == 0, run.stdout
    assert (again["changed"], again["copies_started"], again["shared_snapshot_ids"], again["unshared_snapshot_ids"]) == (
        False, 0, [], [])

    credentials = module_credentials(vault)
    run, info = run_module("ec2_snapshot_set_info", lab, ansible_playbook, region=DR_REGION, set_ids=set_ids,
                           **credentials)
    assert run.rc == 0, run.stdout
    assert sorted((s["set_id"], s["status"], s["volume_count"]) for s in info["sets"]) == [
        (set_id, "completed", len(sets[set_id]["snapshots"])) for set_id in set_ids]

    sql = "dr-win-sql-01"
    run, restored = run_module("ec2_snapshot_set_volumes", lab, ansible_playbook, region=DR_REGION, set_id=sql,
                               availability_zone=DR_REGION + "a", **credentials)
    assert run.rc == 0, run.stdout
    by_source = dict((m["volume_id"], m["snapshot_id"]) for m in sets[sql]["snapshots"])
    assert sorted(v["source_volume_id"] for v in restored["volumes"]) == sorted(by_source)
    for volume in restored["volumes"]:
        assert_holds_snapshot_image(lab, volume["volume_id"], by_source[volume["source_volume_id"]])


def test_a_rerun_copies_nothing_and_check_mode_plans_without_copying(lab, ansible_playbook, sets):
    set_ids = sorted(sets)
    run, planned = copy_sets(lab, ansible_playbook, set_ids, check=True)
    assert run.rc == 0, run.stdout
    assert {m["action"] for s in planned["sets"] for m in s["members"]} == {"copy"}
    assert lab.copies()["copies"] == []
    run, first = copy_sets(lab, ansible_playbook, set_ids)
    assert run.rc == 0 and first["changed"], run.stdout
    run, again = copy_sets(lab, ansible_playbook, set_ids)
    assert run.rc == 0, run.stdout
    assert (again["changed"], again["copies_started"]) == (False, 0)
    assert {s["status"] for s in again["sets"]} == {"present"}
    assert len(lab.copies()["copies"]) == first["copies_started"]


def test_a_run_stopped_with_members_queued_is_finished_by_the_next_without_a_second_copy(lab, ansible_playbook, sets):
    set_ids = sorted(sets)
    members = sum(len(found["snapshots"]) for found in sets.values())
    run, started = copy_sets(lab, ansible_playbook, set_ids, wait=False)
    assert run.rc == 0, run.stdout
    actions = [m["action"] for s in started["sets"] for m in s["members"]]
    assert actions.count("copied") == CAP and actions.count("queued") == members - CAP
    run, finished = copy_sets(lab, ansible_playbook, set_ids)
    assert run.rc == 0, run.stdout
    assert finished["copies_started"] == members - CAP
    assert {s["status"] for s in finished["sets"]} <= {"copied", "present"}
    copies = lab.copies()["copies"]
    assert len(copies) == members and len({c["source_snapshot_id"] for c in copies}) == members
    assert lab.copies()["max_in_flight"] == {"123456789012/%s" % DR_REGION: CAP}


def test_a_set_encrypted_with_aws_ebs_is_refused_for_another_account_before_anything_is_shared(
        lab, ansible_playbook, sets):
    set_id = "dr-win-sql-01"
    run, result = copy_sets(lab, ansible_playbook, [set_id], destination_role_arn=VAULT_ROLE, expect_failure=True)
    assert result["failed"]
    assert "AWS managed key aws/ebs" in result["msg"] and "customer managed" in result["msg"], result["msg"]
    assert lab.copies()["copies"] == []
    for member in sets[set_id]["snapshots"]:
        permissions = aws(lab, "ec2").describe_snapshot_attribute(
            SnapshotId=member["snapshot_id"], Attribute="createVolumePermission")
        assert permissions["CreateVolumePermissions"] == []


def test_the_destination_retention_policy_acts_on_the_copies_there_and_nowhere_else(lab, ansible_playbook):
    """Two sets of one host copied to the vault with policy ``vault``; the vault's keep_last 1 deletes the older copy
    set in the vault, and the source Region keeps both sets."""
    lab.ebs(per_volume_interval=0)
    lab.copy_settings(copy_seconds=0.2, max_concurrent_copies=CAP)
    older = crash_set(lab, ansible_playbook, "dr-old", host="win-web-01", policy="nightly")
    lab.backdate_set("dr-old", "2026-01-01T01:00:00+00:00")
    newer = crash_set(lab, ansible_playbook, "dr-new", host="win-web-01", policy="nightly")
    key = aws(lab, "kms").create_key(Description="backups")["KeyMetadata"]["Arn"]
    for set_id in ("dr-old", "dr-new"):
        lab.encrypt_set(set_id, key, region=SOURCE_REGION)
    run, dummy = copy_sets(lab, ansible_playbook, ["dr-old", "dr-new"], destination_role_arn=VAULT_ROLE, policy="vault")
    assert run.rc == 0, run.stdout
    vault = vault_credentials(lab)
    run, retention = run_module("ec2_snapshot_set_retention", lab, ansible_playbook, region=DR_REGION, policy="vault",
                                keep_last=1, **module_credentials(vault))
    assert run.rc == 0, run.stdout
    assert [s["set_id"] for s in retention["deleted_sets"]] == ["dr-old"]
    vault_ec2 = aws(lab, "ec2", DR_REGION, vault)
    assert snapshots_of(vault_ec2, "dr-old") == [] and len(snapshots_of(vault_ec2, "dr-new")) == 1
    source = aws(lab, "ec2")
    assert len(snapshots_of(source, "dr-old")) == len(older["snapshots"])
    assert len(snapshots_of(source, "dr-new")) == len(newer["snapshots"])
