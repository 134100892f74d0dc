"""Starts, seeds, resets and stops the lab; the one entry point for the tests, the benchmarks and ``make demo``.

The lab runs in one process: moto (a thread), the fault proxy (a thread) with the control API under ``/_lab/`` on the
same port, and the data plane. Clients reach AWS through the proxy with ``AWS_ENDPOINT_URL``; tests and benchmarks
switch faults and read call counts through :class:`LabClient`.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import boto3

from lab.aws import EbsBehaviour, MotoServer
from lab.dataplane import BlockStore
from lab.fault_proxy import FaultProxy
from lab.topology import DEFAULT_TOPOLOGY, fleet_topology

REGION = "us-east-1"
LAB_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "lab-access-key", "AWS_SECRET_ACCESS_KEY": "lab-secret-key"}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def windows_image_id(ec2):
    images = ec2.describe_images(Filters=[{"Name": "platform", "Values": ["windows"]}])["Images"]
    if not images:
        raise RuntimeError("moto offers no Windows AMI to seed from")
    return sorted(images, key=lambda image: image["ImageId"])[0]["ImageId"]


def seed_instances(ec2, topology):
    """Create the topology's instances with their volumes at the given device names; return their descriptions."""
    image_id = windows_image_id(ec2)
    seeded = []
    for host in topology:
        mappings = [
            {"DeviceName": v["device"], "Ebs": {"VolumeSize": v["size"], "VolumeType": "gp3", "DeleteOnTermination": True}}
            for v in host["volumes"]
        ]
        reservation = ec2.run_instances(
            ImageId=image_id,
            MinCount=1,
            MaxCount=1,
            InstanceType=host["instance_type"],
            BlockDeviceMappings=mappings,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": host["name"]}]}],
        )
        instance = reservation["Instances"][0]
        attached = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]}
        volumes = []
        for volume in host["volumes"]:
            entry = dict(volume)
            entry["volume_id"] = attached[volume["device"]]
            volumes.append(entry)
        seeded.append(
            {
                "name": host["name"],
                "instance_id": instance["InstanceId"],
                "instance_type": host["instance_type"],
                "style": host["style"],
                "availability_zone": instance["Placement"]["AvailabilityZone"],
                "root_device_name": instance["RootDeviceName"],
                "volumes": volumes,
            }
        )
    return seeded


