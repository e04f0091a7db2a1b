"""Every YAML example in the docs and every file in configs/ is a valid site configuration."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from groupserver.config import load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)


def _examples():
    for doc in sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]:
        for n, block in enumerate(BLOCK.findall(doc.read_text())):
            yield pytest.param(block, id=f"{doc.name}-{n}")


@pytest.mark.parametrize("text", list(_examples()))
def test_yaml_example_in_docs_is_valid(text):
    parse_config(text, source="example")


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_config_is_valid(path):
    config = load_config(path)
    assert config.groups
