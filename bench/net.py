"""bench/net.py - section 14 of bench/run.py: across network stacks, side by
side with chrony.

For each link profile, a Lab (bench/netlab.py): the master host, the router
(a kernel bridge, or build/linkemu with the profile's delays) and the slave
host. In the same run, over the same link, our master and 3 slaves (1 s
rounds, random offsets and drifts) and chrony (a server on the master host, a
`-x` `noselect` client polling every second on the slave host). Errors, after
a warm-up:
- ours: each slave's true offset from the master at the start of every round
  (the logs, analyze.py's clock model);
- chrony: every measurement's offset (raw) and its estimated offset after it
  (filtered), as it logs them: the server and the client read the same host
  clock, so these are its errors.
On an asymmetric link every two-way method lands at (up - down)/2, the bias;
both are shown as their distance from the nominal bias (0 on the symmetric
links). The link column says what linkemu measured it really applied: its
own send path adds a few us, more in one direction than the other, which
both methods see alike."""

import os

import netlab
from report import Section, judge, median, percentile, us

PROFILES = (  # name, down (master to slave), up
    ("none", None, None),
    ("200 us each way", netlab.Link(200), netlab.Link(200)),
    ("500 us each way +/-200 us", netlab.Link(500, 200), netlab.Link(500, 200)),
    ("200 us up, 1200 us down, +/-50 us", netlab.Link(1200, 50), netlab.Link(200, 50)),
)
WARMUP_ROUNDS = 20
SPREAD_TARGET_NS = 200


def stats_of(values):
    a = [abs(v) for v in values]
    return (median(a), percentile(a, 90)) if a else (None, None)


def pair(m_p90):
    m, p = m_p90
    return "-" if m is None else "%s / %s" % (us(m), us(p))


def bench_net(procs, cfg, seed):
    rounds = cfg["net_rounds"]
    s = Section("14. Across network stacks, side by side with chrony",
                ["link (nominal)", "achieved down / up: median (p10-p90)", "bias (up-down)/2",
                 "ours: median / p90 |error - bias|", "chrony raw", "chrony filtered", "ours vs chrony filtered"],
                [__doc__.split("\n\n", 1)[1].replace("\n", " "),
                 "Each profile: %d rounds, the first %d left out. Command: `python3 bench/run.py --only net` "
                 "(root; installs chrony, Debian's package, if missing)." % (rounds, WARMUP_ROUNDS)])
    why = netlab.unavailable() or netlab.install_chrony()
    if why:
        s.fail("all profiles", why)
        return s
    spreads_none = []
    for k, (name, down, up) in enumerate(PROFILES):
        out = os.path.join(procs.dir, "net-%d" % k)
        os.makedirs(out, exist_ok=True)
        try:
            with netlab.Lab(out, down=down, up=up, seed=seed) as lab:
                chrony = netlab.Chrony(lab)
                chrony.start()
                logs = netlab.run_group(lab, 3, rounds, seed=seed)
                errors, since = netlab.true_errors(logs, WARMUP_ROUNDS)
                raw, filtered = chrony.errors(since)
                stats = lab.stop_emulator()
                if name == "none":
                    spreads_none = netlab.true_spreads(logs, WARMUP_ROUNDS)
        except (netlab.Unavailable, RuntimeError, OSError) as e:
            s.fail(name, e)
            continue
        bias = ((up.delay_us if up else 0) - (down.delay_us if down else 0)) / 2 * 1000
        ours, c_raw, c_filt = (stats_of([v - bias for v in vals]) for vals in (errors, raw, filtered))
        verdict = "-"
        if ours[0] is not None and c_filt[0] is not None:
            ahead = ours[0] <= c_filt[0] and ours[1] <= c_filt[1]
            verdict = judge(0 if ahead else 1, 0, "median %.1fx, p90 %.1fx" % (
                ours[0] / max(c_filt[0], 1), ours[1] / max(c_filt[1], 1)), "<= chrony's")
        link = "%s / %s" % tuple(netlab.achieved(stats, d, brief=True) for d in ("a_to_b", "b_to_a"))
        s.add(name, link,
              us(bias, 0), pair(ours), pair(c_raw), pair(c_filt), verdict)
    if spreads_none:
        m = median(spreads_none)
        s.findings.append("With no added delay the median spread of all 4 clocks (master included) at the "
                          "rounds' starts was %s, p90 %s (%s)." % (
                              us(m, 2), us(percentile(spreads_none, 90), 2),
                              judge(m, SPREAD_TARGET_NS, us(m, 2), "<= %s" % us(SPREAD_TARGET_NS, 1))))
    return s
