// cli.hpp - what master and slave share around the algorithm: the command
// line (getopt_long, so "--port 8081" and "--port=8081" both work), the
// options both programs take, the secret file, start-up, and the console.
// Nothing here exits: parsing returns what to do, and main() does it, so
// tests/test_cli.cpp can cover every path.
#pragma once

#include <algorithm>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <fcntl.h>
#include <functional>
#include <getopt.h>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "auth.hpp"
#include "simclock.hpp"
#include "eventlog.hpp"
#include "net.hpp"
#include "os.hpp"
#include "protocol.hpp"
#include "units.hpp"

namespace berkeley {

// ---------------------------------------------------------------------------
// The command line. Each program lists its options as OptionSpecs; the usage
// text is made from the same list, so it cannot drift from what is parsed.

struct OptionSpec {
    const char* name;  // long name, without "--"
    const char* arg;   // the value's placeholder ("MS"); nullptr for a flag
    const char* help;  // one line, the default in [brackets]
    // Take the value ("" for a flag); nullopt when fine, else what is wrong.
    std::function<std::optional<std::string>(std::string_view)> apply;
};

// What main() does after parsing: run, or print `text` and exit with `code`
// (0 for --help and --version on stdout; 2 for a mistake, with the usage, on stderr).
struct CliResult {
    bool run = true;
    int code = 0;
    std::string text;
};

// What main() does with a parse that says not to run: print its text (to
// stdout for --help and --version, to stderr for a mistake) and return the exit status.
inline int print_and_exit_code(const CliResult& r) {
    std::fputs(r.text.c_str(), r.code == 0 ? stdout : stderr);
    return r.code;
}

inline std::string usage_text(std::string_view synopsis, std::span<const OptionSpec> specs) {
    std::string out = "usage: " + std::string(synopsis) + "\n";
    for (const OptionSpec& s : specs) {
        std::string left = "  --" + std::string(s.name) + (s.arg ? " " + std::string(s.arg) : "");
        left.resize(std::max<size_t>(left.size() + 1, 25), ' ');
        out += left + s.help + "\n";
    }
    out += "  --help, --version      (options also take --name=value)\n";
    return out;
}

// A word such as "-5" or "-0.5" is a number, not a cluster of short options
// ("-5x" is neither: an unknown option -5).
inline bool is_negative_number(std::string_view word) {
    if (word.size() < 2 || word[0] != '-') return false;
    const std::string_view rest = word.substr(1);
    return std::all_of(rest.begin(), rest.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; }) &&
           rest.find_first_of("0123456789") != std::string_view::npos;
}

// The spec a long option's name (without "--" and "=value") stands for: the
// exact name, or a prefix of exactly one (as getopt_long resolves it).
inline const OptionSpec* find_option(std::span<const OptionSpec> specs, std::string_view name) {
    const OptionSpec* found = nullptr;
    size_t matches = 0;
    for (const OptionSpec& s : specs) {
        if (name == s.name) return &s;
        if (std::string_view(s.name).starts_with(name)) {
            found = &s;
            ++matches;
        }
    }
    return matches == 1 ? found : nullptr;
}

// Which words of argv are negative numbers that no option takes as its value
// ("./master -5" but not "--offset -5"), up to a "--".
inline std::vector<bool> negative_positionals(int argc, char** argv, std::span<const OptionSpec> specs) {
    std::vector<bool> negative(static_cast<size_t>(argc), false);
    for (int i = 1; i < argc; ++i) {
        const std::string_view word = argv[i];
        if (word == "--") break;
        if (word.starts_with("--") && word.find('=') == std::string_view::npos) {
            const OptionSpec* s = find_option(specs, word.substr(2));
            if (s && s->arg) ++i;  // the next word is its value, whatever it looks like
        } else if (is_negative_number(word)) {
            negative[static_cast<size_t>(i)] = true;
        }
    }
    return negative;
}

