"""python -m medjax.report WORKDIR [--out=DIR]

Writes WORKDIR/report/index.html (or DIR/index.html) with PNG plots of a training run: losses of every
stage on one step axis, benchmark accuracy after each stage beside chance and majority, token shares
per data source, the stage lineage. The work is in medjax/train/report_html.py; needs matplotlib
(pip install 'medjax[report]').
"""
from __future__ import annotations

import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "output directory (default: WORKDIR/report)")


def main(argv):
    if len(argv) != 2:
        print("usage: python -m medjax.report WORKDIR [--out=DIR]", file=sys.stderr)
        sys.exit(2)
    try:
        from medjax.train.report_html import write_report

        path = write_report(argv[1], FLAGS.out)
    except (FileNotFoundError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
