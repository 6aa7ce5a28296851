"""The state-layer page's example (docs/state-layer.md) runs as shown, printing what its comments say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent / "docs" / "state-layer.md"


def state_layer_example() -> str:
    match = re.search(r"```python\n(.*?)```", PAGE.read_text(), re.DOTALL)
    assert match, "the state-layer section has no Python example"
    return match.group(1)


def test_the_readme_example_prints_what_it_says(tmp_path):
    code = state_layer_example()
    expected = [
        line.split("#", 1)[1].strip()
        for line in code.splitlines()
        if line.startswith("print(") and "#" in line
    ]
    assert len(expected) >= 4
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=dict(os.environ, TZ="Asia/Tokyo"),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == expected
