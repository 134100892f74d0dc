"""The Recycle Bin against the lab: ec2_snapshot_recycle_bin_rule reports which rules cover the collection's snapshots
and creates the tag-level one; ec2_snapshot_set_undelete brings a deleted set back whole, or says what is missing."""

import pytest

from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_sets
from ansible_collections.shadowsnap.ec2.plugins.modules import ec2_snapshot_recycle_bin_rule as rule_module
from ansible_collections.shadowsnap.ec2.plugins.modules import ec2_snapshot_set_undelete as module
from unit.plugins.module_utils.lab_sets import (  # pylint: disable=unused-import
    Module, ModuleFailed, found_set, lab_fixture, lab_process_fixture, make_set, present)
from unit.plugins.modules.test_ec2_snapshot_set_tier import absent


def rule(lab, check_mode=False, **params):
    task = Module(lab, dict({"state": "reported", "retention_days": 30, "description": "sets"}, **params),
                  check_mode=check_mode)
    return rule_module.ensure_rule(task)


def undelete(lab, set_id, **params):
    task = Module(lab, dict({"set_id": set_id, "snapshot_ids": None, "wait": True, "wait_timeout": 30}, **params))
    return module.undelete(task)


def test_the_rule_report_and_the_collections_rule(lab):
    rbin = Module(lab, {}).client("rbin")
    assert rule(lab) == {"changed": False, "covered": False, "rules": [], "created_rule": None}
    rbin.create_rule(ResourceType="EBS_SNAPSHOT", RetentionPeriod={"RetentionPeriodValue": 3, "RetentionPeriodUnit": "DAYS"},
                     ExcludeResourceTags=[{"ResourceTagKey": "scratch"}])
    report = rule(lab)
    assert report["covered"] is False and "except those tagged scratch=*" in report["rules"][0]["why"]
    assert rule(lab, check_mode=True, state="present")["created_rule"]["identifier"] is None
    assert len(rbin.list_rules(ResourceType="EBS_SNAPSHOT")["Rules"]) == 1, "check mode creates nothing"
    created = rule(lab, state="present", retention_days=14)
    assert created["changed"] and created["covered"] and created["created_rule"]["retention_days"] == 14
    assert created["created_rule"]["why"].endswith("retains snapshots tagged shadowsnap:schema=1 for 14 days")
    assert rule(lab, state="present")["changed"] is False


def test_a_deleted_set_comes_back_whole_from_the_bin(lab):
    rule(lab, state="present")
    members = make_set(lab, "oops")
    before = found_set(lab, "oops")
    assert sorted(absent(lab, "oops")["deleted_snapshot_ids"]) == members and present(lab, members) == []
    with pytest.raises(snapshot_sets.SnapshotSetError, match="no snapshot in the bin has a description naming the set"):
        undelete(lab, "oops")
    lab.recycle_bin_settings(recover_seconds=1)
    result = undelete(lab, "oops", snapshot_ids=members)
    assert (result["changed"], result["status"], result["restored_snapshot_ids"]) == (True, "completed", members)
    after = found_set(lab, "oops")
    assert after["complete"] and after["volume_snapshot_map"] == before["volume_snapshot_map"]
    assert {m["state"] for m in after["snapshots"]} == {"completed"}, "waited until no member is recovering"
    assert [m["tags"] for m in after["snapshots"]] == [m["tags"] for m in before["snapshots"]]
    again = undelete(lab, "oops", snapshot_ids=members)
    assert again["changed"] is False and again["status"] == "completed"


def test_a_set_with_a_member_deleted_for_good_is_reported_incomplete(lab):
    members = make_set(lab, "lost")
    lab.ec2().delete_snapshot(SnapshotId=members[0])
    rule(lab, state="present")
    absent(lab, "lost")
    with pytest.raises(ModuleFailed) as raised:
        undelete(lab, "lost", snapshot_ids=members)
    assert raised.value.result["status"] == "incomplete" and "have no snapshot" in raised.value.result["msg"]
    assert raised.value.result["restored_snapshot_ids"] == members[1:] and present(lab, members) == members[1:]


class RuleDeletedMidListing(Module):
    """A task whose rbin client sees another tool delete a rule between ListRules and the first GetRule."""

    def __init__(self, lab, params, doomed):
        super().__init__(lab, params)
        self.doomed = doomed

    def client(self, service, retry_decorator=None, config=None):
        client = super().client(service, retry_decorator, config)
        if service == "rbin":
            raw = getattr(client, "client", client)
            raw.meta.events.register_first("before-call.rbin.GetRule", self._delete_once)
        return client

    def _delete_once(self, **_):
        if self.doomed:
            Module(self.lab, {}).client("rbin").delete_rule(Identifier=self.doomed.pop())


def test_a_rule_deleted_while_the_rules_are_read_is_left_out_not_taken_for_no_rules(lab):
    rbin = Module(lab, {}).client("rbin")
    days = {"RetentionPeriodValue": 3, "RetentionPeriodUnit": "DAYS"}
    doomed = rbin.create_rule(ResourceType="EBS_SNAPSHOT", RetentionPeriod=days, ResourceTags=[{"ResourceTagKey": "x"}])
    rule(lab, state="present")
    task = RuleDeletedMidListing(lab, {"state": "reported", "retention_days": 30, "description": "sets"},
                                 [doomed["Identifier"]])
    report = rule_module.ensure_rule(task)
    assert task.doomed == [], "the rule was deleted between ListRules and GetRule"
    assert report["covered"] is True and len(report["rules"]) == 1
    assert doomed["Identifier"] not in {r["identifier"] for r in report["rules"]}
