// protocol.hpp - the wire format: text lines a person can type with nc.
// One verb and its fields per line, integers in decimal nanoseconds, '\n' at
// the end ("\r\n" is accepted). Formatting and strict parsing sit side by
// side; line framing with a bounded buffer is here too. Pure: no I/O, so
// tests/test_protocol.cpp and the fuzz target cover it completely.
#pragma once

#include <cctype>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace berkeley {

constexpr const char* PROGRAM_VERSION = "1.0.0";
constexpr size_t MAX_LINE_BYTES = 256;   // longer than any valid message
constexpr size_t MAX_ID_BYTES = 64;
constexpr size_t MAX_REASON_BYTES = 200;
constexpr uint32_t MAX_PROBES = 100;
constexpr size_t MAX_SUCCESSORS = 3;
constexpr size_t MAX_ADDRESS_BYTES = 48;  // "[ipv6]:port"
constexpr uint64_t MAX_EPOCH = 1ULL << 53;  // epochs stop there (never wrap), exact in a JSON number

//   slave  -> master   HELLO <id> [<port> <epoch>]   join, once, first; the port this slave would
//                                                    serve on as master (0: none), the highest
//                                                    epoch it has followed
//   master -> slave    WAIT <joined> <needed>        joined; rounds start at <needed> slaves
//                                                    (again every second, or every interval if
//                                                    shorter, while waiting)
//   master -> slave    TIME? <round> <probe>         "send me your clock"
//   slave  -> master   CLOCK <round> <probe> <t2> [<t3>]
//                                                    the slave's clock as TIME? arrived (t2) and
//                                                    as CLOCK left (t3); one reading: Cristian's
//   slave  -> master   INSTEP                        my clock already keeps a group's time:
//                                                    bring a new master to it, not it to him
//   master -> slave    ADJUST <round> <ns> [<ppb>]   correction to add to the clock, and the
//                                                    change of its rate the group agreed on
//   slave  -> master   ACK <round>                   correction applied
//   master -> slave    PLAN <epoch> <round> <rounds> <interval> <probes> <timeout> <max-skew>
//                           <max-missed> [<max-slaves>] [<successor>...]
//                                                    the backup plan, after WAIT and after each
//                                                    round's ADJUST: this master's epoch and
//                                                    settings, and who takes over, best first
//   master -> slave    BYE                           end of the run; close
//   master -> slave    FOLLOW <address>              a master that outranks me is there: follow it
//   master -> any      MASTER? <epoch> <token> <port>
//                                                    (a connection of its own, first line) who is
//                                                    master here? the asker's rank, and its port
//   master -> asker    MASTER <epoch> <token>        I am, of this rank; then close
//   either             ERROR <reason>                about to close, and why
// With a shared secret, auth.hpp's handshake (AUTH, AUTH, PROOF) comes first
// and every line above then carries a tag as its last field.
// One struct per verb, each with its own field names; a Message is one of them.
struct Hello {
    static constexpr const char* VERB = "HELLO";
    std::string id;
    uint16_t serve_port = 0;  // where it would serve as master; 0: it would not
    uint64_t epoch = 0;       // the highest epoch it has followed; 0: none yet
    bool operator==(const Hello&) const = default;
};
struct Wait {
    static constexpr const char* VERB = "WAIT";
    uint64_t joined = 0;  // slaves that said HELLO so far
    uint64_t needed = 0;  // slaves the first round waits for
    bool operator==(const Wait&) const = default;
};
struct TimeQuery {
    static constexpr const char* VERB = "TIME?";
    uint64_t round = 0;  // >= 1
    uint32_t probe = 0;  // 1 .. MAX_PROBES
    bool operator==(const TimeQuery&) const = default;
};
struct ClockReply {
    static constexpr const char* VERB = "CLOCK";
    uint64_t round = 0;
    uint32_t probe = 0;
    int64_t t2_ns = 0;              // slave clock as the TIME? arrived (or its only reading)
    std::optional<int64_t> t3_ns;   // slave clock as this reply left
    bool operator==(const ClockReply&) const = default;
};
struct InStep {
    static constexpr const char* VERB = "INSTEP";
    bool operator==(const InStep&) const = default;
};
struct Adjust {
    static constexpr const char* VERB = "ADJUST";
    uint64_t round = 0;
    int64_t correction_ns = 0;               // to add to the slave's clock
    std::optional<int64_t> rate_change_ppb;  // to add to its rate (parts per billion)
    bool operator==(const Adjust&) const = default;
};
struct Ack {
    static constexpr const char* VERB = "ACK";
    uint64_t round = 0;
    std::optional<int64_t> rate_change_ppb;  // the change of rate it applied, when it was sent one
    bool operator==(const Ack&) const = default;
};
struct Plan {
    static constexpr const char* VERB = "PLAN";
    uint64_t epoch = 1;            // grows with every takeover
    uint64_t round = 0;            // the last round this master started (0: none yet)
    uint64_t rounds = 0;           // rounds to run in all (0: until stopped)
    int64_t interval_ns = 0;
    uint32_t probes = 0;
    int64_t timeout_ns = 0;
    int64_t max_skew_ns = 0;       // -1: the adaptive window
    uint32_t max_missed = 0;
    uint64_t max_slaves = 0;       // --max-slaves as the operator set it (0: the default)
    std::vector<std::string> successors;  // "host:port", best first, at most MAX_SUCCESSORS
    bool operator==(const Plan&) const = default;
};
struct Bye {
    static constexpr const char* VERB = "BYE";
    bool operator==(const Bye&) const = default;
};
struct Error {
    static constexpr const char* VERB = "ERROR";
    std::string reason;
    bool operator==(const Error&) const = default;
};
// Masters find each other (failover.hpp's ranking): a master asks an address
// it lost a slave to, or its old master's, who is master there.
struct WhoIsMaster {
    static constexpr const char* VERB = "MASTER?";
    uint64_t epoch = 1;  // the asker's rank: its epoch ...
    uint64_t token = 0;  // ... and its mastership's random token
    uint16_t port = 0;   // where the asker serves (0: not said): a lower master asks back
    bool operator==(const WhoIsMaster&) const = default;
};
struct IAmMaster {
    static constexpr const char* VERB = "MASTER";
    uint64_t epoch = 1;
    uint64_t token = 0;
    bool operator==(const IAmMaster&) const = default;
};
// A master that yields sends its slaves on to the master that outranks it.
struct Follow {
    static constexpr const char* VERB = "FOLLOW";
    std::string address;  // "host:port"
    bool operator==(const Follow&) const = default;
};
using Message = std::variant<Hello, Wait, TimeQuery, ClockReply, InStep, Adjust, Ack, Plan, Bye, Error, WhoIsMaster,
                             IAmMaster, Follow>;

