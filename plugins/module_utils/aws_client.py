# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""AWS client set-up for the collection's modules: the one place that decides how calls are retried."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

# EC2 answers RequestLimitExceeded when a token bucket is empty; buckets refill at 5-20 tokens a second.
READ_RETRY = AWSRetry.jittered_backoff(retries=10, delay=1, max_delay=30)

# Without botocore's own retries: a create whose answer was lost must be reconciled by the caller (look for what it
# created) before it is sent again, or a retry would create a duplicate.
NO_AUTOMATIC_RETRIES = {"retries": {"total_max_attempts": 1}}


def ec2_client(module, idempotent=True):
    """An EC2 client; ``idempotent=False`` for calls that create things and must never be repeated blindly."""
    if idempotent:
        return module.client("ec2", retry_decorator=READ_RETRY)
    return module.client("ec2", config=NO_AUTOMATIC_RETRIES)


def ssm_client(module, idempotent=True):
    """An SSM client with the same policy: ``idempotent=False`` for SendCommand, which must never be repeated blindly."""
    if idempotent:
        return module.client("ssm", retry_decorator=READ_RETRY)
    return module.client("ssm", config=NO_AUTOMATIC_RETRIES)
