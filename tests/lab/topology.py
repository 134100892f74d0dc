"""What the lab seeds: Windows Server instances on EC2 with root and data volumes.

Device names follow AWS's Windows AMIs: the root volume is ``/dev/sda1`` and data volumes use ``xvdb``..``xvdz``.
On Nitro instance types Windows sees every EBS volume as an NVMe disk whose serial is the volume id; on Xen instance
types (t2, m4...) it sees ``AWS PVDISK`` disks whose SCSI target id maps to the device name.

Each host's ``windows`` entry describes the simulated Windows Server behind its WinRM endpoint (lab.windows.model):
``os`` (2016/2019/2022/2025, or win10/win11 for negative tests), ``edition``, ``locale`` (en-US, ja-JP, fr-FR),
``applications`` (``sql``: SqlServerWriter with data on D: and logs on E:, and the journal; ``iis``: IIS writers),
``sql_system_databases`` (``D:``: master, model and msdb relocated beside the user databases, the default; ``C:``:
where SQL Server Setup leaves them, see :func:`sql_default_install_topology`), ``aws_vss_components`` (version or
None), ``imds``, ``writer_states``, ``shadow_storage``, ``clock_offset_seconds`` and ``winrm`` (scheme, auth).
A host may name its ``availability_zone`` (default: the Region's first, as RunInstances chooses without a placement).
A volume may carry ``span: {"name": ..., "kind": "storage_pool" | "dynamic"}`` (one Windows volume over several EBS
volumes), ``offline: true``, and a ``drive`` that is a letter (``D:``) or a mount folder (``C:\\Mounts\\Data``).
The default topology has a SQL Server host (tests set its SqlServerWriter to a failed state at run time), a Japanese
(ja-JP, code page 932) IIS host and a Xen-style host.
"""

import copy

DEFAULT_TOPOLOGY = [
    {
        "name": "win-sql-01",
        "instance_type": "m5.xlarge",
        "style": "nitro",
        "windows": {"os": "2022", "edition": "Datacenter", "locale": "en-US", "applications": ["sql"], "aws_vss_components": "2.3.1"},
        "volumes": [
            {"device": "/dev/sda1", "size": 60, "drive": "C:"},
            {"device": "xvdb", "size": 100, "drive": "D:", "label": "SQLData"},
            {"device": "xvdc", "size": 50, "drive": "E:", "label": "SQLLogs"},
            {"device": "xvdd", "size": 200, "drive": "F:", "label": "Backup"},
        ],
    },
    {
        "name": "win-web-01",
        "instance_type": "m5.large",
        "style": "nitro",
        "windows": {"os": "2019", "edition": "Standard", "locale": "ja-JP", "applications": ["iis"]},
        "volumes": [
            {"device": "/dev/sda1", "size": 60, "drive": "C:"},
            {"device": "xvdb", "size": 40, "drive": "D:", "label": "Sites"},
        ],
    },
    {
        "name": "win-xen-01",
        "instance_type": "t2.large",
        "style": "xen",
        "windows": {"os": "2016", "edition": "Standard", "locale": "en-US"},
        "volumes": [
            {"device": "/dev/sda1", "size": 50, "drive": "C:"},
            {"device": "xvdf", "size": 30, "drive": "D:", "label": "Data"},
            {"device": "xvdg", "size": 30, "drive": "E:", "label": "Logs"},
        ],
    },
]


def fleet_topology(instances, data_volumes, instance_type="m5.xlarge", windows=None):
    """N identical Nitro instances with M data volumes each, for benchmarks (``windows``: their Windows settings)."""
    letters = "DEFGHIJKLMNOPQRSTUVWXYZ"
    devices = ["xvd%s" % chr(ord("b") + i) for i in range(25)]
    if data_volumes > len(letters):
        raise ValueError("at most %d data volumes per instance" % len(letters))
    return [
        {
            "name": "win-fleet-%03d" % (index + 1),
            "instance_type": instance_type,
            "style": "nitro",
            "windows": dict(windows or {"os": "2022", "locale": "en-US"}),
            "volumes": [{"device": "/dev/sda1", "size": 60, "drive": "C:"}]
            + [{"device": devices[v], "size": 20, "drive": letters[v] + ":"} for v in range(data_volumes)],
        }
        for index in range(instances)
    ]


def sql_default_install_topology():
    """The default topology with SQL Server as Setup installs it on win-sql-01: the system databases (master, model,
    msdb) in the instance's DATA folder on C:, the user database ``shop`` with its data on D: and its log on E:."""
    topology = copy_topology(DEFAULT_TOPOLOGY)
    next(host for host in topology if host["name"] == "win-sql-01")["windows"]["sql_system_databases"] = "C:"
    return topology


def copy_topology(topology):
    return copy.deepcopy(topology)