// What getopt_long's ':' or '?' (`c`, with opterr 0) was about: `code` is its
// optopt, `word` the word it read last. A long option is named in full even
// when given as a prefix; a prefix of several is told which they are.
inline std::string option_problem(int c, int code, std::string_view word, std::span<const option> longopts) {
    for (const option& o : longopts)
        if (o.name && o.val == code) return "--" + std::string(o.name) + (c == ':' ? " needs a value" : " takes no value");
    if (code > 0 && code < 256) return "unknown option -" + std::string(1, static_cast<char>(code));
    const std::string_view name = word.substr(0, word.find('='));
    std::string candidates;
    size_t matches = 0;
    for (const option& o : longopts)
        if (o.name && name.starts_with("--") && std::string_view(o.name).starts_with(name.substr(2)))
            candidates += (matches++ ? ", --" : "--") + std::string(o.name);
    if (matches > 1) return "ambiguous option " + std::string(name) + ": " + candidates + "?";
    return "unknown option " + std::string(name);
}

// Parse argv: options anywhere, in either form, unambiguous prefixes too (as
// GNU tools do); everything else goes to `positional`, in order. A negative
// number that is no option's value is positional too ("./master -5" is told
// what N must be, not that there is no option -5); getopt_long would take it
// for short options, so it is shown a stand-in that does not start with '-'.
inline CliResult parse_command_line(int argc, char** argv, std::string_view program, std::string_view synopsis,
                                 std::span<const OptionSpec> specs, std::vector<std::string>& positional) {
    enum : int { HELP = 1000, VERSION, FIRST_SPEC };
    std::vector<option> longopts;
    for (size_t i = 0; i < specs.size(); ++i)
        longopts.push_back({specs[i].name, specs[i].arg ? required_argument : no_argument, nullptr,
                            FIRST_SPEC + static_cast<int>(i)});
    longopts.push_back({"help", no_argument, nullptr, HELP});
    longopts.push_back({"version", no_argument, nullptr, VERSION});
    longopts.push_back({nullptr, 0, nullptr, 0});
    auto mistake = [&](const std::string& problem) {
        return CliResult{false, 2, "error: " + problem + "\n" + usage_text(synopsis, specs)};
    };
    // getopt_long reorders the words it is given: it gets a copy, with the stand-ins.
    std::vector<char*> args(argv, argv + argc + 1);  // with argv's closing nullptr
    const std::vector<bool> negative = negative_positionals(argc, argv, specs);
    std::vector<std::string> stand_in(static_cast<size_t>(argc));  // sized once: its strings never move
    for (size_t i = 0; i < negative.size(); ++i)
        if (negative[i]) args[i] = (stand_in[i] = "N").data();
    auto original = [&](const char* word) -> std::string {
        for (size_t i = 0; i < negative.size(); ++i)
            if (negative[i] && word == stand_in[i].data()) return argv[i];
        return word;
    };
    opterr = 0;  // we say what went wrong ourselves
    optind = 0;  // start afresh (glibc), so parsing can run more than once
    while (true) {
        const int c = getopt_long(argc, args.data(), ":h", longopts.data(), nullptr);
        if (c == -1) break;
        if (c == 'h' || c == HELP) return CliResult{false, 0, usage_text(synopsis, specs)};
        if (c == VERSION) return CliResult{false, 0, std::string(program) + " (berkeley-sync) " + PROGRAM_VERSION + "\n"};
        if (c == ':' || c == '?') {
            const char* word = optind > 0 && optind <= argc ? args[static_cast<size_t>(optind - 1)] : "";
            return mistake(option_problem(c, optopt, word, longopts));
        }
        const OptionSpec& s = specs[static_cast<size_t>(c - FIRST_SPEC)];
        const std::string_view value = s.arg ? std::string_view(optarg) : std::string_view();
        if (auto problem = s.apply(value)) return mistake(*problem);
    }
    for (int i = optind; i < argc; ++i) positional.push_back(original(args[static_cast<size_t>(i)]));
    return CliResult{};
}

