r"""A simulated Windows Server booting on an instance the lab did not seed: one started from a restored Windows root.

Windows is what is on the root volume, so :func:`restored_server` reads it there: the registry hive the seeded hosts
write on their root volume (``Windows\System32\config\SYSTEM``) names the computer, and the Windows settings of that
computer (OS, locale, applications, SAN policy...) are the seeded host's. An instance whose root volume holds no
Windows (a launch straight from the AMI, whose first boot the lab does not model) gets no host.

The root disk keeps the identity written on it (the clone's disk and volume ids); every other attached volume arrives
as a disk the way an attach brings it (lab.windows.storage: its own identity, its files and the shadow copies stored
in it; online by the SAN policy, at the first free letters in device order: what MountedDevices would give a clone of
the original's disks, FACTS.md [inferred]). SQL Server does not open the journal of the restored volumes until its
service is started (the role stops it, reverts, and starts it).

Addressing: a real user reaches the instance at its private IP with the original's credentials; the lab binds the
endpoint to the loopback address with the private IP's last three octets (``172.31.200.10`` -> ``127.31.200.10``), on
the port of the original host's endpoint when that is free, so the original's connection variables work with only
``ansible_host`` changed (docs/lab-windows.md).
"""

from .model import WindowsServer

HIVE = "Windows\\System32\\config\\SYSTEM"
HIVE_PREFIX = b"regf lab hive "


def computer_name(blockstore, volume_id):
    """The computer name in the hive on a root volume, or None when the volume holds no Windows."""
    with blockstore.locked():
        hive = blockstore.volume(volume_id).files.get(HIVE)
    if not hive or not hive.startswith(HIVE_PREFIX):
        return None
    return hive[len(HIVE_PREFIX):].decode("utf-8")


def loopback_address(private_ip):
    """Where the lab serves an instance's private IP: ``127.`` + its last three octets."""
    return "127." + ".".join(private_ip.split(".")[1:]) if private_ip else "127.0.0.1"


def restored_server(event, blockstore, region, seeded):
    """The WindowsServer of an instance starting from a restored root (an instance event of lab.aws.instance_models),
    or None. ``seeded``: ``{computer name: the seeded instance}`` whose Windows settings a restored root carries."""
    root_device = event["root_device_name"]
    root_id = event["volumes"].get(root_device)
    hostname = computer_name(blockstore, root_id) if root_id else None
    original = seeded.get(hostname) if hostname else None
    if original is None:
        return None
    windows = dict(original.get("windows") or {}, hostname=hostname)
    root_size = next((v["size"] for v in original["volumes"] if v["device"] == original.get("root_device_name", "/dev/sda1")),
                     60)
    with blockstore.locked():
        identity = dict(blockstore.volume(root_id).disk)
    instance = {"name": event["instance_id"], "instance_id": event["instance_id"],
                "instance_type": event["instance_type"], "style": original.get("style", "nitro"),
                "availability_zone": event["availability_zone"], "root_device_name": root_device,
                "volumes": [{"device": root_device, "volume_id": root_id, "size": root_size, "drive": "C:"}]}
    server = WindowsServer(instance, blockstore, region, config=windows)
    if identity:
        _keep_root_identity(server, root_id, identity)
    with server.lock, blockstore.locked():
        for device, volume_id in sorted(event["volumes"].items()):
            if device != root_device:
                server.storage.attach(volume_id, device)
    return server


def _keep_root_identity(server, volume_id, identity):
    """The root disk says what its clone source said (building the root volume stamps a new identity on it)."""
    storage = server.storage
    disk = storage.disk_of(volume_id)
    volume = storage.volume_on(disk)
    with server.blockstore.locked():
        storage.mounted_devices.pop(volume.guid, None)
        server.blockstore.volume(volume_id).disk = identity
    disk.disk_guid = identity["disk_guid"]
    volume.guid = identity["volume_guid"]
    storage.mounted_devices[volume.guid] = "C:"
    storage._partitions_of(disk, volume)  # pylint: disable=protected-access
