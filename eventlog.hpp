// eventlog.hpp - the JSON-lines event log (--log FILE), and what else master
// and slave share: the command-line helpers and common options, the secret
// file, start-up. The log is an interface: analyze.py, the tests and users'
// scripts read it, so its fields are documented in README.md and change only
// deliberately. Every line is written with one write(2) on an O_APPEND file:
// nothing is buffered, so nothing is lost when a process is killed.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <sys/stat.h>
#include <optional>
#include <string>
#include <string_view>
#include <unistd.h>

#include "clock.hpp"
#include "net.hpp"

namespace berkeley {

class EventLog {
public:
    // One log line under construction; written when it goes out of scope.
    class Line {
    public:
        Line(EventLog* log, std::string_view event) : log_(log) {
            if (log_) {
                text_ = "{\"event\":";
                quote(event);
            }
        }
        Line(Line&& other) noexcept : log_(other.log_), text_(std::move(other.text_)) { other.log_ = nullptr; }
        Line(const Line&) = delete;
        Line& operator=(const Line&) = delete;
        ~Line() {
            if (!log_) return;
            text_ += "}\n";
            log_->write_line(text_);
        }
        Line& num(std::string_view key, int64_t value) {
            if (log_) { this->key(key); text_ += std::to_string(value); }
            return *this;
        }
        Line& str(std::string_view key, std::string_view value) {
            if (log_) { this->key(key); quote(value); }
            return *this;
        }
        Line& flag(std::string_view key, bool value) {
            if (log_) { this->key(key); text_ += value ? "true" : "false"; }
            return *this;
        }

    private:
        void key(std::string_view k) {
            text_ += ',';
            quote(k);
            text_ += ':';
        }
        void quote(std::string_view s) {
            text_ += '"';
            for (unsigned char c : s) {
                if (c == '"' || c == '\\') {
                    text_ += '\\';
                    text_ += static_cast<char>(c);
                } else if (c < 0x20 || c > 0x7e) {
                    char esc[8];
                    std::snprintf(esc, sizeof esc, "\\u%04x", c);
                    text_ += esc;
                } else {
                    text_ += static_cast<char>(c);
                }
            }
            text_ += '"';
        }
        EventLog* log_;
        std::string text_;
    };

    [[nodiscard]] bool open(const std::string& path, std::string& error) {
        fd_ = Fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644));
        if (!fd_.valid()) error = sys_error("open") + " (" + path + ")";
        return fd_.valid();
    }

    // Every event names the process, its simulated clock and the host clock
    // read at the same instant: the pair that lets a run be verified.
    Line event(std::string_view name, std::string_view id, int64_t clock_ns, int64_t real_ns) {
        Line line(fd_.valid() ? this : nullptr, name);
        line.str("id", id).num("clock_ns", clock_ns).num("real_ns", real_ns);
        return line;
    }

private:
    void write_line(const std::string& text) {
        size_t done = 0;
        while (done < text.size()) {
            ssize_t n = ::write(fd_.get(), text.data() + done, text.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return;  // a full disk must not stop the clock service
            done += static_cast<size_t>(n);
        }
    }
    Fd fd_;
};

// ---------------------------------------------------------------------------
// Command-line helpers. A bad argument prints the problem and the usage and
// exits 2, as the shells' conventions ask.

[[noreturn]] inline void usage_error(const char* usage, const std::string& problem) {
    std::fprintf(stderr, "error: %s\n%s", problem.c_str(), usage);
    std::exit(2);
}

// Walks argv: flag() names the current flag, value() takes its argument.
class Args {
public:
    Args(int argc, char** argv, const char* usage) : argc_(argc), argv_(argv), usage_(usage) {}
    bool next() { return ++i_ < argc_; }
    std::string_view current() const { return argv_[i_]; }
    std::string_view value() {
        if (i_ + 1 >= argc_) usage_error(usage_, std::string(current()) + " needs a value");
        return argv_[++i_];
    }
    // A decimal with up to `decimals` fraction digits, scaled to an integer
    // (seconds with decimals 9 give nanoseconds), within [lo, hi].
    int64_t scaled(int decimals, int64_t lo, int64_t hi) {
        std::string_view flag = current();
        std::string_view text = value();
        auto v = parse_decimal(text, decimals);
        if (!v || *v < lo || *v > hi)
            usage_error(usage_, "bad value for " + std::string(flag) + ": '" + std::string(text) + "'");
        return *v;
    }
    int64_t integer(int64_t lo, int64_t hi) { return scaled(0, lo, hi); }
    [[noreturn]] void fail(const std::string& problem) const { usage_error(usage_, problem); }
    const char* usage() const { return usage_; }

private:
    int argc_;
    char** argv_;
    const char* usage_;
    int i_ = 0;
};

// Read the shared secret from its file (its first line, without trailing
// white space). Like ssh with its keys, refuse a file that group or others
// may read: a secret that anyone on the host can read keeps nobody out.
[[nodiscard]] inline bool read_secret_file(const std::string& path, std::string& secret, std::string& error) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (!fd.valid() || fstat(fd.get(), &st) != 0) {
        error = sys_error("open") + " (" + path + ")";
        return false;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
        error = "secret file " + path + " has mode " + mode + ": it must not be accessible by group or others (chmod 600 " + path + ")";
        return false;
    }
    char buf[MAX_SECRET_BYTES + 2];
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
        error = sys_error("read") + " (" + path + ")";
        return false;
    }
    secret.assign(buf, static_cast<size_t>(n));
    secret = secret.substr(0, secret.find('\n'));
    while (!secret.empty() && (secret.back() == '\r' || secret.back() == ' ' || secret.back() == '\t')) secret.pop_back();
    const bool printable = std::all_of(secret.begin(), secret.end(), [](char c) { return c > 0x20 && c < 0x7f; });
    if (secret.empty() || secret.size() > MAX_SECRET_BYTES || !printable) {
        error = "secret file " + path + ": the first line must be 1 to " + std::to_string(MAX_SECRET_BYTES) +
                " printable characters without spaces";
        return false;
    }
    return true;
}

