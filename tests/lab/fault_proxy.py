"""An HTTP proxy in front of the lab's moto server: injects AWS faults, enforces EC2-shaped rate limits, counts calls.

Everything is switchable at run time (per scenario) through :class:`FaultPlan`, and the proxy answers errors in the
exact wire shape of the EC2 query API, so botocore, amazon.aws's retry decorators and our modules see what they would
see from EC2. Counts are kept per API action: attempts, successful answers, throttled and injected faults.
"""

import http.client
import threading
import time
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

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
    ``lose_response`` (forward the request, then answer InternalError as if the answer was lost on the way back).
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


def request_action(headers, body):
    """The API action of a request: EC2/STS query protocol (Action=...) or JSON protocol (X-Amz-Target)."""
    target = headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1], {}
    params = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    return params.get("Action", "Unknown"), params


class FaultProxy:
    """Forwards AWS API requests to moto; the lab's control API is mounted on the same port under ``/_lab/``."""

    def __init__(self, target_port, control=None):
        self.target_port = target_port
        self.plan = FaultPlan()
        self.counter = CallCounter()
        self.control = control
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="lab-fault-proxy", daemon=True)

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        self._thread.start()

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # pylint: disable=redefined-builtin
                """Quiet: the lab logs through its control API, not stderr."""

            def _read_body(self):
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _answer(self, status, body, headers=()):
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self):
                body = self._read_body()
                if self.path.startswith("/_lab/") and proxy.control is not None:
                    status, payload = proxy.control(self.command, self.path, body)
                    self._answer(status, payload, [("Content-Type", "application/json")])
                    return
                action, params = request_action(self.headers, body)
                unfiltered = is_unfiltered_describe(action, params)
                if proxy.plan.latency:
                    time.sleep(proxy.plan.latency)
                if not proxy.plan.admit(action, params):
                    proxy.counter.add(action, "throttled", unfiltered)
                    self._answer(503, ec2_error_body("RequestLimitExceeded", ERROR_MESSAGES["RequestLimitExceeded"]))
                    return
                rule = proxy.plan.take_rule(action)
                if rule and "error" in rule:
                    code = rule["error"]
                    proxy.counter.add(action, "faults", unfiltered)
                    self._answer(ERROR_STATUS.get(code, 400), ec2_error_body(code, ERROR_MESSAGES.get(code, code)))
                    return
                if rule and "status" in rule:
                    proxy.counter.add(action, "faults", unfiltered)
                    self._answer(int(rule["status"]), b"<html><body>lab fault</body></html>", [("Content-Type", "text/html")])
                    return
                status, headers, payload = self._forward(body)
                if rule and rule.get("lose_response"):
                    proxy.counter.add(action, "faults", unfiltered)
                    self._answer(500, ec2_error_body("InternalError", ERROR_MESSAGES["InternalError"]))
                    return
                proxy.counter.add(action, "ok" if status < 400 else "errors", unfiltered)
                self._answer(status, payload, headers)

            def _forward(self, body):
                connection = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")}
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    payload = response.read()
                    kept = [(k, v) for k, v in response.getheaders()
                            if k.lower() not in ("connection", "content-length", "transfer-encoding", "server", "date")]
                    return response.status, kept, payload
                finally:
                    connection.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        return Handler
