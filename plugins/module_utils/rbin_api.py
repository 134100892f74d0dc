# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Recycle Bin (``rbin``) calls the collection makes, and which rules cover the collection's snapshots.

A tag-level rule retains deleted snapshots that carry at least one of its tag key and value pairs; a Region-level rule
(no resource tags) retains every deleted snapshot but those with one of its exclusion tags. The collection's own
rule is tag-level on the schema tag, which every snapshot of a set carries from its creation. Failures come out as
amazon.aws's ``AnsibleAWSError``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import READ_RETRY
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import THROTTLING_RETRY

SNAPSHOT_RULES = "EBS_SNAPSHOT"
SCHEMA_TAG = {"ResourceTagKey": snapshot_tags.KEY_SCHEMA, "ResourceTagValue": snapshot_tags.SCHEMA_VERSION}


class RuleErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("ResourceNotFoundException")


@RuleErrorHandler.list_error_handler("list the Recycle Bin rules", [])
@READ_RETRY
def _rule_summaries(client):
    return client.get_paginator("list_rules").paginate(ResourceType=SNAPSHOT_RULES).build_full_result()["Rules"]


@RuleErrorHandler.list_error_handler("read a Recycle Bin rule", None)
@READ_RETRY
def _rule(client, identifier):
    return client.get_rule(Identifier=identifier)


def snapshot_rules(client):
    """Every snapshot retention rule of the Region, in full (ListRules gives summaries; GetRule each). A rule deleted
    between the two calls is left out, not taken for the absence of every rule."""
    rules = (_rule(client, summary["Identifier"]) for summary in _rule_summaries(client))
    return [rule for rule in rules if rule]


@RuleErrorHandler.common_error_handler("create the Recycle Bin rule")
@THROTTLING_RETRY
def create_schema_rule(client, retention_days, description):
    """A tag-level rule that retains every deleted snapshot carrying the collection's schema tag."""
    return client.create_rule(ResourceType=SNAPSHOT_RULES, Description=description, ResourceTags=[dict(SCHEMA_TAG)],
                              RetentionPeriod={"RetentionPeriodValue": retention_days, "RetentionPeriodUnit": "DAYS"})


def _carries(pairs, tags):
    return [pair for pair in pairs or () if pair["ResourceTagKey"] in tags
            and pair.get("ResourceTagValue") in (None, tags[pair["ResourceTagKey"]])]


def coverage(rule):
    """(covers every snapshot of the collection, why) of one rule."""
    schema = {snapshot_tags.KEY_SCHEMA: snapshot_tags.SCHEMA_VERSION}
    days = rule["RetentionPeriod"]["RetentionPeriodValue"]
    if rule.get("Status", "available") != "available":
        return False, "rule %s is %s, and only available rules retain" % (rule["Identifier"], rule.get("Status"))
    if rule.get("ResourceTags"):
        if _carries(rule["ResourceTags"], schema):
            return True, "tag-level rule %s retains snapshots tagged %s=%s for %d days" % (
                rule["Identifier"], snapshot_tags.KEY_SCHEMA, snapshot_tags.SCHEMA_VERSION, days)
        return False, "tag-level rule %s retains only snapshots with its own tags (%s)" % (
            rule["Identifier"], ", ".join("%s=%s" % (p["ResourceTagKey"], p.get("ResourceTagValue", "*"))
                                          for p in rule["ResourceTags"]))
    excluded = ", ".join("%s=%s" % (p["ResourceTagKey"], p.get("ResourceTagValue", "*"))
                         for p in rule.get("ExcludeResourceTags") or ())
    if excluded:
        return False, ("Region-level rule %s retains deleted snapshots for %d days except those tagged %s - which "
                       "may include sets with such a user tag" % (rule["Identifier"], days, excluded))
    return True, "Region-level rule %s retains every deleted snapshot for %d days" % (rule["Identifier"], days)
