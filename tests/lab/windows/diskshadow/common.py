"""What every part of the simulated diskshadow shares: the HRESULTs it prints, its failure block, its exceptions."""

import uuid

from .. import catalog

INDENT = " " * 8
DETAIL = " " * 16

# HRESULTs diskshadow prints (FACTS.md, vss.h, winerror.h).
HRESULTS = {
    "E_FAIL": 0x80004005,
    "ERROR_FILE_NOT_FOUND": 0x80070002,
    "VSS_E_BAD_STATE": 0x80042301,
    "VSS_E_PROVIDER_VETO": 0x80042306,
    "VSS_E_OBJECT_NOT_FOUND": 0x80042308,
    "VSS_E_VOLUME_NOT_SUPPORTED": 0x8004230C,
    "VSS_E_OBJECT_ALREADY_EXISTS": 0x8004230D,
    "VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED": 0x80042312,
    "VSS_E_SNAPSHOT_SET_IN_PROGRESS": 0x80042316,
    "VSS_E_UNSUPPORTED_CONTEXT": 0x8004231B,
    "VSS_E_INSUFFICIENT_STORAGE": 0x8004231F,
    "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT": 0x800423F0,
    "VSS_E_WRITERERROR_TIMEOUT": 0x800423F2,
    "VSS_E_WRITERERROR_RETRYABLE": 0x800423F3,
}
SYMBOLS = {value: name for name, value in HRESULTS.items()}
SYMBOLS.update({code: symbol for code, symbol in catalog.HRESULT_SYMBOLS.items() if code})


def failure_block(hresult, symbol=None):
    """diskshadow's failure block (capture diskshadow_create_failed_provider_veto_openzfs406)."""
    symbol = symbol or SYMBOLS.get(hresult)
    lines = ["", "The last operation failed.", INDENT + "- Returned HRESULT: %08X" % hresult]
    if symbol:
        lines.append(INDENT + "- Error text: %s" % symbol)
    return lines + [""]


def unquote(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def braced_guid(text):
    """``{guid}`` in lower case, or None for text that is not a GUID."""
    text = text.strip().strip("{}").lower()
    try:
        return "{%s}" % uuid.UUID(text)
    except ValueError:
        return None


class DiskShadowFailure(Exception):
    """A command failed: the lines it printed before the failure block, and the HRESULT."""

    def __init__(self, hresult, lines=(), symbol=None):
        super().__init__("diskshadow failure 0x%08X" % hresult)
        self.hresult = hresult
        self.lines = list(lines)
        self.symbol = symbol


class DiskShadowStopped(Exception):
    """The process was killed (the scheduled task was stopped, the lab stops)."""
