"""The AWS half of the lab: a real moto server, the EBS and SSM behaviour moto leaves out, and a fault proxy in front.

Laid out the way moto lays out a service: the state and logic the lab adds (``*_models``) apart from the wire and from
where it plugs into moto (``*_responses``: templates, request parsing, the moto entry points routed to the models).
"""

from . import copy_responses, ebs_responses, instance_responses, moto_speedups, retention_responses, ssm_responses, volume_responses
from .copy_client import CopyLabClient
from .copy_models import CopyBehaviour
from .ebs_models import EbsBehaviour
from .fault_proxy import FaultProxy
from .instance_models import InstanceStates
from .moto_server import MotoServer
from .retention_client import RetentionLabClient
from .retention_models import RetentionBehaviour
from .ssm_models import SsmBehaviour
from .volume_models import EbsVolumes


def install_into_moto(ebs, ssm, volumes, instances, retention, copies):
    """Route moto's EBS, EBS volume, instance, SSM, retention and copy entry points to the lab's models (process-wide,
    once per process)."""
    moto_speedups.install()
    ebs_responses.install(ebs)
    volume_responses.install(volumes)
    instance_responses.install(instances)
    ssm_responses.install(ssm)
    retention_responses.install(retention)
    copy_responses.install(copies)


__all__ = ["CopyBehaviour", "CopyLabClient", "EbsBehaviour", "EbsVolumes", "FaultProxy", "InstanceStates", "MotoServer",
           "RetentionBehaviour", "RetentionLabClient", "SsmBehaviour", "install_into_moto"]
