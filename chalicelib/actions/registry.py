"""The action registry: every action ref with its description and input / output schemas."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class ActionSpec:
    ref: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    # run(input, context) -> output, or a suspension (actions.base); raises ActionError.
    run: Callable[..., Any] = field(repr=False, compare=False, default=None)
    version: str = "1.0.0"
    aliases: tuple[str, ...] = field(default=())

    @property
    def pack(self) -> str:
        return self.ref.split(".", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "pack": self.pack,
            "description": self.description,
            "version": self.version,
            "aliases": list(self.aliases),
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
        }


class ActionRegistry:
    def __init__(self, specs: list[ActionSpec]) -> None:
        self._specs: dict[str, ActionSpec] = {}
        self._aliases: dict[str, str] = {}
        for spec in specs:
            if spec.ref in self._specs:
                raise ValueError(f"action {spec.ref} registered twice")
            self._specs[spec.ref] = spec
            for alias in spec.aliases:
                self._aliases[alias] = spec.ref

    def get(self, ref: str) -> ActionSpec | None:
        return self._specs.get(self._aliases.get(ref, ref))

    def __contains__(self, ref: object) -> bool:
        return isinstance(ref, str) and self.get(ref) is not None

    def all(self) -> list[ActionSpec]:
        return sorted(self._specs.values(), key=lambda spec: spec.ref)


def _build() -> ActionRegistry:
    from chalicelib.actions import aws, content, core, saas

    return ActionRegistry(core.SPECS + saas.SPECS + aws.SPECS + content.SPECS)


REGISTRY = _build()
