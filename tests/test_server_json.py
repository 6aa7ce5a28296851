"""server.json follows the MCP registry schema and agrees with the package it describes."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import jsonschema

import mcp_state

ROOT = Path(__file__).resolve().parent.parent
# The MCP registry's schema, kept in the repository so a fresh clone can check against it.
SCHEMA = ROOT / "tests" / "fixtures" / "schemas" / "server.schema.2025-12-11.json"


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_server_json_is_valid() -> None:
    server = load(ROOT / "server.json")
    schema = load(SCHEMA)
    jsonschema.validate(
        server, schema, cls=jsonschema.Draft7Validator, format_checker=jsonschema.FormatChecker()
    )
    assert server["$schema"] == schema["$id"]


def test_server_json_matches_the_package() -> None:
    server = load(ROOT / "server.json")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (package,) = server["packages"]
    assert server["version"] == package["version"] == project["version"] == mcp_state.__version__
    assert (package["registryType"], package["identifier"]) == ("pypi", project["name"])
    assert package["transport"] == {"type": "stdio"}
    assert [arg["value"] for arg in package["packageArguments"]] == ["serve"]
    assert "mcp-state" in project["scripts"]
    names = {var["name"] for var in package["environmentVariables"]}
    assert {"DATA_DIR", "MCP_STATE_ACTOR", "MCP_STATE_LOCK_TIMEOUT"} <= names
    # The registry checks PyPI ownership through this line in the package README.
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"mcp-name: {re.escape(server['name'])}\b", readme)