// For dispatching a Message to one handler per verb with std::visit.
template <typename... Handlers>
struct Overloaded : Handlers... {
    using Handlers::operator()...;
};
template <typename... Handlers>
Overloaded(Handlers...) -> Overloaded<Handlers...>;  // for compilers without C++20 aggregate deduction

inline const char* verb_name(const Message& m) {
    return std::visit([](const auto& v) { return std::decay_t<decltype(v)>::VERB; }, m);
}

// The line for a message, newline included.
inline std::string format_message(const Message& message) {
    std::string out = verb_name(message);
    auto field = [&out](auto value) {
        out += ' ';
        if constexpr (std::is_convertible_v<decltype(value), std::string_view>) out += value;
        else out += std::to_string(value);
    };
    std::visit(Overloaded{
                   [&](const Hello& m) {
                       field(m.id);
                       if (m.serve_port != 0 || m.epoch != 0) {
                           field(m.serve_port);
                           field(m.epoch);
                       }
                   },
                   [&](const Plan& m) {
                       field(m.epoch);
                       field(m.round);
                       field(m.rounds);
                       field(m.interval_ns);
                       field(m.probes);
                       field(m.timeout_ns);
                       field(m.max_skew_ns);
                       field(m.max_missed);
                       if (m.max_slaves != 0) field(m.max_slaves);
                       for (const std::string& s : m.successors) field(std::string_view(s));
                   },
                   [&](const Wait& m) { field(m.joined); field(m.needed); },
                   [&](const TimeQuery& m) { field(m.round); field(m.probe); },
                   [&](const ClockReply& m) {
                       field(m.round);
                       field(m.probe);
                       field(m.t2_ns);
                       if (m.t3_ns) field(*m.t3_ns);
                   },
                   [&](const InStep&) {},
                   [&](const Adjust& m) {
                       field(m.round);
                       field(m.correction_ns);
                       if (m.rate_change_ppb) field(*m.rate_change_ppb);
                   },
                   [&](const Ack& m) {
                       field(m.round);
                       if (m.rate_change_ppb) field(*m.rate_change_ppb);
                   },
                   [&](const Bye&) {},
                   [&](const Error& m) { field(m.reason); },
                   [&](const WhoIsMaster& m) { field(m.epoch); field(m.token); field(m.port); },
                   [&](const IAmMaster& m) { field(m.epoch); field(m.token); },
                   [&](const Follow& m) { field(std::string_view(m.address)); },
               },
               message);
    out += '\n';
    return out;
}

