"""The lab's reference clock, and the clocks of what it simulates: EC2's and each Windows host's, each with an offset.

Every record that tests compare across the halves of the lab carries ``lab_time``, read from :func:`lab_now` (UTC,
microseconds): the moment an EBS snapshot's content was captured, the moment a VSS event happened. Beside it each
record keeps the time its own clock shows (EC2's StartTime and point in time, a host's event times), which a test can
skew (``clock_offset_seconds``) to run the collection against a controller whose clock disagrees with EC2's or the
host's. The controller's clock is the machine's: skewing the others is skewing the controller relative to them.
"""

import datetime


def lab_now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    """ISO 8601 with microseconds and the UTC offset: ``2026-01-02T03:04:05.678901+00:00``."""
    return moment.isoformat(timespec="microseconds")


class SkewedClock:
    """A clock ``offset_seconds`` ahead of the lab's (behind when negative); call it for the time it shows."""

    def __init__(self, offset_seconds=0.0):
        self.offset_seconds = float(offset_seconds)

    def __call__(self):
        return lab_now() + datetime.timedelta(seconds=self.offset_seconds)

    def at(self, lab_moment):
        """What this clock showed at a moment of the lab's clock."""
        return lab_moment + datetime.timedelta(seconds=self.offset_seconds)
