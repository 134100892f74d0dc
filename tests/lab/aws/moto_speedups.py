"""moto's EC2 made fast enough for fleets of thousands of tagged snapshots, with the same answers.

moto 5.1 reads one resource's tags by matching every tag of the Region against the resource id, so DescribeSnapshots
with a tag filter costs (snapshots x all tags): a retention run over 2,000 snapshots of 15 tags each took minutes per
page. The lab reads a resource's tags from its own entry of the same table, in the same order and shape.
"""

from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix


def install():
    """Process-wide, once."""
    if getattr(TaggedEC2Resource, "_shadowsnap_lab_speedups", False):
        raise RuntimeError("the lab's moto speedups are already installed in this process")

    def get_tags(resource):
        if not resource.id:
            return []
        resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource.id), "")
        return [{"resource_id": resource.id, "key": key, "value": value, "resource_type": resource_type}
                for key, value in resource.ec2_backend.tags.get(resource.id, {}).items()]

    TaggedEC2Resource.get_tags = get_tags
    TaggedEC2Resource._shadowsnap_lab_speedups = True  # pylint: disable=protected-access
