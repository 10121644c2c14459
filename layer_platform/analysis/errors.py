"""Errors of the analyst path, each with the exit code the CLI documents (docs/reference/cli.md).

The CLI prints one line per error and exits with its code, so a script can tell a warehouse that
does not exist yet from one that is busy, and a typo in a query from a refused write.
"""

from __future__ import annotations


class AnalysisError(Exception):
    """A reason a read of the warehouse cannot go ahead; ``exit_code`` is the CLI's status."""

    exit_code = 1


class WarehouseMissing(AnalysisError):
    """No warehouse file yet, or not the table a command needs: the pipeline has not run."""

    exit_code = 3


class WarehouseLocked(AnalysisError):
    """A writer held the file lock for longer than the reader was willing to wait."""

    exit_code = 4


class BadQuery(AnalysisError):
    """The SQL does not parse or refers to tables or columns that do not exist."""

    exit_code = 5


class WriteRefused(AnalysisError):
    """The SQL would change something; the analyst path only reads."""

    exit_code = 6


#: Exit code → meaning, for ``--help`` and the reference page.
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "the platform itself failed (a `run` stage, an unexpected error)",
    2: "bad command line (usage error)",
    WarehouseMissing.exit_code: "no warehouse yet, or not the table the command reads",
    WarehouseLocked.exit_code: "the warehouse stayed locked by a writer past --wait",
    BadQuery.exit_code: "the SQL does not parse or names a missing table or column",
    WriteRefused.exit_code: "the SQL would write; `sql` only reads",
}
