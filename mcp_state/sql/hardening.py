"""The one home of the SQL tool's database hardening (layer 5 of the read-only SQL tool).

A DuckDB instance is hardened when it is opened, and again every time ``Database`` reopens it
after an idle release::

    db = Database(path, config=hardened_config(path), on_open=harden)
    # or: db = hardened_database(path)

``hardened_config`` goes to ``duckdb.connect``: no access to files other than the database
itself (its WAL and its spill directory next to it), no extension installed or loaded on
demand, no Python variables read as tables, bounded memory and threads. ``harden`` runs
after the migrations and the UTC time-zone setting and locks the configuration, so no
statement can change any of it afterwards. The one option left changeable is
``max_execution_time``: the SQL engine sets it per cursor (its statements are checked before
they run, and a SET never passes that check).

``hardening_problems`` tells the engine whether the instance it is about to query is hardened;
it refuses to run a query on one that is not.

Facts measured on DuckDB 2.0.1 (tests/test_sql_hardening.py keeps them honest):
``enable_external_access = false`` refuses ``read_csv``/``glob``/``COPY``/``EXPORT``/``ATTACH``
of a file and ``INSTALL``, and still opens, writes and spills the database file itself;
``lock_configuration = true`` refuses ``SET``/``RESET``/``PRAGMA x = y`` of any option, global
or session, except ``search_path`` (``USE``) and the options in ``allowed_configs``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import duckdb

from mcp_state.db import Database

DEFAULT_MEMORY_LIMIT = "1GB"
DEFAULT_SPILL_LIMIT = "2GB"
DEFAULT_THREADS = 4

# What a hardened instance reports through current_setting(); the engine checks each query.
REQUIRED_SETTINGS: dict[str, bool] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "python_enable_replacements": False,
    "lock_configuration": True,
}


# Settings every SQL instance gets, the server's hardened one and the worker's in-memory one:
# no extension is installed or loaded, no secret persists, and a table name never reads a
# Python variable (a DataFrame in some caller's frame).
NO_EXTENSIONS_OR_SECRETS: dict[str, Any] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "allow_persistent_secrets": False,
    "python_enable_replacements": False,
}


def hardened_config(
    path: str | os.PathLike[str] = "",
    *,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    threads: int | None = None,
) -> dict[str, Any]:
    """The ``duckdb.connect`` config of a database the SQL tool may query.

    ``path`` is the database file; an in-memory database (``:memory:``) gets no spill
    directory, because DuckDB's default one is ``.tmp`` in the current directory.
    """
    config: dict[str, Any] = {
        # Files: the database file, its WAL and its spill directory only. Blocks read_csv,
        # read_text, glob, COPY, EXPORT DATABASE, ATTACH of a file, INSTALL, LOAD of a file.
        "enable_external_access": False,
        **NO_EXTENSIONS_OR_SECRETS,
        "memory_limit": memory_limit,
        # A query that spills (a big sort) may not fill the disk the state is written to.
        "max_temp_directory_size": DEFAULT_SPILL_LIMIT,
        "threads": threads or min(DEFAULT_THREADS, os.cpu_count() or 1),
        # Changeable after the lock: the engine sets its time limit per cursor.
        "allowed_configs": ["max_execution_time"],
    }
    if str(path) in ("", ":memory:"):
        config["temp_directory"] = ""
    return config


def harden(conn: duckdb.DuckDBPyConnection) -> None:
    """``Database``'s ``on_open`` hook: lock the configuration (last, after migrations)."""
    # Idempotent: DuckDB hands a second opener in this process the same, already locked, instance.
    if conn.execute("SELECT current_setting('lock_configuration')").fetchone() != (True,):
        conn.execute("SET GLOBAL lock_configuration = true")


def hardened_database(path: str | os.PathLike[str], **kwargs: Any) -> Database:
    """A ``Database`` opened hardened every time it (re)opens; ``kwargs`` go to ``Database``.
    (These are DuckDB's settings: a PostgreSQL database, a URL, does not use them.)"""
    memory_limit = kwargs.pop("memory_limit", DEFAULT_MEMORY_LIMIT)
    threads = kwargs.pop("threads", None)
    return Database(
        path,
        config=hardened_config(path, memory_limit=memory_limit, threads=threads),
        on_open=harden,
        **kwargs,
    )


def hardening_problems(settings: Mapping[str, Any]) -> list[str]:
    """The required settings that ``settings`` (name -> current value) does not have."""
    problems = []
    for name, wanted in REQUIRED_SETTINGS.items():
        value = settings.get(name)
        if value is None or str(value).lower() != str(wanted).lower():
            problems.append(f"{name} is {value} (needs {str(wanted).lower()})")
    return problems
