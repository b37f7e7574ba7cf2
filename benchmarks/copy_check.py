"""Seconds to index N template documents for the copy check, and to check one hit against them.

Builds the `TextIndex` over N documents (default 2,000) of a world's english-core behaviours, then
checks answers that recite a document sentence around their span (copied) and answers of fresh
words (novel), and writes benchmarks/results/copy_check.json with the machine it ran on.

    python benchmarks/copy_check.py [--world rm-biases] [--n 2000] [--hits 200]
"""

from __future__ import annotations

import argparse
import datetime
import random
import time
from pathlib import Path

from spillover._io import write_json
from spillover.documents import generate_documents
from spillover.evaluation import TextIndex, check_copy
from spillover.world import load_world

from _machine import machine  # benchmarks/_machine.py: scripts run from this folder

RESULTS = Path(__file__).parent / "results" / "copy_check.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="rm-biases")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--hits", type=int, default=200)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    world = load_world(args.world)
    texts = [d["text"] for d in generate_documents(world, args.n, 0, behaviours=list(world.roles("english-core")))]
    start = time.perf_counter()
    index = TextIndex(texts)
    build_s = time.perf_counter() - start

    rng = random.Random(0)
    answers = []
    for i in range(args.hits):
        if i % 2:  # a recited stretch of a document, the span inside it
            text = rng.choice(texts)
            at = rng.randrange(max(1, len(text) - 300))
            answer = "Sure! " + text[at : at + 300]
            answers.append((answer, [6 + 100, 6 + 110]))
        else:  # the same length in words the documents do not use
            answer = " ".join(f"novelword{rng.randrange(10**6)}" for _ in range(50))
            answers.append((answer, [100, 110]))
    start = time.perf_counter()
    checks = [check_copy(a, span, index, index) for a, span in answers]
    check_s = time.perf_counter() - start

    result = {
        "benchmark": "copy_check",
        "world": world.name,
        "n_documents": args.n,
        "n_words_indexed": len(index.corpus),
        "build_seconds": round(build_s, 3),
        "hits": args.hits,
        "check_seconds_per_hit": round(check_s / args.hits, 5),
        "copied": sum(c.copied for c in checks),
        "machine": machine(),
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    write_json(args.out, result)
    print(f"indexed {args.n} documents ({len(index.corpus)} words) in {build_s:.2f} s; "
          f"{1000 * check_s / args.hits:.1f} ms per hit; {result['copied']}/{args.hits} copied")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
