"""berkeley/plot.py - the picture of a run: every clock's true offset from
the ensemble mean over time, as one standalone SVG (no script, no external
file), on a linear or a symmetric log axis. It draws what analysis.py
figured and clock.py replays; it judges nothing itself."""

import bisect
import math

from berkeley.analysis import natural_key, verdict
from berkeley.units import NS_PER_MS, NS_PER_S, NS_PER_US, fmt_duration

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22"]
WIDTH, HEIGHT = 1000, 650
LEFT, RIGHT, TOP, BOTTOM = 96, 820, 60, 580  # the plot area; the legend sits right of it
SLEW_SAMPLES = 6  # points along a slew, its end included


def symlog(ns):
    """Linear within +/-1 us, one unit per decade beyond: 1 us -> 1, 1 ms -> 4, 1 s -> 7."""
    size = abs(ns) / NS_PER_US
    value = size if size <= 1 else 1 + math.log10(size)
    return math.copysign(value, ns)


def tick_label(decade):
    """The label for the tick at symlog value +/-decade (decade >= 1)."""
    units = [(7, "s"), (4, "ms"), (1, "us")]
    exponent, unit = next((e, u) for e, u in units if decade >= e)
    return "%d %s" % (10 ** (decade - exponent), unit)


def clock_ends(tracks, result):
    """{clock: host time} for each clock that died: a master killed before a
    takeover, whose log ends without an `exit`, before the last round. It is
    drawn, and counted in the mean, until its last event."""
    last_round = set(result["rounds"][-1]["clocks"])
    return {c: track.events[-1]["real_ns"] for c, track in tracks.items()
            if c not in last_round and not track.first("exit")}


def plot_samples(tracks, t0, t1, until=None):
    """(host time, {clock: offset from the mean}) at t0, t1, every event of
    any clock between and SLEW_SAMPLES points along every slew up to its end,
    so that a slew shows as a ramp; twice at a step (just before and just
    after) so that it shows as a vertical jump."""
    step_times = {a.real_ns for t in tracks.values() for a in t.anchors if a.offset_before_ns != a.offset_ns}
    times = {e["real_ns"] for t in tracks.values() for e in t.events}
    for track in tracks.values():
        for a in track.anchors:
            if a.slew_ns:
                end = track.applied_at(a.real_ns)
                times.update(a.real_ns + (end - a.real_ns) * k // SLEW_SAMPLES for k in range(1, SLEW_SAMPLES + 1))
    times = sorted({t0, t1} | {t for t in times if t0 <= t <= t1})
    until = until or {}
    samples = []
    for t in times:
        for before in ((True, False) if t in step_times else (False,)):
            offsets = {c: track.offset_at(t, before_step=before) for c, track in tracks.items()
                       if t <= until.get(c, t1)}
            if not offsets:
                continue
            mean = sum(offsets.values()) / len(offsets)
            samples.append((t, {c: v - mean for c, v in offsets.items()}))
    return samples


def choose_scale(tracks, t_round1):
    """The offset axis for --plot-scale auto: "linear" when no clock drifts
    (each starts at rate 0) and, as round 1 begins, every clock that is off
    the mean by 1 us or more is within a factor of ONE_SCALE of the furthest,
    as the textbook's 3:00, 3:25 and 2:50 are. What there is to see is then
    who moved how far, which only a linear axis shows (on a log axis 5 and
    15 minutes lie close together), and after round 1 they differ only by
    the master's estimation errors. Otherwise "symlog": the drift's saw-tooth
    between rounds lies decades below the first round's step."""
    if any(track.anchors[0].rate_ppb for track in tracks.values()):
        return "symlog"
    offsets = [track.offset_at(t_round1, before_step=True) for track in tracks.values()]
    mean = sum(offsets) / len(offsets)
    sizes = [abs(v - mean) for v in offsets if abs(v - mean) >= NS_PER_US]
    return "linear" if sizes and min(sizes) * ONE_SCALE >= max(sizes) else "symlog"


ONE_SCALE = 100
# Steps for a linear axis: 1-2-5 below a second, then what clocks show.
LINEAR_STEPS_NS = ([m * 10 ** k for k in range(9) for m in (1, 2, 5)]
                   + [s * NS_PER_S for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800,
                                             3600, 7200, 10800, 21600, 43200, 86400)])


def linear_ticks(lo, hi, most=10):
    """Tick values (ns) for an axis from lo to hi: multiples of the smallest
    step in LINEAR_STEPS_NS that gives at most `most` intervals."""
    step = next((s for s in LINEAR_STEPS_NS if (hi - lo) / s <= most), None)
    if step is None:  # beyond a day per tick: whole days, 1-2-5
        step = next(m * 10 ** k * 86400 * NS_PER_S for k in range(30) for m in (1, 2, 5)
                    if (hi - lo) / (m * 10 ** k * 86400 * NS_PER_S) <= most)
    return [k * step for k in range(math.ceil(lo / step), math.floor(hi / step) + 1)]


