"""One module per ``mcp-state`` subcommand.

Each module defines ``register(subparsers)``, which adds its parser and sets
``func=run`` (``run(args) -> int``). Modules import heavy dependencies inside ``run`` so
that ``mcp-state --help`` and server start-up stay fast.
"""
