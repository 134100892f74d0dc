"""Where the lab's SSM models (lab.aws.ssm_models) plug into moto: SendCommand and GetCommandInvocation of the
backend, and the DescribeInstanceInformation and ListCommandInvocations responses moto lacks."""

from moto.core.exceptions import RESTError
from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.ssm.models import SimpleSystemManagerBackend as SSMBackend
from moto.ssm.responses import SimpleSystemManagerResponse

from .ssm_models import DOCUMENT_NAME, PLUGIN_NAME


def _instance_ids_wanted(response):
    """The instance ids of DescribeInstanceInformation's old (InstanceInformationFilterList) and new (Filters) forms."""
    wanted = []
    for item in response._get_param("InstanceInformationFilterList") or []:  # pylint: disable=protected-access
        if item.get("key") == "InstanceIds":
            wanted += item.get("valueSet") or []
    for item in response._get_param("Filters") or []:  # pylint: disable=protected-access
        if item.get("Key") == "InstanceIds":
            wanted += item.get("Values") or []
    return wanted


def install(behaviour):
    """Route moto's SSM backend and responses to ``behaviour`` (process-wide, once)."""
    if getattr(SSMBackend, "_shadowsnap_lab", False):
        raise RuntimeError("the lab's SSM behaviour is already installed in this process")
    original_send_command = SSMBackend.send_command
    original_get_invocation = SSMBackend.get_command_invocation

    def send_command(backend, **kwargs):
        if kwargs.get("document_name") == DOCUMENT_NAME:
            for instance_id in kwargs.get("instance_ids") or []:
                if not behaviour.managed(instance_id):
                    raise RESTError("InvalidInstanceId", "Instances [[%s]] not in a valid state for account %s"
                                    % (instance_id, backend.account_id))
        command = original_send_command(backend, **kwargs)
        if command.document_name == DOCUMENT_NAME:
            if not kwargs.get("targets"):
                # moto adds every instance of the Region when Targets is empty; SSM runs on the ones named.
                command.instance_ids = list(dict.fromkeys(kwargs.get("instance_ids") or []))
                command.invocations = [command.invocation_response(i, PLUGIN_NAME) for i in command.instance_ids]
                command.target_count = command.completed_count = len(command.instance_ids)
            behaviour.send_command(backend, command)
        return command

    def get_command_invocation(backend, command_id, instance_id, plugin_name):
        del plugin_name
        original_get_invocation(backend, command_id, instance_id, None)
        return behaviour.invocation(backend.get_command_by_id(command_id), instance_id)

    def describe_instance_information(response):
        ec2_backend = ec2_backends[response.current_account][response.region]
        items = behaviour.instance_information(ec2_backend, _instance_ids_wanted(response))
        return ActionResult({"InstanceInformationList": items})

    def list_command_invocations(response):
        backend = response.ssm_backend
        command_id = response._get_param("CommandId")  # pylint: disable=protected-access
        instance_id = response._get_param("InstanceId")  # pylint: disable=protected-access
        invocations = []
        for command in backend.list_commands(command_id, instance_id):
            for target in command.instance_ids:
                if instance_id and target != instance_id:
                    continue
                invocation = behaviour.invocation(command, target)
                invocation.pop("StandardOutputContent", None)
                invocations.append(invocation)
        return ActionResult({"CommandInvocations": invocations})

    SSMBackend.send_command = send_command
    SSMBackend.get_command_invocation = get_command_invocation
    SimpleSystemManagerResponse.describe_instance_information = describe_instance_information
    SimpleSystemManagerResponse.list_command_invocations = list_command_invocations
    SSMBackend._shadowsnap_lab = True  # pylint: disable=protected-access
