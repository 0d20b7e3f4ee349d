#!/usr/bin/env python3
"""Plot a layer's weight histogram against the KL target, as an SVG (no third-party packages).

Inputs (any of):
  --model FILE --param NAME   a parameter of a model exported by the bundled trainer (--export)
  --initial-model FILE        the same parameter before training (e.g. an export at epoch 0)
  --weights FILE      the trained layer's weights: numbers separated by commas, spaces or newlines
                      (a CSV dump of the tensor; header lines that are not numbers are skipped)
  --initial FILE      the same layer before training (drawn as an outline, for comparison)
  --distributions F   a CSV "centre,p,q" written from sparsereg::kl_to_target::distributions(),
                      i.e. the exact P and Q the penalty used (see docs/math.md)

The histogram is the penalty's own estimator: linear binning onto --bins centres over
[-s, s], s = --support or max|w|, drawn as a density (p_b / h). The target is drawn as its
continuous density: spike_and_slab (--pi, --spike, --slab), laplace (--scale) or gaussian
(--scale); with --relative the scales multiply the reference scale, which is --reference-scale
or else the standard deviation of the --initial weights (or of --weights when there is no
--initial): the "std at first use" of the penalty.

Example:
  scripts/plot_histogram.py --weights fc1_trained.csv --initial fc1_init.csv \\
      --target spike_and_slab --pi 0.5 --spike 0.1 --slab 2 --relative --bins 128 \\
      --log --out docs/kl_histogram.svg
"""
import argparse
import math
import re
import sys


def read_numbers(path):
    values = []
    with open(path) as f:
        for line in f:
            for tok in re.split(r"[,\s;]+", line.strip()):
                if not tok:
                    continue
                try:
                    v = float(tok)
                except ValueError:
                    continue  # header or label
                if math.isfinite(v):
                    values.append(v)
    if not values:
        sys.exit("no finite numbers in " + path)
    return values


def read_model(path, name):
    """Parameter `name` of a model exported by the bundled trainer (--export, "SRMODEL1" format of
    examples/cnn/serialize.hpp: magic, arch string, 3 u64, keep list, then named float tensors)."""
    import struct
    with open(path, "rb") as f:
        b = f.read()
    if b[:8] != b"SRMODEL1":
        sys.exit(path + " is not an exported sparsereg model (magic SRMODEL1)")
    pos = 8

    def u64():
        nonlocal pos
        v = struct.unpack_from("<Q", b, pos)[0]
        pos += 8
        return v

    def string():
        nonlocal pos
        n = u64()
        v = b[pos:pos + n].decode()
        pos += n
        return v

    string()  # architecture
    u64(), u64(), u64()
    keep = u64()  # flatten gather (u32 each); read before `pos +=` (which would load pos first)
    pos += 4 * keep
    names = []
    for _ in range(u64()):
        pname = string()
        n = u64()
        if pname == name:
            return [v for v in struct.unpack_from("<%df" % n, b, pos) if math.isfinite(v)]
        names.append(pname)
        pos += 4 * n
    sys.exit("no parameter '%s' in %s; it has: %s" % (name, path, ", ".join(names)))


def read_distributions(path):
    centres, p, q = [], [], []
    with open(path) as f:
        for line in f:
            parts = [t for t in re.split(r"[,\s;]+", line.strip()) if t]
            if len(parts) < 3:
                continue
            try:
                c, pv, qv = float(parts[0]), float(parts[1]), float(parts[2])
            except ValueError:
                continue
            centres.append(c)
            p.append(pv)
            q.append(qv)
    if len(centres) < 2:
        sys.exit("need at least two rows of centre,p,q in " + path)
    return centres, p, q


