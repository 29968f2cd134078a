#!/usr/bin/env python3
"""Draws Veil's comparison plots (SVG, no dependencies) from `veil bench model --json` files
and the published anchors in benchmarks/anchors.json.

  python3 scripts/plot-benchmarks.py benchmarks/results/*.json --out benchmarks/plots

Plots: online time, online bytes and key bytes per party for BERT-base, BERT-large and GPT-2
at 128 tokens (Veil against SIGMA, PUMA, SHAFT where published), and Veil's GPT-2 online time
and bytes against sequence length. Figures extrapolated from K blocks are drawn hatched and
labelled so; anchors carry their source tag in the legend.
"""
import argparse
import json
import os
import sys

COLORS = {"Veil": "#1f77b4", "SIGMA": "#d62728", "PUMA": "#2ca02c", "SHAFT": "#9467bd"}
MODELS = ["bert-base", "bert-large", "gpt2"]


def veil_rows(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        if not data.get("schema", "").startswith("veil.bench.model"):
            continue
        row = {k: data.get(k) for k in ("model", "seq", "online_seconds", "online_bytes", "key_bytes_per_party")}
        row["extrapolated"] = False
        extra = data.get("extrapolated_full_model")
        if extra:
            row.update({k: extra[k] for k in ("online_seconds", "online_bytes", "key_bytes_per_party")})
            row["extrapolated"] = True
        row["machine"] = data.get("machine", {}).get("cpu", "")
        if data.get("params", {}).get("transport", "in-memory") != "in-memory":
            continue  # the plots compare in-memory runs; transports have their own table
        if data.get("params", {}).get("recipe", "sigma") != "sigma":
            continue  # Veil's bars are its SIGMA recipe; the other recipes have their own table
        rows.append(row)
    return rows


def escape(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def nice_max(value):
    step = 10 ** len(str(int(value))) / 10 if value >= 1 else 0.1
    top = step
    while top < value * 1.1:
        top += step
    return top


def frame(width, height, left, top, plot_w, plot_h, ymax, title, unit):
    """The SVG header, title, horizontal grid with y labels and the y-axis unit."""
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="15">{escape(title)}</text>']
    for i in range(6):
        y = top + plot_h - plot_h * i / 5
        out.append(f'<line x1="{left}" y1="{y}" x2="{left + plot_w}" y2="{y}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{ymax * i / 5:g}</text>')
    out.append(f'<text x="16" y="{top + plot_h / 2}" transform="rotate(-90 16 {top + plot_h / 2})" text-anchor="middle">{escape(unit)}</text>')
    return out


def write_svg(out, notes, x, y, path):
    """Appends the notes (one line each from y down), closes the SVG and writes it."""
    for n, note in enumerate(notes):
        out.append(f'<text x="{x}" y="{y + 13 * n}" font-size="10" fill="#555">{escape(note)}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out))


def bar_chart(title, unit, groups, series, values, notes, path):
    """values[(group, series)] = (number, hatched, label) or missing."""
    width, height, left, bottom, top = 760, 420, 70, 60, 50
    plot_w, plot_h = width - left - 180, height - top - bottom
    present = [v[0] for v in values.values()]
    ymax = nice_max(max(present)) if present else 1
    out = frame(width, height, left, top, plot_w, plot_h, ymax, title, unit)
    out.insert(1, '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
               '<rect width="6" height="6" fill="white"/><line x1="0" y1="0" x2="0" y2="6" stroke="#1f77b4" stroke-width="3"/></pattern></defs>')
    group_w = plot_w / len(groups)
    bar_w = group_w * 0.8 / len(series)
    for g, group in enumerate(groups):
        x0 = left + g * group_w + group_w * 0.1
        out.append(f'<text x="{left + g * group_w + group_w / 2}" y="{top + plot_h + 18}" text-anchor="middle">{escape(group)}</text>')
        for s, name in enumerate(series):
            if (group, name) not in values:
                continue
            number, hatched, label = values[(group, name)]
            h = plot_h * number / ymax
            x = x0 + s * bar_w
            fill = "url(#hatch)" if hatched else COLORS.get(name.split(" ")[0], "#777")
            out.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" fill="{fill}" stroke="{COLORS.get(name.split(" ")[0], "#777")}"/>')
            out.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h - h - 4:.1f}" text-anchor="middle" font-size="10">{escape(label)}</text>')
    for s, name in enumerate(series):
        y = top + 10 + s * 20
        out.append(f'<rect x="{left + plot_w + 15}" y="{y - 10}" width="12" height="12" fill="{COLORS.get(name.split(" ")[0], "#777")}"/>')
        out.append(f'<text x="{left + plot_w + 32}" y="{y}">{escape(name)}</text>')
    write_svg(out, notes, left, height - 22, path)


def line_chart(title, unit, points, notes, path):
    """points: list of (seq, value, extrapolated)."""
    width, height, left, bottom, top = 760, 420, 70, 60, 50
    plot_w, plot_h = width - left - 40, height - top - bottom
    xs = sorted({p[0] for p in points})
    ymax = nice_max(max(p[1] for p in points))
    out = frame(width, height, left, top, plot_w, plot_h, ymax, title, unit)

    def px(seq):
        return left + plot_w * (xs.index(seq) + 0.5) / len(xs)

    def py(value):
        return top + plot_h - plot_h * value / ymax

    for seq in xs:
        out.append(f'<text x="{px(seq)}" y="{top + plot_h + 18}" text-anchor="middle">{seq}</text>')
    out.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h + 36}" text-anchor="middle">tokens</text>')
    ordered = sorted(points)
    path_d = " ".join(f"{'M' if i == 0 else 'L'}{px(p[0]):.1f},{py(p[1]):.1f}" for i, p in enumerate(ordered))
    out.append(f'<path d="{path_d}" fill="none" stroke="{COLORS["Veil"]}" stroke-width="2"/>')
    for seq, value, extrapolated in ordered:
        fill = "white" if extrapolated else COLORS["Veil"]
        out.append(f'<circle cx="{px(seq):.1f}" cy="{py(value):.1f}" r="5" fill="{fill}" stroke="{COLORS["Veil"]}" stroke-width="2"/>')
        out.append(f'<text x="{px(seq):.1f}" y="{py(value) - 9:.1f}" text-anchor="middle" font-size="10">{value:.3g}{" (extrap.)" if extrapolated else ""}</text>')
    write_svg(out, notes, left, height - 14, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="veil bench model --json files")
    parser.add_argument("--anchors", default=os.path.join(os.path.dirname(__file__), "..", "benchmarks", "anchors.json"))
    parser.add_argument("--out", default="benchmarks/plots")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = veil_rows(args.results)
    if not rows:
        sys.exit("no veil.bench.model JSON among the inputs")
    with open(args.anchors) as f:
        anchors = json.load(f)["anchors"]
    machine = next((r["machine"] for r in rows if r["machine"]), "this machine")
    veil_name = "Veil (CPU, 2 cores)"
    metrics = [
        ("time", "Online time at 128 tokens", "seconds", "online_seconds", 1),
        ("bytes", "Online bytes between the servers at 128 tokens", "GB", "online_bytes", 1e9),
        ("keys", "Key bytes per party at 128 tokens", "GB", "key_bytes_per_party", 1e9),
    ]
    for stem, title, unit, field, scale in metrics:
        values = {}
        series = [veil_name]
        for r in rows:
            if r["model"] in MODELS and r["seq"] == 128 and r.get(field) is not None:
                v = r[field] / scale
                values[(r["model"], veil_name)] = (v, r["extrapolated"], f"{v:.3g}" + (" ext." if r["extrapolated"] else ""))
        for a in anchors:
            if a["model"] in MODELS and a["seq"] == 128 and a.get(field) is not None:
                name = f'{a["system"]} [{a["tag"]}]'
                if name not in series:
                    series.append(name)
                v = a[field] / scale
                values[(a["model"], name)] = (v, False, f"{v:.3g}")
        notes = [f"Veil: all roles on one machine ({machine}); hatched = extrapolated from K blocks.",
                 "SIGMA: GPUs (third-party re-measurement); PUMA: 3 CPU servers; SHAFT: simulated LAN. Tags: benchmarks/anchors.json."]
        bar_chart(title, unit, MODELS, series, values, notes, os.path.join(args.out, f"{stem}.svg"))
    gpt2 = [(r["seq"], r["online_seconds"], r["extrapolated"]) for r in rows if r["model"] == "gpt2"]
    if gpt2:
        line_chart("Veil GPT-2 online time against sequence length", "seconds", gpt2,
                   [f"All roles on one machine ({machine}); open circles are extrapolated from K blocks."],
                   os.path.join(args.out, "gpt2-seq-time.svg"))
        gpt2_bytes = [(r["seq"], r["online_bytes"] / 1e9, r["extrapolated"]) for r in rows if r["model"] == "gpt2"]
        line_chart("Veil GPT-2 online bytes against sequence length", "GB", gpt2_bytes,
                   ["Both directions between P0 and P1; open circles are extrapolated from K blocks."],
                   os.path.join(args.out, "gpt2-seq-bytes.svg"))
    print(f"wrote plots to {args.out}")


if __name__ == "__main__":
    main()