// A parse either yields a message or says what was wrong with the line.
struct Parsed {
    std::optional<Message> message;
    std::string error;  // empty when message is set
};

namespace detail {

inline bool is_id_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == ':';
}

// Exactly a decimal integer of type T: no sign for unsigned, '-' only for
// signed, no '+', no spaces, no leading zeros ("0" itself is fine).
template <typename T>
std::optional<T> parse_int(std::string_view s) {
    std::string_view digits = s;
    if (!digits.empty() && digits[0] == '-') digits.remove_prefix(1);
    if (digits.empty() || (digits.size() > 1 && digits[0] == '0')) return std::nullopt;
    if (digits.size() < s.size() && digits == "0") return std::nullopt;  // "-0": not canonical
    T value{};
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
    return value;
}

inline std::vector<std::string_view> split_fields(std::string_view line) {
    std::vector<std::string_view> fields;
    size_t start = 0;
    while (true) {
        size_t space = line.find(' ', start);
        fields.push_back(line.substr(start, space - start));
        if (space == std::string_view::npos) break;
        start = space + 1;
    }
    return fields;
}

}  // namespace detail

// nullptr for a valid slave id, else what is wrong with it.
inline const char* id_problem(std::string_view id) {
    if (id.empty()) return "id is empty";
    if (id.size() > MAX_ID_BYTES) return "id too long";
    for (char c : id)
        if (!detail::is_id_char(c)) return "id may hold only letters, digits and -_.:";
    return nullptr;
}