def linear_binning(w, bins, s):
    """The penalty's estimator: mass 1-f to bin k, f to bin k+1; clamped at the edges."""
    lo, h = -s, 2.0 * s / (bins - 1)
    mass = [0.0] * bins
    for x in w:
        u = min(max((x - lo) / h, 0.0), bins - 1.0)
        k = min(int(math.floor(u)), bins - 2)
        f = u - k
        mass[k] += 1.0 - f
        mass[k + 1] += f
    n = float(len(w))
    return [lo + b * h for b in range(bins)], [m / n for m in mass], h


def normal_pdf(x, s):
    return math.exp(-0.5 * (x / s) ** 2) / (s * math.sqrt(2.0 * math.pi))


def target_density(args, unit):
    if args.target == "spike_and_slab":
        s0, s1, pi = args.spike * unit, args.slab * unit, args.pi
        return lambda x: pi * normal_pdf(x, s0) + (1.0 - pi) * normal_pdf(x, s1)
    if args.target == "laplace":
        b = args.scale * unit
        return lambda x: math.exp(-abs(x) / b) / (2.0 * b)
    s = args.scale * unit
    return lambda x: normal_pdf(x, s)


def std(v):
    m = sum(v) / len(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / len(v))


class Svg:
    def __init__(self, width, height):
        self.w, self.h, self.items = width, height, []

    def add(self, s):
        self.items.append(s)

    def text(self, x, y, s, size=12, anchor="middle", rotate=None):
        tr = ' transform="rotate(%g %g %g)"' % (rotate, x, y) if rotate is not None else ""
        s = s.replace("&", "&amp;").replace("<", "&lt;")
        self.add('<text x="%.1f" y="%.1f" font-size="%d" text-anchor="%s" font-family="sans-serif"%s>%s</text>'
                 % (x, y, size, anchor, tr, s))

    def render(self):
        return ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">\n'
                '<rect width="100%%" height="100%%" fill="white"/>\n%s\n</svg>\n'
                % (self.w, self.h, self.w, self.h, "\n".join(self.items)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights")
    ap.add_argument("--initial")
    ap.add_argument("--distributions")
    ap.add_argument("--model", help="model exported by the trainer (--export); use with --param")
    ap.add_argument("--initial-model", help="exported model before training (outline)")
    ap.add_argument("--param", help="parameter name in --model, e.g. fc1.weight")
    ap.add_argument("--target", choices=["spike_and_slab", "laplace", "gaussian"], default="spike_and_slab")
    ap.add_argument("--pi", type=float, default=0.5)
    ap.add_argument("--spike", type=float, default=0.1)
    ap.add_argument("--slab", type=float, default=2.0)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--relative", action="store_true", help="scales are multiples of the reference scale")
    ap.add_argument("--reference-scale", type=float)
    ap.add_argument("--bins", type=int, default=128)
    ap.add_argument("--support", type=float, help="half-width of the support (default: max|w|)")
    ap.add_argument("--log", action="store_true", help="logarithmic density axis")
    ap.add_argument("--title", default="Weight histogram (linear binning) vs KL target")
    ap.add_argument("--out", default="kl_histogram.svg")
    args = ap.parse_args()
    if not (args.weights or args.distributions or args.model):
        ap.error("give --weights, --model or --distributions")
    if (args.model or args.initial_model) and not args.param:
        ap.error("--model needs --param")
    if args.bins < 2:
        ap.error("--bins must be >= 2")

    series = []  # (label, centres, density values, style)
    target_curve = None
    if args.distributions:
        c, p, q = read_distributions(args.distributions)
        h = c[1] - c[0]
        series.append(("P (penalty)", c, [x / h for x in p], "bars"))
        series.append(("Q (discretized target)", c, [x / h for x in q], "line"))
        lo, hi = c[0], c[-1]
    if args.weights or args.model:
        w = read_model(args.model, args.param) if args.model else read_numbers(args.weights)
        w0 = None
        if args.initial_model:
            w0 = read_model(args.initial_model, args.param)
        elif args.initial:
            w0 = read_numbers(args.initial)
        s = args.support or max(max(abs(x) for x in w), max(abs(x) for x in w0) if w0 else 0.0)
        if not s > 0:
            sys.exit("all weights are zero: give --support")
        unit = 1.0
        if args.relative:
            unit = args.reference_scale or std(w0 if w0 else w)
        c, p, h = linear_binning(w, args.bins, s)
        if not args.distributions:
            series.append(("trained weights (%d)" % len(w), c, [x / h for x in p], "bars"))
        if w0:
            c0, p0, _ = linear_binning(w0, args.bins, s)
            series.append(("initial weights", c0, [x / h for x in p0], "outline"))
        dens = target_density(args, unit)
        xs = [-s + 2.0 * s * i / 800.0 for i in range(801)]
        target_curve = (xs, [dens(x) for x in xs])
        lo, hi = -s, s

    ymax = max(max(v) for _, _, v, _ in series)
    if target_curve:
        ymax = max(ymax, max(target_curve[1]))
    ymin_log = ymax * 1e-5

    W, H, L, R, T, B = 820, 480, 70, 20, 40, 60
    svg = Svg(W, H)
    px = lambda x: L + (x - lo) / (hi - lo) * (W - L - R)

    def py(y):
        if args.log:
            y = max(y, ymin_log)
            return T + (math.log10(ymax * 1.5) - math.log10(y)) / (math.log10(ymax * 1.5) - math.log10(ymin_log)) * (H - T - B)
        return T + (1.0 - y / (ymax * 1.05)) * (H - T - B)

    svg.add('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>' % (L, T, W - L - R, H - T - B))
    for i in range(5):
        x = lo + (hi - lo) * i / 4.0
        svg.add('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#444"/>' % (px(x), H - B, px(x), H - B + 5))
        svg.text(px(x), H - B + 20, "%.3g" % x)
    for i in range(5):
        if args.log:
            y = ymin_log * (ymax * 1.5 / ymin_log) ** (i / 4.0)
        else:
            y = ymax * 1.05 * i / 4.0
        svg.add('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#444"/>' % (L - 5, py(y), L, py(y)))
        svg.text(L - 8, py(y) + 4, "%.2g" % y, anchor="end")
    svg.text((L + W - R) / 2, H - 15, "weight value")
    svg.text(18, (T + H - B) / 2, "density" + (" (log)" if args.log else ""), rotate=-90)
    svg.text(W / 2, 25, args.title, size=14)

    colours = {"bars": "#4a7ab5", "outline": "#999999", "line": "#d62728"}
    legend = []
    for label, c, v, style in series:
        if style == "bars":
            half = (c[1] - c[0]) / 2.0
            for x, y in zip(c, v):
                if y <= 0:
                    continue
                svg.add('<rect x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s" fill-opacity="0.6"/>'
                        % (px(x - half), py(y), max(px(x + half) - px(x - half), 0.5), H - B - py(y), colours[style]))
        else:
            pts = " ".join("%.2f,%.2f" % (px(x), py(y)) for x, y in zip(c, v))
            dash = ' stroke-dasharray="4,3"' if style == "outline" else ""
            svg.add('<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"%s/>' % (pts, colours[style], dash))
        legend.append((label, colours[style]))
    if target_curve:
        pts = " ".join("%.2f,%.2f" % (px(x), py(y)) for x, y in zip(*target_curve))
        svg.add('<polyline points="%s" fill="none" stroke="#d62728" stroke-width="2"/>' % pts)
        legend.append(("target " + args.target + (" (relative)" if args.relative else ""), "#d62728"))
    for i, (label, col) in enumerate(legend):
        y = T + 18 + 18 * i
        svg.add('<rect x="%d" y="%d" width="14" height="10" fill="%s"/>' % (W - R - 250, y - 9, col))
        svg.text(W - R - 230, y, label, anchor="start")

    with open(args.out, "w") as f:
        f.write(svg.render())
    print("wrote", args.out)


if __name__ == "__main__":
    main()
