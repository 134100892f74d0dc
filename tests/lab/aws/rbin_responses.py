"""The ``rbin`` service (Recycle Bin retention rules) on the fault proxy's port, in its rest-json wire shape.

moto has no ``rbin`` (its server answers HTTP 500), so the proxy hands requests signed for ``rbin`` to
:class:`RbinEndpoint` instead of moto, after counting them and applying the fault rules and token buckets like any
call. Routes: CreateRule (``POST /rules``), ListRules (``POST /list-rules``), GetRule (``GET /rules/{id}``) and
DeleteRule (``DELETE /rules/{id}``); the lab models no other rbin action.
"""

import json
import re

from .rbin_models import RbinError

_ROUTES = (
    ("POST", re.compile(r"^/rules$"), "CreateRule"),
    ("POST", re.compile(r"^/list-rules$"), "ListRules"),
    ("GET", re.compile(r"^/rules/(?P<identifier>[^/]+)$"), "GetRule"),
    ("DELETE", re.compile(r"^/rules/(?P<identifier>[^/]+)$"), "DeleteRule"),
)


def _route(method, path):
    for route_method, pattern, action in _ROUTES:
        matched = pattern.match(path.split("?")[0])
        if matched and method == route_method:
            return action, matched.groupdict()
    return None, {}


def _json(status, document):
    return status, [("Content-Type", "application/json")], json.dumps(document).encode()


class RbinEndpoint:
    """Answers the rbin requests the proxy hands over, from a :class:`lab.aws.rbin_models.RecycleBin`."""

    def __init__(self, recycle_bin):
        self.recycle_bin = recycle_bin

    @staticmethod
    def action(method, path):
        """The action name the proxy counts and rate-limits the request under."""
        return _route(method, path)[0] or "UnknownRbinOperation"

    def answer(self, method, path, body):
        """(status, headers, payload) of one request."""
        action, arguments = _route(method, path)
        try:
            request = json.loads(body) if body else {}
            if action == "CreateRule":
                return _json(201, self.recycle_bin.create_rule(request))
            if action == "ListRules":
                return _json(200, self.recycle_bin.list_rules(request))
            if action == "GetRule":
                return _json(200, self.recycle_bin.get_rule(arguments["identifier"]))
            if action == "DeleteRule":
                self.recycle_bin.delete_rule(arguments["identifier"])
                return 204, [], b""
            raise RbinError("ValidationException", 400, "The lab does not model %s %s." % (method, path))
        except RbinError as error:
            document = {"__type": error.code, "Message": error.message}
            if error.reason:
                document["Reason"] = error.reason
            status, headers, payload = _json(error.status, document)
            return status, headers + [("x-amzn-ErrorType", error.code)], payload
        except ValueError as error:
            status, headers, payload = _json(400, {"__type": "ValidationException", "Message": str(error)})
            return status, headers + [("x-amzn-ErrorType", "ValidationException")], payload
