"""An HTTP proxy in front of the lab's moto server: injects AWS faults, enforces EC2-shaped rate limits, counts calls.

It applies the scenario of lab.aws.fault_plan and answers errors in the exact wire shape of the EC2 query API, so
botocore, amazon.aws's retry decorators and our modules see what they would see from EC2. The lab's control API is
mounted on the same port under ``/_lab/``; services moto lacks (``services``: the SigV4 signing name, such as
``rbin``, to an endpoint with ``action(method, path)`` and ``answer(method, path, body)``) are answered by the lab.
"""

import http.client
import io
import re
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from .fault_plan import ERROR_MESSAGES, ERROR_STATUS, CallCounter, FaultPlan, ec2_error_body, is_unfiltered_describe

# Set on every request the proxy forwards: moto's responses tell the collection's calls from a test's own reads.
CLIENT_HEADER = "X-Shadowsnap-Lab-Client"
_CREDENTIAL = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/(?P<service>[^/]+)/aws4_request")


def signing_service(headers):
    """The service a SigV4 request is signed for (``ec2``, ``rbin``...), or None."""
    found = _CREDENTIAL.search(headers.get("Authorization") or "")
    return found.group("service") if found else None


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
        self.services = {}
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
                service = proxy.services.get(signing_service(self.headers))
                if service is not None:
                    action, params = service.action(self.command, self.path), {}
                else:
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
                if service is not None:
                    status, headers, payload = service.answer(self.command, self.path, body)
                else:
                    status, headers, payload = self._forward(body)
                lost = rule.get("lose_response") if rule else None
                if lost:
                    proxy.counter.add(action, "faults", unfiltered)
                    if lost == "drop":
                        self._drop()
                        return
                    code = "Unavailable" if lost == "unavailable" else "InternalError"
                    self._answer(ERROR_STATUS[code], ec2_error_body(code, ERROR_MESSAGES[code]))
                    return
                proxy.counter.add(action, "ok" if status < 400 else "errors", unfiltered)
                self._answer(status, payload, headers)

            def _drop(self):
                """Reset the connection without an answer (RST), as when a response is lost on the way back."""
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.wfile = io.BytesIO()
                self.connection.close()

            def _forward(self, body):
                connection = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")}
                    headers[CLIENT_HEADER] = "1"
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
