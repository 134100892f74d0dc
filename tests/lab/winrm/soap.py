"""The WS-Management (SOAP 1.2) envelope layer of the lab's WinRM endpoint.

Requests are parsed with xml.etree by namespace URI, never by prefix, because clients choose their own prefixes
(pywinrm writes ``env:``/``w:``, pypsrp ``s:``/``wsman:``). Responses copy the shapes Windows Server sends, prefixes
included (``s:``, ``a:``, ``x:``, ``w:``, ``rsp:``, ``p:``), so strict clients parse them as they would parse the real
thing. Fault codes are the ``ERROR_WSMAN_*`` values of Windows' ``wsmerror.h``.
"""

import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

NS_SOAP = "http://www.w3.org/2003/05/soap-envelope"
NS_ADDRESSING = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
NS_TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
NS_EVENTING = "http://schemas.xmlsoap.org/ws/2004/08/eventing"
NS_ENUMERATION = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
NS_WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
NS_WSMAN_MS = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"
NS_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
NS_WSMAN_FAULT = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"

ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
CMD_SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
FAULT_ACTION = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
COMMAND_STATE_DONE = NS_SHELL + "/CommandState/Done"
COMMAND_STATE_RUNNING = NS_SHELL + "/CommandState/Running"

ACTIONS = {
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create": "Create",
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete": "Delete",
    NS_SHELL + "/Command": "Command",
    NS_SHELL + "/Send": "Send",
    NS_SHELL + "/Receive": "Receive",
    NS_SHELL + "/Signal": "Signal",
}
RESPONSE_ACTIONS = {
    "Create": "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse",
    "Delete": "http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse",
    "Command": NS_SHELL + "/CommandResponse",
    "Send": NS_SHELL + "/SendResponse",
    "Receive": NS_SHELL + "/ReceiveResponse",
    "Signal": NS_SHELL + "/SignalResponse",
}

# ERROR_WSMAN_* codes (wsmerror.h) that the endpoint answers with.
ERROR_RESOURCE_NOT_FOUND = 0x80338000
ERROR_PROVIDER_FAILURE = 0x80338003
ERROR_MESSAGE_INFORMATION_HEADER_REQUIRED = 0x80338011
ERROR_ACTION_NOT_SUPPORTED = 0x80338013
ERROR_OPERATION_TIMEDOUT = 0x80338029
ERROR_ALREADY_EXISTS = 0x80338033
ERROR_INVALID_PARAMETER = 0x8033803A
ERROR_SCHEMA_VALIDATION_ERROR = 0x80338041
ERROR_INVALID_XML = 0x80338043
ERROR_INSUFFICIENT_SELECTORS = 0x8033805A
ERROR_UNEXPECTED_SELECTORS = 0x8033805B

