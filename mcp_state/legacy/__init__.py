"""The legacy JSON state files: their layout, the migration into the database, the export back out.

- ``layout``: the file layout (``KINDS``) and the rules every value follows.
- ``migrate``: ``migrate_all(data_dir)`` / ``migrate(...)``, all or nothing; ``stage`` reads
  and checks the files inside DuckDB (``checks`` builds the SQL), ``write`` writes the rows,
  ``report`` is what a run found and did.
- ``export``: ``export_all(to_dir)`` writes the database back out in the same layout.
"""

from mcp_state.legacy.export import export_all
from mcp_state.legacy.layout import (
    CHAT_ID,
    COUNT,
    EMAIL,
    IDENT,
    KIND_NAMES,
    KINDS,
    LAYOUT_FILES,
    STR_LIST,
    VOTE,
    Kind,
    choice,
    rule_accepts,
)
from mcp_state.legacy.migrate import migrate, migrate_all
from mcp_state.legacy.report import MigrationReport, Problem

__all__ = [
    "CHAT_ID",
    "COUNT",
    "EMAIL",
    "IDENT",
    "KINDS",
    "KIND_NAMES",
    "LAYOUT_FILES",
    "STR_LIST",
    "VOTE",
    "Kind",
    "MigrationReport",
    "Problem",
    "choice",
    "export_all",
    "migrate",
    "migrate_all",
    "rule_accepts",
]
