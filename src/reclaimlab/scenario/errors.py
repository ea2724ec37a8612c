"""The one user-facing error of scenario handling.

Every problem with user input -- a missing file, a TOML syntax error, an unknown key, a wrong
type, an impossible value, a bad ``--set`` -- becomes a :class:`ScenarioError` whose message
names the file, the dotted key path (with the TOML line when it is known) and what was
expected. The command line turns it into exit status 2 and one paragraph on stderr.
"""

from __future__ import annotations


class ScenarioError(Exception):
    """A scenario (file or override) that cannot be loaded, with a message for the user."""

    def __init__(self, source: str, message: str, key: str | None = None,
                 line: int | None = None) -> None:
        self.source = source
        self.key = key
        self.line = line
        self.detail = message
        where = source
        if line is not None:
            where += f", line {line}"
        if key:
            where += f", key '{key}'"
        super().__init__(f"{where}: {message}")