class Axis:
    """The offset axis: value (ns) to y pixel, and the grid lines with their labels."""

    def __init__(self, scale, values):
        self.scale = scale
        if scale == "symlog":
            self.top = max(3, math.ceil(max(abs(symlog(v)) for v in values)))
        else:
            lo, hi = min(min(values), 0), max(max(values), 0)
            pad = (hi - lo) * 0.06 or NS_PER_US
            self.lo, self.hi = lo - pad, hi + pad

    def y(self, ns):
        if self.scale == "symlog":
            return TOP + (self.top - symlog(ns)) / (2 * self.top) * (BOTTOM - TOP)
        return TOP + (self.hi - ns) / (self.hi - self.lo) * (BOTTOM - TOP)

    def grid(self):
        """(value ns, label or None): symlog every decade, labelled at 1 us,
        1 ms, 1 s and beyond; linear at round steps, labelled as durations."""
        if self.scale == "linear":
            return [(v, "0" if v == 0 else fmt_duration(v)) for v in linear_ticks(self.lo, self.hi)]
        lines = []
        for decade in range(-self.top, self.top + 1):
            ns = math.copysign(10 ** (abs(decade) - 1) * NS_PER_US, decade) if decade else 0
            labelled = decade == 0 or abs(decade) in (1, 4) or abs(decade) >= 7
            label = "0" if decade == 0 else ("+" if decade > 0 else "-") + tick_label(abs(decade))
            lines.append((ns, label if labelled else None))
        return lines

    def title(self):
        if self.scale == "linear":
            return "offset from the mean (linear scale)"
        return "offset from the mean (symmetric log scale: linear within +/-1 us)"


# Each clock is its own colour, dash pattern and marker, and is drawn NUDGE_PX
# off the others, so that clocks that agree are still seen one by one.
DASHES = ["", "10,4", "3,3", "14,4,3,4", "6,3,2,3,2,3", "2,6", "18,6", "8,3,2,3"]
MARKERS = ["circle", "square", "triangle", "diamond", "triangle-down", "cross"]
NUDGE_PX = 2.5
MARKER_EVERY_PX = 40  # along each line; each clock's markers are staggered by its share of this


def marker(shape, x, y, colour, size=4.0):
    common = 'fill="%s" stroke="white" stroke-width="0.8"' % colour
    if shape == "circle":
        return '<circle cx="%.1f" cy="%.1f" r="%.1f" %s/>' % (x, y, size, common)
    if shape == "square":
        return '<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" %s/>' % (x - size, y - size, 2 * size, 2 * size,
                                                                             common)
    points = {"triangle": [(0, -1.25), (1.15, 0.9), (-1.15, 0.9)], "triangle-down": [(0, 1.25), (1.15, -0.9),
                                                                                       (-1.15, -0.9)],
              "diamond": [(0, -1.3), (1.3, 0), (0, 1.3), (-1.3, 0)],
              "cross": [(-0.4, -1.2), (0.4, -1.2), (0.4, -0.4), (1.2, -0.4), (1.2, 0.4), (0.4, 0.4), (0.4, 1.2),
                        (-0.4, 1.2), (-0.4, 0.4), (-1.2, 0.4), (-1.2, -0.4), (-0.4, -0.4)]}[shape]
    return '<polygon points="%s" %s/>' % (" ".join("%.1f,%.1f" % (x + dx * size, y + dy * size)
                                                   for dx, dy in points), common)


