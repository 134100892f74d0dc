"""The keep rules: restic's documented forget behaviour, case by case, on plan_retention."""

import datetime
import itertools
import zoneinfo

import pytest

from ansible_collections.shadowsnap.ec2.plugins.module_utils import retention

UTC = datetime.timezone.utc
NOW = datetime.datetime(2030, 1, 1, tzinfo=UTC)


def at(text):
    """A UTC moment from ``YYYY-mm-dd HH:MM[:SS]``."""
    fmt = "%Y-%m-%d %H:%M:%S" if text.count(":") == 2 else "%Y-%m-%d %H:%M"
    return datetime.datetime.strptime(text, fmt).replace(tzinfo=UTC)


def sets_at(*texts):
    return [{"set_id": text, "created_at": at(text)} for text in texts]


def kept(sets, policy, now=NOW):
    """The kept set ids mapped to their reasons, after checking that the plan is a partition of ``sets``."""
    plan = retention.plan_retention(sets, policy, now=now)
    ids = [entry["set_id"] for entry in plan["keep"] + plan["delete"]]
    assert sorted(ids) == sorted(entry["set_id"] for entry in sets)
    return dict((entry["set_id"], entry["reasons"]) for entry in plan["keep"])


def daily(first, last, hour=1):
    day = datetime.date.fromisoformat(first)
    sets = []
    while day <= datetime.date.fromisoformat(last):
        sets.append({"set_id": day.isoformat(), "created_at": datetime.datetime(day.year, day.month, day.day, hour, tzinfo=UTC)})
        day += datetime.timedelta(days=1)
    return sets


# The forget documentation's example: backups every weekday for two weeks, an extra one on Fridays, no Wednesday.
WEEKDAYS = sets_at(
    "2025-04-21 11:00", "2025-04-22 11:00", "2025-04-23 11:00", "2025-04-24 11:00", "2025-04-25 11:00",
    "2025-04-25 23:00", "2025-04-28 11:00", "2025-04-29 11:00", "2025-05-01 11:00", "2025-05-02 11:00",
    "2025-05-02 23:00",
)


def test_keep_daily_skips_days_without_sets_and_keeps_the_newest_of_each_day():
    assert kept(WEEKDAYS, {"keep_daily": 5}) == {
        "2025-05-02 23:00": ["daily snapshot"],
        "2025-05-01 11:00": ["daily snapshot"],
        "2025-04-29 11:00": ["daily snapshot"],
        "2025-04-28 11:00": ["daily snapshot"],
        "2025-04-25 23:00": ["daily snapshot"],
    }


def test_keep_within_daily_counts_back_from_the_newest_set_and_keeps_one_per_day():
    # The newest set is 2025-05-02 23:00; 2025-04-25 23:00 is exactly 7 days older, so not strictly within.
    assert kept(WEEKDAYS, {"keep_within_daily": "7d"}) == {
        "2025-05-02 23:00": ["daily within 7d"],
        "2025-05-01 11:00": ["daily within 7d"],
        "2025-04-29 11:00": ["daily within 7d"],
        "2025-04-28 11:00": ["daily within 7d"],
    }


def test_plan_lists_keep_and_delete_newest_first_whatever_the_input_order():
    shuffled = [WEEKDAYS[index] for index in (3, 10, 0, 7, 5, 1, 9, 2, 8, 4, 6)]
    plan = retention.plan_retention(shuffled, {"keep_last": 3}, now=NOW)
    assert [entry["set_id"] for entry in plan["keep"]] == ["2025-05-02 23:00", "2025-05-02 11:00", "2025-05-01 11:00"]
    assert [entry["set_id"] for entry in plan["delete"]] == [entry["set_id"] for entry in reversed(WEEKDAYS[:8])]
    assert all(entry["reasons"] == ["last snapshot"] for entry in plan["keep"])
    assert plan["keep"][0]["created_at"] == at("2025-05-02 23:00")


