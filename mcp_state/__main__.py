import sys

from mcp_state.cli import main

sys.exit(main())
