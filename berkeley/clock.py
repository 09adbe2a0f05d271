"""berkeley/clock.py - the clock model: every clock's true offset (its
simulated time minus the host clock) at any host instant, replayed exactly
from its logged start and corrections, in integer nanoseconds, as clock.hpp
computes it. Pure: events in, offsets out; reading the logs is logs.py's,
judging the run analysis.py's."""

import bisect
import collections

from berkeley.units import NS_PER_S

# A clock is pinned down at its anchors: its `start` event and every `adjust`.
# From an anchor at host time R with true offset O (clock_ns - real_ns), rate
# r ppb (drift + trim, logged as rate_ppb) and a slew of S ns at s ppb, the
# clock's offset at host time t >= R, until its next anchor, is
#
#     offset(t) = O + (t - R) * r / 1e9 + sign(S) * min(|S|, (t - R) * s / 1e9)
#                     `- drift and trim   `- the slew: a ramp of slope s until all of S is in
#
# floored once to whole ns, as clock.hpp does. A step (mode "step") has S = 0
# and jumps at R: just before it the offset was O - correction_ns. A slew
# does not jump at all. A new correction discards what was left of the slew
# before it, so every anchor starts afresh.

Anchor = collections.namedtuple("Anchor", "real_ns offset_before_ns offset_ns rate_ppb slew_ns slew_rate_ppb")


def anchor_of(event, stand_in_rate_ppb=0):
    """The anchor a `start` or `adjust` event sets, at the rate it logs. A log
    that lost its `start` begins at its first event, whatever it is: one that
    logs no rate stands in at stand_in_rate_ppb."""
    offset = event["clock_ns"] - event["real_ns"]
    rate = event.get("rate_ppb", stand_in_rate_ppb)
    if event["event"] != "adjust":
        return Anchor(event["real_ns"], offset, offset, rate, 0, 0)
    if event["mode"] == "slew":
        return Anchor(event["real_ns"], offset, offset, rate, event["correction_ns"], event.get("slew_rate_ppb", 0))
    return Anchor(event["real_ns"], offset - event["correction_ns"], offset, rate, 0, 0)


def offset_from(anchor, t):
    """offset(t) above, for t >= anchor.real_ns, in exact integers (ns x 1e9 until the floor)."""
    elapsed = t - anchor.real_ns
    slewed = min(abs(anchor.slew_ns) * NS_PER_S, elapsed * anchor.slew_rate_ppb)
    return anchor.offset_ns + (elapsed * anchor.rate_ppb + (slewed if anchor.slew_ns >= 0 else -slewed)) // NS_PER_S


def slew_end(anchor):
    """Host time at which all of an anchor's slew is in (its own time when there is none)."""
    if not anchor.slew_ns:
        return anchor.real_ns
    return anchor.real_ns + -(-abs(anchor.slew_ns) * NS_PER_S // anchor.slew_rate_ppb)  # rounded up


class ClockTrack:
    """One clock's history: its events, and its anchors in host-time order.
    offset_at(t) follows the last anchor at or before t; before the first one
    it extrapolates backwards from it at its rate."""

    def __init__(self, clock_id, events):
        self.id = clock_id
        self.events = sorted(events, key=lambda e: e["real_ns"])  # stable: log order on ties
        first = self.first("start") or self.events[0]  # a log that lost its start: begin where it begins
        stand_in_rate = next((e["rate_ppb"] for e in self.events if "rate_ppb" in e), 0)
        self.anchors = [anchor_of(e, stand_in_rate) for e in self.events if e is first or e["event"] == "adjust"]
        self.reals = [a.real_ns for a in self.anchors]

    def offset_at(self, t, before_step=False):
        """True offset (clock minus host time) at host time t; with before_step,
        the offset just before a step this clock takes at exactly t."""
        if before_step:
            i = bisect.bisect_left(self.reals, t)
            if i < len(self.anchors) and self.reals[i] == t:
                return self.anchors[i].offset_before_ns
            i -= 1
        else:
            i = bisect.bisect_right(self.reals, t) - 1
        if i < 0:
            first = self.anchors[0]
            return first.offset_before_ns + (t - first.real_ns) * first.rate_ppb // NS_PER_S
        return offset_from(self.anchors[i], t)

    def applied_at(self, real_ns):
        """Host time by which the correction this clock made at real_ns is all
        in: at once for a step; at the end of its slew, or at the clock's next
        anchor if that comes first (it discards the rest of the slew)."""
        i = bisect.bisect_right(self.reals, real_ns) - 1
        end = slew_end(self.anchors[i])
        return min(end, self.reals[i + 1]) if i + 1 < len(self.reals) else end

    def first(self, name):
        return next((e for e in self.events if e["event"] == name), None)

    def adjusts(self):
        """The correction of each round, by round number (a duplicate is ignored)."""
        steps = {}
        for e in self.events:
            if e["event"] == "adjust":
                steps.setdefault(e["round"], e)
        return steps

    def corrections(self):
        """adjusts(), and the rounds whose correction this clock received and
        left unapplied (`ignored`, a stubborn clock): it took part all the same."""
        steps = {e["round"]: e for e in reversed(self.events) if e["event"] == "ignored"}
        return {**steps, **self.adjusts()}