_RESPONSE_NAMESPACES = {"s": NS_SOAP, "a": NS_ADDRESSING, "x": NS_TRANSFER, "w": NS_WSMAN, "rsp": NS_SHELL, "p": NS_WSMAN_MS}
_FAULT_NAMESPACES = {"s": NS_SOAP, "a": NS_ADDRESSING, "x": NS_TRANSFER, "e": NS_EVENTING, "n": NS_ENUMERATION, "w": NS_WSMAN, "p": NS_WSMAN_MS}
_DURATION = re.compile(r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$")


def qname(namespace, local):
    return "{%s}%s" % (namespace, local)


class WSManFault(Exception):
    """A SOAP fault as Windows words it: SOAP code, WS-Man/WS-Addressing subcode, reason, and the WSManFault detail."""

    def __init__(self, subcode, wsman_code, message, *, reason=None, code="s:Sender", detail=None):
        super().__init__(message)
        self.subcode = subcode
        self.wsman_code = wsman_code
        self.message = message
        self.reason = reason or message
        self.code = code
        self.detail = detail


def timed_out():
    text = "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  "
    return WSManFault("w:TimedOut", ERROR_OPERATION_TIMEDOUT, text, code="s:Receiver")


def shell_not_found(shell_id):
    return WSManFault(
        "w:InvalidSelectors",
        ERROR_UNEXPECTED_SELECTORS,
        "The request for the Windows Remote Shell with ShellId %s failed because the shell was not found on the server. Possible causes are: the "
        "specified ShellId is incorrect or the shell no longer exists on the server. Provide the correct ShellId or create a new shell and retry "
        "the operation. " % shell_id,
        reason="The WS-Management service cannot process the request because the request contained invalid selectors for the resource. ",
        detail="http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors",
    )


def command_not_found():
    return WSManFault(
        "w:InvalidSelectors",
        ERROR_UNEXPECTED_SELECTORS,
        "The Windows Remote Shell received a request to perform an operation on a command identifier that does not exist. Either the command "
        "has completed execution or the client specified an invalid command identifier. ",
        reason="The WS-Management service cannot process the request because the request contained invalid selectors for the resource. ",
        detail="http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors",
    )


def invalid_parameter(message):
    return WSManFault(
        "w:InvalidParameter",
        ERROR_INVALID_PARAMETER,
        message,
        reason="The WS-Management service cannot process the request because a parameter for the operation is not valid. ",
    )


def schema_violation(message):
    return WSManFault(
        "w:SchemaValidationError",
        ERROR_SCHEMA_VALIDATION_ERROR,
        message,
        reason="The SOAP XML in the message does not match the corresponding XML schema definition. Change the XML and retry. ",
    )


def provider_failure(message):
    return WSManFault("w:InternalError", ERROR_PROVIDER_FAILURE, message, reason="An error was encountered inside the plugin. ", code="s:Receiver")


def parse_duration(text):
    """Seconds of an xs:duration such as ``PT20S``, ``PT7200.000S`` or ``P0DT0H1M0S``."""
    match = _DURATION.match(text.strip()) if text else None
    if not match or not any(match.groupdict().values()):
        raise schema_violation("The OperationTimeout value %r is not a valid xs:duration. " % text)
    parts = {name: float(value or 0) for name, value in match.groupdict().items()}
    return parts["days"] * 86400 + parts["hours"] * 3600 + parts["minutes"] * 60 + parts["seconds"]


@dataclass
class WSManRequest:
    """The parts of a request envelope the shell service acts on."""

    action: str
    message_id: str
    resource_uri: str
    body: ET.Element
    operation_timeout: float | None = None
    max_envelope_size: int = 153600
    selectors: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    @property
    def action_name(self):
        """Short name (Create, Command, Send, Receive, Signal, Delete) or None for actions the endpoint does not serve."""
        return ACTIONS.get(self.action)


def parse_request(payload):
    """Parse a request envelope; raise :class:`WSManFault` for anything Windows would reject before dispatching."""
    try:
        root = ET.fromstring(payload)
    except ET.ParseError as error:
        raise WSManFault(
            "w:SchemaValidationError", ERROR_INVALID_XML, "The WS-Management service cannot process the request because the XML is invalid. (%s) " % error
        ) from None
    if root.tag != qname(NS_SOAP, "Envelope"):
        raise WSManFault("w:SchemaValidationError", ERROR_INVALID_XML, "The request is not a SOAP 1.2 Envelope (root element %s). " % root.tag)
    header = root.find(qname(NS_SOAP, "Header"))
    body = root.find(qname(NS_SOAP, "Body"))
    if header is None or body is None:
        raise schema_violation("The SOAP envelope must contain a Header and a Body. ")

    action = (header.findtext(qname(NS_ADDRESSING, "Action")) or "").strip()
    message_id = (header.findtext(qname(NS_ADDRESSING, "MessageID")) or "").strip()
    if not action or not message_id:
        raise WSManFault(
            "a:MessageInformationHeaderRequired",
            ERROR_MESSAGE_INFORMATION_HEADER_REQUIRED,
            "The WS-Management service cannot process the request. The request does not have all the expected SOAP headers. ",
        )

    timeout_text = header.findtext(qname(NS_WSMAN, "OperationTimeout"))
    envelope_text = header.findtext(qname(NS_WSMAN, "MaxEnvelopeSize"))
    try:
        max_envelope_size = int(envelope_text) if envelope_text else 153600
    except ValueError:
        raise schema_violation("The MaxEnvelopeSize value %r is not an integer. " % envelope_text) from None

    selectors = {}
    for selector in header.iterfind("%s/%s" % (qname(NS_WSMAN, "SelectorSet"), qname(NS_WSMAN, "Selector"))):
        selectors[selector.get("Name", "")] = (selector.text or "").strip()
    options = {}
    for option in header.iterfind("%s/%s" % (qname(NS_WSMAN, "OptionSet"), qname(NS_WSMAN, "Option"))):
        options[option.get("Name", "")] = (option.text or "").strip()

    return WSManRequest(
        action=action,
        message_id=message_id,
        resource_uri=(header.findtext(qname(NS_WSMAN, "ResourceURI")) or "").strip(),
        body=body,
        operation_timeout=parse_duration(timeout_text) if timeout_text else None,
        max_envelope_size=max_envelope_size,
        selectors=selectors,
        options=options,
    )


def element(parent, tag, text=None, **attributes):
    """Append a prefixed element (``rsp:Stream``); the prefixes are declared once on the envelope, as Windows does."""
    child = ET.SubElement(parent, tag, attributes)
    if text is not None:
        child.text = text
    return child


def _envelope(namespaces, action, relates_to):
    attributes = {"xml:lang": "en-US"}
    attributes.update({"xmlns:%s" % prefix: uri for prefix, uri in namespaces.items()})
    envelope = ET.Element("s:Envelope", attributes)
    header = element(envelope, "s:Header")
    element(header, "a:Action", action)
    element(header, "a:MessageID", "uuid:%s" % str(uuid.uuid4()).upper())
    element(header, "a:To", ANONYMOUS)
    if relates_to:
        element(header, "a:RelatesTo", relates_to)
    return envelope, element(envelope, "s:Body")


def response_envelope(action_name, relates_to):
    """A response envelope for one of the shell actions and its (empty) Body to fill in."""
    return _envelope(_RESPONSE_NAMESPACES, RESPONSE_ACTIONS[action_name], relates_to)


def serialize(envelope):
    return ET.tostring(envelope, encoding="utf-8", xml_declaration=False)


def fault_envelope(fault, relates_to, machine):
    """The bytes of a SOAP fault shaped like Windows' (HTTP status 500)."""
    envelope, body = _envelope(_FAULT_NAMESPACES, FAULT_ACTION, relates_to)
    soap_fault = element(body, "s:Fault")
    code = element(soap_fault, "s:Code")
    element(code, "s:Value", fault.code)
    element(element(code, "s:Subcode"), "s:Value", fault.subcode)
    element(element(soap_fault, "s:Reason"), "s:Text", fault.reason, **{"xml:lang": "en-US"})
    detail = element(soap_fault, "s:Detail")
    if fault.detail:
        element(detail, "w:FaultDetail", fault.detail)
    wsman_fault = element(detail, "f:WSManFault", **{"xmlns:f": NS_WSMAN_FAULT, "Code": str(fault.wsman_code), "Machine": machine})
    element(wsman_fault, "f:Message", fault.message)
    return serialize(envelope)
