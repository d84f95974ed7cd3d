"""Writes the template `chalice package --merge-template` takes: resources.yaml (the
resources) deep-merged with functions.yaml (additions to chalice's own functions).

    python infra/merge_template.py build/merge.json
"""

from __future__ import annotations

import json
import pathlib
import sys

import yaml

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from chalicelib.provision import _TemplateLoader, load_template  # noqa: E402


def deep_merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def merged_template() -> dict:
    additions = yaml.load((HERE / "functions.yaml").read_text(), Loader=_TemplateLoader)
    return deep_merge(load_template(), additions)


if __name__ == "__main__":
    target = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "build/merge.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(merged_template(), indent=2))
    print(target)