def test_sets_of_the_same_moment_keep_their_given_order():
    sets = [{"set_id": name, "created_at": at("2025-01-01 00:00")} for name in ("b", "a", "c")]
    plan = retention.plan_retention(sets, {"keep_last": 1}, now=NOW)
    assert [entry["set_id"] for entry in plan["keep"]] == ["b"]
    assert [entry["set_id"] for entry in plan["delete"]] == ["a", "c"]


def test_grandfather_father_son_policy_on_daily_sets():
    """The documented GFS example: the newest set fills a slot in every rule it matches."""
    reasons = kept(daily("2025-01-01", "2026-03-15"), {"keep_daily": 7, "keep_weekly": 5, "keep_monthly": 12, "keep_yearly": 75})
    dailies = ["2026-03-%02d" % day for day in range(15, 8, -1)]
    weeklies = ["2026-03-08", "2026-03-01", "2026-02-22", "2026-02-15"]
    monthlies = ["2026-02-28", "2026-01-31", "2025-12-31", "2025-11-30", "2025-10-31", "2025-09-30", "2025-08-31",
                 "2025-07-31", "2025-06-30", "2025-05-31", "2025-04-30"]
    assert sorted(reasons) == sorted(dailies + weeklies + monthlies + ["2025-01-01"])
    assert reasons["2026-03-15"] == ["daily snapshot", "weekly snapshot", "monthly snapshot", "yearly snapshot"]
    assert reasons["2026-03-09"] == ["daily snapshot"]
    assert reasons["2026-03-08"] == ["weekly snapshot"]
    assert reasons["2025-12-31"] == ["monthly snapshot", "yearly snapshot"]
    # The yearly rule still has slots when it reaches the oldest set, which shares 2025 with the kept 2025-12-31.
    assert reasons["2025-01-01"] == ["oldest yearly snapshot"]


def test_oldest_set_is_kept_only_while_the_rule_has_slots():
    sets = sets_at("2025-03-03 20:00", "2025-03-02 20:00", "2025-03-01 20:00", "2025-03-01 08:00")
    assert kept(sets, {"keep_daily": 10}) == {
        "2025-03-03 20:00": ["daily snapshot"],
        "2025-03-02 20:00": ["daily snapshot"],
        "2025-03-01 20:00": ["daily snapshot"],
        "2025-03-01 08:00": ["oldest daily snapshot"],
    }
    assert sorted(kept(sets, {"keep_daily": 3})) == ["2025-03-01 20:00", "2025-03-02 20:00", "2025-03-03 20:00"]


def test_oldest_set_of_a_new_period_is_an_ordinary_slot():
    sets = sets_at("2025-03-03 20:00", "2025-03-01 08:00")
    assert kept(sets, {"keep_daily": 5}) == {"2025-03-03 20:00": ["daily snapshot"], "2025-03-01 08:00": ["daily snapshot"]}


def test_oldest_set_within_a_duration_rule_is_kept_with_its_reason():
    sets = sets_at("2025-03-03 20:00", "2025-03-01 20:00", "2025-03-01 08:00")
    assert kept(sets, {"keep_within_daily": "30d"}) == {
        "2025-03-03 20:00": ["daily within 30d"],
        "2025-03-01 20:00": ["daily within 30d"],
        "2025-03-01 08:00": ["oldest daily within 30d"],
    }
    # Outside the duration the oldest set is not kept.
    assert sorted(kept(sets, {"keep_within_daily": "1d"})) == ["2025-03-03 20:00"]


def test_iso_weeks_cross_the_year_boundary():
    # Thursday 31 December 2020 to Sunday 3 January 2021 are ISO week 53 of 2020; Monday 4 January starts 2021-W01.
    sets = sets_at("2021-01-04 09:00", "2021-01-03 09:00", "2021-01-01 09:00", "2020-12-31 09:00", "2020-12-20 09:00")
    assert kept(sets, {"keep_weekly": 2}) == {"2021-01-04 09:00": ["weekly snapshot"], "2021-01-03 09:00": ["weekly snapshot"]}


