"""``python -m bench [--tiny] [NAME ...]``: run the benchmarks, print figures and ratios.

Each benchmark measures its own baseline in the same run. ``--tiny`` runs a small scale that the test suite
uses so the benchmarks cannot rot; speed targets are reported, never asserted in tests.
"""

import argparse
import sys

from bench import analytics, callbacks, contactlist, imports, journeys, livecodes, predictive, segments

BENCHMARKS = {"callbacks": callbacks.run, "segments": segments.run, "livecodes": livecodes.run,
              "contactlist": contactlist.run, "imports": imports.run,
              "journeys": journeys.run, "analytics": analytics.run, "predictive": predictive.run}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--tiny", action="store_true", help="small scale (used by the test suite)")
    parser.add_argument("names", nargs="*", default=[], help=f"any of: {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    ok = True
    for name in args.names or list(BENCHMARKS):
        ok = BENCHMARKS[name](tiny=args.tiny) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