// The unit an option's scaled value is written in. Every scaled value in
// these programs is nanoseconds or parts per billion, and the decimals say
// which unit the person types: 9 make seconds (of ns), 6 milliseconds (of
// ns), 3 ppm (of ppb). No option takes microseconds; one that does would
// need this told apart.
inline const char* scaled_unit(int decimals) {
    switch (decimals) {
        case 9: return "seconds";
        case 6: return "milliseconds";
        case 3: return "ppm";
        default: return nullptr;
    }
}

// What is wrong with `text` as the value of --`name`, a decimal with up to
// `decimals` fraction digits scaled to an integer in [lo, hi], or nullopt:
// the option, the value, and the valid range in the unit it is written in
// ("--interval 0: must be from 0.001 to 86400 (seconds)").
inline std::optional<std::string> scaled_problem(std::string_view name, std::string_view text, int decimals,
                                                 int64_t lo, int64_t hi) {
    const auto v = parse_decimal(text, decimals);
    if (v && *v >= lo && *v <= hi) return std::nullopt;
    const char* unit = scaled_unit(decimals);
    std::string range = "from " + format_decimal(lo, decimals) + " to " + format_decimal(hi, decimals) +
                        (unit ? std::string(" (") + unit + ")" : "");
    std::string why = "must be " + range;  // a number, but out of range
    if (!v && decimals == 0) why = "must be a whole number " + range;
    if (!v && decimals > 0) why = "must be a number " + range + ", at most " + std::to_string(decimals) + " decimals";
    return "--" + std::string(name) + " " + std::string(text) + ": " + why;
}

// An option's value as a decimal with up to `decimals` fraction digits,
// scaled to an integer (seconds with decimals 9 give nanoseconds), stored in
// `out` when it lies within [lo, hi].
template <typename T>
auto store_scaled(const char* name, T& out, int decimals, int64_t lo, int64_t hi) {
    return [name, &out, decimals, lo, hi](std::string_view text) -> std::optional<std::string> {
        if (auto problem = scaled_problem(name, text, decimals, lo, hi)) return problem;
        out = static_cast<T>(*parse_decimal(text, decimals));
        return std::nullopt;
    };
}
template <typename T>
auto store_integer(const char* name, T& out, int64_t lo, int64_t hi) {
    return store_scaled(name, out, 0, lo, hi);
}
inline auto store_text(std::string& out) {
    return [&out](std::string_view text) -> std::optional<std::string> {
        out = text;
        return std::nullopt;
    };
}
inline auto store_flag(bool& out, bool value) {
    return [&out, value](std::string_view) -> std::optional<std::string> {
        out = value;
        return std::nullopt;
    };
}

// ---------------------------------------------------------------------------
// The options master and slave share: their simulated clock, how it takes
// corrections, how they read time off the wire, their log and their secret.
struct CommonOptions {
    std::optional<int64_t> offset_ns;  // unset: random, from the seed
    std::optional<int64_t> time_of_day_ns;  // --time: read this at the top of the host's hour (UTC)
    std::optional<int64_t> rate_ppb;
    uint64_t seed = 0;
    Discipline discipline;
    bool kernel_timestamps = true;
    std::string secret_file;           // empty: no secret, plain protocol
    std::optional<HmacSha256> key;     // the group key, stretched from the secret at start-up
    std::string log_path;
    bool log_append = false;  // a slave that took over goes on in its own log
    bool quiet = false;
};

inline uint64_t default_seed() {
    return static_cast<uint64_t>(realtime_ns()) ^ (static_cast<uint64_t>(getpid()) << 32);
}

