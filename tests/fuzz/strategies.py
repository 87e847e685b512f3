"""Hypothesis strategies shared by the fuzz tests: junk values, and valid documents with a few
keys replaced, removed or added (most of the input space a user can reach is near a valid file)."""
from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

ODD_TEXT = st.sampled_from(["", " ", "~", "~nosuchuser/x.fa", "a\x00b", "x" * 5000, "-1", "0", "1e999", ".nan",
                            "null", "é", "ÿ", "../..", "/"])
SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.sampled_from([0, -1, 1, 2**31, 2**63])
           | st.floats() | st.text(max_size=12) | ODD_TEXT)


def junk(keys: list[str]) -> st.SearchStrategy[Any]:
    """Any YAML value; mapping keys often real key names."""
    return st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), inner, max_size=3),
                        max_leaves=6)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, prefix + (i,))
    return found


def _keys(value: Any) -> list[str]:
    return sorted({str(p[-1]) for p in _paths(value) if p and isinstance(p[-1], str)})


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with one to three edits at random places: a value replaced by junk, a key removed,
    a key (often a real name from elsewhere in ``base``) added."""
    doc = copy.deepcopy(base)
    keys = _keys(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(junk(keys))
        elif action == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(keys) | st.text(max_size=8))] = draw(junk(keys))
        else:
            parent.append(draw(junk(keys)))
    return doc
