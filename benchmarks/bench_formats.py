"""Every file of the shared formats folder (Word, PowerPoint, Excel, HTML, EPUB) through
`athenaeum convert`'s own code: converted or reported (with the reason), the slides, sheets,
chapters or sections found, and the seconds each took (the median of --repeat runs, one
process).

    uv run python benchmarks/bench_formats.py [--data ../shared/data] [--repeat 3] [--markdown]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from athenaeum.build.convert import ConvertOptions, Status, convert

PASSWORD = "Password1234_"  # the encrypted files' documented password (SOURCES.md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    folder = args.data / "formats"
    seconds: dict[str, list[float]] = {}
    last = {}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as out:
            options = ConvertOptions(passwords=[PASSWORD], overwrite=True)
            for result in convert([folder], Path(out), options, jobs=1).results:
                seconds.setdefault(result.source.name, []).append(result.seconds)
                last[result.source.name] = result
    rows = []
    for name in sorted(last):
        r = last[name]
        found = f"{r.pages} {r.unit}{'' if r.pages == 1 else 's'}" if r.pages else ""
        outcome = "converted" if r.status is Status.CONVERTED else f"reported: {r.reason}"
        if r.warnings:
            outcome += f" ({'; '.join(r.warnings)})"
        rows.append((name, outcome, found, statistics.median(seconds[name])))
    total = sum(row[3] for row in rows)
    if args.markdown:
        print("| file | outcome | found | seconds |")
        print("|---|---|---|---:|")
        for name, outcome, found, s in rows:
            print(f"| {name} | {outcome} | {found} | {s:.2f} |")
        print(f"| **all {len(rows)}** | | | **{total:.1f}** |")
    else:
        for name, outcome, found, s in rows:
            print(f"{name:52} {found:14} {s:7.2f}  {outcome}")
        print(f"{len(rows)} files, {total:.1f} s (medians of {args.repeat})")


if __name__ == "__main__":
    main()
