# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Systems Manager calls of the ``aws_vss`` engine, one thin function each, with its retry policy and amazon.aws
error handler (failures come out as ``AnsibleAWSError``).

SendCommand is retried only when it was throttled: a command whose answer was lost may be running, and a second one
would take a second VSS snapshot set.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    import botocore
    import botocore.waiter
except ImportError:
    pass  # Handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.waiter import BaseWaiterFactory
from ansible_collections.amazon.aws.plugins.module_utils.waiter import custom_waiter_config
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import READ_RETRY
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import THROTTLING_CODES
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import THROTTLING_RETRY

TERMINAL_STATUSES = ("Success", "Failed", "Cancelled", "TimedOut")
COMMAND_POLL_SECONDS = 2


class AnsibleSSMError(AnsibleAWSError):
    pass


class SsmErrorHandler(AWSErrorHandler):
    _CUSTOM_EXCEPTION = AnsibleSSMError


class _LastAnswer:
    """botocore's waiter operation, keeping the last answer (``Waiter.wait`` returns nothing)."""

    def __init__(self, client_method):
        self._operation = botocore.waiter.NormalizedOperationMethod(client_method)
        self.answer = None

    def __call__(self, **kwargs):
        self.answer = self._operation(**kwargs)
        return self.answer


class SsmWaiterFactory(BaseWaiterFactory):
    """``command_finished``: any terminal status ends the wait (the caller reads which one); a command SSM does not
    list yet, throttling and server errors are waited out."""

    @property
    def _waiter_model_data(self):
        return {
            "command_finished": {
                "operation": "GetCommandInvocation",
                "delay": COMMAND_POLL_SECONDS,
                "maxAttempts": 450,
                "acceptors": [
                    {"state": "success", "matcher": "path", "argument": "Status", "expected": status}
                    for status in TERMINAL_STATUSES
                ] + [
                    # amazon.aws's factory adds EC2's throttling codes; SSM answers ThrottlingException.
                    {"state": "retry", "matcher": "error", "expected": code}
                    for code in ("InvocationDoesNotExist",) + THROTTLING_CODES
                ],
            },
        }

    def get_waiter_with_answer(self, client, waiter_name):
        """(waiter, holder of the last answer it read)."""
        config = self._model.get_waiter(waiter_name)
        operation = _LastAnswer(getattr(client, botocore.xform_name(config.operation)))
        return botocore.waiter.Waiter(waiter_name, config, operation), operation


WAITERS = SsmWaiterFactory()


@SsmErrorHandler.common_error_handler("describe the instance's Systems Manager status")
@READ_RETRY
def describe_instance_information(client, instance_id):
    """The Systems Manager record of the instance, or None when it is not a managed instance."""
    response = client.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [instance_id]}])
    items = [item for item in response.get("InstanceInformationList", []) if item.get("InstanceId") == instance_id]
    return items[0] if items else None


@SsmErrorHandler.common_error_handler("send the SSM command")
@THROTTLING_RETRY
def send_command(client, document_name, instance_id, parameters, comment):
    """SendCommand to one instance; returns the command."""
    return client.send_command(DocumentName=document_name, InstanceIds=[instance_id], Parameters=parameters,
                               Comment=comment)["Command"]


@SsmErrorHandler.common_error_handler("follow the SSM command")
def wait_for_command(client, command_id, instance_id, timeout):
    """The command's invocation once its status is terminal, or its last (non-terminal) one after ``timeout`` s."""
    waiter, last = WAITERS.get_waiter_with_answer(client, "command_finished")
    try:
        waiter.wait(CommandId=command_id, InstanceId=instance_id,
                    WaiterConfig=custom_waiter_config(timeout, COMMAND_POLL_SECONDS))
    except botocore.exceptions.WaiterError as error:
        if "Error" in (error.last_response or {}):
            raise botocore.exceptions.ClientError(error.last_response, "GetCommandInvocation") from error
    return last.answer
