"""``rayir fit | encode | index | search | re_rank | evaluate`` and the ``jobs/*.py`` entry points.

Both go through one jsonargparse parser, so a YAML config written for ``rayir index --config x.yaml``
works unchanged with ``python jobs/index.py --config x.yaml`` and ``ray job submit -- python jobs/index.py``.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import UserError
from ..logs import configure_logging
from .stages import EncodingOptions, encode, evaluate, fit, index, re_rank, search

__all__ = ["EncodingOptions", "STAGES", "encode", "evaluate", "fit", "index", "main", "re_rank", "run_job", "search"]

STAGES: dict[str, Callable[..., Any]] = {
    "fit": fit,
    "encode": encode,
    "index": index,
    "search": search,
    "re_rank": re_rank,
    "evaluate": evaluate,
}

# Bad input (unreadable files, wrong settings, existing outputs) ends with one line and exit status 2.
_USER_ERRORS = (UserError, ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)
# So does storage the user must fix: full, read-only, or not writable.
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


def main(args: Sequence[str] | None = None) -> None:
    """The ``rayir`` console script: one subcommand per stage."""
    _run(STAGES, args)


def run_job(stage: str, args: Sequence[str] | None = None) -> None:
    """``jobs/<stage>.py``: the ``rayir <stage>`` parser without the subcommand word."""
    _run(STAGES[stage], args)


def run_function(function: Callable[..., Any], args: Sequence[str] | None = None) -> None:
    """A command line for any typed function (the quickstart job)."""
    _run(function, args)


def _run(components: Any, args: Sequence[str] | None) -> None:
    from jsonargparse import auto_cli

    configure_logging()
    try:
        auto_cli(components, args=list(args) if args is not None else None, as_positional=False, parser_class=_parser())
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        sys.exit(130)
    except _USER_ERRORS as err:
        _fail(err)
    except OSError as err:
        if err.errno not in _STORAGE_ERRNOS:
            raise
        _fail(err)


def _parser() -> type:
    """jsonargparse's parser with ``--version`` (on ``rayir`` and on each stage and job)."""
    from jsonargparse import ArgumentParser

    from .. import __version__

    class Parser(ArgumentParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.add_argument("--version", action="version", version=f"rayir {__version__}")

    return Parser


def _fail(err: BaseException) -> None:
    """One line, exit status 2: what is wrong and where, without a traceback."""
    print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
    sys.exit(2)
