"""The programs in docs/rate-limits.md run offline and print what the page shows
after each of them (its ```output block; `...` matches any text, as in doctest)."""

from __future__ import annotations

import doctest
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```python\n(.*?)```\n\n```output\n(.*?)```\n", re.DOTALL)


def test_the_docs_examples_print_what_the_page_shows() -> None:
    text = (ROOT / "docs" / "rate-limits.md").read_text()
    found = BLOCK.findall(text)
    assert len(found) == 2 and text.count("```python\n") == 2
    checker = doctest.OutputChecker()
    for code, shown in found:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert checker.check_output(shown, done.stdout, doctest.ELLIPSIS), (
            f"the page shows\n{shown}\nthe program printed\n{done.stdout}"
        )
