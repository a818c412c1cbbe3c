"""Who may read what: the access policy that maps callers' groups to the collections they read.

ATHENAEUM_ACCESS_POLICY is a JSON object naming each collection with the groups that may read
it, `"*"` standing for every authenticated caller:

    {"hr": ["hr-staff", "executives"], "engineering": ["engineering"], "handbook": "*"}

- a collection the policy does not name is readable by nobody;
- the documents at the library's root (in no folder) are readable by every caller;
- without a policy, every caller reads everything.

A caller's groups come from their credential (athenaeum.server.auth.groups). What a caller may
read is applied to the backend they search (athenaeum.retrieval.access.ScopedBackend), on every
path that returns text or a link.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from athenaeum.bundle import DocumentInfo
from athenaeum.bundle.format import ROOT_COLLECTION, collection_error
from athenaeum.retrieval.access import ScopedBackend
from athenaeum.retrieval.backend import SearchBackend

EVERYONE = "*"
SETTING = "ATHENAEUM_ACCESS_POLICY"
MAX_GROUP_CHARS = 256  # as a credential may carry (athenaeum.server.auth.groups)


@dataclass(frozen=True)
class AccessPolicy:
    """Each collection with the groups that may read it (EVERYONE among them: every caller)."""

    grants: Mapping[str, frozenset[str]]

    @classmethod
    def parse(cls, text: str) -> AccessPolicy:
        """The policy `text` holds; ValueError saying what is wrong, with the collection's
        name where one is at fault."""
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{SETTING} is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                'it is an object such as {"hr": ["hr-staff"], "handbook": "*"}'
            ) from None
        if not isinstance(document, dict):
            raise ValueError(
                f"{SETTING} must be a JSON object mapping each collection to the groups that "
                f'may read it, such as {{"hr": ["hr-staff"], "handbook": "*"}}; got '
                f"{type(document).__name__}"
            )
        grants: dict[str, frozenset[str]] = {}
        for name, groups in document.items():
            problem = collection_error(name)
            if problem is not None:
                raise ValueError(f"{SETTING}: {name!r} is not a collection: {problem}")
            if isinstance(groups, str):
                groups = [groups]
            if not isinstance(groups, list):
                raise ValueError(
                    f"{SETTING}: the collection {name!r} must map to a list of groups (or "
                    f'"{EVERYONE}" for every caller), got {type(groups).__name__}'
                )
            for group in groups:
                if not isinstance(group, str) or not group.strip() or len(group) > MAX_GROUP_CHARS:
                    raise ValueError(
                        f"{SETTING}: the collection {name!r} names the group {group!r}; a group "
                        f"is 1 to {MAX_GROUP_CHARS} characters of text"
                    )
            grants[name] = frozenset(groups)
        return cls(grants)

    def readable(self, groups: Iterable[str]) -> frozenset[str]:
        """The collections a caller with `groups` may read, the library's root among them."""
        held = set(groups)
        return frozenset(
            {ROOT_COLLECTION}
            | {
                name
                for name, granted in self.grants.items()
                if EVERYONE in granted or not granted.isdisjoint(held)
            }
        )


@lru_cache(maxsize=8)
def parse_policy(text: str) -> AccessPolicy:
    return AccessPolicy.parse(text)


def readable_for(policy: AccessPolicy | None, groups: Iterable[str]) -> frozenset[str] | None:
    """What a caller with `groups` may read under `policy`: None (everything) without one."""
    if policy is None:
        return None
    return policy.readable(groups)


# Per loaded backend, for each set of readable collections seen, the documents a caller with
# that reach may read (None: all of them), so that a request does not list them again. Weak,
# and holding no reference to the backend, so that a backend replaced by a newer version of the
# index is freed.
_visible: weakref.WeakKeyDictionary[
    SearchBackend, dict[frozenset[str], dict[str, DocumentInfo] | None]
] = weakref.WeakKeyDictionary()
_visible_lock = threading.Lock()
MAX_REACHES = 256  # per backend: distinct sets of readable collections


def scoped(backend: SearchBackend, readable: frozenset[str] | None) -> SearchBackend:
    """`backend` as a caller who may read `readable` sees it (None: as it is, as for a caller
    who may read every collection it has)."""
    if readable is None:
        return backend
    with _visible_lock:
        reaches = _visible.get(backend)
        if reaches is None:
            reaches = _visible[backend] = {}
        if readable in reaches:
            visible = reaches[readable]
        else:
            if len(reaches) >= MAX_REACHES:
                reaches.clear()
            documents = backend.documents
            every = {d.collection for d in documents}
            visible = reaches[readable] = (
                None
                if readable.issuperset(every)
                else {d.doc_id: d for d in documents if d.collection in readable}
            )
    return backend if visible is None else ScopedBackend(backend, readable, visible)