inline std::vector<OptionSpec> common_options(CommonOptions& o) {
    auto optional_into = [](const char* name, std::optional<int64_t>& out, int decimals, int64_t lo, int64_t hi) {
        return [name, &out, decimals, lo, hi](std::string_view text) -> std::optional<std::string> {
            int64_t v = 0;
            if (auto problem = store_scaled(name, v, decimals, lo, hi)(text)) return problem;
            out = v;
            return std::nullopt;
        };
    };
    return {
        {"offset", "MS", "simulated clock offset                   [random, +/-5 s]",
         optional_into("offset", o.offset_ns, 6, -MAX_OFFSET_NS, MAX_OFFSET_NS)},
        {"time", "HH:MM[:SS]", "set the clock as if it read this at the top of the host's hour\n"
         "                         (UTC), so clocks started minutes apart stand as far apart as their times",
         [&o](std::string_view text) -> std::optional<std::string> {
             o.time_of_day_ns = parse_time_of_day(text);
             if (!o.time_of_day_ns)
                 return "--time " + std::string(text) + ": must be HH:MM[:SS[.fraction]], from 0:00 to 23:59:59.999999999";
             return std::nullopt;
         }},
        {"drift", "PPM", "simulated clock drift                    [random, +/-50 ppm]",
         optional_into("drift", o.rate_ppb, 3, -MAX_RATE_PPB, MAX_RATE_PPB)},
        {"seed", "N", "seed for the random offset and drift     [time and pid]",
         store_integer("seed", o.seed, 0, INT64_MAX)},
        {"step-threshold", "MS", "step forward corrections this large (and the first), slew the rest [128]",
         store_scaled("step-threshold", o.discipline.step_threshold_ns, 6, 0, MAX_OFFSET_NS)},
        {"slew-rate", "PPM", "how fast to slew                         [500]",
         store_scaled("slew-rate", o.discipline.slew_rate_ppb, 3, 1, 100'000'000)},
        {"no-frequency", nullptr, "do not learn and trim the clock's rate error", store_flag(o.discipline.frequency, false)},
        {"timestamps", "MODE",
         "kernel: arrival times stamped by the kernel, two readings per reply;\n"
         "                         user: clock reads in this process, one reading (Cristian's) [kernel]",
         [&o](std::string_view mode) -> std::optional<std::string> {
             if (mode != "kernel" && mode != "user") return "--timestamps " + std::string(mode) + ": must be kernel or user";
             o.kernel_timestamps = mode == "kernel";
             return std::nullopt;
         }},
        {"secret-file", "FILE", "a passphrase of at least 16 bytes on its first line (mode 600):\n"
         "                         both ends prove they know it, and every line is tagged",
         [&o](std::string_view path) -> std::optional<std::string> {
             if (path.empty()) return std::string("--secret-file needs a file name");  // not "no secret"
             o.secret_file = path;
             return std::nullopt;
         }},
        {"log", "FILE", "write JSON-lines events to FILE", store_text(o.log_path)},
        {"quiet", nullptr, "print only errors", store_flag(o.quiet, true)},
    };
}

// What is wrong with a combination of the shared options, if anything.
inline std::optional<std::string> common_problem(const CommonOptions& o) {
    if (o.offset_ns && o.time_of_day_ns) return "--time and --offset both set the clock: give one";
    return std::nullopt;
}

// A clock's whole state as one option value, so that a slave taking over
// hands its disciplined clock to the master it becomes (--resume-clock):
// the fields of SimClock in order, separated by ':'.
inline std::string format_clock_state(const SimClock& c) {
    std::string out;
    for (int64_t v : {c.anchor_real_ns, c.anchor_clock_ns, c.anchor_frac, c.rate_ppb, c.trim_ppb, c.slew_ns,
                      c.slew_rate_ppb, static_cast<int64_t>(c.corrected)})
        out += (out.empty() ? "" : ":") + std::to_string(v);
    return out;
}

