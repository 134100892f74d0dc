# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Which snapshot sets a retention policy keeps: restic's ``forget`` rules, as one pure function.

Operators already know restic's keep rules, so the planner follows them exactly (docs/retention.md): sets newest
first; each ``keep_<period>`` rule keeps the newest set of each of its periods that has sets, until its count is
used up; one set fills its period in every rule it matches; the oldest set is kept while a rule still has slots;
``keep_within*`` durations count back from the newest set not in the future, in calendar years, months and days
(normalised like Go's ``AddDate``) and hours. Nothing here knows about EC2; the safety rules around a plan live in
set_retention.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import datetime
import re
import zoneinfo

UNLIMITED = -1
DEFAULT_TIME_ZONE = "UTC"

Duration = collections.namedtuple("Duration", ["years", "months", "days", "hours"])

# (policy key, reason, period of a moment in the policy's time zone); "last" gives every set a period of its own.
_COUNT_RULES = (
    ("keep_last", "last snapshot", None),
    ("keep_hourly", "hourly snapshot", lambda moment: (moment.year, moment.month, moment.day, moment.hour)),
    ("keep_daily", "daily snapshot", lambda moment: (moment.year, moment.month, moment.day)),
    ("keep_weekly", "weekly snapshot", lambda moment: tuple(moment.isocalendar())[:2]),
    ("keep_monthly", "monthly snapshot", lambda moment: (moment.year, moment.month)),
    ("keep_yearly", "yearly snapshot", lambda moment: (moment.year,)),
)
_WITHIN_RULES = tuple(
    ("keep_within_" + key[len("keep_"):], reason.replace(" snapshot", " within"), period)
    for key, reason, period in _COUNT_RULES[1:]
)
POLICY_KEYS = tuple(rule[0] for rule in _COUNT_RULES) + ("keep_within",) + tuple(rule[0] for rule in _WITHIN_RULES)

_DURATION_PART = re.compile(r"([0-9]+)([ymdh])")
_DURATION_UNITS = {"y": "years", "m": "months", "d": "days", "h": "hours"}


class RetentionPolicyError(ValueError):
    """A policy or a set list that cannot be planned; the message says what to change."""


def parse_duration(text):
    """A ``keep_within*`` duration such as ``1y2m3d4h`` (units in any order, each at most once, no sign)."""
    if text is not None and not isinstance(text, str):
        raise RetentionPolicyError("duration %r is not a text such as 1y2m3d4h" % (text,))
    text = (text or "").strip()
    parts = {}
    position = 0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if not match:
            raise RetentionPolicyError(
                "duration %r is not of the form 1y2m3d4h (whole numbers of years y, months m, days d and hours h; "
                "a week is 7d)" % text
            )
        unit = _DURATION_UNITS[match.group(2)]
        if unit in parts:
            raise RetentionPolicyError("duration %r gives the %s twice" % (text, unit))
        parts[unit] = int(match.group(1))
        position = match.end()
    return Duration(**dict((unit, parts.get(unit, 0)) for unit in Duration._fields))


def format_duration(duration):
    """restic's spelling of a duration (``1y2m3d4h``, zero parts left out), as its reasons show it."""
    return "".join("%d%s" % (value, unit) for value, unit in zip(duration, "ymdh") if value)


def _parse_count(key, value):
    if value is None:
        return 0
    if value == "unlimited":
        return UNLIMITED
    if isinstance(value, bool) or not isinstance(value, int):
        raise RetentionPolicyError("%s must be a whole number, -1 or 'unlimited', not %r" % (key, value))
    if value < UNLIMITED:
        raise RetentionPolicyError("%s must not be negative (use -1 or 'unlimited' to keep all), not %d" % (key, value))
    return value


def _time_zone(name):
    if isinstance(name, datetime.tzinfo):
        return name
    if name in (None, "", DEFAULT_TIME_ZONE):
        return datetime.timezone.utc
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, TypeError, ValueError):
        raise RetentionPolicyError("time zone %r is not an IANA time zone name such as Europe/Berlin" % name)


def normalise_policy(policy):
    """The policy with every count and duration checked; raises RetentionPolicyError for one that keeps nothing."""
    unknown = sorted(set(policy or {}) - set(POLICY_KEYS) - {"time_zone"})
    if unknown:
        raise RetentionPolicyError(
            "unknown retention policy keys: %s (known: %s, time_zone)" % (", ".join(unknown), ", ".join(POLICY_KEYS))
        )
    policy = policy or {}
    normalised = {"time_zone": _time_zone(policy.get("time_zone"))}
    for key in POLICY_KEYS:
        value = policy.get(key)
        if key.startswith("keep_within"):
            normalised[key] = value if isinstance(value, Duration) else parse_duration(value)
        else:
            normalised[key] = _parse_count(key, value)
    if not any(any(normalised[key]) if key.startswith("keep_within") else normalised[key] for key in POLICY_KEYS):
        raise RetentionPolicyError(
            "the retention policy keeps nothing (every keep_* is 0 or empty); refusing to plan the deletion of every "
            "set. Give at least one of %s." % ", ".join(POLICY_KEYS)
        )
    return normalised


