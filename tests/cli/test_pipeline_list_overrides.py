"""Dotted pipeline overrides index lists (``...labeled.0.init_args.length``)."""

from __future__ import annotations

import pytest

from da_toolkit.cli.pipeline_runner import PipelineConfigError, set_dotted


def test_a_number_indexes_an_existing_list():
    cfg = {"data": {"init_args": {"labeled": [{"init_args": {"length": 512}}, {"init_args": {"length": 9}}]}}}
    set_dotted(cfg, "data.init_args.labeled.1.init_args.length", 3)
    assert cfg["data"]["init_args"]["labeled"] == [{"init_args": {"length": 512}}, {"init_args": {"length": 3}}]
    set_dotted(cfg, "data.init_args.labeled.0", {"class_path": "synthetic"})
    assert cfg["data"]["init_args"]["labeled"][0] == {"class_path": "synthetic"}


@pytest.mark.parametrize("key", ["a.5.x", "a.x.y", "a.2"])
def test_a_bad_list_index_names_the_key(key):
    cfg = {"a": [{}, {}]}
    with pytest.raises(PipelineConfigError, match=key.replace(".", r"\.")):
        set_dotted(cfg, key, 1)
