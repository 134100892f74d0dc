"""The lab's WinRM endpoint: a WS-Management server per simulated Windows host (see :mod:`lab.winrm.server`)."""

from .certs import CertificateAuthority
from .counters import Counters
from .faults import FaultPlan, FaultRule
from .server import CommandResult, WindowsHost, WinRMServer, decode_powershell_command

__all__ = [
    "CertificateAuthority",
    "CommandResult",
    "Counters",
    "FaultPlan",
    "FaultRule",
    "WinRMServer",
    "WindowsHost",
    "decode_powershell_command",
]
