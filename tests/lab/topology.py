"""What the lab seeds: Windows Server instances on EC2 with root and data volumes.

Device names follow AWS's Windows AMIs: the root volume is ``/dev/sda1`` and data volumes use ``xvdb``..``xvdz``.
On Nitro instance types Windows sees every EBS volume as an NVMe disk whose serial is the volume id; on Xen instance
types (t2, m4...) it sees ``AWS PVDISK`` disks whose SCSI target id maps to the device name.
"""

import copy

DEFAULT_TOPOLOGY = [
    {
        "name": "win-sql-01",
        "instance_type": "m5.xlarge",
        "style": "nitro",
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
        "volumes": [
            {"device": "/dev/sda1", "size": 60, "drive": "C:"},
            {"device": "xvdb", "size": 40, "drive": "D:", "label": "Sites"},
        ],
    },
    {
        "name": "win-xen-01",
        "instance_type": "t2.large",
        "style": "xen",
        "volumes": [
            {"device": "/dev/sda1", "size": 50, "drive": "C:"},
            {"device": "xvdf", "size": 30, "drive": "D:", "label": "Data"},
            {"device": "xvdg", "size": 30, "drive": "E:", "label": "Logs"},
        ],
    },
]


def fleet_topology(instances, data_volumes, instance_type="m5.xlarge"):
    """N identical Nitro instances with M data volumes each, for benchmarks."""
    letters = "DEFGHIJKLMNOPQRSTUVWXYZ"
    devices = ["xvd%s" % chr(ord("b") + i) for i in range(25)]
    if data_volumes > len(letters):
        raise ValueError("at most %d data volumes per instance" % len(letters))
    return [
        {
            "name": "win-fleet-%03d" % (index + 1),
            "instance_type": instance_type,
            "style": "nitro",
            "volumes": [{"device": "/dev/sda1", "size": 60, "drive": "C:"}]
            + [{"device": devices[v], "size": 20, "drive": letters[v] + ":"} for v in range(data_volumes)],
        }
        for index in range(instances)
    ]


def copy_topology(topology):
    return copy.deepcopy(topology)
