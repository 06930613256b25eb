"""The one base of every error that a user's input, file or machine causes.

The command line catches `UserError` and prints its message in one line with exit status 2;
anything else is a bug and keeps its traceback. Each stage defines its own subclass next to the
code that raises it (`GraphError`, `ConfigError`, ...), named for what was wrong.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input, a bad file or a machine that cannot do what was asked; the message names the
    file, key, node or value and says what is accepted."""


class ResourceError(UserError, ValueError):
    """Work that this machine cannot hold or should not start (memory, processes)."""
