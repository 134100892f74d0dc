"""Where the lab's instance behaviour (lab.aws.instance_models) plugs into moto: the RunInstances, StopInstances and
StartInstances API calls. moto's own uses of its backend stay as they are."""

from moto.core.responses import ActionResult
from moto.ec2.exceptions import OperationDisableApiStopNotPermitted
from moto.ec2.models.instances import Instance
from moto.ec2.responses.instances import InstanceResponse

ORIGINAL_RUN = InstanceResponse.run_instances


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

    InstanceResponse.run_instances = run_instances
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
