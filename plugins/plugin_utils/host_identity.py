# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which EC2 instance a Windows host is, and the Region the controller asks EC2 in - one rule for every action plugin.

The host itself tells (IMDSv2, in the agent's ``facts``); options and inventory variables (as amazon.aws.aws_ec2 sets
them) fill in when IMDS does not answer:

- instance id: IMDS, else the plugin's instance id option, else the host variable ``instance_id``;
- Region: the ``region`` option when the task (or module_defaults) sets it, else IMDS, else the host variable
  ``placement.region``, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION``;
- an option that contradicts IMDS fails the task before anything changes: the task would act on another instance.
"""

# FOR INTERNAL COLLECTION USE ONLY
# The interfaces in this file are meant for use within the shadowsnap.ec2 collection and may not remain stable to
# outside uses. Changes may be made in ANY release, even a bugfix release.

from __future__ import annotations


class IdentityError(Exception):
    """The sources of the instance's identity contradict each other."""


def _inventory_identity(task_vars: dict) -> tuple[str | None, str | None]:
    """instance_id and region from host variables as amazon.aws.aws_ec2 sets them (instance_id, placement.region)."""
    placement = task_vars.get("placement")
    region = placement.get("region") if isinstance(placement, dict) else None
    instance_id = task_vars.get("instance_id")
    return (instance_id if isinstance(instance_id, str) else None), region


def resolve_identity(imds: dict | None, option_instance_id: str | None, option_region: str | None,
                     task_vars: dict, env_region: str | None) -> dict:
    """``instance_id``, ``region``, ``availability_zone``, ``account_id``, ``instance_type`` and ``identity_source``
    (``imds``, ``option``, ``inventory`` or None) of the host; ``option_region`` is the region the task set itself."""
    imds = imds or {}
    inventory_instance_id, inventory_region = _inventory_identity(task_vars)
    imds_instance_id, imds_region = imds.get("instance_id"), imds.get("region")
    if option_instance_id and imds_instance_id and option_instance_id != imds_instance_id:
        raise IdentityError(
            f"the host says (IMDSv2) it is {imds_instance_id}, the task says instance_id={option_instance_id}"
        )
    if option_region and imds_region and option_region != imds_region:
        raise IdentityError(f"the host says (IMDSv2) it runs in {imds_region}, the task says region={option_region}")
    if imds_instance_id:
        source = "imds"
    elif option_instance_id:
        source = "option"
    elif inventory_instance_id:
        source = "inventory"
    else:
        source = None
    return {
        "instance_id": imds_instance_id or option_instance_id or inventory_instance_id,
        "region": option_region or imds_region or inventory_region or env_region,
        "availability_zone": imds.get("availability_zone"),
        "account_id": imds.get("account_id"),
        "instance_type": imds.get("instance_type"),
        "identity_source": source,
    }
