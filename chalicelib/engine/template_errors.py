"""The error every template failure is raised as: bad syntax, undefined names, sandbox rules, limits."""

from __future__ import annotations


class TemplateError(Exception):
    """A template that does not parse, names something undefined, or breaks a sandbox rule."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