class Lab:
    """The lab in this process."""

    def __init__(self, topology=None):
        self.topology = topology or DEFAULT_TOPOLOGY
        self.blockstore = BlockStore()
        self.ebs = EbsBehaviour(self.blockstore)
        self.moto = MotoServer(free_port())
        self.proxy = FaultProxy(self.moto.port, control=self.handle_control)
        self.instances = []
        self._lock = threading.Lock()

    def start(self):
        self.ebs.install()
        self.moto.start()
        self.proxy.start()
        self.seed()
        return self

    def stop(self):
        self.proxy.stop()
        self.moto.stop()

    def ec2(self):
        """A client that talks to moto directly: set-up traffic is not counted by the proxy."""
        return boto3.client(
            "ec2",
            region_name=REGION,
            endpoint_url=self.moto.url,
            aws_access_key_id=LAB_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LAB_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def seed(self):
        self.instances = seed_instances(self.ec2(), self.topology)

    def reset(self, topology=None):
        """Back to a freshly seeded lab: moto state, EBS settings, faults, counts and volume content."""
        with self._lock:
            urllib.request.urlopen(urllib.request.Request(self.moto.url + "/moto-api/reset", method="POST"), timeout=30).close()
            self.ebs.reset()
            self.proxy.plan.clear()
            self.proxy.counter.reset()
            self.blockstore.reset()
            if topology is not None:
                self.topology = topology
            self.seed()

    def state(self):
        return {
            "pid": os.getpid(),
            "region": REGION,
            "aws_endpoint_url": self.proxy.url,
            "moto_endpoint_url": self.moto.url,
            "control_url": self.proxy.url + "/_lab",
            "environment": dict(LAB_CREDENTIALS, AWS_ENDPOINT_URL=self.proxy.url, AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION),
            "instances": self.instances,
        }

    def handle_control(self, method, path, body):
        """The control API: small JSON documents over HTTP, used by :class:`LabClient`."""
        try:
            request = json.loads(body) if body else {}
            route = (method, path.split("?")[0].rstrip("/"))
            if route == ("GET", "/_lab/state"):
                result = self.state()
            elif route == ("GET", "/_lab/counts"):
                result = self.proxy.counter.snapshot()
            elif route == ("POST", "/_lab/counts/reset"):
                self.proxy.counter.reset()
                result = {}
            elif route == ("PUT", "/_lab/faults"):
                self.proxy.plan.configure(**request)
                result = self.proxy.plan.describe()
            elif route == ("DELETE", "/_lab/faults"):
                self.proxy.plan.clear()
                result = {}
            elif route == ("PUT", "/_lab/ebs"):
                self.ebs.configure(**request)
                result = vars(self.ebs.settings)
            elif route == ("POST", "/_lab/reset"):
                topology = request.get("topology")
                if request.get("fleet"):
                    topology = fleet_topology(**request["fleet"])
                self.reset(topology)
                result = self.state()
            else:
                return 404, json.dumps({"error": "no such control endpoint: %s %s" % route}).encode()
            return 200, json.dumps(result).encode()
        except (TypeError, ValueError, KeyError) as error:
            return 400, json.dumps({"error": str(error)}).encode()


class LabClient:
    """Talks to a running lab's control API."""

    def __init__(self, state):
        self.state = state
        self.url = state["control_url"]

    def _call(self, method, path, payload=None):
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise RuntimeError("lab control %s %s failed: %s" % (method, path, error.read().decode())) from error

    def refresh(self):
        self.state = self._call("GET", "/state")
        return self.state

    def counts(self):
        return self._call("GET", "/counts")

    def reset_counts(self):
        self._call("POST", "/counts/reset", {})

    def faults(self, rules=(), latency_ms=0, rate_limits=None):
        return self._call("PUT", "/faults", {"rules": list(rules), "latency_ms": latency_ms, "rate_limits": rate_limits})

    def clear_faults(self):
        self._call("DELETE", "/faults")

    def ebs(self, **settings):
        return self._call("PUT", "/ebs", settings)

    def reset(self, topology=None, fleet=None):
        payload = {}
        if topology is not None:
            payload["topology"] = topology
        if fleet is not None:
            payload["fleet"] = fleet
        self.state = self._call("POST", "/reset", payload)
        return self.state

    def instance(self, name):
        for instance in self.state["instances"]:
            if instance["name"] == name:
                return instance
        raise KeyError("no lab instance named %s" % name)


def serve(state_file):
    """Run the lab in the foreground until SIGTERM/SIGINT; the state file tells clients where it is."""
    lab = Lab().start()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    temporary = state_file + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(lab.state(), handle, indent=2)
    os.replace(temporary, state_file)
    try:
        stopping.wait()
    finally:
        lab.stop()
        if os.path.exists(state_file):
            os.remove(state_file)


def start_detached(state_file, log_file, timeout=60):
    """Start the lab as a background process and wait until it has written its state file."""
    if os.path.exists(state_file):
        os.remove(state_file)
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")])))
    with open(log_file, "ab") as log:
        process = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-m", "lab", "serve", "--state", state_file],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(state_file):
            with open(state_file, encoding="utf-8") as handle:
                return json.load(handle)
        if process.poll() is not None:
            raise RuntimeError("the lab exited with status %s; see %s" % (process.returncode, log_file))
        time.sleep(0.1)
    process.terminate()
    raise RuntimeError("the lab did not start within %d s; see %s" % (timeout, log_file))


def stop_detached(state_file, timeout=30):
    if not os.path.exists(state_file):
        return False
    with open(state_file, encoding="utf-8") as handle:
        pid = json.load(handle)["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        os.remove(state_file)
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and os.path.exists(state_file):
        time.sleep(0.1)
    return True