// nullptr for a valid successor address ("192.0.2.7:8080", "[::1]:8080"),
// else what is wrong with it.
inline const char* address_problem(std::string_view a) {
    if (a.empty() || a.size() > MAX_ADDRESS_BYTES) return "bad address length";
    const size_t colon = a.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return "address without a port";
    const std::string_view host = a.substr(0, colon), port = a.substr(colon + 1);
    const auto p = detail::parse_int<uint32_t>(port);
    if (!p || *p == 0 || *p > 65535) return "bad port in address";
    const bool v6 = host.front() == '[' && host.back() == ']' && host.size() > 2;
    for (char c : v6 ? host.substr(1, host.size() - 2) : host) {
        const bool ok = v6 ? (std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.')
                           : (std::isdigit(static_cast<unsigned char>(c)) || c == '.');
        if (!ok) return "bad host in address";
    }
    return nullptr;
}

// Parse one line (without its newline). Strict: exactly one known verb,
// exactly its fields separated by single spaces, numbers in range.
inline Parsed parse_message(std::string_view line) {
    auto fail = [](std::string why) { return Parsed{std::nullopt, std::move(why)}; };
    if (line.empty()) return fail("empty line");
    if (line.size() > MAX_LINE_BYTES) return fail("line too long");
    for (unsigned char c : line)
        if (c < 0x20 || c > 0x7e) return fail("non-printable byte in line");

    const size_t space = line.find(' ');
    const std::string_view verb = line.substr(0, space);
    const std::string_view rest = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);

    if (verb == "ERROR") {  // free text: the rest of the line
        if (rest.empty()) return fail("ERROR without a reason");
        if (rest.size() > MAX_REASON_BYTES) return fail("ERROR reason too long");
        return Parsed{Error{std::string(rest)}, {}};
    }

    const auto f = detail::split_fields(line);
    const size_t nfields = f.size() - 1;
    for (auto field : f)
        if (field.empty()) return fail("empty field (extra space?)");
    auto want = [&](size_t n) -> std::string {
        if (nfields == n) return {};
        return std::string(verb) + " takes " + std::to_string(n) + " field(s), got " + std::to_string(nfields);
    };
    auto round_at = [&](size_t i) -> std::optional<uint64_t> {
        auto r = detail::parse_int<uint64_t>(f[i]);
        if (!r || *r == 0) return std::nullopt;
        return r;
    };
    auto probe_at = [&](size_t i) -> std::optional<uint32_t> {
        auto p = detail::parse_int<uint32_t>(f[i]);
        if (!p || *p == 0 || *p > MAX_PROBES) return std::nullopt;
        return p;
    };

    if (verb == "HELLO") {
        if (nfields != 1 && nfields != 3) return fail("HELLO takes the id, or the id, a port and an epoch");
        if (auto why = id_problem(f[1])) return fail(std::string("HELLO ") + why);
        if (nfields == 1) return Parsed{Hello{std::string(f[1])}, {}};
        auto port = detail::parse_int<uint16_t>(f[2]);
        auto epoch = detail::parse_int<uint64_t>(f[3]);
        if (!port) return fail("HELLO bad port");
        if (!epoch || *epoch > MAX_EPOCH) return fail("HELLO bad epoch");
        if (*port == 0 && *epoch == 0) return fail("HELLO with port and epoch 0 is HELLO <id>");
        return Parsed{Hello{std::string(f[1]), *port, *epoch}, {}};
    }
    if (verb == "WAIT") {
        if (auto e = want(2); !e.empty()) return fail(e);
        auto joined = detail::parse_int<uint64_t>(f[1]);
        auto needed = detail::parse_int<uint64_t>(f[2]);
        if (!joined || !needed) return fail("bad count");
        return Parsed{Wait{*joined, *needed}, {}};
    }
    if (verb == "TIME?") {
        if (auto e = want(2); !e.empty()) return fail(e);
        auto r = round_at(1);
        auto p = probe_at(2);
        if (!r) return fail("bad round");
        if (!p) return fail("bad probe");
        return Parsed{TimeQuery{*r, *p}, {}};
    }
    if (verb == "CLOCK") {
        if (nfields != 3 && nfields != 4) return fail("CLOCK takes 3 or 4 fields, got " + std::to_string(nfields));
        auto r = round_at(1);
        auto p = probe_at(2);
        auto ns = detail::parse_int<int64_t>(f[3]);
        if (!r) return fail("bad round");
        if (!p) return fail("bad probe");
        if (!ns) return fail("bad clock reading");
        if (nfields == 3) return Parsed{ClockReply{*r, *p, *ns, std::nullopt}, {}};
        auto sent = detail::parse_int<int64_t>(f[4]);
        if (!sent) return fail("bad clock reading");
        return Parsed{ClockReply{*r, *p, *ns, *sent}, {}};
    }
    if (verb == "ADJUST") {
        if (nfields != 2 && nfields != 3) return fail("ADJUST takes 2 or 3 fields, got " + std::to_string(nfields));
        auto r = round_at(1);
        auto ns = detail::parse_int<int64_t>(f[2]);
        if (!r) return fail("bad round");
        if (!ns) return fail("bad correction");
        if (nfields == 2) return Parsed{Adjust{*r, *ns, std::nullopt}, {}};
        auto rate = detail::parse_int<int64_t>(f[3]);
        if (!rate) return fail("bad rate change");
        return Parsed{Adjust{*r, *ns, *rate}, {}};
    }
    if (verb == "INSTEP") {
        if (auto e = want(0); !e.empty()) return fail(e);
        return Parsed{InStep{}, {}};
    }
    if (verb == "ACK") {
        if (nfields != 1 && nfields != 2) return fail("ACK takes 1 or 2 fields, got " + std::to_string(nfields));
        auto r = round_at(1);
        if (!r) return fail("bad round");
        if (nfields == 1) return Parsed{Ack{*r, std::nullopt}, {}};
        auto rate = detail::parse_int<int64_t>(f[2]);
        if (!rate) return fail("bad rate change");
        return Parsed{Ack{*r, *rate}, {}};
    }
    if (verb == "PLAN") {
        // A 9th field without a colon is --max-slaves; successors are addresses.
        const bool has_max = nfields >= 9 && f[9].find(':') == std::string_view::npos;
        if (nfields < 8 || nfields > 8 + has_max + MAX_SUCCESSORS)
            return fail("PLAN takes 8 fields, --max-slaves if set, and up to " + std::to_string(MAX_SUCCESSORS) +
                        " successors");
        Plan m;
        auto epoch = round_at(1);
        auto round = detail::parse_int<uint64_t>(f[2]);
        auto rounds = detail::parse_int<uint64_t>(f[3]);
        auto interval = detail::parse_int<int64_t>(f[4]);
        auto probes = probe_at(5);
        auto timeout = detail::parse_int<int64_t>(f[6]);
        auto skew = detail::parse_int<int64_t>(f[7]);
        auto missed = detail::parse_int<uint32_t>(f[8]);
        if (!epoch || *epoch > MAX_EPOCH) return fail("bad epoch");
        if (!round || !rounds) return fail("bad round count");
        if (!interval || *interval < 1'000'000) return fail("bad interval");
        if (!probes) return fail("bad probe count");
        if (!timeout || *timeout < 1'000'000) return fail("bad timeout");
        if (!skew || *skew < -1) return fail("bad max skew");
        if (!missed || *missed == 0) return fail("bad max missed");
        if (has_max) {
            auto max_slaves = detail::parse_int<uint64_t>(f[9]);
            if (!max_slaves || *max_slaves == 0) return fail("bad max slaves");
            m.max_slaves = *max_slaves;
        }
        for (size_t i = 9 + has_max; i <= nfields; ++i) {
            if (auto why = address_problem(f[i])) return fail(std::string("PLAN ") + why);
            m.successors.emplace_back(f[i]);
        }
        m.epoch = *epoch, m.round = *round, m.rounds = *rounds, m.interval_ns = *interval, m.probes = *probes;
        m.timeout_ns = *timeout, m.max_skew_ns = *skew, m.max_missed = *missed;
        return Parsed{std::move(m), {}};
    }
    if (verb == "BYE") {
        if (auto e = want(0); !e.empty()) return fail(e);
        return Parsed{Bye{}, {}};
    }
    if (verb == "MASTER?" || verb == "MASTER") {
        const bool query = verb == "MASTER?";
        if (auto e = want(query ? 3 : 2); !e.empty()) return fail(e);
        auto epoch = detail::parse_int<uint64_t>(f[1]);
        auto token = detail::parse_int<uint64_t>(f[2]);
        if (!epoch || *epoch == 0 || *epoch > MAX_EPOCH) return fail("bad epoch");
        if (!token) return fail("bad token");
        if (!query) return Parsed{IAmMaster{*epoch, *token}, {}};
        auto port = detail::parse_int<uint16_t>(f[3]);
        if (!port) return fail("bad port");
        return Parsed{WhoIsMaster{*epoch, *token, *port}, {}};
    }
    if (verb == "FOLLOW") {
        if (auto e = want(1); !e.empty()) return fail(e);
        if (auto why = address_problem(f[1])) return fail(std::string("FOLLOW ") + why);
        return Parsed{Follow{std::string(f[1])}, {}};
    }
    return fail("unknown verb");
}

