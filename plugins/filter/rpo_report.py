# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: rpo_report
short_description: Judge EC2 instances against a recovery point objective from their snapshot sets
version_added: 0.1.0
description:
  - Turns the snapshot sets of M(shadowsnap.ec2.ec2_snapshot_set_info) and a list of instances (the inventory's hosts
    and, optionally, the instances C(amazon.aws.ec2_instance_info) lists) into one report row per instance - the age
    of its last good set, the newest set whatever it is, whether the instance is inside the RPO and why - and a
    timeline of its sets.
  - A set is good only when it is V(application)-consistent and V(completed) and has a creation time. V(crash),
    V(unverified), V(pending), V(incomplete) and V(error) sets never count; each set says why in its C(note).
  - An instance is inside the RPO when its last good set is at most O(rpo_hours) old. An instance without any set, an
    instance without a good set and an inventory host without an instance id are outside, and their rows say so.
  - The playbook C(shadowsnap.ec2.rpo_report) writes the result as JSON and as an HTML page.
options:
  _input:
    description: The sets, as RV(shadowsnap.ec2.ec2_snapshot_set_info#module:sets) returns them.
    type: list
    elements: dict
    required: true
  inventory:
    description:
      - Inventory host name to the EC2 instance id of that host; an empty id is reported as an instance that cannot
        be judged.
    type: dict
    default: {}
  ec2_instances:
    description:
      - Instances as C(amazon.aws.ec2_instance_info) returns them; only Windows instances (C(platform) V(windows)) are
        judged, the others are listed in RV(_value.ignored).
    type: list
    elements: dict
    default: []
  rpo_hours:
    description: The recovery point objective, in hours; a positive number.
    type: float
    default: 24
  timeline_days:
    description:
      - How far back the timeline reaches, in days; at least twice the RPO is always shown.
    type: float
    default: 7
  now:
    description:
      - The time the ages are measured from, as an ISO 8601 string; the current time when not given.
    type: str
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: Read the sets of two instances
  shadowsnap.ec2.ec2_snapshot_set_info:
    instance_ids: [i-0123456789abcdef0, i-0fedcba9876543210]
  register: found

- name: Judge them against a 24 hour RPO
  ansible.builtin.set_fact:
    rpo: >-
      {{ found.sets | shadowsnap.ec2.rpo_report(inventory={'sql-01': 'i-0123456789abcdef0',
                                                           'web-01': 'i-0fedcba9876543210'},
                                                rpo_hours=24) }}

- name: Fail when one of them is out of its RPO
  ansible.builtin.assert:
    that: rpo.counts.out_of_rpo == 0
    fail_msg: "{{ rpo.instances | rejectattr('in_rpo') | map(attribute='reason') | list }}"
"""

RETURN = r"""
_value:
  description: The report.
  type: dict
  contains:
    rpo_hours:
      description: The RPO the instances were judged against, in hours.
      type: float
    generated_at:
      description: The time the ages are measured from (UTC, ISO 8601).
      type: str
    counts:
      description: C(instances), C(in_rpo) and C(out_of_rpo).
      type: dict
    instances:
      description:
        - One row per instance, the stalest first (no good set, then the oldest last good set).
        - Each row has C(instance_id), C(hosts) (inventory names), C(name) (the EC2 C(Name) tag), C(label),
          C(sources) (V(inventory), V(ec2)), C(in_rpo), C(verdict) (V(in_rpo) or V(out_of_rpo)), C(reason),
          C(last_good) and C(newest) (a set or null), C(last_good_off_scale) (the last good set is older than the
          timeline), C(kinds) (the number of sets of each kind) and C(sets).
        - Each set has C(set_id), C(created_at), C(age_seconds), C(age_text), C(kind) (V(application), V(crash),
          V(unverified), V(pending) or V(incomplete)), C(consistency), C(status), C(engine), C(policy),
          C(fallback_from), C(good), C(note) and C(position) (percent along the timeline from its start, null when the
          set is older than the timeline or has no creation time).
      type: list
      elements: dict
    ignored:
      description: Instances EC2 listed that are not judged, each with C(instance_id) and C(reason).
      type: list
      elements: dict
    timeline:
      description:
        - The timeline's C(hours), C(start) and C(end) (ISO 8601), C(rpo_position) (percent where the RPO boundary is)
          and C(ticks) (C(label), C(position)).
      type: dict
"""

import datetime
import math

from ansible.errors import AnsibleFilterError
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags

# How a set shows on the timeline: its status first (a set that is not complete cannot be restored as a whole),
# then its consistency.
KINDS = ("application", "crash", "unverified", "pending", "incomplete")
# Ages the timeline may label, in hours, and how far apart (percent of its width) two labels must be.
TICK_HOURS = (1, 3, 6, 12, 24, 48, 72, 96, 168, 336, 720, 1440, 2160, 4320, 8760)
TICK_SPACING = 7.0
# The timeline's scale grows with the logarithm of the age, in units of this part of the RPO: the last RPO period
# takes about half the width, so the sets of the last hours stand apart, and older ones still show.
SCALE_UNITS_PER_RPO = 8.0


def _moment(value):
    """``now`` as an aware UTC datetime; None means the current time."""
    if value is None or value == "":
        return datetime.datetime.now(datetime.timezone.utc)
    if isinstance(value, datetime.datetime):
        moment = value
    else:
        try:
            moment = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise AnsibleFilterError("rpo_report: now must be an ISO 8601 time, not %r" % (value,)) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def _positive(name, value):
    if isinstance(value, bool):
        raise AnsibleFilterError("rpo_report: %s must be a positive number, not %r" % (name, value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError("rpo_report: %s must be a positive number, not %r" % (name, value)) from None
    if not math.isfinite(number) or number <= 0:
        raise AnsibleFilterError("rpo_report: %s must be a positive number, not %r" % (name, value))
    return number


def _iso(moment):
    return moment.strftime(snapshot_tags.CREATED_AT_FORMAT)


def age_text(seconds):
    """An age a person reads at once: minutes below an hour, hours below two days, then days and hours."""
    seconds = max(0, int(seconds))
    if seconds < 3600:
        return "%d min" % (seconds // 60)
    if seconds < 48 * 3600:
        return "%.1f h" % (seconds / 3600.0)
    days, rest = divmod(seconds, 86400)
    return "%d d %d h" % (days, rest // 3600)


def classify(found):
    """(kind, good, note) of one set: good only when application-consistent and completed."""
    status = found.get("status")
    consistency = found.get("consistency")
    if status == "error":
        return "incomplete", False, "a snapshot of the set failed (error): it cannot be restored and does not count"
    if status == "incomplete":
        missing = ", ".join(found.get("missing_volume_ids") or ()) or "a member volume"
        return "incomplete", False, "incomplete, no snapshot of %s: it cannot be restored whole and does not count" % missing
    if status != "completed":
        return "pending", False, "%s, snapshots still pending: it does not count until all are completed" % consistency
    if consistency == "application":
        return "application", True, "application-consistent and complete"
    if consistency == "crash":
        fallback = found.get("fallback_from")
        cause = " (a fallback: the %s engine failed)" % fallback if fallback else ""
        return "crash", False, "crash-consistent only%s: it does not count" % cause
    return "unverified", False, "unverified, its consistency was never proven: it does not count"


def _span(hours):
    """A span of hours as people say it: hours up to two days, days beyond."""
    return "%g h" % hours if hours <= 48 else "%g d" % round(hours / 24.0, 1)


class Timeline:
    """Where an age lies along the timeline, in percent of its width from the oldest end (the left)."""

    def __init__(self, window_hours, rpo_hours):
        self.window_seconds = window_hours * 3600.0
        self.unit_seconds = rpo_hours * 3600.0 / SCALE_UNITS_PER_RPO
        self.rpo_seconds = rpo_hours * 3600.0

    def position(self, age_seconds):
        """None when the age is beyond the window; a set from the future (a skewed clock) is at ``now``."""
        if age_seconds is None or age_seconds > self.window_seconds:
            return None
        scaled = math.log1p(max(age_seconds, 0) / self.unit_seconds) / math.log1p(self.window_seconds / self.unit_seconds)
        return round(100.0 * (1.0 - scaled), 2)

    def ticks(self):
        """Labels for ``now``, the RPO boundary and the window's start, and for round ages between them that keep
        TICK_SPACING from every other label; oldest first."""
        window_hours = self.window_seconds / 3600.0
        ticks = [(0.0, True), (self.rpo_seconds / 3600.0, True), (window_hours, True)]
        for hours in TICK_HOURS:
            position = self.position(hours * 3600.0)
            if position is not None and all(abs(position - self.position(kept * 3600.0)) >= TICK_SPACING
                                            for kept, _fixed in ticks):
                ticks.append((hours, False))
        return [{"label": "-" + _span(hours) if hours else "now", "position": self.position(hours * 3600.0),
                 "rpo": hours * 3600.0 == self.rpo_seconds}
                for hours, _fixed in sorted(ticks, reverse=True)]


def _set_entry(found, now, timeline):
    kind, good, note = classify(found)
    created = snapshot_tags.parse_created_at(found.get("created_at"))
    if created is None:
        age, good, note = None, False, "no creation time (created-at tag): its age is unknown and it does not count"
    else:
        age = int((now - created).total_seconds())
    return {
        "set_id": found.get("set_id"),
        "created_at": found.get("created_at"),
        "age_seconds": age,
        "age_text": age_text(age) if age is not None else "unknown",
        "kind": kind,
        "consistency": found.get("consistency"),
        "status": found.get("status"),
        "engine": found.get("engine"),
        "policy": found.get("policy"),
        "fallback_from": found.get("fallback_from"),
        "good": good,
        "note": note,
        "position": timeline.position(age),
    }


def _new_row(instance_id):
    return {"instance_id": instance_id, "hosts": [], "name": "", "sources": []}


def _rows_of(inventory, ec2_instances):
    """Rows keyed by instance id (or by host for hosts without one) and the EC2 instances left out."""
    rows = {}
    ignored = []
    if not isinstance(inventory, dict):
        raise AnsibleFilterError("rpo_report: inventory must be a mapping of host name to instance id")
    for host, instance_id in inventory.items():
        instance_id = (instance_id or "").strip()
        row = rows.setdefault(instance_id or "host:" + host, _new_row(instance_id))
        row["hosts"].append(host)
        if "inventory" not in row["sources"]:
            row["sources"].append("inventory")
    for instance in ec2_instances or ():
        instance_id = instance.get("instance_id") or ""
        platform = (instance.get("platform") or "").lower()
        if not instance_id:
            continue
        if platform != "windows" and instance_id not in rows:
            ignored.append({"instance_id": instance_id,
                            "reason": "not a Windows instance (platform %s)" % (platform or "Linux/UNIX")})
            continue
        row = rows.setdefault(instance_id, _new_row(instance_id))
        row["name"] = (instance.get("tags") or {}).get("Name", row["name"])
        if "ec2" not in row["sources"]:
            row["sources"].append("ec2")
    return rows, ignored


def _summary(entry):
    keys = ("set_id", "created_at", "age_seconds", "age_text", "kind", "consistency", "status", "engine", "note")
    return dict((key, entry[key]) for key in keys) if entry else None


def _judge(row, entries, rpo_seconds, rpo_hours):
    """The row's verdict and the reason a person reads first."""
    dated = [entry for entry in entries if entry["age_seconds"] is not None]
    good = [entry for entry in dated if entry["good"]]
    newest = min(dated, key=lambda entry: entry["age_seconds"]) if dated else (entries[0] if entries else None)
    last_good = min(good, key=lambda entry: entry["age_seconds"]) if good else None
    row["newest"] = _summary(newest)
    row["last_good"] = _summary(last_good)
    row["in_rpo"] = bool(last_good and last_good["age_seconds"] <= rpo_seconds)
    row["verdict"] = "in_rpo" if row["in_rpo"] else "out_of_rpo"
    if not row["instance_id"]:
        row["reason"] = ("the inventory gives no EC2 instance id for %s (set ec2_instance_id): it cannot be judged"
                         % ", ".join(row["hosts"]))
    elif not entries:
        row["reason"] = "no snapshot set at all"
    elif last_good is None:
        row["reason"] = "no good set (complete and application-consistent); the newest is %s %s ago: %s" % (
            newest["kind"], newest["age_text"], newest["note"])
    else:
        limit = "within" if row["in_rpo"] else "older than"
        row["reason"] = "last good set %s old, %s the RPO of %s" % (last_good["age_text"], limit, _span(rpo_hours))
        if newest is not last_good:
            row["reason"] += "; newer sets do not count (newest: %s %s ago)" % (newest["kind"], newest["age_text"])


def rpo_report(sets, inventory=None, ec2_instances=None, rpo_hours=24, timeline_days=7, now=None):
    """The RPO report of the instances from their sets; see DOCUMENTATION."""
    rpo_hours = _positive("rpo_hours", rpo_hours)
    window_hours = max(_positive("timeline_days", timeline_days) * 24.0, 2.0 * rpo_hours)
    now = _moment(now)
    if not isinstance(sets, list) or not all(isinstance(found, dict) for found in sets):
        raise AnsibleFilterError("rpo_report: the input must be the list of sets ec2_snapshot_set_info returns")
    rows, ignored = _rows_of(inventory or {}, ec2_instances)
    by_instance = {}
    for found in sets:
        by_instance.setdefault(found.get("instance_id"), []).append(found)
    rpo_seconds = rpo_hours * 3600.0
    timeline = Timeline(window_hours, rpo_hours)
    for row in rows.values():
        found = by_instance.get(row["instance_id"], []) if row["instance_id"] else []
        entries = [_set_entry(one, now, timeline) for one in found]
        entries.sort(key=lambda entry: (entry["age_seconds"] is None, entry["age_seconds"] or 0))
        _judge(row, entries, rpo_seconds, rpo_hours)
        row["label"] = ", ".join(row["hosts"]) or row["name"] or row["instance_id"]
        row["last_good_off_scale"] = bool(row["last_good"] and timeline.position(row["last_good"]["age_seconds"]) is None)
        row["kinds"] = dict((kind, sum(1 for entry in entries if entry["kind"] == kind)) for kind in KINDS)
        row["sets"] = entries
    ordered = sorted(rows.values(), key=lambda row: (
        -(row["last_good"]["age_seconds"] if row["last_good"] else math.inf), row["label"]))
    in_rpo = sum(1 for row in ordered if row["in_rpo"])
    return {
        "rpo_hours": rpo_hours,
        "generated_at": _iso(now),
        "counts": {"instances": len(ordered), "in_rpo": in_rpo, "out_of_rpo": len(ordered) - in_rpo},
        "instances": ordered,
        "ignored": ignored,
        "timeline": {
            "hours": window_hours,
            "start": _iso(now - datetime.timedelta(hours=window_hours)),
            "end": _iso(now),
            "rpo_position": timeline.position(rpo_seconds),
            "ticks": timeline.ticks(),
        },
    }


class FilterModule:
    """The collection's filters."""

    def filters(self):
        return {"rpo_report": rpo_report}
