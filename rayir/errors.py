"""The one base class of every error a person can act on (bad input, a corrupt or foreign file,
a wrong setting): the command line prints its message on one line and exits with status 2, and
the coordinator never retries it as if a machine had failed."""

from __future__ import annotations


class UserError(Exception):
    """A problem in the input, the files or the settings, named so that it can be fixed."""


class IntegrityError(UserError, ValueError):
    """A stored artifact differs from what its manifest recorded, or is malformed: the message
    names the file."""


class ConfigError(UserError, ValueError):
    """A setting that does not apply or has no valid value."""


class UnknownIdError(UserError, KeyError):
    """An id that is referenced (a run's query or document, a training triple's document) but not
    in the collection given."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
