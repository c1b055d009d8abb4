"""The programs in docs/rate-limits.md run offline and print what the page says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_docs_examples_run() -> None:
    text = (ROOT / "docs" / "rate-limits.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert len(blocks) == 2
    outputs = []
    for block in blocks:
        done = subprocess.run(
            [sys.executable, "-c", block],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(done.stdout)
    # Five at once, then five one every 200 ms: about a second.
    found = re.fullmatch(r"10 requests in (\d+\.\d) s\n", outputs[0])
    assert found is not None, outputs[0]
    assert 0.9 <= float(found[1]) <= 2.0, outputs[0]
    # Four runs on two requests a second: the first two go at once, the others wait.
    waits = [float(w) for w in re.findall(r"waited (\d+\.\d+) s", outputs[1])]
    assert len(waits) == 4 and sorted(waits)[:2] == [0.0, 0.0] and max(waits) >= 0.9, outputs[1]