inline std::optional<SimClock> parse_clock_state(std::string_view text) {
    int64_t v[8];
    for (size_t i = 0; i < 8; ++i) {
        const size_t colon = text.find(':');
        if ((i < 7) == (colon == std::string_view::npos)) return std::nullopt;
        auto n = parse_decimal(text.substr(0, colon), 0);
        if (!n) return std::nullopt;
        v[i] = *n;
        text = i < 7 ? text.substr(colon + 1) : std::string_view();
    }
    if (v[2] < 0 || v[2] >= 1'000'000'000 || v[6] < 0 || (v[5] != 0 && v[6] == 0) || (v[7] != 0 && v[7] != 1) ||
        v[3] < -MAX_RATE_PPB || v[3] > MAX_RATE_PPB)
        return std::nullopt;
    return SimClock{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7] == 1};
}

// The simulated clock the options ask for, started at host time real_ns:
// offset (or time of day) and rate as given, or drawn from the seed.
inline SimClock starting_clock(const CommonOptions& o, uint64_t seed, int64_t real_ns) {
    const ClockParams random = random_clock_params(seed);
    int64_t offset_ns = o.offset_ns.value_or(random.offset_ns);
    if (o.time_of_day_ns) {  // as if it read that at the top of the host's hour
        const int64_t hour_ns = 3'600 * NS_PER_S, day_ns = 24 * hour_ns;
        const int64_t top_of_hour = floor_div(real_ns, hour_ns) * hour_ns;
        offset_ns = floor_div(top_of_hour, day_ns) * day_ns + *o.time_of_day_ns - top_of_hour;
    }
    return make_clock(real_ns, offset_ns, o.rate_ppb.value_or(random.rate_ppb));
}

// ---------------------------------------------------------------------------
// The secret file: its first line is the passphrase, without its line end
// and without blanks at either end (spaces inside are part of it). Like ssh
// with its keys, refuse a file that group or others may read: a secret that
// anyone on the host can read keeps nobody out. Every error names the
// option and the file ("--secret-file FILE: open: No such file or directory").
[[nodiscard]] inline bool read_secret_file(const std::string& path, std::string& passphrase, std::string& error) {
    const std::string option = "--secret-file " + path + ": ";
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (!fd.valid() || fstat(fd.get(), &st) != 0) {
        error = option + sys_error("open");
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        error = option + "not a regular file";
        return false;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
        error = option + "mode " + mode + ": it must not be accessible by group or others (chmod 600 " + path + ")";
        return false;
    }
    char buf[MAX_PASSPHRASE_BYTES + 2];
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
        error = option + sys_error("read");
        return false;
    }
    std::string_view line(buf, static_cast<size_t>(n));
    line = line.substr(0, line.find('\n'));
    const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
    while (!line.empty() && blank(line.back())) line.remove_suffix(1);
    while (!line.empty() && blank(line.front())) line.remove_prefix(1);
    const auto problem = passphrase_problem(line);
    if (!problem) passphrase = line;
    explicit_bzero(buf, sizeof buf);
    if (problem) error = option + *problem;
    return !problem;
}

// ---------------------------------------------------------------------------
// Start-up, after the options are parsed: signals, the open-file limit, the
// secret, the log and the event loop. Returns the open-file limit now in
// force, or 0 with `error` set when a step fails.
[[nodiscard]] inline uint64_t start_up(const char* program, CommonOptions& o, EventLog& log, EventLoop& loop,
                                       std::string& error) {
    install_signal_handlers();
    const uint64_t fd_limit = raise_fd_limit();
    if (!o.secret_file.empty()) {
        std::string passphrase;
        if (!read_secret_file(o.secret_file, passphrase, error)) return 0;
        o.key = group_key(passphrase);
        explicit_bzero(passphrase.data(), passphrase.size());  // the passphrase itself is not kept
    }
    if (!o.log_path.empty() && !log.open(o.log_path, error, program, o.log_append)) return 0;
    if (!loop.open(error)) return 0;
    return fd_limit;
}

}  // namespace berkeley
