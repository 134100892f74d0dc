"""Where the lab's instance behaviour (lab.aws.instance_models) plugs into moto: the RunInstances, StopInstances and
StartInstances API calls, TerminateInstances' instance event, and in moto's backend (so seeded instances get it too) the default subnet and security group
of an instance launched without them and the private address of a terminated instance set free. moto's other uses of its backend stay as they are."""

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError, OperationDisableApiStopNotPermitted
from moto.ec2.models.instances import Instance, InstanceBackend
from moto.ec2.responses.instances import InstanceResponse

ORIGINAL_RUN = InstanceResponse.run_instances
ORIGINAL_BACKEND_RUN = InstanceBackend.run_instances
ORIGINAL_TERMINATE = InstanceBackend.terminate_instances


def _claim_address(subnet, address):
    """A terminated instance's address is free again, as in EC2 (moto keeps it); a live one's is refused as EC2 does
    (moto raises a bare exception: HTTP 500)."""
    holder = subnet._subnet_ips.get(address)  # pylint: disable=protected-access
    if holder is None:
        return
    if getattr(holder, "state", None) == "terminated":
        del subnet._subnet_ips[address]  # pylint: disable=protected-access
        return
    raise EC2ClientError("InvalidIPAddress.InUse", "Address %s is in use." % address)


def _run_in_default_group(backend, image_id, count, user_data, security_group_names, **kwargs):
    """EC2 launches an instance without a subnet into the default subnet of its zone (moto into none, with an address
    of no subnet), and one without a security group into its VPC's default group (moto into none)."""
    if not kwargs.get("subnet_id") and not kwargs.get("nics"):
        zone = kwargs.get("placement") or backend.region_name + "a"
        default = backend.get_default_subnets().get(zone)
        if default is not None:
            kwargs["subnet_id"] = default.id
    if kwargs.get("private_ip") and kwargs.get("subnet_id"):
        _claim_address(backend.get_subnet(kwargs["subnet_id"]), kwargs["private_ip"])
    if not security_group_names and not kwargs.get("security_group_ids") and not kwargs.get("nics"):
        vpc_id = backend.get_subnet(kwargs["subnet_id"]).vpc_id if kwargs.get("subnet_id") else None
        default = backend.get_default_security_group(vpc_id)
        if default is not None:
            kwargs["security_group_ids"] = [default.id]
    return ORIGINAL_BACKEND_RUN(backend, image_id, count, user_data, security_group_names, **kwargs)


def _patch_requests(behaviour):
    def run_instances(self):
        parameters = (self._get_param("ImageId"), self._get_param("InstanceType"), self._get_param("SubnetId"),
                      self._get_int_param("MinCount"))
        reservation = behaviour.run(lambda: ORIGINAL_RUN(self).result, self.ec2_backend, self._get_param("ClientToken"),
                                    parameters, self._get_param("BlockDeviceMappings", []))
        return ActionResult(reservation)

    def stop_instances(self):
        instances = self.ec2_backend.get_multi_instances_by_id(self._get_param("InstanceIds", []))
        self.error_on_dryrun()
        for instance in instances:
            if instance.disable_api_stop is True:
                raise OperationDisableApiStopNotPermitted(instance.id)
        return ActionResult({"StoppingInstances": behaviour.stop(instances)})

    def start_instances(self):
        instances = self.ec2_backend.get_multi_instances_by_id(self._get_param("InstanceIds", []))
        self.error_on_dryrun()
        return ActionResult({"StartingInstances": behaviour.start(instances)})

    def add_block_device(self, size, device_path, snapshot_id, encrypted, delete_on_termination, kms_key_id,
                         volume_type):
        """moto passes Encrypted as it misreads it and drops Iops and Throughput: the model reads the mapping."""
        behaviour.block_device(self, size, device_path, snapshot_id, delete_on_termination, volume_type)

    def terminate_instances(backend, instance_ids):
        """moto's termination, then the instance event (the Windows host of the instance goes down)."""
        terminated = ORIGINAL_TERMINATE(backend, instance_ids)
        with behaviour.lock:
            for instance, _previous in terminated:
                behaviour.notify(instance)
        return terminated

    InstanceResponse.run_instances = run_instances
    InstanceBackend.terminate_instances = terminate_instances
    InstanceBackend.run_instances = _run_in_default_group
    Instance.add_block_device = add_block_device
    InstanceResponse.stop_instances = stop_instances
    InstanceResponse.start_instances = start_instances


def install(behaviour):
    """Route moto's instance API calls to ``behaviour`` (process-wide, once)."""
    if getattr(InstanceResponse, "_shadowsnap_lab", False):
        raise RuntimeError("the lab's instance behaviour is already installed in this process")
    _patch_requests(behaviour)
    InstanceResponse._shadowsnap_lab = True  # pylint: disable=protected-access


def control(behaviour, method, route, request):
    """The ``/_lab/instances`` control routes (docs/lab.md); raises KeyError for an unknown route."""
    if (method, route) == ("PUT", "/_lab/instances/settings"):
        return behaviour.configure(**request)
    raise KeyError("no such control endpoint: %s %s" % (method, route))
