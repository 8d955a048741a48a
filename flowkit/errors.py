"""Errors users see: one line, naming the file, the byte offset and what was wrong."""
from __future__ import annotations


class FlowkitError(Exception):
    """Base for errors the CLI reports as one line (exit code 1)."""


class CaptureError(FlowkitError):
    """The capture cannot be read (not a capture, damaged with --strict, unreadable)."""

    def __init__(self, path: str, offset: int | None, message: str):
        self.path = path
        self.offset = offset
        self.message = message
        where = f"{path}: offset {offset}: " if offset is not None else f"{path}: "
        super().__init__(where + message)


class EngineUnavailable(FlowkitError):
    """A decode engine needs something not installed (e.g. tshark for pyshark)."""


class FilterError(FlowkitError):
    """A --filter expression could not be parsed; the message points at the bad token."""