def test_a_week_in_two_calendar_years_is_one_weekly_period_but_two_yearly_ones():
    # Monday 30 December 2024 belongs to ISO week 1 of 2025.
    sets = sets_at("2025-01-02 09:00", "2024-12-30 09:00", "2024-12-29 09:00", "2024-12-20 09:00")
    assert sorted(kept(sets, {"keep_weekly": 2})) == ["2024-12-29 09:00", "2025-01-02 09:00"]
    assert sorted(kept(sets, {"keep_yearly": 2})) == ["2024-12-30 09:00", "2025-01-02 09:00"]


def test_a_set_fills_its_period_in_every_rule_it_matches():
    sets = sets_at("2025-06-30 22:00", "2025-06-30 10:00", "2025-06-29 10:00", "2025-05-31 10:00", "2025-05-01 10:00")
    assert kept(sets, {"keep_last": 1, "keep_daily": 2, "keep_monthly": 2}) == {
        "2025-06-30 22:00": ["last snapshot", "daily snapshot", "monthly snapshot"],
        "2025-06-29 10:00": ["daily snapshot"],
        "2025-05-31 10:00": ["monthly snapshot"],
    }


def test_hourly_periods():
    sets = sets_at("2025-06-30 10:59", "2025-06-30 10:00", "2025-06-30 09:30", "2025-06-30 07:15", "2025-06-29 07:15")
    assert sorted(kept(sets, {"keep_hourly": 3})) == ["2025-06-30 07:15", "2025-06-30 09:30", "2025-06-30 10:59"]


def test_unlimited_counts_keep_every_period():
    sets = daily("2025-01-01", "2025-03-31") + sets_at("2025-03-31 12:00")
    assert len(kept(sets, {"keep_last": -1})) == len(sets)
    assert kept(sets, {"keep_last": "unlimited"}) == kept(sets, {"keep_last": -1})
    every_day = kept(sets, {"keep_daily": -1})
    assert len(every_day) == 90 and "2025-03-31" not in every_day and "2025-03-31 12:00" in every_day
    gfs = kept(sets, {"keep_daily": 3, "keep_monthly": -1})
    assert sorted(gfs) == ["2025-01-01", "2025-01-31", "2025-02-28", "2025-03-29", "2025-03-30", "2025-03-31 12:00"]
    assert gfs["2025-01-01"] == ["oldest monthly snapshot"]


def test_keep_within_counts_back_from_the_newest_set_not_from_now():
    sets = sets_at("2020-06-10 12:00", "2020-06-08 12:00", "2020-06-01 12:00")
    assert kept(sets, {"keep_within": "3d"}) == {"2020-06-10 12:00": ["within 3d"], "2020-06-08 12:00": ["within 3d"]}


def test_sets_in_the_future_are_kept_but_are_not_the_newest_set_durations_count_from():
    now = at("2025-06-10 12:00")
    sets = sets_at("2025-06-15 12:00", "2025-06-10 11:00", "2025-06-08 12:00", "2025-06-01 12:00")
    # Counting from the future set would keep only it and 2025-06-15 minus 3 days and later.
    assert kept(sets, {"keep_within": "3d"}, now=now) == {
        "2025-06-15 12:00": ["within 3d"], "2025-06-10 11:00": ["within 3d"], "2025-06-08 12:00": ["within 3d"]}
    assert sorted(kept(sets, {"keep_within_daily": "3d"}, now=now)) == [
        "2025-06-08 12:00", "2025-06-10 11:00", "2025-06-15 12:00"]
    # A set at exactly "now" is not in the past either.
    assert sorted(kept(sets_at("2025-06-10 12:00", "2025-06-09 00:00"), {"keep_within": "1d"}, now=now)) == [
        "2025-06-09 00:00", "2025-06-10 12:00"]


def test_when_every_set_is_in_the_future_durations_keep_them_all():
    sets = sets_at("2031-01-01 00:00", "2030-06-01 00:00")
    assert sorted(kept(sets, {"keep_within": "1d"}, now=NOW)) == ["2030-06-01 00:00", "2031-01-01 00:00"]


