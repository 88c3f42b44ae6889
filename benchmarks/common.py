"""What every benchmark shares: the JSON output."""

from __future__ import annotations

import json
from pathlib import Path


def emit(results: dict, out: str | None) -> None:
    """Print the results as JSON, and write them to `out` too when given."""
    text = json.dumps(results, indent=2)
    print(text)
    if out:
        Path(out).write_text(text + "\n")
