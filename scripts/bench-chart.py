#!/usr/bin/env python3
"""Draws the rows of the last runs of rookery-bench as one SVG chart.

Usage: scripts/bench-chart.py RUNS_FOLDER OUT.svg [LAST]

Each run is a JSON file written by `rookery-bench --json`, named
`<UTC time>-<documents>.json` for a whole run (a name with more after the
count is a run of some phases only); the LAST newest whole runs (default 3)
of the newest whole run's size are drawn. A measure with a target is drawn as its value over
its target, flipped for `>=` targets, so that every bar left of the line at
1.0 meets its target and every bar right of it misses. Standard library only.
"""
import json
import pathlib
import re
import sys
from html import escape

COLOURS = ["#94a3b8", "#60a5fa", "#1d4ed8", "#0f172a"]
WHOLE_RUN = re.compile(r"^\d{8}T\d{6}Z-(\d+)\.json$")


def score(row):
    """value / target (<=, <) or target / value (>=); None for information rows."""
    target = row.get("target", "")
    for op in ("<=", ">=", "<"):
        if target.startswith(op):
            try:
                limit = float(target[len(op):])
            except ValueError:
                return None
            value = row.get("value")
            if value is None or value != value:
                return None
            if op == ">=":
                return limit / value if value > 0 else 10.0
            if limit == 0:
                return 0.0 if value <= 0 else 10.0
            return value / limit
    return None


def main():
    folder, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    last = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    whole = [p for p in sorted(folder.glob("*.json")) if WHOLE_RUN.match(p.name)]
    size = WHOLE_RUN.match(whole[-1].name).group(1) if whole else None
    runs = [p for p in whole if WHOLE_RUN.match(p.name).group(1) == size][-last:]
    if not runs:
        sys.exit(f"no runs in {folder}: `make bench` writes one")
    reports = [json.loads(p.read_text()) for p in runs]
    names = []
    for report in reports:
        for row in report["rows"]:
            if score(row) is not None and row["name"] not in names:
                names.append(row["name"])
    label_w, bar_w, row_h, top = 330, 420, 8 * len(reports) + 10, 56
    width, height = label_w + bar_w + 30, top + row_h * len(names) + 20
    scale = bar_w / 3.0  # 0 .. 3x the target
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11" role="img" aria-label="rookery-bench: each measure against its target">']
    svg.append(f'<rect width="{width}" height="{height}" fill="white"/>')
    legend = " · ".join(f'{escape(r["commit"])} {r["documents"]:,} docs ({escape(r["measured_at"][:16])})' for r in reports)
    svg.append(f'<text x="8" y="16" font-weight="bold">rookery-bench: value / target (left of the line: met)</text>')
    for i, r in enumerate(reports):
        x = 8 + i * 250
        svg.append(f'<rect x="{x}" y="26" width="10" height="10" fill="{COLOURS[i % len(COLOURS)]}"/>')
        svg.append(f'<text x="{x + 14}" y="35">{escape(r["commit"])} · {r["documents"]:,} docs · {escape(r["measured_at"][:10])}</text>')
    for k, name in enumerate(names):
        y = top + k * row_h
        svg.append(f'<text x="{label_w - 6}" y="{y + row_h / 2 + 3}" text-anchor="end">{escape(name)}</text>')
        for i, report in enumerate(reports):
            row = next((r for r in report["rows"] if r["name"] == name), None)
            s = score(row) if row else None
            if s is None:
                continue
            w = min(s, 3.0) * scale
            colour = COLOURS[i % len(COLOURS)] if s <= 1.0 else "#dc2626"
            svg.append(f'<rect x="{label_w}" y="{y + 4 + i * 8}" width="{max(w, 1):.1f}" height="6" fill="{colour}"><title>{escape(name)}: {row["value"]:.3f} (target {escape(row["target"])})</title></rect>')
    one = label_w + scale
    svg.append(f'<line x1="{one}" y1="{top - 4}" x2="{one}" y2="{height - 14}" stroke="#16a34a" stroke-width="1.5"/>')
    svg.append(f'<text x="{one}" y="{height - 4}" text-anchor="middle">1.0 = target</text>')
    svg.append(f'<text x="{label_w + 2 * scale}" y="{height - 4}" text-anchor="middle">2x</text>')
    svg.append("</svg>")
    out.write_text("\n".join(svg) + "\n")
    print(f"{out}: {len(names)} measures from {len(reports)} run(s) ({legend})")


if __name__ == "__main__":
    main()
