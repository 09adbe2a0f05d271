// eventlog.hpp - the JSON-lines event log (--log FILE). The log is an
// interface: analyze.py, the tests and users' scripts read it, so its fields
// are documented in README.md and change only deliberately. Every line is
// written with one write(2) on an O_APPEND file: nothing is buffered, so
// nothing is lost when a process is killed.
#pragma once

#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

#include "simclock.hpp"
#include "os.hpp"

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

    // `program` names who is writing, for the one line on stderr when the
    // first event is lost.
    [[nodiscard]] bool open(const std::string& path, std::string& error, std::string program = "berkeley",
                            bool append = false) {
        fd_ = Fd(::open(path.c_str(), O_WRONLY | O_CREAT | (append ? 0 : O_TRUNC) | O_APPEND | O_CLOEXEC, 0644));
        if (!fd_.valid()) error = sys_error("open") + " (" + path + ")";
        path_ = path;
        program_ = std::move(program);
        return fd_.valid();
    }

    // Every event names the process, its simulated clock and the host clock
    // read at the same instant: the pair that lets a run be verified.
    Line event(std::string_view name, std::string_view id, int64_t clock_ns, int64_t real_ns) {
        Line line(fd_.valid() || capture_ ? this : nullptr, name);
        line.str("id", id).num("clock_ns", clock_ns).num("real_ns", real_ns);
        return line;
    }

    // Keep the lines in memory instead (a unit test, the simulator).
    void capture_into(std::vector<std::string>* lines) { capture_ = lines; }

    // Lines that could not be written (disk full, file too large, I/O error).
    uint64_t lost() const { return lost_; }

private:
    // A full disk, a file-size limit (EFBIG; SIGXFSZ is ignored) or an I/O
    // error must not stop the clock service, nor pass in silence: the event
    // is counted as lost, the first loss is said on stderr at once, and a
    // line cut short is cut off again, so the log holds only whole lines.
    void write_line(const std::string& text) {
        if (capture_) return capture_->push_back(text);
        const off_t start = lseek(fd_.get(), 0, SEEK_END);
        size_t done = 0;
        while (done < text.size()) {
            const ssize_t n = ::write(fd_.get(), text.data() + done, text.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                const int why = n < 0 ? errno : ENOSPC;
                [[maybe_unused]] const int cut = done > 0 && start >= 0 ? ftruncate(fd_.get(), start) : 0;
                if (lost_++ == 0)
                    std::fprintf(stderr, "%s: the log %s lost an event: %s; going on, counting the losses\n",
                                 program_.c_str(), path_.c_str(), std::strerror(why));
                return;
            }
            done += static_cast<size_t>(n);
        }
    }
    Fd fd_;
    std::vector<std::string>* capture_ = nullptr;
    uint64_t lost_ = 0;
    std::string path_, program_ = "berkeley";
};

// Console output, silenced by --quiet. Line-buffered even into a pipe, so a
// parent (analyze.py) sees each line as it happens.
struct Console {
    bool quiet = false;
    std::string* capture = nullptr;  // a unit test's: the text goes here, not to stdout
    __attribute__((format(printf, 2, 3))) void say(const char* fmt, ...) const {
        if (quiet) return;
        va_list args;
        va_start(args, fmt);
        write(stdout, fmt, args);
        va_end(args);
    }
    // An error: on stderr, whatever --quiet says (captured with the rest).
    __attribute__((format(printf, 2, 3))) void warn(const char* fmt, ...) const {
        va_list args;
        va_start(args, fmt);
        write(stderr, fmt, args);
        va_end(args);
    }

private:
    void write(std::FILE* to, const char* fmt, va_list args) const {
        if (!capture) {
            std::vfprintf(to, fmt, args);
            std::fflush(to);
            return;
        }
        char buf[1024];
        std::vsnprintf(buf, sizeof buf, fmt, args);
        *capture += buf;
    }
};

// What analysis needs to replay a clock after a correction (README: adjust).
inline EventLog::Line& correction_fields(EventLog::Line& line, const Corrected& c) {
    line.str("mode", c.how == Applied::Step ? "step" : "slew")
        .num("rate_ppb", c.clock.rate_ppb + c.clock.trim_ppb)
        .num("trim_ppb", c.clock.trim_ppb);
    if (c.how == Applied::Slew) line.num("slew_rate_ppb", c.clock.slew_rate_ppb);
    return line;
}

}  // namespace berkeley
