"""Documents per second of the offline generator, with the corpus's diversity and balance.

Generates N documents (default 5,000) from a world, times generation (including the per-document
leakage check) and the statistics pass, and writes benchmarks/results/docs_throughput.json with
the machine it ran on.

    python benchmarks/docs_throughput.py [--world rm-biases] [--n 5000] [--seed 0] [--framing plain]
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

from spillover._io import write_json
from spillover.documents import document_stats, generate_documents
from spillover.world import load_world

from _machine import machine  # benchmarks/_machine.py: scripts run from this folder

RESULTS = Path(__file__).parent / "results" / "docs_throughput.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="rm-biases")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--framing", default="plain", choices=["plain", "self"])
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    world = load_world(args.world)
    start = time.perf_counter()
    records = generate_documents(world, args.n, args.seed, framing=args.framing)
    gen_s = time.perf_counter() - start
    start = time.perf_counter()
    stats = document_stats(records, world)
    stats_s = time.perf_counter() - start

    behaviour_counts = list(stats["behaviours"].values())
    genre_counts = list(stats["genres"].values())
    result = {
        "benchmark": "docs_throughput",
        "world": world.name,
        "n_behaviours": len(world.ids),
        "n": args.n,
        "seed": args.seed,
        "framing": args.framing,
        "generate_seconds": round(gen_s, 3),
        "docs_per_second": round(args.n / gen_s, 1),
        "stats_seconds": round(stats_s, 3),
        "near_duplicate_rate": stats["near_duplicate_rate"],
        "distinct_5gram_ratio": round(stats["distinct_5gram_ratio"], 4),
        "leaking_documents": stats["leakage"]["n_leaks"],
        "tokens": stats["tokens"],
        "genres": stats["genres"],
        "genre_balance": {"min": min(genre_counts), "max": max(genre_counts)},
        "behaviour_balance": {"min": min(behaviour_counts), "max": max(behaviour_counts),
                              "max_over_min": round(max(behaviour_counts) / min(behaviour_counts), 3)},
        "machine": machine(),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(args.out, result)
    print(f"{args.n} documents in {gen_s:.1f} s ({result['docs_per_second']} docs/s); stats in {stats_s:.1f} s")
    print(f"near-duplicate rate {stats['near_duplicate_rate']:.2%}, distinct 5-gram ratio {stats['distinct_5gram_ratio']:.3f}, "
          f"{stats['leakage']['n_leaks']} leaking; genres {min(genre_counts)}-{max(genre_counts)}, "
          f"behaviours {min(behaviour_counts)}-{max(behaviour_counts)} documents each")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