def along(points, x):
    """The y of a polyline (points in x order) at x; at a vertical jump, where it lands."""
    i = bisect.bisect_right([p[0] for p in points], x)
    if i == 0:
        return points[0][1]
    if i == len(points):
        return points[-1][1]
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def draw_svg(tracks, result, scale="auto"):
    """From a little before round 1 to a little after the last round's
    corrections are in; x in seconds since round 1 began, y on a linear or a
    symmetric log axis (scale: "linear", "symlog" or "auto", see choose_scale)."""
    t_round1 = result["rounds"][0]["before_real_ns"]
    t_last = result["final_real_ns"]
    margin = max((t_last - t_round1) // 15, 50 * NS_PER_MS)  # a one-round run: its steps, and either side
    t0, t1 = t_round1 - margin, t_last + margin
    samples = plot_samples(tracks, t0, t1, clock_ends(tracks, result))
    axis = Axis(choose_scale(tracks, t_round1) if scale == "auto" else scale,
                [v for _, offs in samples for v in offs.values()])

    def x(t):
        return LEFT + (t - t0) / (t1 - t0) * (RIGHT - LEFT)

    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'font-family="sans-serif" font-size="12">' % (WIDTH, HEIGHT, WIDTH, HEIGHT),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="24" font-size="17" text-anchor="middle">True clock offsets from the ensemble mean</text>'
           % ((LEFT + RIGHT) // 2),
           '<text x="%d" y="44" text-anchor="middle" fill="#555">%s</text>'
           % ((LEFT + RIGHT) // 2, xml_escape(verdict(result)))]
    for ns, label in axis.grid():  # horizontal grid
        svg.append('<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s"/>'
                   % (LEFT, RIGHT, axis.y(ns), axis.y(ns), "#999" if ns == 0 else "#e4e4e4"))
        if label:
            svg.append('<text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>'
                       % (LEFT - 6, axis.y(ns) + 4, xml_escape(label)))
    span_s = (t1 - t0) / NS_PER_S
    step_s = next(s for s in (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200,
                              500, 1000, 1e9) if span_s / s <= 10)
    first = math.ceil((t0 - t_round1) / NS_PER_S / step_s)
    for k in range(first, first + int(span_s / step_s) + 1):  # x ticks, 0 at the start of round 1
        px = x(t_round1 + k * step_s * NS_PER_S)
        if px > RIGHT + 0.5:
            break
        svg.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#333"/>' % (px, px, BOTTOM, BOTTOM + 5))
        svg.append('<text x="%.1f" y="%d" text-anchor="middle">%g</text>' % (px, BOTTOM + 19, round(k * step_s, 6)))
    last_label_x = -100
    for r in result["rounds"]:  # round boundaries; a label too close to the previous one is left out
        px = x(r["before_real_ns"])
        if px < LEFT:
            continue
        svg.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#777" stroke-dasharray="5,4"/>'
                   % (px, px, TOP, BOTTOM))
        if px - last_label_x >= 22:
            svg.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">r%d</text>' % (px, TOP - 4, r["round"]))
            last_label_x = px
    starts = {r["round"]: r["before_real_ns"] for r in result["rounds"]}
    for t in result.get("takeovers", []):  # a takeover: a solid line where the new master's first round began
        px = x(starts[t["first_round"]]) if t["first_round"] in starts else None
        if px is None or not LEFT <= px <= RIGHT:
            continue
        svg.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#d62728" stroke-width="2"/>'
                   % (px, px, TOP, BOTTOM))
        svg.append('<text x="%.1f" y="%d" fill="#d62728">%s takes over (epoch %d)</text>'
                   % (px + 4, BOTTOM - 8, xml_escape(t["clock"]), t["epoch"]))
    svg.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>'
               % (LEFT, TOP, RIGHT - LEFT, BOTTOM - TOP))
    svg.append('<text x="%d" y="%d" text-anchor="middle">time since round 1 began (s)</text>'
               % ((LEFT + RIGHT) // 2, BOTTOM + 42))
    svg.append('<text class="axis-title" x="16" y="%d" text-anchor="middle" transform="rotate(-90 16 %d)">%s</text>'
               % ((TOP + BOTTOM) // 2, (TOP + BOTTOM) // 2, axis.title()))
    ids = sorted(tracks, key=natural_key)
    svg.append('<svg x="%d" y="%d" width="%d" height="%d" overflow="hidden">'
               % (LEFT, TOP, RIGHT - LEFT, BOTTOM - TOP))  # lines and markers stay inside the frame
    for i, c in enumerate(ids):
        colour, dash, shape = COLOURS[i % len(COLOURS)], DASHES[i % len(DASHES)], MARKERS[i % len(MARKERS)]
        nudge = (i - (len(ids) - 1) / 2) * NUDGE_PX
        points = [(x(t) - LEFT, axis.y(offs[c]) + nudge - TOP) for t, offs in samples if c in offs]
        svg.append('<polyline class="series" data-clock="%s" fill="none" stroke="%s" stroke-width="1.6"%s '
                   'points="%s"/>' % (xml_escape(c), colour, ' stroke-dasharray="%s"' % dash if dash else "",
                                      " ".join("%.1f,%.1f" % p for p in points)))
        mx = MARKER_EVERY_PX * (i + 0.5) / len(ids)
        marks = []
        while points and mx < min(RIGHT - LEFT, points[-1][0]):  # a clock that died has no marks beyond
            marks.append(marker(shape, mx, along(points, mx), colour))
            mx += MARKER_EVERY_PX
        svg.append('<g class="markers" data-clock="%s">%s</g>' % (xml_escape(c), "".join(marks)))
    svg.append("</svg>")
    for i, c in enumerate(ids):  # the legend, right of the plot
        colour, dash, shape = COLOURS[i % len(COLOURS)], DASHES[i % len(DASHES)], MARKERS[i % len(MARKERS)]
        ly = TOP + 10 + 22 * i
        svg.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2.5"%s/>'
                   % (RIGHT + 12, RIGHT + 50, ly, ly, colour, ' stroke-dasharray="%s"' % dash if dash else ""))
        svg.append(marker(shape, RIGHT + 31, ly, colour))
        svg.append('<text class="legend" x="%d" y="%d">%s</text>' % (RIGHT + 56, ly + 4, xml_escape(c)))
    note_y = TOP + 10 + 22 * len(ids) + 12
    for k, line in enumerate(("Each line is drawn %g px" % NUDGE_PX, "off the others, so that", "clocks that agree",
                              "still show one by one.")):
        svg.append('<text x="%d" y="%d" font-size="11" fill="#666">%s</text>' % (RIGHT + 12, note_y + 14 * k, line))
    svg.append("</svg>")
    return "\n".join(svg) + "\n"


def xml_escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
