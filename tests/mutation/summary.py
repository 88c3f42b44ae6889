"""The mutation tier's figures: mutmut's results per module, the template mutants, and the
share of non-equivalent mutants killed, as JSON. Exits 1 below the target (90%).

    python summary.py MUTMUT_RESULTS TEMPLATE_RESULTS EQUIVALENT_LIST MUTMUT_SECONDS [SOURCE_RESULTS]

SOURCE_RESULTS is source_mutants.py's output (its equivalents are listed, with reasons, in
that file); its survivors fail the run as the template mutants' do.

EQUIVALENT_LIST (docs/development.md) names the mutants that no test can or
should kill, each with its reason; a listed mutant that is killed now, or no longer
exists, is reported so the list stays true.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

TARGET = 0.90
KILLED = {"killed", "timeout", "segfault"}


def read_results(path: Path) -> dict[str, str]:
    results = {}
    for line in path.read_text().splitlines():
        name, sep, status = line.strip().partition(": ")
        if sep and name.startswith("formspawner."):
            results[name] = status.strip()
    return results


def read_equivalent(path: Path) -> dict[str, str]:
    """docs/development.md's list: `- `NAME`: reason` lines between the two markers."""
    text = path.read_text()
    start, end = "<!-- mutation-equivalent:start -->", "<!-- mutation-equivalent:end -->"
    block = text[text.index(start) + len(start) : text.index(end)]
    listed = {}
    for line in block.splitlines():
        match = re.match(r"- `(formspawner\.[^`]+)`: (.+)", line.strip())
        if match:
            listed[match.group(1)] = match.group(2)
    return listed


def main(results_file: str, template_file: str, equivalent_file: str, seconds: str, source_file: str = "") -> int:
    results = read_results(Path(results_file))
    equivalent = read_equivalent(Path(equivalent_file))
    template = json.loads(Path(template_file).read_text().strip().splitlines()[-1])
    modules: dict[str, Counter] = defaultdict(Counter)
    for name, status in results.items():
        module = name.split(".")[1]
        modules[module]["total"] += 1
        if status in KILLED:
            modules[module]["killed"] += 1
        elif name in equivalent:
            modules[module]["equivalent"] += 1
        else:
            modules[module][status.replace(" ", "_")] += 1
    total = sum(c["total"] for c in modules.values())
    killed = sum(c["killed"] for c in modules.values()) + template["killed"]
    counted = total - sum(c["equivalent"] for c in modules.values()) + template["template_mutants"]
    source = {"source_mutants": 0, "equivalent": 0, "killed": 0, "survived": [], "seconds": 0}
    if source_file:
        source = json.loads(Path(source_file).read_text().strip().splitlines()[-1])
    killed += source["killed"]
    counted += source["source_mutants"] - source["equivalent"]
    score = killed / counted if counted else 0.0
    left = sorted(n for n, s in results.items() if s not in KILLED and n not in equivalent)
    stale = sorted(n for n in equivalent if results.get(n) in KILLED or n not in results)
    print(json.dumps({
        "mutmut_seconds": int(seconds),
        "template_seconds": template["seconds"],
        "modules": {m: dict(sorted(c.items())) for m, c in sorted(modules.items())},
        "template_mutants": {k: template[k] for k in ("template_mutants", "killed", "survived")},
        "source_mutants": {k: source[k] for k in ("source_mutants", "equivalent", "killed", "survived", "seconds")},
        "killed_of_non_equivalent": f"{killed}/{counted}",
        "score": round(score, 4),
        "target": TARGET,
        "not_killed_and_not_listed": left,
        "listed_but_killed_or_gone": stale,
    }, indent=2))
    return 0 if score >= TARGET and not template["survived"] and not source["survived"] else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
