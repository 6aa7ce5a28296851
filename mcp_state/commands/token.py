"""``mcp-state token``: bearer tokens for the HTTP transport (create, list, revoke)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mcp_state.sharing import DB_HELP, require_database


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "token",
        help="create, list and revoke bearer tokens for `serve --transport http`",
        description=(
            "Bearer tokens for the HTTP transport. A token's actor is the audit actor of its requests; "
            "its scope limits what it may do: read (only reading tools), write (every tool but user and "
            "permission changes), admin (everything). The database keeps only a hash of each token."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser(
        "create", help="create a token and print it once", description="Create a token."
    )
    create.add_argument(
        "--actor", required=True, metavar="NAME", help="audit actor for requests made with it"
    )
    create.add_argument("--scope", required=True, choices=("read", "write", "admin"), help="what it may do")
    _db_option(create)
    create.set_defaults(func=run_create)

    listing = actions.add_parser("list", help="list tokens (never their values)", description="List tokens.")
    listing.add_argument("--all", action="store_true", help="include revoked tokens")
    listing.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    _db_option(listing)
    listing.set_defaults(func=run_list)

    revoke = actions.add_parser(
        "revoke", help="revoke a token by id", description="Revoke a token by its id."
    )
    revoke.add_argument("token_id", metavar="ID", help="the token's id, as `token list` shows it (tok_...)")
    _db_option(revoke)
    revoke.set_defaults(func=run_revoke)


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="PATH",
        help=DB_HELP,
    )


def _tokens(args: argparse.Namespace) -> Any:
    from mcp_state.repositories.tokens import TokenRepository
    from mcp_state.sql.hardening import hardened_database

    # Configured like the server's, so both can share the file within one process too.
    db = hardened_database(require_database(args.db), idle_release=None)
    return db, TokenRepository(db)


def run_create(args: argparse.Namespace) -> int:
    db, tokens = _tokens(args)
    with db:
        token, record = tokens.create(args.actor, args.scope)
    print(
        f"Created token {record['id']} for actor '{record['actor']}' with scope '{record['scope']}'.\n"
        "Copy it now: only its hash is stored, so it cannot be shown again.",
        file=sys.stderr,
    )
    print(token)
    return 0


def run_list(args: argparse.Namespace) -> int:
    db, tokens = _tokens(args)
    with db:
        records = tokens.list_all(include_revoked=args.all)
    if args.json:
        for record in records:
            print(json.dumps(record, default=lambda v: v.isoformat()))
        return 0
    if not records:
        print("No tokens. Create one with: mcp-state token create --actor NAME --scope read", file=sys.stderr)
        return 0
    rows = [("ID", "ACTOR", "SCOPE", "CREATED", "LAST USED", "REVOKED")]
    for r in records:
        rows.append(
            (
                r["id"],
                r["actor"],
                r["scope"],
                _when(r["created_at"]),
                _when(r["last_used_at"]),
                _when(r["revoked_at"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    db, tokens = _tokens(args)
    with db:
        record = tokens.revoke(args.token_id)
    print(f"Revoked token {record['id']} (actor '{record['actor']}', scope '{record['scope']}').")
    return 0


def _when(value: Any) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")
