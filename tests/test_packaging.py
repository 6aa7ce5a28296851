"""What a newcomer installs: the wheel and the sdist (LICENSE, metadata, the sdist's tests with
everything they need) and the MCP Bundle for Claude Desktop (``manifest.json``, checked and
packed by the official ``mcpb`` tool)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from mcp_state import __version__
from mcp_state.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
MCPB = "@anthropic-ai/mcpb@2.1.2"
MANIFEST = json.loads((ROOT / "manifest.json").read_text())


def test_one_version_everywhere():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    server = json.loads((ROOT / "server.json").read_text())
    assert project["version"] == __version__ == MANIFEST["version"] == server["version"]
    assert project["license"] == "MIT" and MANIFEST["license"] == "MIT"


def test_the_bundle_runs_this_version_with_arguments_serve_accepts():
    config = MANIFEST["server"]["mcp_config"]
    assert config["command"] == "uvx"
    package, *args = config["args"]
    assert package == f"mcp-state=={__version__}"
    parsed = build_parser().parse_args([arg.replace("${user_config.db_path}", "/x.duckdb") for arg in args])
    assert (parsed.command, parsed.db) == ("serve", "/x.duckdb")
    used = {
        arg[len("${user_config.") : -1] for arg in [*args, *config["env"].values()] if arg.startswith("${")
    }
    assert used == set(MANIFEST["user_config"])


@pytest.mark.slow
def test_mcpb_validates_and_packs_the_bundle(npx, tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for name in ("manifest.json", "LICENSE"):
        shutil.copy(ROOT / name, bundle / name)
    env = {**os.environ, "HOME": str(tmp_path), "npm_config_update_notifier": "false"}
    env["npm_config_cache"] = os.environ.get("npm_config_cache", str(Path.home() / ".npm"))  # noqa: SIM112
    for command in (
        ["validate", str(bundle / "manifest.json")],
        ["pack", str(bundle), str(tmp_path / "out.mcpb")],
    ):
        done = subprocess.run(
            [npx, "-y", MCPB, *command], capture_output=True, text=True, timeout=240, env=env, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Manifest schema validation passes!" in done.stdout
    with zipfile.ZipFile(tmp_path / "out.mcpb") as packed:
        assert sorted(packed.namelist()) == ["LICENSE", "manifest.json"]
        assert json.loads(packed.read("manifest.json")) == MANIFEST


@pytest.mark.slow
def test_the_wheel_and_sdist_carry_the_license_and_the_sdist_its_tests(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (wheel,) = tmp_path.glob("*.whl")
    (sdist,) = tmp_path.glob("*.tar.gz")
    with zipfile.ZipFile(wheel) as packed:
        names = packed.namelist()
        metadata = packed.read(f"mcp_state-{__version__}.dist-info/METADATA").decode()
    assert f"mcp_state-{__version__}.dist-info/licenses/LICENSE" in names
    assert "mcp_state/sample_data/auth/users.json" in names and "mcp_state/py.typed" in names
    assert "License-Expression: MIT" in metadata and "Project-URL: Repository," in metadata
    assert "Classifier: Typing :: Typed" in metadata
    with tarfile.open(sdist) as packed:
        inside = {name.split("/", 1)[1] for name in packed.getnames() if "/" in name}
    needed = {
        "LICENSE",
        "README.md",
        "server.json",
        "manifest.json",
        ".ci/run",
        "tests/conftest.py",
        "tests/server_support.py",
        "tests/migration_support.py",
        "tests/sql_support.py",
        "tests/fault_support.py",
        "tests/helpers/state_proc.py",
        "tests/fixtures/legacy/auth/users.json",
        "tests/fixtures/schemas/server.schema.2025-12-11.json",
        "tests/snapshots/server_tools.json",
    }
    assert needed <= inside, needed - inside
    assert not [name for name in inside if name.endswith((".pyc", ".duckdb")) or "__pycache__" in name]
