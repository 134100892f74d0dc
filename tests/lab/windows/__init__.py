"""The Windows half of the lab: a model of Windows Server per instance, behind a WinRM endpoint (docs/lab-windows.md)."""

from .application import Journal, JournalState, SqlApplication, assess_journal, check_consistency
from .diskshadow import DiskShadow, run_diskshadow
from .fleet import WindowsFleet
from .host import LabWindowsHost, ReplayPlan
from .inventory import render_inventory, write_inventory
from .locales import LOCALES, agent_decode, console_bytes
from .model import WindowsServer
from .storage import VolumeContent

__all__ = [
    "DiskShadow",
    "Journal",
    "JournalState",
    "LOCALES",
    "LabWindowsHost",
    "ReplayPlan",
    "SqlApplication",
    "VolumeContent",
    "WindowsFleet",
    "WindowsServer",
    "agent_decode",
    "assess_journal",
    "check_consistency",
    "console_bytes",
    "render_inventory",
    "run_diskshadow",
    "write_inventory",
]
