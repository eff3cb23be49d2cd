"""Score `blockfill infill` results against the holes' answers with quality.py's exact-match scorer.

    blockfill infill --repo DIR --holes functions --holes-out holes.jsonl --output out.jsonl [--ray]
    python -m benchmarks.exact_match --holes holes.jsonl --results out.jsonl

A hole matches when the first line of its completion is the first line of what was cut out (the SantaCoder-FIM
metric of `benchmarks/quality.py`); a hole without a result counts as a miss.
"""

import argparse
import json
from collections import defaultdict
from pathlib import Path

from benchmarks.quality import first_line


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def exact_match(holes: list[dict], results: list[dict]) -> dict[str, tuple[int, int]]:
    """Per language: (holes whose completion's first line is the answer's, holes)."""
    completions = {r["task_id"]: r["completion"] for r in results}
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for hole in holes:
        count = counts[hole.get("language") or "unknown"]
        completion = completions.get(hole["task_id"])
        count[0] += completion is not None and first_line(completion) == first_line(hole["canonical_solution"])
        count[1] += 1
    return {language: (hits, total) for language, (hits, total) in sorted(counts.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--holes", type=Path, required=True, help="what --holes-out wrote")
    parser.add_argument("--results", type=Path, required=True, help="what --output wrote")
    args = parser.parse_args()
    holes, results = _rows(args.holes), _rows(args.results)
    missing = len({h["task_id"] for h in holes} - {r["task_id"] for r in results})
    print(f"{len(holes)} holes, {missing} without a result")
    for language, (hits, total) in exact_match(holes, results).items():
        print(f"  exact match {language}: {100 * hits / total:.1f} % ({hits}/{total})")


if __name__ == "__main__":
    main()
