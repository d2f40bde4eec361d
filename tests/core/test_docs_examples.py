"""The plugin shown in docs/writing-a-plugin.md works and passes the conformance kit."""

from __future__ import annotations

import re
from pathlib import Path

import torch

import sciml
from sciml.testing import StandardNormalTarget, check_sampler

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_writing_a_plugin_example():
    text = (DOCS / "writing-a-plugin.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 32
    namespace: dict = {}
    exec(compile(code, "writing-a-plugin.md", "exec"), namespace)
    cls = namespace["RandomWalk"]
    check_sampler(cls(num_steps=30))
    with sciml.registered(cls):
        sampler = sciml.load("sampler", "random-walk")(step_size=0.8, num_steps=300)
    res = sampler.sample(StandardNormalTarget(2), 4000, generator=torch.Generator().manual_seed(0))
    assert res.x.mean(0).abs().max() < 0.1
    assert (res.x.var(0) - 1).abs().max() < 0.15
