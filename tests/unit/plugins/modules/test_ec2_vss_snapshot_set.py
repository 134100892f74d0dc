"""The aws_vss engine's decisions: AWS's verdict, the AwsVssConfig set id, the document's parameters, the command
waiter and SendCommand's retries (SSM stubbed with botocore's own Stubber)."""

import datetime

import boto3
import botocore.waiter
import pytest
from botocore.stub import Stubber

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.shadowsnap.ec2.plugins.module_utils import ssm_api
from ansible_collections.shadowsnap.ec2.plugins.modules import ec2_vss_snapshot_set as module


@pytest.mark.parametrize("config, expected", [
    ("Version=2.3.1;SnapshotSetId={D0114E8F-7087-474F-A5C7-868215A1B270};CopyOnly=True", "d0114e8f-7087-474f-a5c7-868215a1b270"),
    ('{"snapshotSetId": "d0114e8f-7087-474f-a5c7-868215a1b270"}', "d0114e8f-7087-474f-a5c7-868215a1b270"),
    ("AwsVssComponentsVersion=2.3.1", None),
    ("", None),
    (None, None),
])
def test_the_set_id_is_read_from_aws_vss_config_when_present(config, expected):
    assert module.vss_set_id(config) == expected


@pytest.mark.parametrize("tags, no_writers, expected", [
    ([{"AppConsistent": "true"}, {"AppConsistent": "True"}], False, (True, "application")),
    ([{"AppConsistent": "true"}, {"AppConsistent": "false"}], False, (False, "crash")),
    ([{"AppConsistent": "true"}, {}], False, (False, "crash")),
    ([{"AppConsistent": "true"}], True, (True, "crash")),
    ([], False, (False, "crash")),
])
def test_application_only_when_every_member_says_so_and_writers_took_part(tags, no_writers, expected):
    assert module.verdict(tags, no_writers) == expected


def test_document_parameters_are_the_documented_strings():
    parameters = module.document_parameters(True, True, False, 600, "d")
    assert parameters == {"ExcludeBootVolume": ["True"], "CopyOnly": ["True"], "NoWriters": ["False"],
                          "CreateAmi": ["False"], "description": ["d"], "executionTimeout": ["600"]}
    assert "executionTimeout" not in module.document_parameters(False, False, False, None, "d")
    assert not set(module.RESERVED_AWS_TAGS) & set(parameters)


class Clock:
    """botocore's waiter sleeps with time.sleep: recorded here instead of slept."""

    def __init__(self):
        self.now = 0.0

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture
def stubbed_ssm(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(botocore.waiter.time, "sleep", clock.sleep)
    client = boto3.client("ssm", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(client) as stubber:
        yield client, stubber, clock


COMMAND = "0b2d6c1e-5a4f-4d8e-9c7b-1a2b3c4d5e6f"
INSTANCE = "i-0123456789abcdef0"


def invocation(status):
    return {"CommandId": COMMAND, "InstanceId": INSTANCE, "Status": status, "StatusDetails": status}


def test_the_waiter_polls_until_a_terminal_status(stubbed_ssm):
    ssm, stubber, clock = stubbed_ssm
    for status in ["Pending", "InProgress", "InProgress", "Success"]:
        stubber.add_response("get_command_invocation", invocation(status), {"CommandId": COMMAND, "InstanceId": INSTANCE})
    assert module.wait_for_command(ssm, COMMAND, INSTANCE, 60)["Status"] == "Success"
    stubber.assert_no_pending_responses()  # 4 calls: the terminal answer is the waiter's own last one
    assert clock.now < 10


def test_polling_is_bounded(stubbed_ssm):
    ssm, stubber, clock = stubbed_ssm
    for dummy in range(100):
        stubber.add_response("get_command_invocation", invocation("InProgress"))
    with pytest.raises(module.VssCommandError, match="still InProgress after 30 s"):
        module.wait_for_command(ssm, COMMAND, INSTANCE, 30)
    assert clock.now <= 31


def test_a_command_not_listed_yet_is_waited_for_and_a_failed_one_returned(stubbed_ssm):
    ssm, stubber, clock = stubbed_ssm
    stubber.add_client_error("get_command_invocation", "InvocationDoesNotExist")
    stubber.add_client_error("get_command_invocation", "ThrottlingException", http_status_code=400)
    stubber.add_response("get_command_invocation", dict(invocation("Failed"), StandardOutputContent="no components"))
    assert module.wait_for_command(ssm, COMMAND, INSTANCE, 60)["StandardOutputContent"] == "no components"
    stubber.assert_no_pending_responses()


def test_an_error_the_waiter_cannot_wait_out_is_an_aws_error_not_a_timeout(stubbed_ssm):
    ssm, stubber, clock = stubbed_ssm
    stubber.add_client_error("get_command_invocation", "AccessDeniedException", "not allowed")
    with pytest.raises(AnsibleAWSError, match="Failed to follow the SSM command.*AccessDeniedException"):
        module.wait_for_command(ssm, COMMAND, INSTANCE, 60)


def test_send_command_is_retried_only_when_throttled(stubbed_ssm):
    ssm, stubber, clock = stubbed_ssm
    stubber.add_client_error("send_command", "ThrottlingException", http_status_code=400)
    stubber.add_response("send_command", {"Command": {"CommandId": COMMAND}})
    assert ssm_api.send_command(ssm, module.DOCUMENT_NAME, INSTANCE, {}, "x")["CommandId"] == COMMAND
    stubber.add_client_error("send_command", "InternalServerError", http_status_code=500)
    with pytest.raises(AnsibleAWSError, match="InternalServerError"):
        ssm_api.send_command(ssm, module.DOCUMENT_NAME, INSTANCE, {}, "x")
    stubber.assert_no_pending_responses()


class Module:
    """Stands in for amazon.aws's AnsibleAWSModule: params, check mode, and the client it would build."""

    check_mode = False

    def __init__(self, client, **params):
        self.params = dict(instance_id=INSTANCE, set_id="s-1", exclude_boot_volume=False, copy_only=True,
                           no_writers=False, policy="default", awx_job_id=None, execution_timeout=None, wait_timeout=60, **params)
        self._client = client

    def client(self, service, **kwargs):
        return self._client


def test_tags_over_budget_even_with_one_volume_fail_before_any_call(stubbed_ssm):
    ssm, stubber, clock = stubbed_ssm
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    with pytest.raises(module.VssCommandError, match="the set needs 51 tags per snapshot"):
        module.ensure_vss_set(Module(ssm, tags={"Tag%02d" % n: "x" for n in range(37)}), "s-1", now)