// Splits a byte stream into lines. Bounded: a line longer than the limit is
// an error, so a peer cannot make us buffer without end. Consumed bytes are
// dropped lazily, so the buffer never grows past limit + one read.
class LineBuffer {
public:
    enum class Status { Line, NeedMore, TooLong };

    explicit LineBuffer(size_t max_line_bytes = MAX_LINE_BYTES) : max_(max_line_bytes) {}

    void append(std::string_view bytes) {
        if (start_ > 0 && start_ >= buf_.size() / 2) {
            buf_.erase(0, start_);
            start_ = 0;
        }
        buf_.append(bytes);
    }

    // Line: `line` holds the next line without "\n" or "\r\n". NeedMore: no
    // whole line yet. TooLong: a line (whole or partial) passed the limit; the
    // stream cannot be resynchronised, the caller should close it.
    Status next_line(std::string& line) {
        const size_t nl = buf_.find('\n', start_);
        if (nl == std::string::npos) {
            // A trailing '\r' may be the start of "\r\n": it does not count yet.
            const size_t partial = pending() - (pending() > 0 && buf_.back() == '\r' ? 1 : 0);
            return partial > max_ ? Status::TooLong : Status::NeedMore;
        }
        size_t end = nl;
        if (end > start_ && buf_[end - 1] == '\r') --end;
        if (end - start_ > max_) return Status::TooLong;
        line.assign(buf_, start_, end - start_);
        start_ = nl + 1;
        return Status::Line;
    }

    size_t pending() const { return buf_.size() - start_; }

private:
    std::string buf_;
    size_t start_ = 0;
    size_t max_;
};

}  // namespace berkeley