def test_now_defaults_to_the_current_time():
    future = datetime.datetime.now(UTC) + datetime.timedelta(days=3650)
    sets = [{"set_id": "future", "created_at": future}] + sets_at("2020-06-10 12:00", "2020-06-01 12:00")
    plan = retention.plan_retention(sets, {"keep_within": "5d"})
    assert [entry["set_id"] for entry in plan["keep"]] == ["future", "2020-06-10 12:00"]


def test_keep_within_is_strictly_newer_than_the_cutoff():
    sets = sets_at("2025-06-10 12:00", "2025-06-09 12:00:01", "2025-06-09 12:00", "2025-06-09 11:00")
    assert sorted(kept(sets, {"keep_within": "1d"})) == ["2025-06-09 12:00:01", "2025-06-10 12:00"]
    assert sorted(kept(sets, {"keep_within": "1d1h"})) == ["2025-06-09 12:00", "2025-06-09 12:00:01", "2025-06-10 12:00"]


@pytest.mark.parametrize("newest, duration, first_kept, last_deleted", [
    # 31 March minus one month is "31 February", which Go's AddDate normalises to 2 March in a leap year ...
    ("2024-03-31 12:00", "1m", "2024-03-02 12:00:01", "2024-03-02 12:00"),
    # ... and to 3 March otherwise; a clamp to the end of February would keep 1 March.
    ("2023-03-31 12:00", "1m", "2023-03-03 12:00:01", "2023-03-03 12:00"),
    # 29 February minus one year is 1 March.
    ("2024-02-29 06:00", "1y", "2023-03-01 06:00:01", "2023-03-01 06:00"),
    # Months and days are calendar steps taken before the hours: 1 May - 1 month - 1 day = 31 March, then - 2 h.
    ("2025-05-01 01:00", "1m1d2h", "2025-03-30 23:00:01", "2025-03-30 23:00"),
    ("2025-01-15 00:00", "1y13m", "2022-12-15 00:00:01", "2022-12-15 00:00"),
])
def test_durations_use_calendar_months_and_years_normalised_like_go(newest, duration, first_kept, last_deleted):
    sets = sets_at(newest, first_kept, last_deleted)
    assert sorted(kept(sets, {"keep_within": duration})) == sorted([newest, first_kept])


def test_a_month_back_from_the_end_of_march_does_not_reach_the_first_of_march():
    sets = sets_at("2024-03-31 12:00", "2024-03-01 12:00", "2024-02-29 12:00")
    assert sorted(kept(sets, {"keep_within": "1m"})) == ["2024-03-31 12:00"]


def test_unbounded_durations_keep_everything():
    sets = sets_at("2025-06-10 12:00", "1990-01-01 00:00", "0001-01-02 00:00")
    assert sorted(kept(sets, {"keep_within": "9999y"})) == sorted(entry["set_id"] for entry in sets)
    assert kept(sets, {"keep_within_yearly": "99999999y"}) == {
        "2025-06-10 12:00": ["yearly within 99999999y"],
        "1990-01-01 00:00": ["yearly within 99999999y"],
        "0001-01-02 00:00": ["yearly within 99999999y"],
    }
    assert len(kept(sets, {"keep_within": "2024y5m9d"})) == 3
    assert len(kept(sets, {"keep_within": "2024y5m8d12h"})) == 2


def test_combined_duration_rules_report_every_reason():
    sets = sets_at("2025-06-10 12:00", "2025-06-10 11:30", "2025-06-10 08:00", "2025-06-03 08:00", "2025-05-01 08:00")
    assert kept(sets, {"keep_within": "1h", "keep_within_hourly": "1d", "keep_within_daily": "7d",
                       "keep_within_monthly": "1y", "keep_within_yearly": "5y"}) == {
        "2025-06-10 12:00": ["within 1h", "hourly within 1d", "daily within 7d", "monthly within 1y", "yearly within 5y"],
        "2025-06-10 11:30": ["within 1h", "hourly within 1d"],
        "2025-06-10 08:00": ["hourly within 1d"],
        "2025-05-01 08:00": ["monthly within 1y", "oldest yearly within 5y"],
    }