// The options master and slave share: their simulated clock, how it takes
// corrections, how they read time off the wire, their log and their secret.
struct CommonOptions {
    std::optional<int64_t> offset_ns;  // unset: random, from the seed
    std::optional<int64_t> rate_ppb;
    uint64_t seed = 0;
    Discipline discipline;
    bool kernel_timestamps = true;
    std::string secret;                // empty: none
    std::string log_path;
    bool quiet = false;
};

constexpr const char* COMMON_USAGE =
    "  --offset MS            simulated clock offset                   [random, +/-5 s]\n"
    "  --drift PPM            simulated clock drift                    [random, +/-50 ppm]\n"
    "  --seed N               seed for the random offset and drift     [time and pid]\n"
    "  --step-threshold MS    step corrections this large, slew smaller ones [128]\n"
    "  --slew-rate PPM        how fast to slew                         [500]\n"
    "  --no-frequency         do not learn and trim the clock's rate error\n"
    "  --timestamps MODE      kernel: arrival times stamped by the kernel, two\n"
    "                         readings per reply; user: clock reads in this process,\n"
    "                         one reading (Cristian's method)          [kernel]\n"
    "  --secret-file FILE     shared secret for HELLO (mode 600)\n"
    "  --log FILE             write JSON-lines events to FILE\n"
    "  --quiet                print only errors\n"
    "  --help, --version\n";

inline uint64_t default_seed() {
    return static_cast<uint64_t>(realtime_ns()) ^ (static_cast<uint64_t>(getpid()) << 32);
}

// Handle the flag under the cursor if it is a shared one; false if not.
inline bool parse_common_option(Args& a, CommonOptions& o, const char* program) {
    const std::string_view f = a.current();
    if (f == "--help" || f == "-h") {
        std::printf("%s", a.usage());
        std::exit(0);
    } else if (f == "--version") {
        std::printf("%s (berkeley-sync) %s\n", program, PROGRAM_VERSION);
        std::exit(0);
    } else if (f == "--offset") o.offset_ns = a.scaled(6, -MAX_OFFSET_NS, MAX_OFFSET_NS);
    else if (f == "--drift") o.rate_ppb = a.scaled(3, -MAX_RATE_PPB, MAX_RATE_PPB);
    else if (f == "--seed") o.seed = static_cast<uint64_t>(a.integer(0, INT64_MAX));
    else if (f == "--step-threshold") o.discipline.step_threshold_ns = a.scaled(6, 0, MAX_OFFSET_NS);
    else if (f == "--slew-rate") o.discipline.slew_rate_ppb = a.scaled(3, 1, 100'000'000);
    else if (f == "--no-frequency") o.discipline.frequency = false;
    else if (f == "--timestamps") {
        const std::string_view mode = a.value();
        if (mode != "kernel" && mode != "user") a.fail("--timestamps takes kernel or user");
        o.kernel_timestamps = mode == "kernel";
    } else if (f == "--secret-file") {
        std::string error;
        if (!read_secret_file(std::string(a.value()), o.secret, error)) {
            std::fprintf(stderr, "%s: %s\n", program, error.c_str());
            std::exit(1);
        }
    } else if (f == "--log") o.log_path = a.value();
    else if (f == "--quiet") o.quiet = true;
    else return false;
    return true;
}

// The simulated clock the options ask for, started at host time real_ns.
inline SimClock make_clock(const CommonOptions& o, uint64_t seed, int64_t real_ns) {
    const ClockParams random = random_clock_params(seed);
    return make_clock(real_ns, o.offset_ns.value_or(random.offset_ns), o.rate_ppb.value_or(random.rate_ppb));
}

// The start-up both programs share, after their options are parsed:
// signals, the open-file limit, the log and the event loop. Returns the
// open-file limit now in force, or 0, after printing why, when a step fails.
[[nodiscard]] inline uint64_t start_up(const char* program, const CommonOptions& o, EventLog& log, EventLoop& loop) {
    install_signal_handlers();
    const uint64_t fd_limit = raise_fd_limit();
    std::string error;
    if ((!o.log_path.empty() && !log.open(o.log_path, error)) || !loop.open(error)) {
        std::fprintf(stderr, "%s: %s\n", program, error.c_str());
        return 0;
    }
    return fd_limit;
}

// What analysis needs to replay a clock after a correction (README: adjust).
inline EventLog::Line& correction_fields(EventLog::Line& line, const Corrected& c) {
    line.str("mode", c.how == Applied::Step ? "step" : "slew")
        .num("rate_ppb", c.clock.rate_ppb + c.clock.trim_ppb)
        .num("trim_ppb", c.clock.trim_ppb);
    if (c.how == Applied::Slew) line.num("slew_rate_ppb", c.clock.slew_rate_ppb);
    return line;
}

// Console output, silenced by --quiet. Line-buffered even into a pipe, so a
// parent (analyze.py) sees each line as it happens.
struct Console {
    bool quiet = false;
    __attribute__((format(printf, 2, 3))) void say(const char* fmt, ...) const {
        if (quiet) return;
        va_list args;
        va_start(args, fmt);
        std::vprintf(fmt, args);
        va_end(args);
        std::fflush(stdout);
    }
};

}  // namespace berkeley
