"""DescribeSnapshots' owner filter and pagination, which moto 5.1 ignores (it answers every snapshot, in one page).

With the default AMIs loaded, moto's EC2 holds about 1,200 snapshots of other accounts, and the lab seeds more (a
schema-tagged snapshot shared by another account, say). EC2 answers ``OwnerIds`` (``self`` or account ids) with the
snapshots of those owners only, and ``MaxResults`` (5 to 1,000; more is cut to 1,000) with one page and a
``NextToken``; ``MaxResults`` together with ``SnapshotIds`` is refused. The lab does the same, so the collection's
owner filter and its pagination code are exercised instead of being untested until they meet EC2. The order of a
paginated listing is by snapshot id and a token names the last snapshot of its page, so snapshots deleted between
two pages (a retention run deleting while it lists) never make the next page skip one.
"""

import base64
import binascii
from dataclasses import dataclass

from moto.ec2.exceptions import EC2ClientError

MIN_RESULTS = 5
MAX_RESULTS = 1000
SELF = "self"


@dataclass
class Page:
    snapshots: list
    next_token: str = ""


def owned_by(snapshots, owner_ids, account_id):
    """The snapshots of these owners (``self`` is the caller's account); all of them when no owner is asked for."""
    if not owner_ids:
        return snapshots
    wanted = {account_id if owner == SELF else owner for owner in owner_ids}
    return [snapshot for snapshot in snapshots if snapshot.owner_id in wanted]


def _encode(snapshot_id):
    return base64.urlsafe_b64encode(("after:" + snapshot_id).encode()).decode()


def _decode(token):
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith("after:"):
        raise EC2ClientError("InvalidPaginationToken", "The specified pagination token is not valid or is expired.")
    return text[len("after:"):]


def page(snapshots, max_results=None, next_token=None, snapshot_ids=None):
    """One page of a listing, as EC2 cuts it; the whole listing when ``MaxResults`` is not given."""
    if max_results is None and not next_token:
        return Page(list(snapshots))
    if snapshot_ids:
        raise EC2ClientError("InvalidParameterCombination",
                             "The parameter snapshotSet cannot be used with the parameter maxResults")
    size = MAX_RESULTS if max_results is None else int(max_results)
    if size < MIN_RESULTS:
        raise EC2ClientError("InvalidParameterValue",
                             "Value ( %d ) for parameter maxResults is invalid. Expecting a value greater than %d."
                             % (size, MIN_RESULTS - 1))
    size = min(size, MAX_RESULTS)
    ordered = sorted(snapshots, key=lambda snapshot: snapshot.id)
    if next_token:
        after = _decode(next_token)
        ordered = [snapshot for snapshot in ordered if snapshot.id > after]
    chosen = ordered[:size]
    return Page(chosen, _encode(chosen[-1].id) if len(ordered) > size else "")
