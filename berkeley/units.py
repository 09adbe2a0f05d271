"""berkeley/units.py - time as integer nanoseconds, and the one way a duration
or a time of day is printed, the C++ console's (units.hpp). Pure functions;
parsing a time or a number from the command line is analyze.py's."""

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


def fmt_duration(ns):
    """A signed duration in the unit a person reads, as the C++ programs print
    it: "+0 ns"; from 1 s H:MM:SS with a fraction only when there is one (to
    the millisecond, always three digits): "+0:05:00", "-0:00:04.508",
    "+0:00:02.500", "+27:46:40"; below, three decimals of ms or us, or whole ns: "+1.500 ms",
    "-12.345 us", "+7 ns". Rounded half away from zero, and the unit is chosen
    after rounding, so 999.9995 ms prints as "+0:00:01", never "1000.000 ms"."""
    if ns == 0:
        return "+0 ns"
    sign, size = ("-" if ns < 0 else "+"), abs(ns)
    if size < NS_PER_US:
        return "%s%d ns" % (sign, size)
    if size < NS_PER_MS:
        return "%s%d.%03d us" % ((sign,) + divmod(size, NS_PER_US))
    us = (size + NS_PER_US // 2) // NS_PER_US
    if us < NS_PER_S // NS_PER_US:
        return "%s%d.%03d ms" % ((sign,) + divmod(us, 1000))
    seconds, fraction_ms = divmod((size + NS_PER_MS // 2) // NS_PER_MS, 1000)
    text = "%s%d:%02d:%02d" % (sign, seconds // 3600, seconds // 60 % 60, seconds % 60)
    return text + (".%03d" % fraction_ms if fraction_ms else "")


def fmt_magnitude(ns):
    """A quantity that cannot be negative (a spread, a tolerance, the size of an
    error): fmt_duration without its sign, "1.001 us", "0:35:00", "0 ns"."""
    return fmt_duration(ns)[1:]


def fmt_time_of_day(clock_ns):
    """A clock reading as the time of day it shows (UTC), to the microsecond,
    as the C++ console prints it: "3:25:00.000150"."""
    in_day = clock_ns % (86_400 * NS_PER_S)
    seconds, us = in_day // NS_PER_S, in_day % NS_PER_S // NS_PER_US
    return "%d:%02d:%02d.%06d" % (seconds // 3600, seconds // 60 % 60, seconds % 60, us)
