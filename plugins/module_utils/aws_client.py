# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""AWS clients and retry policies of the collection: the one place that decides how calls are retried.

Modules and action plugins get their clients here. ``connection`` is whatever amazon.aws resolves connection settings
with: an ``AnsibleAWSModule`` in a module, an ``AWSPluginBase`` in an action plugin (module_utils must not import
controller code, so the plugin side hands its own in). The API functions of ``ec2_api`` and ``ssm_api`` carry the
retry policies below as decorators.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

# Answers that say the request was refused before it was carried out.
THROTTLING_CODES = ("RequestLimitExceeded", "Throttling", "ThrottlingException", "TooManyRequestsException")

# EC2 answers RequestLimitExceeded when a token bucket is empty; buckets refill at 5-20 tokens a second.
READ_RETRY = AWSRetry.jittered_backoff(retries=10, delay=1, max_delay=30)

# A delete may be sent again (a second DeleteSnapshot answers NotFound, which counts as deleted). A bulk delete shares
# the account's DeleteSnapshot bucket with every other tool, so it keeps trying longer than a read before giving up.
DELETE_RETRY = AWSRetry.jittered_backoff(retries=15, delay=1, max_delay=30)

# Without botocore's own retries: a create whose answer was lost must be reconciled by the caller (look for what it
# created) before it is sent again, or a retry would create a duplicate.
NO_AUTOMATIC_RETRIES = {"retries": {"total_max_attempts": 1}}


class ThrottlingRetry(AWSRetry):
    """AWSRetry for calls that must not run twice: only a throttled request, which was not carried out, is retried."""

    @staticmethod
    def found(response_code, catch_extra_error_codes=None):
        return response_code in THROTTLING_CODES or response_code in (catch_extra_error_codes or ())


THROTTLING_RETRY = ThrottlingRetry.jittered_backoff(retries=10, delay=1, max_delay=30)


def _client(connection, service, idempotent):
    if idempotent:
        return connection.client(service)
    return connection.client(service, config=NO_AUTOMATIC_RETRIES)


def ec2_client(connection, idempotent=True):
    """An EC2 client; ``idempotent=False`` for calls that create things and must never be repeated blindly."""
    return _client(connection, "ec2", idempotent)


def ssm_client(connection, idempotent=True):
    """An SSM client with the same policy: ``idempotent=False`` for SendCommand, which must never be repeated blindly."""
    return _client(connection, "ssm", idempotent)


def rbin_client(connection):
    """A Recycle Bin (``rbin``) client; its calls are reads or idempotent checks made before a create."""
    return connection.client("rbin")


def kms_client(connection, region=None, credentials=None):
    """A KMS client (DescribeKey: whether a snapshot's key is one AWS manages) in ``region``, as ``credentials``."""
    return regional_client(connection, "kms", region, credentials)


def regional_client(connection, service, region=None, credentials=None, idempotent=True):
    """A client in another Region (``region``) and/or as another account (``credentials`` from
    :func:`assume_role`), with the same retry policy as the module's own clients."""
    extra = {}
    if region:
        extra["region"] = region
    if credentials:
        extra.update(credentials)
    if not idempotent:
        extra["config"] = NO_AUTOMATIC_RETRIES
    return connection.client(service, **extra)


def assume_role(connection, role_arn, session_name, external_id=None):
    """Temporary credentials of ``role_arn`` (STS AssumeRole with the module's own credentials), as client keyword
    arguments for :func:`regional_client`: how the collection acts in another account."""
    arguments = {"RoleArn": role_arn, "RoleSessionName": session_name}
    if external_id:
        arguments["ExternalId"] = external_id
    credentials = READ_RETRY(connection.client("sts").assume_role)(**arguments)["Credentials"]
    return {
        "aws_access_key_id": credentials["AccessKeyId"],
        "aws_secret_access_key": credentials["SecretAccessKey"],
        "aws_session_token": credentials["SessionToken"],
    }


def account_id(connection, credentials=None):
    """The account the module's credentials (or ``credentials``) act in (STS GetCallerIdentity)."""
    return READ_RETRY(regional_client(connection, "sts", credentials=credentials).get_caller_identity)()["Account"]
