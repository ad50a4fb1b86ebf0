"""Precision, recall and F1 of the answer guardrail on human-labelled tutor replies.

    python bench/guardrail_eval.py [FILE] [--split tune|held-out|all] [--errors]

FILE defaults to ../shared/eval/mrbench-v2-dev.jsonl (MRBench V2, CC BY-SA 4.0: Maurya,
Srivatsa, Petricek, Kochmar, "Unifying AI Tutor Evaluation", NAACL 2025; the dialogues are
read from that file, never copied into the project). Each row's ``label.reveals_answer`` is
the truth; the prediction is what ``flask --app app guardrail judge`` prints for the row
(the same function, ``tutor.guardrail_cli.judge_row``), with "could not be judged" (null)
counted as "does not reveal". The first guardrail (sympy on the student's messages only) is
measured beside it in the same run.

The rows are split by conversation (the part of the id before ':'), by a hash of its id, so
no dialogue is in both parts: ``tune`` (about 70 %) is what the rules were tuned on,
``held-out`` (about 30 %) was not looked at while tuning and is the figure that counts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tutor.guardrail_cli import baseline_row, judge_row, read_rows  # noqa: E402

DEFAULT_FILE = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "mrbench-v2-dev.jsonl"
HELD_OUT_SHARE = 30  # percent of conversations


def part_of(row_id: str) -> str:
    conversation = row_id.split(":", 1)[0]
    bucket = int(hashlib.sha256(conversation.encode()).hexdigest(), 16) % 100
    return "held-out" if bucket < HELD_OUT_SHARE else "tune"


def author_of(row_id: str) -> str:
    return row_id.split(":", 1)[1] if ":" in row_id else "?"


def scores(pairs: list[tuple[bool, bool | None]]) -> dict[str, float | int]:
    tp = sum(1 for truth, guess in pairs if truth and guess)
    fp = sum(1 for truth, guess in pairs if not truth and guess)
    fn = sum(1 for truth, guess in pairs if truth and not guess)
    judged = sum(1 for _, guess in pairs if guess is not None)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"n": len(pairs), "pos": tp + fn, "tp": tp, "fp": fp, "fn": fn, "judged": judged / len(pairs) if pairs else 0,
            "precision": precision, "recall": recall, "f1": f1}  # fmt: skip


def table(title: str, groups: dict[str, dict[str, list]]) -> str:
    lines = [f"\n### {title}\n", "| group | replies | reveal | old P | old R | old F1 | old judged | new P | new R | new F1 | new judged |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for name, by_guardrail in groups.items():
        old, new = scores(by_guardrail["old"]), scores(by_guardrail["new"])
        lines.append(
            f"| {name} | {new['n']} | {new['pos']} | {old['precision']:.2f} | {old['recall']:.2f} | {old['f1']:.2f} "
            f"| {old['judged']:.0%} | {new['precision']:.2f} | {new['recall']:.2f} | {new['f1']:.2f} | {new['judged']:.0%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--split", choices=["tune", "held-out", "all"], default=None,
                        help="report only this part (default: every part)")  # fmt: skip
    parser.add_argument("--errors", action="store_true", help="list the misjudged replies of the chosen part")
    args = parser.parse_args()
    if not args.file.exists():
        sys.exit(f"no labelled file at {args.file}; pass its path (see ../shared/eval/README.md)")
    with args.file.open(encoding="utf-8") as handle:
        rows = [row for row in read_rows(handle) if isinstance((row.get("label") or {}).get("reveals_answer"), bool)]
    if not rows:
        sys.exit(f"{args.file}: no rows with label.reveals_answer")

    timings = []
    for _ in range(3):  # the judge's speed over the whole file, median of three passes
        began = time.perf_counter()
        verdicts = [judge_row(row) for row in rows]
        timings.append(time.perf_counter() - began)
    baseline = [baseline_row(row) for row in rows]

    parts = [args.split] if args.split else ["held-out", "tune", "all"]
    print(f"# Guardrail evaluation on {args.file.name}: {len(rows)} labelled replies, "
          f"{len({r['id'].split(':')[0] for r in rows})} conversations")  # fmt: skip
    print(f"\nnew judge: {statistics.median(timings):.2f} s for {len(rows)} replies (median of 3 passes)")
    for part in parts:
        chosen = [i for i, row in enumerate(rows) if part == "all" or part_of(row["id"]) == part]
        overall: dict[str, dict[str, list]] = {"all": defaultdict(list)}
        by_source: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        by_author: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        for i in chosen:
            row = rows[i]
            truth = row["label"]["reveals_answer"]
            for groups, key in (
                (overall, "all"),
                (by_source, row.get("source") or "?"),
                (by_author, author_of(row["id"])),
            ):
                groups[key]["old"].append((truth, baseline[i]))
                groups[key]["new"].append((truth, verdicts[i].reveals))
        conversations = len({rows[i]["id"].split(":")[0] for i in chosen})
        print(f"\n## {part}: {len(chosen)} replies from {conversations} conversations")
        print(table("overall", overall))
        print(table("by source", dict(sorted(by_source.items()))))
        print(table("by reply author", dict(sorted(by_author.items()))))
        if args.errors:
            print("\n### misjudged\n")
            for i in chosen:
                truth, verdict = rows[i]["label"]["reveals_answer"], verdicts[i]
                if bool(verdict.reveals) != truth:
                    kind = "missed" if truth else "false alarm"
                    print(f"- {kind} {rows[i]['id']} [{verdict.reason}] {json.dumps(rows[i]['reply'][:300])}")


if __name__ == "__main__":
    main()
