"""The score of the last mutmut run, and every survivor that SURVIVORS.md does not explain.

    make mutation                              # mutmut run, then this script
    .venv/bin/python tests/mutation/score.py   # again, on the results in mutants/

Prints, per module: mutants, killed, timed out, survived, not tested, and the score
(killed + timed out) / all mutants. Then lists each survivor whose change is not in
tests/mutation/SURVIVORS.md, the file that explains every survivor (why it is equivalent
to the original code, or which test kills it). A survivor is matched by its module, its
function and its mutated lines (the `+` lines of `mutmut show`), not by its number, which
shifts when a function changes. Exit status 1 when the score is under --min (85 %) or a
survivor is unexplained.
Plumbing: `make mutation` (issue 17: mutation testing as a habit).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MUTMUT = [str(Path(sys.executable).with_name("mutmut"))]
_NAME = re.compile(r"^course_utils\.(?P<module>\w+)\.x(?:_(?P<function>\w+?)|ǁ(?P<cls>\w+)ǁ(?P<method>\w+?))"
                   r"__mutmut_\d+$")


def function_of(mutant: str) -> tuple[str, str]:
    """('quantization', 'compute_qparams') or ('quantization', 'QuantParams.describe')."""
    found = _NAME.match(mutant)
    if not found:
        raise ValueError(f"not a mutmut 3 mutant name: {mutant}")
    name = found["function"] if found["function"] is not None else f"{found['cls']}.{found['method']}"
    return found["module"], name


def _normal(line: str) -> str:
    return " ".join(line.split())


def mutated_lines(mutant: str, root: Path) -> tuple[str, ...]:
    shown = subprocess.run([*MUTMUT, "show", mutant], cwd=root, capture_output=True, text=True, check=True).stdout
    return tuple(_normal(line[1:]) for line in shown.splitlines()
                 if line.startswith("+") and not line.startswith("+++"))


def explained(survivors_md: Path) -> dict[tuple[str, str], list[tuple[str, ...]]]:
    """(module, function) -> the mutated-line groups SURVIVORS.md explains.

    Format: a heading `### module.function`, then per survivor a bullet `- verdict` followed
    by its mutated lines, each indented and starting with `+`.
    """
    found: dict[tuple[str, str], list[tuple[str, ...]]] = defaultdict(list)
    key, group = None, None
    for line in survivors_md.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^### (\w+)\.(\S+)\s*$", line)
        if heading:
            key, group = (heading[1], heading[2]), None
        elif key and line.startswith("- "):
            group = []
            found[key].append(group)
        elif key and group is not None and line.strip().startswith("+") and line.startswith("  "):
            group.append(_normal(line.strip()[1:]))
    return {k: [tuple(g) for g in v] for k, v in found.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--min", type=float, default=85.0, help="lowest acceptable score in percent")
    parser.add_argument("--survivors", type=Path, default=HERE / "SURVIVORS.md")
    parser.add_argument("--root", type=Path, default=ROOT, help="the folder holding mutants/ (default: the repo)")
    args = parser.parse_args(argv)
    listing = subprocess.run([*MUTMUT, "results", "--all", "true"], cwd=args.root, capture_output=True, text=True)
    if listing.returncode != 0 or not listing.stdout.strip():
        print("no mutmut results here: run `make mutation` first\n" + listing.stderr[-2000:], file=sys.stderr)
        return 1
    status: dict[str, str] = {}
    for line in listing.stdout.splitlines():
        name, _, state = line.strip().partition(": ")
        if name.startswith("course_utils."):
            status[name] = state.strip()
    per_module: dict[str, Counter] = defaultdict(Counter)
    for name, state in status.items():
        per_module[function_of(name)[0]][state] += 1
    total = Counter()
    print(f"{'module':<14}{'mutants':>8}{'killed':>8}{'timeout':>8}{'survived':>9}{'no tests':>9}{'score':>8}")
    for module, counts in sorted(per_module.items()):
        total += counts
        caught, all_ = counts["killed"] + counts["timeout"], sum(counts.values())
        print(f"{module:<14}{all_:>8}{counts['killed']:>8}{counts['timeout']:>8}{counts['survived']:>9}"
              f"{counts['no tests']:>9}{100 * caught / all_:>7.1f}%")
    caught, all_ = total["killed"] + total["timeout"], sum(total.values())
    score = 100 * caught / all_
    print(f"{'all':<14}{all_:>8}{total['killed']:>8}{total['timeout']:>8}{total['survived']:>9}"
          f"{total['no tests']:>9}{score:>7.1f}%")
    others = {s for s in total if s not in ("killed", "timeout", "survived", "no tests")}
    if others:
        print("other outcomes: " + ", ".join(f"{s}: {total[s]}" for s in sorted(others)))
    known = explained(args.survivors)
    unexplained = []
    for name, state in sorted(status.items()):
        if state in ("survived", "no tests"):
            key = function_of(name)
            lines = mutated_lines(name, args.root)
            if lines not in known.get(key, []):
                unexplained.append((name, key, lines))
    for name, (module, function), lines in unexplained:
        print(f"\nnot in {args.survivors.name}: {name} ({module}.{function})")
        for line in lines:
            print(f"    + {line}")
    if unexplained:
        print(f"\n{len(unexplained)} survivor(s) unexplained: kill each with a test or add it to "
              f"{args.survivors.name} with the reason it is equivalent.")
    if score < args.min:
        print(f"score {score:.1f}% is under {args.min:g}%")
    return 1 if unexplained or score < args.min else 0


if __name__ == "__main__":
    sys.exit(main())
