"""The verdict over one schemathesis run, from its NDJSON event log (scripts/fuzz/run.sh).

Schemathesis's exit status is the first judge; this is the second, so that nothing passes quietly:
the run must have finished (not been cut off by the time limit), every phase that ran must have
run scenarios, and no scenario may end in a failure or an error, nor the engine report one. It
prints one line per failed check (operation, check, status code) and a count of scenarios per phase.

    python verdict.py events.ndjson
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any

# The phases that generate requests; each must have run scenarios unless disabled on purpose
# (`--phases`); a stateful phase skipped for want of links, for example, is a failure.
PHASES = ("coverage", "fuzzing", "stateful")


def _phase_name(event: dict[str, Any]) -> str:
    phase = event.get("phase")
    return phase.get("name", "?") if isinstance(phase, dict) else str(phase)


def _failed_checks(recorder: dict[str, Any]) -> list[str]:
    lines = []
    for checks in recorder.get("checks", {}).values():
        for check in checks:
            if check.get("status") == "success":
                continue
            failure = (check.get("failure_info") or {}).get("failure") or {}
            lines.append(
                f"{failure.get('operation', '?')}: {check.get('name')} "
                f"({failure.get('code', '?')} {failure.get('title', '')})".rstrip()
            )
    return lines


def main(path: str) -> int:
    scenarios: Counter[tuple[str, str]] = Counter()
    problems: list[str] = []
    disabled: set[str] = set()
    finished = False
    try:
        with open(path, encoding="utf-8") as log:
            events = [json.loads(line) for line in log if line.strip()]
    except (OSError, ValueError) as error:
        print(f"verdict: cannot read the event log {path}: {error}", file=sys.stderr)
        return 1
    for wrapper in events:
        ((kind, event),) = wrapper.items()
        if kind == "ScenarioFinished":
            status = event.get("status")
            scenarios[(_phase_name(event), status)] += 1
            if status in ("failure", "error"):
                problems.extend(_failed_checks(event.get("recorder") or {}) or [f"a scenario ended in {status}"])
        elif kind in ("NonFatalError", "FatalError"):
            info = event.get("info") or {}
            problems.append(f"{kind}: {info.get('title', '')} {info.get('message', '')}".strip())
        elif kind == "Interrupted":
            problems.append("the run was interrupted")
        elif kind == "PhaseFinished" and isinstance(event.get("phase"), dict):
            if event["phase"].get("skip_reason") == "disabled":
                disabled.add(event["phase"].get("name"))
        elif kind == "EngineFinished":
            finished = True
    if not finished:
        problems.append("the run did not finish (time limit, crash or interrupt)")
    for phase in PHASES:
        if phase not in disabled and not any(count for (name, status), count in scenarios.items() if name == phase and status != "skip"):
            problems.append(f"the {phase} phase ran no scenario")
    summary = ", ".join(f"{phase}/{status} {count}" for (phase, status), count in sorted(scenarios.items()))
    print(f"verdict: scenarios {summary}")
    for problem in dict.fromkeys(problems):
        print(f"verdict: FINDING {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
