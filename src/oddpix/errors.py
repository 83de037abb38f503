"""Errors that users see as one readable line instead of a traceback."""

from __future__ import annotations


class OddpixError(Exception):
    """A problem with the user's input, data or environment, explained in the message."""


class ConfigError(OddpixError):
    """params.yaml is invalid; the message names the key and what is valid."""