def test_calendar_periods_follow_the_policy_time_zone():
    sets = sets_at("2024-06-01 16:00", "2024-06-01 14:00", "2024-05-31 12:00")
    # UTC: two sets on 1 June, one on 31 May. Tokyo (UTC+9): 2 June 01:00, 1 June 23:00, 31 May 21:00.
    assert sorted(kept(sets, {"keep_daily": 2})) == ["2024-05-31 12:00", "2024-06-01 16:00"]
    assert sorted(kept(sets, {"keep_daily": 2, "time_zone": "UTC"})) == ["2024-05-31 12:00", "2024-06-01 16:00"]
    assert sorted(kept(sets, {"keep_daily": 2, "time_zone": "Asia/Tokyo"})) == ["2024-06-01 14:00", "2024-06-01 16:00"]


def test_weeks_start_on_monday_in_the_policy_time_zone():
    # Sunday 23:30 in New York is Monday 04:30 UTC (EDT).
    sets = sets_at("2024-06-10 12:00", "2024-06-10 03:30", "2024-06-09 12:00")
    assert sorted(kept(sets, {"keep_weekly": 2})) == ["2024-06-09 12:00", "2024-06-10 12:00"]
    assert sorted(kept(sets, {"keep_weekly": 2, "time_zone": "America/New_York"})) == [
        "2024-06-10 03:30", "2024-06-10 12:00"]


def test_the_repeated_hour_when_clocks_go_back_is_one_hourly_period():
    # 27 October 2024, Berlin: 02:30 CEST (00:30 UTC) and 02:30 CET (01:30 UTC) share the wall-clock hour 2.
    sets = sets_at("2024-10-27 01:30", "2024-10-27 00:30", "2024-10-26 23:30")
    assert sorted(kept(sets, {"keep_hourly": 2})) == ["2024-10-27 00:30", "2024-10-27 01:30"]
    assert sorted(kept(sets, {"keep_hourly": 2, "time_zone": "Europe/Berlin"})) == ["2024-10-26 23:30", "2024-10-27 01:30"]


def test_days_of_a_duration_are_calendar_days_in_the_policy_time_zone():
    # 31 March 2024 12:00 CEST (10:00 UTC) minus one calendar day is 30 March 12:00 CET (11:00 UTC), 25 hours back.
    sets = sets_at("2024-03-31 10:00", "2024-03-30 10:30")
    assert sorted(kept(sets, {"keep_within": "1d"})) == ["2024-03-30 10:30", "2024-03-31 10:00"]
    assert sorted(kept(sets, {"keep_within": "1d", "time_zone": "Europe/Berlin"})) == ["2024-03-31 10:00"]
    assert sorted(kept(sets, {"keep_within": "24h", "time_zone": "Europe/Berlin"})) == ["2024-03-30 10:30", "2024-03-31 10:00"]


def test_sets_in_other_offsets_are_compared_as_moments():
    tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
    sets = [
        {"set_id": "tokyo", "created_at": datetime.datetime(2024, 6, 2, 0, 30, tzinfo=tokyo)},  # 1 June 15:30 UTC
        {"set_id": "utc", "created_at": at("2024-06-01 16:00")},
    ]
    assert kept(sets, {"keep_daily": 1}) == {"utc": ["daily snapshot"]}


@pytest.mark.parametrize("policy", [
    {},
    None,
    {"keep_last": 0, "keep_daily": None, "keep_within": "", "keep_within_daily": "0d"},
    {"time_zone": "Europe/Berlin"},
    {"keep_within": "0y0m0d0h"},
])
def test_an_empty_policy_is_refused_never_delete_everything(policy):
    with pytest.raises(retention.RetentionPolicyError, match="keeps nothing.*refusing"):
        retention.plan_retention(sets_at("2025-01-01 00:00"), policy, now=NOW)
    with pytest.raises(retention.RetentionPolicyError, match="keeps nothing"):
        retention.plan_retention([], policy, now=NOW)


