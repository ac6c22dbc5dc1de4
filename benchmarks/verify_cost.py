"""What verifying an index shard's checksums costs when it loads, beside loading it unverified.

For each index shard directory given (e.g. the 1M-document shards ``scale.py`` builds), the
script records the checksums of its files, then loads the shard with ``load_shard`` both ways,
alternating, ``--repeats`` times each, and prints the fastest of each and their ratio. The files are
read once before timing, so both ways read from the page cache (a cold read costs both the same).

    python benchmarks/verify_cost.py /tmp/rayir-scale/indexes/{bm25,dense,sparse}-1000000-1/shard-0000
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from rayir.index import load_shard
from rayir.integrity import checksum_files


def timed_load(directory: Path, files: dict | None) -> float:
    started = time.perf_counter()
    shard = load_shard(directory, files)
    seconds = time.perf_counter() - started
    del shard
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shards", type=Path, nargs="+")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print("| shard | documents | bytes | load s | load + verify s | verifying adds |")
    print("|---|---|---|---|---|---|")
    for directory in args.shards:
        files = checksum_files(directory)  # also warms the page cache
        plain, verified = [], []
        for _ in range(args.repeats):
            plain.append(timed_load(directory, None))
            verified.append(timed_load(directory, files))
        documents = load_shard(directory).meta["documents"]
        size = sum(entry["bytes"] for entry in files.values())
        extra = (min(verified) - min(plain)) / min(plain)
        print(
            f"| {directory.parent.name}/{directory.name} | {documents:,} | {size / 2**20:,.0f} MiB | "
            f"{min(plain):.2f} | {min(verified):.2f} | +{extra:.0%} |"
        )


if __name__ == "__main__":
    main()
