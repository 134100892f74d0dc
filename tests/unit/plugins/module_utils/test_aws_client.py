"""Client and retry policies: creates get clients without botocore's own retries; a throttling-only retry policy
retries nothing else. Clients are built by amazon.aws's real plugin-side connection code."""

import pytest

from ansible_collections.amazon.aws.plugins.module_utils import cloud
from ansible_collections.amazon.aws.plugins.plugin_utils.base import AWSPluginBase
from ansible_collections.shadowsnap.ec2.plugins.module_utils import aws_client


class Connection(AWSPluginBase):
    def get_options(self):
        return {"region": "eu-west-1", "access_key": "a", "secret_key": "b", "endpoint_url": None, "profile": None,
                "session_token": None, "validate_certs": True, "aws_ca_bundle": None, "aws_config": None}


@pytest.mark.parametrize("factory, service", [(aws_client.ec2_client, "ec2"), (aws_client.ssm_client, "ssm")])
def test_only_creates_go_without_botocores_own_retries(factory, service):
    reads = factory(Connection())
    creates = factory(Connection(), idempotent=False)
    assert reads.meta.service_model.service_name == service and reads.meta.region_name == "eu-west-1"
    assert reads.meta.config.retries.get("total_max_attempts") != 1
    assert creates.meta.config.retries["total_max_attempts"] == 1


def test_the_throttling_policy_retries_throttling_only(monkeypatch):
    monkeypatch.setattr(cloud.time, "sleep", lambda seconds: None)
    calls = []

    def call(code):
        calls.append(code)
        if len(calls) == 1:
            raise aws_client.AWSRetry.base_class({"Error": {"Code": code}}, "SendCommand")
        return "sent"

    assert aws_client.THROTTLING_RETRY(call)("ThrottlingException") == "sent"
    calls.clear()
    with pytest.raises(aws_client.AWSRetry.base_class):
        aws_client.THROTTLING_RETRY(call)("InternalServerError")
    assert calls == ["InternalServerError"]
