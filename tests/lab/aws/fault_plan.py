"""The fault scenario of the lab's AWS endpoint: fault rules, EC2's token buckets, call counts, EC2's error wire shape.

:class:`FaultPlan` is switchable at run time (per scenario) through the control API; :class:`CallCounter` keeps counts
per API action (attempts, successful answers, throttled, injected faults, errors). lab.aws.fault_proxy applies them.
"""

import threading
import time
import uuid
from collections import defaultdict

# Token buckets per account and Region (burst, refill per second), from the EC2 API throttling documentation.
EC2_TOKEN_BUCKETS = {
    "CreateSnapshot": (100, 5),
    "CreateSnapshots": (100, 5),
    "DeleteSnapshot": (100, 5),
    "CreateVolume": (100, 5),
    "CreateTags": (100, 10),
}
MUTATING_BUCKET = (50, 5)
DESCRIBE_BUCKET = (100, 20)
UNFILTERED_DESCRIBE_BUCKET = (50, 10)
UNFILTERED_DESCRIBE_ACTIONS = ("DescribeSnapshots", "DescribeVolumes", "DescribeInstances")
NON_MUTATING_PREFIXES = ("Describe", "Get", "List")
# How an answer is lost after the request was carried out (``lose_response``).
LOST_ANSWERS = (True, "internal_error", "unavailable", "drop")

ERROR_STATUS = {
    "RequestLimitExceeded": 503,
    "InternalError": 500,
    "Unavailable": 503,
    "SnapshotCreationPerVolumeRateExceeded": 400,
    "ConcurrentSnapshotLimitExceeded": 400,
}
ERROR_MESSAGES = {
    "RequestLimitExceeded": "Request limit exceeded.",
    "InternalError": "An internal error has occurred",
    "Unavailable": "The server is overloaded and can't handle the request.",
    "SnapshotCreationPerVolumeRateExceeded": "The maximum per volume CreateSnapshot request rate has been exceeded. "
    "Use an increasing or variable sleep interval between requests.",
    "ConcurrentSnapshotLimitExceeded": "Maximum allowed in-progress snapshots for a single volume exceeded.",
}


def ec2_error_body(code, message):
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>%s</Code><Message>%s</Message>'
        "</Error></Errors><RequestID>%s</RequestID></Response>" % (code, message, uuid.uuid4())
    ).encode()


def is_unfiltered_describe(action, params):
    """A DescribeSnapshots/Volumes/Instances call with no ids, no filters and no pagination uses the costly bucket."""
    if action not in UNFILTERED_DESCRIBE_ACTIONS:
        return False
    return not any(key.split(".")[0] in ("Filter", "MaxResults", "SnapshotId", "VolumeId", "InstanceId", "OwnerId")
                   for key in params)


def bucket_for(action, params):
    if action in EC2_TOKEN_BUCKETS:
        return action, EC2_TOKEN_BUCKETS[action]
    if is_unfiltered_describe(action, params):
        return "unfiltered:" + action, UNFILTERED_DESCRIBE_BUCKET
    if action.startswith(NON_MUTATING_PREFIXES):
        return "describe", DESCRIBE_BUCKET
    return "mutating", MUTATING_BUCKET


class TokenBucket:
    def __init__(self, burst, refill_per_second):
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.refill = float(refill_per_second)
        self.stamp = time.monotonic()

    def take(self):
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.refill)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class FaultPlan:
    """The current scenario: one-shot fault rules, latency, and optional EC2 rate limiting.

    A rule is a dict: ``action`` (API action name or ``*``), ``count`` (how many matching requests it hits), and one of
    ``error`` (an EC2 error code answered instead of forwarding), ``status`` (a bare HTTP status, e.g. 500), or
    ``lose_response``: forward the request (EC2 carries it out), then lose its answer on the way back: ``true`` or
    ``internal_error`` answer InternalError (500), ``unavailable`` Unavailable (503), ``drop`` resets the connection.
    ``rate_limits`` scales the EC2 token buckets (1.0 = EC2's figures; 0.05 = a twentieth, to reach them in tests).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.clear()

    def clear(self):
        with self._lock:
            self.rules = []
            self.latency = 0.0
            self.rate_limit_scale = None
            self.buckets = {}

    def configure(self, rules=(), latency_ms=0, rate_limits=None):
        with self._lock:
            self.rules = [dict(rule) for rule in rules]
            for rule in self.rules:
                rule.setdefault("count", 1)
                rule.setdefault("action", "*")
                if rule.get("lose_response") not in (None, False) + LOST_ANSWERS:
                    raise ValueError("lose_response must be true or one of %s" % ", ".join(LOST_ANSWERS[1:]))
            self.latency = float(latency_ms) / 1000.0
            self.rate_limit_scale = None if rate_limits is None else float(rate_limits)
            self.buckets = {}

    def describe(self):
        with self._lock:
            return {
                "rules": [dict(rule) for rule in self.rules],
                "latency_ms": self.latency * 1000.0,
                "rate_limits": self.rate_limit_scale,
            }

    def take_rule(self, action):
        with self._lock:
            for rule in self.rules:
                if rule["count"] > 0 and rule["action"] in ("*", action):
                    rule["count"] -= 1
                    return dict(rule)
        return None

    def admit(self, action, params):
        """False when the action's token bucket is empty (the request gets RequestLimitExceeded)."""
        with self._lock:
            if self.rate_limit_scale is None:
                return True
            name, (burst, refill) = bucket_for(action, params)
            bucket = self.buckets.get(name)
            if bucket is None:
                scale = self.rate_limit_scale
                bucket = self.buckets[name] = TokenBucket(max(1, int(burst * scale)), refill * scale)
            return bucket.take()


class CallCounter:
    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        with self._lock:
            self.calls = defaultdict(lambda: {"attempts": 0, "ok": 0, "throttled": 0, "faults": 0, "errors": 0})
            self.unfiltered_describes = 0

    def add(self, action, outcome, unfiltered=False):
        with self._lock:
            entry = self.calls[action]
            entry["attempts"] += 1
            entry[outcome] += 1
            if unfiltered:
                self.unfiltered_describes += 1

    def snapshot(self):
        with self._lock:
            return {"actions": {k: dict(v) for k, v in self.calls.items()}, "unfiltered_describes": self.unfiltered_describes}
