"""Logical ids that ignore the concern constructs, so that the resources inside them keep the
ids they had as the stack's own children.

A resource whose logical id changes is replaced on the next deploy: a new API (and URL), a new
empty bucket, or a failed update where a name must stay unique (a route's path under the API, a
named log group, the custom domain's base path). So the stack names every resource inside a
transparent construct as if that construct were not in its path. The CDK also builds some
construct ids from another construct's unique id (the Lambda permissions API Gateway needs, the
custom domain's path mapping); those embedded ids are rewritten the same way.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

# The CDK's own scheme (`makeUniqueId` in aws-cdk-lib's core): "Default" is left out of the path,
# "Resource" out of its readable part, which ends in 8 hex digits of the path's md5.
_HIDDEN = "Default"
_HIDDEN_FROM_HUMAN = "Resource"
_MAX_ID = 255
_MAX_HUMAN = 240


def unique_id(path: Sequence[str]) -> str:
    """The id the CDK gives the construct at `path` (ids below the stack, or below the app for
    a construct's unique id)."""
    parts = [part for part in path if part != _HIDDEN]
    if len(parts) == 1 and len(_alphanumeric(parts[0])) <= _MAX_ID:
        return _alphanumeric(parts[0])
    digest = hashlib.md5("/".join(parts).encode(), usedforsecurity=False).hexdigest()
    readable: list[str] = []
    for part in parts:
        if not readable or not readable[-1].endswith(part):
            readable.append(part)
    human = "".join(_alphanumeric(part) for part in readable if part != _HIDDEN_FROM_HUMAN)
    return human[:_MAX_HUMAN] + digest[:8].upper()


def flattened_id(
    path: Sequence[str], *, stack_path: Sequence[str], children: Mapping[str, Sequence[str]]
) -> str:
    """The logical id of the element at `path` (ids below the stack, the first one a transparent
    construct) without that construct. `children` lists, for each transparent construct, the ids
    of its children, whose unique ids other constructs' ids may embed."""
    transparent = path[0]
    renamed = {
        unique_id([*stack_path, owner, child]): unique_id([*stack_path, child])
        for owner, ids in children.items()
        for child in ids
    }
    flat = []
    for part in path[1:]:
        for inner, outer in renamed.items():
            part = part.replace(inner, outer)
        flat.append(part)
    if not flat:
        raise ValueError(f"{transparent} itself is not a CloudFormation element")
    return unique_id(flat)


def _alphanumeric(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", text)