@pytest.mark.parametrize("policy, message", [
    ({"keep_dayly": 7}, "unknown retention policy keys: keep_dayly"),
    ({"keep_last": -2}, "keep_last must not be negative"),
    ({"keep_daily": "7"}, "keep_daily must be a whole number"),
    ({"keep_daily": True}, "keep_daily must be a whole number"),
    ({"keep_daily": 1.5}, "keep_daily must be a whole number"),
    ({"keep_within": "2w"}, "not of the form 1y2m3d4h.*a week is 7d"),
    ({"keep_within": "5"}, "not of the form"),
    ({"keep_within": "1y 2m"}, "not of the form"),
    ({"keep_within": "-1d"}, "not of the form"),
    ({"keep_within": "1D"}, "not of the form"),
    ({"keep_within_daily": "1d2d"}, "gives the days twice"),
    ({"keep_within": 7}, "duration 7 is not a text such as 1y2m3d4h"),
    ({"keep_daily": 1, "time_zone": "Mars/Olympus"}, "not an IANA time zone"),
    ({"keep_daily": 1, "time_zone": 9}, "not an IANA time zone"),
])
def test_malformed_policies_are_refused_with_the_reason(policy, message):
    with pytest.raises(retention.RetentionPolicyError, match=message):
        retention.plan_retention(sets_at("2025-01-01 00:00"), policy, now=NOW)


def test_sets_need_aware_times_and_unique_ids():
    with pytest.raises(retention.RetentionPolicyError, match="set s1 has no time-zone-aware created_at"):
        retention.plan_retention([{"set_id": "s1", "created_at": datetime.datetime(2025, 1, 1)}], {"keep_last": 1})
    with pytest.raises(retention.RetentionPolicyError, match="set s1 has no time-zone-aware created_at"):
        retention.plan_retention([{"set_id": "s1", "created_at": "2025-01-01T00:00:00Z"}], {"keep_last": 1})
    with pytest.raises(retention.RetentionPolicyError, match="set s1 is listed twice"):
        retention.plan_retention([{"set_id": "s1", "created_at": at("2025-01-01 00:00")}] * 2, {"keep_last": 1})


@pytest.mark.parametrize("text, spelled", [
    ("1y2m3d4h", "1y2m3d4h"), ("5d7m", "7m5d"), (" 4h3d9m ", "9m3d4h"), ("1y1d1m", "1y1m1d"), ("0y2d", "2d"), ("", ""),
])
def test_durations_are_spelled_the_way_restic_reports_them(text, spelled):
    assert retention.format_duration(retention.parse_duration(text)) == spelled


def test_reasons_spell_the_duration_canonically():
    assert kept(sets_at("2025-01-01 00:00"), {"keep_within": "5d7m", "keep_within_weekly": "4h3d"}) == {
        "2025-01-01 00:00": ["within 7m5d", "weekly within 3d4h"]}


def test_policies_never_keep_more_than_their_counts_allow():
    sets = daily("2024-01-01", "2025-12-31") + sets_at("2025-12-31 23:00", "2025-06-15 13:00")
    for daily_count, weekly, monthly in itertools.product((0, 1, 7), (0, 2, 5), (0, 3, 12)):
        if daily_count + weekly + monthly == 0:
            continue
        reasons = kept(sets, {"keep_daily": daily_count, "keep_weekly": weekly, "keep_monthly": monthly})
        counted = [reason for entry in reasons.values() for reason in entry]
        assert counted.count("daily snapshot") + counted.count("oldest daily snapshot") == daily_count
        assert counted.count("weekly snapshot") + counted.count("oldest weekly snapshot") == weekly
        assert counted.count("monthly snapshot") + counted.count("oldest monthly snapshot") == monthly
        assert len(reasons) <= daily_count + weekly + monthly