def _go_add_date(moment, years, months, days):
    """``moment`` moved by calendar years, months and days on its wall clock, normalised like Go's AddDate
    (31 March minus one month is 3 March, or 2 March in a leap year); None when that is before year 1."""
    month_index = moment.year * 12 + moment.month - 1 + years * 12 + months
    year, month = divmod(month_index, 12)
    if year < 1:
        return None
    try:
        day = datetime.date(year, month + 1, 1).toordinal() + moment.day - 1 + days
        date = datetime.date.fromordinal(day)
    except (ValueError, OverflowError):
        return None
    return moment.replace(year=date.year, month=date.month, day=date.day, fold=0)


def _within_cutoff(latest, duration, time_zone):
    """The moment sets must be strictly newer than to be within ``duration`` of ``latest`` (None: all are)."""
    if latest is None:
        return None
    wall = _go_add_date(latest.astimezone(time_zone), -duration.years, -duration.months, -duration.days)
    if wall is None:
        return None
    try:
        return wall.astimezone(datetime.timezone.utc) - datetime.timedelta(hours=duration.hours)
    except OverflowError:
        return None


def _checked_sets(sets):
    seen = set()
    for entry in sets:
        set_id = entry["set_id"]
        created_at = entry["created_at"]
        if not isinstance(created_at, datetime.datetime) or created_at.utcoffset() is None:
            raise RetentionPolicyError("set %s has no time-zone-aware created_at datetime (got %r)" % (set_id, created_at))
        if set_id in seen:
            raise RetentionPolicyError("set %s is listed twice" % set_id)
        seen.add(set_id)
    return sets


class _PeriodRule:
    """One keep_<period> or keep_within_<period> rule while a plan runs: the last period it kept a set of."""

    def __init__(self, reason, period, remaining=UNLIMITED, cutoff=None, duration=None):
        self.reason = reason
        self.period = period
        self.remaining = remaining
        self.cutoff = cutoff
        self.suffix = " " + format_duration(duration) if duration else ""
        self.last = None

    def applies(self, moment):
        return self.remaining != 0 and (self.cutoff is None or moment > self.cutoff)

    def keeps(self, number, local, oldest):
        """The reason this rule keeps the set (and takes its period), or None."""
        value = number if self.period is None else self.period(local)
        if value == self.last and not oldest:
            return None
        reason = ("oldest " if value == self.last else "") + self.reason + self.suffix
        self.last = value
        if self.remaining > 0:
            self.remaining -= 1
        return reason


def plan_retention(sets, policy, now=None):
    """Which of ``sets`` (mappings with ``set_id`` and an aware ``created_at``) ``policy`` keeps, restic's way.

    Returns ``{"keep": [{"set_id", "created_at", "reasons"}], "delete": [{"set_id", "created_at"}]}``, both newest
    first (sets created at the same moment stay in the order given). ``now`` (default: the current time) only
    decides which sets are in the future: they are not the newest set that durations count back from.
    """
    rules = normalise_policy(policy)
    time_zone = rules["time_zone"]
    now = now or datetime.datetime.now(datetime.timezone.utc)
    ordered = sorted(_checked_sets(list(sets)), key=lambda entry: entry["created_at"], reverse=True)
    past = [entry["created_at"] for entry in ordered if entry["created_at"] < now]
    latest = max(past) if past else None

    keep_within = any(rules["keep_within"])
    keep_within_cutoff = _within_cutoff(latest, rules["keep_within"], time_zone)
    period_rules = [_PeriodRule(reason, period, remaining=rules[key]) for key, reason, period in _COUNT_RULES if rules[key]]
    period_rules += [
        _PeriodRule(reason, period, cutoff=_within_cutoff(latest, rules[key], time_zone), duration=rules[key])
        for key, reason, period in _WITHIN_RULES if any(rules[key])
    ]

    keep, delete = [], []
    for number, entry in enumerate(ordered):
        moment = entry["created_at"]
        local = moment.astimezone(time_zone)
        oldest = number == len(ordered) - 1
        reasons = []
        if keep_within and (keep_within_cutoff is None or moment > keep_within_cutoff):
            reasons.append("within " + format_duration(rules["keep_within"]))
        for rule in period_rules:
            reason = rule.keeps(number, local, oldest) if rule.applies(moment) else None
            if reason:
                reasons.append(reason)
        if reasons:
            keep.append({"set_id": entry["set_id"], "created_at": moment, "reasons": reasons})
        else:
            delete.append({"set_id": entry["set_id"], "created_at": moment})
    return {"keep": keep, "delete": delete}
