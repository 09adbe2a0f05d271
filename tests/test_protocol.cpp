// test_protocol.cpp - the wire format of protocol.hpp: exact line formats,
// round trips at the boundaries, strict rejections, and LineBuffer framing fed
// one byte at a time, in bulk, oversized, and with deterministic garbage.
// Every table row is CAPTUREd so a failure names the line.
#include <doctest/doctest.h>

#include "protocol.hpp"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

using namespace berkeley;

namespace {

constexpr int64_t I64_MIN = std::numeric_limits<int64_t>::min();
constexpr int64_t I64_MAX = std::numeric_limits<int64_t>::max();
constexpr uint64_t U64_MAX = std::numeric_limits<uint64_t>::max();

// Feed `bytes` to `lb` and collect every whole line; stops at TooLong.
LineBuffer::Status drain(LineBuffer& lb, std::vector<std::string>& lines) {
    std::string line;
    while (true) {
        const auto st = lb.next_line(line);
        if (st != LineBuffer::Status::Line) return st;
        lines.push_back(line);
    }
}

// xorshift64*: a fixed, portable pseudo-random sequence.
struct Rng {
    uint64_t state;
    uint64_t next() {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return state * 0x2545F4914F6CDD1DULL;
    }
    size_t below(size_t n) { return static_cast<size_t>(next() % n); }
};

}  // namespace

// ---------------------------------------------------------------------------
TEST_CASE("format_message: exact line formats") {
    struct Row {
        Message m;
        const char* want;
    };
    const std::vector<Row> rows = {
        {Hello{"slave-1"}, "HELLO slave-1\n"},
        {TimeQuery{3, 2}, "TIME? 3 2\n"},
        {ClockReply{3, 2, 1'764'460'800'123'456'789, std::nullopt}, "CLOCK 3 2 1764460800123456789\n"},
        {ClockReply{1, 1, -5, std::nullopt}, "CLOCK 1 1 -5\n"},
        {Adjust{7, -1'500'000, std::nullopt}, "ADJUST 7 -1500000\n"},
        {Adjust{7, 0, std::nullopt}, "ADJUST 7 0\n"},
        {Ack{7, std::nullopt}, "ACK 7\n"},
        {Ack{7, -2'500}, "ACK 7 -2500\n"},
        {Ack{7, 0}, "ACK 7 0\n"},
        {Bye{}, "BYE\n"},
        {Error{"round 3 timed out"}, "ERROR round 3 timed out\n"},
        {TimeQuery{U64_MAX, MAX_PROBES}, "TIME? 18446744073709551615 100\n"},
        {ClockReply{U64_MAX, MAX_PROBES, I64_MIN, std::nullopt}, "CLOCK 18446744073709551615 100 -9223372036854775808\n"},
        {Adjust{1, I64_MAX, std::nullopt}, "ADJUST 1 9223372036854775807\n"},
    };
    for (const Row& r : rows) {
        const std::string want = r.want;
        CAPTURE(want);
        CHECK(format_message(r.m) == want);
    }
    CHECK(std::string(verb_name(TimeQuery{1, 1})) == "TIME?");
    CHECK(std::string(verb_name(Adjust{1, 0, std::nullopt})) == "ADJUST");
}

TEST_CASE("format_message / parse_message round trip at the boundaries") {
    std::vector<Message> messages = {
        Hello{"a"},
        Hello{std::string(MAX_ID_BYTES, 'z')},
        Hello{"Az09-_.:"},
        Bye{},
        Error{"x"},
        Error{std::string(MAX_REASON_BYTES, 'r')},
        Error{"  spaces, punctuation! and ~ symbols {} "},
    };
    const uint64_t rounds[] = {1, 2, 9, 10, 4'294'967'296ULL, U64_MAX - 1, U64_MAX};
    const uint32_t probes[] = {1, 2, 10, 99, MAX_PROBES};
    const int64_t values[] = {I64_MIN, I64_MIN + 1, -1'000'000'000, -1, 0, 1, 1'000'000'000, I64_MAX - 1, I64_MAX};
    for (uint64_t r : rounds) {
        messages.push_back(Ack{r, std::nullopt});
        messages.push_back(Ack{r, -1'000});
        for (int64_t v : values) messages.push_back(Adjust{r, v, std::nullopt});
        for (uint32_t p : probes) {
            messages.push_back(TimeQuery{r, p});
            for (int64_t v : values) messages.push_back(ClockReply{r, p, v, std::nullopt});
        }
    }
    for (const Message& m : messages) {
        const std::string line = format_message(m);
        CAPTURE(line);
        REQUIRE(!line.empty());
        CHECK(line.back() == '\n');
        CHECK(line.size() <= MAX_LINE_BYTES + 1);
        const Parsed p = parse_message(std::string_view(line).substr(0, line.size() - 1));
        CHECK(p.error.empty());
        REQUIRE(p.message.has_value());
        CHECK(*p.message == m);
        CHECK(format_message(*p.message) == line);
    }
}

TEST_CASE("parse_message: fields of accepted lines") {
    Parsed p = parse_message("CLOCK 12 3 -42");
    REQUIRE(p.message.has_value());
    CHECK(*p.message == Message{ClockReply{12, 3, -42, std::nullopt}});

    p = parse_message("HELLO node-7.lab:9000");
    REQUIRE(p.message.has_value());
    CHECK(std::get<Hello>(*p.message).id == "node-7.lab:9000");

    p = parse_message("ERROR too many  spaces ok");
    REQUIRE(p.message.has_value());
    CHECK(std::get<Error>(*p.message).reason == "too many  spaces ok");

    p = parse_message("ADJUST 1 0");
    REQUIRE(p.message.has_value());
    CHECK(std::get<Adjust>(*p.message).correction_ns == 0);

    p = parse_message("BYE");
    REQUIRE(p.message.has_value());
    CHECK(std::holds_alternative<Bye>(*p.message));
}

// ---------------------------------------------------------------------------
TEST_CASE("parse_message: rejections carry a reason") {
    const std::string long_id(MAX_ID_BYTES + 1, 'a');
    const std::vector<std::string> bad = {
        "",
        // verbs
        "HELO x", "TIME 1 1", "TIME?? 1 1", "CLOCKS 1 1 1", "bye", "Bye", "hello x", "time? 1 1", "ack 1",
        "ERROR", "ERROR ", "error x", "BYEBYE",
        // missing and extra fields
        "HELLO", "TIME?", "TIME? 1", "CLOCK", "CLOCK 1", "CLOCK 1 1", "ADJUST", "ADJUST 1", "ACK",
        "HELLO a b c", "TIME? 1 1 1", "CLOCK 1 1 1 1 1", "ADJUST 1 1 1 1", "ADJUST 1 1 x", "ADJUST 1 1 -0", "INSTEP 1", "ACK 1 1 1", "ACK 1 x", "ACK 1 -0", "BYE now", "BYE 1",
        // spacing
        "TIME?  1 1", "TIME? 1  1", "CLOCK 1 1  5", "HELLO  x", "ACK  1", " BYE", "BYE ", " ACK 1", "ACK 1 ",
        "HELLO x ", " HELLO x", "TIME? 1 1 ", " ", "  ", "HELLO ",
        "ACK\t1", "HELLO\tx", "BYE\t", "\tBYE",
        // round 0, probe 0, probe MAX_PROBES + 1
        "TIME? 0 1", "CLOCK 0 1 5", "ADJUST 0 5", "ACK 0",
        "TIME? 1 0", "CLOCK 1 0 5", "TIME? 1 101", "CLOCK 1 101 5",
        // leading zeros, signs
        "ACK 01", "ACK 00", "TIME? 01 1", "TIME? 1 01", "CLOCK 1 1 05", "CLOCK 1 1 -05", "CLOCK 1 1 00",
        "ADJUST 1 007", "ADJUST 1 -00", "ACK +1", "TIME? +1 1", "TIME? 1 +1", "CLOCK 1 1 +5", "ADJUST 1 +0",
        "ACK -1", "ACK -0", "TIME? -1 1", "TIME? 1 -1", "CLOCK -1 1 5", "CLOCK 1 -1 5", "ADJUST -1 5",
        "CLOCK 1 1 -", "ADJUST 1 -", "CLOCK 1 1 --5", "ACK -",
        // overflow by one
        "ACK 18446744073709551616", "TIME? 18446744073709551616 1", "ADJUST 18446744073709551616 0",
        "TIME? 1 4294967296", "TIME? 1 4294967295", "CLOCK 1 1 9223372036854775808",
        "CLOCK 1 1 -9223372036854775809", "ADJUST 1 9223372036854775808", "ADJUST 1 -9223372036854775809",
        "ACK 99999999999999999999999999",
        // non-digits
        "ACK 1a", "ACK a1", "ACK 1.0", "ACK 1e3", "ACK 0x10", "CLOCK 1 1 5ns", "ADJUST 1 1,5", "TIME? 1 1.",
        "CLOCK 1 1 1_000",
        // HELLO id
        "HELLO " + long_id, "HELLO a/b", "HELLO a,b", "HELLO a?", "HELLO a=b", "HELLO caf\xc3\xa9", "HELLO *",
        "HELLO \"x\"",
        // ERROR reason
        "ERROR " + std::string(MAX_REASON_BYTES + 1, 'r'),
        // line too long
        "HELLO " + std::string(MAX_LINE_BYTES, 'a'),
        "ACK 1" + std::string(MAX_LINE_BYTES, ' '),
        "ERROR " + std::string(MAX_LINE_BYTES, 'r'),
        std::string(MAX_LINE_BYTES + 1, 'A'),
        // control and high bytes
        std::string("BYE\0", 4), std::string("\0BYE", 4), std::string("ACK \0" "1", 6), "BYE\r", "BYE\n",
        "ACK 1\x7f", "\x7f" "BYE", "HELLO a\x80", "ERROR bad\xff", "ERROR \x01", "ERROR a\tb",
    };
    for (const std::string& line : bad) {
        CAPTURE(line);
        const Parsed p = parse_message(line);
        CHECK_FALSE(p.message.has_value());
        CHECK_FALSE(p.error.empty());
    }
}

TEST_CASE("parse_message: limits are exact") {
    // HELLO id of exactly MAX_ID_BYTES is fine, one more is not.
    CHECK(parse_message("HELLO " + std::string(MAX_ID_BYTES, 'a')).message.has_value());
    CHECK_FALSE(parse_message("HELLO " + std::string(MAX_ID_BYTES + 1, 'a')).message.has_value());
    // ERROR reason of exactly MAX_REASON_BYTES is fine, one more is not.
    CHECK(parse_message("ERROR " + std::string(MAX_REASON_BYTES, 'r')).message.has_value());
    CHECK_FALSE(parse_message("ERROR " + std::string(MAX_REASON_BYTES + 1, 'r')).message.has_value());
    // Probes 1 and MAX_PROBES are fine, 0 and MAX_PROBES + 1 are not.
    CHECK(parse_message("TIME? 1 1").message.has_value());
    CHECK(parse_message("TIME? 1 " + std::to_string(MAX_PROBES)).message.has_value());
    CHECK_FALSE(parse_message("TIME? 1 0").message.has_value());
    CHECK_FALSE(parse_message("TIME? 1 " + std::to_string(MAX_PROBES + 1)).message.has_value());
    // Integer extremes are accepted exactly.
    CHECK(parse_message("ACK 18446744073709551615").message.has_value());
    CHECK(parse_message("CLOCK 1 1 -9223372036854775808").message.has_value());
    CHECK(parse_message("CLOCK 1 1 9223372036854775807").message.has_value());
    // Error texts name the problem.
    CHECK(parse_message("").error == "empty line");
    CHECK(parse_message("NOPE").error == "unknown verb");
    CHECK(parse_message("ERROR").error == "ERROR without a reason");
    CHECK(parse_message("TIME? 0 1").error == "bad round");
    CHECK(parse_message("TIME? 1 0").error == "bad probe");
    CHECK(parse_message("HELLO " + std::string(MAX_ID_BYTES + 1, 'a')).error == "HELLO id too long");
    CHECK(parse_message(std::string(MAX_LINE_BYTES + 1, 'A')).error == "line too long");
}

TEST_CASE("parse_message: a bad byte anywhere in a valid line rejects it") {
    const std::string valid[] = {"CLOCK 12 3 -42", "HELLO node-1", "ERROR it broke", "BYE", "ADJUST 1 5"};
    const unsigned char bad_bytes[] = {0x00, 0x01, 0x09, 0x0a, 0x0d, 0x1f, 0x7f, 0x80, 0xc3, 0xff};
    for (const std::string& v : valid) {
        REQUIRE(parse_message(v).message.has_value());
        for (unsigned char b : bad_bytes) {
            for (size_t pos = 0; pos <= v.size(); ++pos) {
                std::string replaced = v;
                if (pos < v.size()) replaced[pos] = static_cast<char>(b);
                std::string inserted = v;
                inserted.insert(pos, 1, static_cast<char>(b));
                CAPTURE(v);
                CAPTURE(static_cast<int>(b));
                CAPTURE(pos);
                if (pos < v.size()) CHECK_FALSE(parse_message(replaced).message.has_value());
                CHECK_FALSE(parse_message(inserted).message.has_value());
            }
        }
    }
}

TEST_CASE("parse_message: accepted lines are canonical ('-0' included)") {
    // A signed field of "-0" is zero written non-canonically, like "00" or
    // "+0" which are refused. Accepting it breaks format(parse(line)) == line.
    for (const char* text : {"CLOCK 1 1 -0", "ADJUST 1 -0"}) {
        const std::string line = text;
        CAPTURE(line);
        const Parsed p = parse_message(line);
        if (p.message) CHECK(format_message(*p.message) == line + "\n");
        CHECK_FALSE(p.message.has_value());
    }
}

// ---------------------------------------------------------------------------
TEST_CASE("LineBuffer: framing") {
    using S = LineBuffer::Status;
    const std::string stream = "HELLO a\nTIME? 1 2\r\n\nBYE\nERROR x\ry\n\r\nACK 5\r\r\n";
    const std::vector<std::string> want = {"HELLO a", "TIME? 1 2", "", "BYE", "ERROR x\ry", "", "ACK 5\r"};

    SUBCASE("fed one byte at a time") {
        LineBuffer lb;
        std::vector<std::string> lines;
        for (char c : stream) {
            lb.append(std::string_view(&c, 1));
            CHECK(drain(lb, lines) == S::NeedMore);
        }
        CHECK(lines == want);
        CHECK(lb.pending() == 0);
    }

    SUBCASE("fed all at once") {
        LineBuffer lb;
        std::vector<std::string> lines;
        lb.append(stream);
        CHECK(lb.pending() == stream.size());
        CHECK(drain(lb, lines) == S::NeedMore);
        CHECK(lines == want);
        CHECK(lb.pending() == 0);
    }

    SUBCASE("fed in every chunk size") {
        for (size_t chunk = 1; chunk <= stream.size(); ++chunk) {
            CAPTURE(chunk);
            LineBuffer lb;
            std::vector<std::string> lines;
            for (size_t i = 0; i < stream.size(); i += chunk) {
                lb.append(std::string_view(stream).substr(i, chunk));
                CHECK(drain(lb, lines) == S::NeedMore);
            }
            CHECK(lines == want);
        }
    }

    SUBCASE("a partial line waits, pending() counts unconsumed bytes") {
        LineBuffer lb;
        std::string line = "untouched";
        CHECK(lb.pending() == 0);
        CHECK(lb.next_line(line) == S::NeedMore);
        CHECK(line == "untouched");
        lb.append("ACK 1\nAC");
        CHECK(lb.pending() == 8);
        REQUIRE(lb.next_line(line) == S::Line);
        CHECK(line == "ACK 1");
        CHECK(lb.pending() == 2);
        CHECK(lb.next_line(line) == S::NeedMore);
        CHECK(lb.pending() == 2);
        lb.append("K 2");
        CHECK(lb.pending() == 5);
        CHECK(lb.next_line(line) == S::NeedMore);
        lb.append("\r");
        CHECK(lb.next_line(line) == S::NeedMore);
        lb.append("\n");
        REQUIRE(lb.next_line(line) == S::Line);
        CHECK(line == "ACK 2");
        CHECK(lb.pending() == 0);
    }
}

TEST_CASE("LineBuffer: length limit") {
    using S = LineBuffer::Status;
    const std::string max_line(MAX_LINE_BYTES, 'x');
    std::string line;

    SUBCASE("exactly MAX_LINE_BYTES is fine") {
        LineBuffer lb;
        lb.append(max_line);
        CHECK(lb.next_line(line) == S::NeedMore);  // partial, at the limit
        lb.append("\n");
        REQUIRE(lb.next_line(line) == S::Line);
        CHECK(line == max_line);
    }
    SUBCASE("exactly MAX_LINE_BYTES with \\r\\n is fine") {
        LineBuffer lb;
        lb.append(max_line + "\r\n");
        REQUIRE(lb.next_line(line) == S::Line);
        CHECK(line == max_line);
    }
    SUBCASE("exactly MAX_LINE_BYTES with \\r\\n, fed one byte at a time, is fine") {
        // Same bytes as above: the verdict must not depend on how they arrive.
        LineBuffer lb;
        const std::string stream = max_line + "\r\n";
        std::vector<std::string> lines;
        S last = S::NeedMore;
        for (char c : stream) {
            lb.append(std::string_view(&c, 1));
            last = drain(lb, lines);
            if (last == S::TooLong) break;
        }
        CHECK(last == S::NeedMore);
        REQUIRE(lines.size() == 1);
        CHECK(lines[0] == max_line);
    }
    SUBCASE("MAX_LINE_BYTES + 1 as a complete line is TooLong") {
        LineBuffer lb;
        lb.append(max_line + "y\n");
        CHECK(lb.next_line(line) == S::TooLong);
        CHECK(lb.next_line(line) == S::TooLong);  // the stream cannot resynchronise
    }
    SUBCASE("MAX_LINE_BYTES + 1 with \\r\\n is TooLong") {
        LineBuffer lb;
        lb.append(max_line + "y\r\n");
        CHECK(lb.next_line(line) == S::TooLong);
    }
    SUBCASE("MAX_LINE_BYTES + 1 as a partial line is TooLong") {
        LineBuffer lb;
        lb.append(max_line + "y");
        CHECK(lb.next_line(line) == S::TooLong);
    }
    SUBCASE("a short line before an overlong one still comes out") {
        LineBuffer lb;
        lb.append("BYE\n" + max_line + "yy");
        REQUIRE(lb.next_line(line) == S::Line);
        CHECK(line == "BYE");
        CHECK(lb.next_line(line) == S::TooLong);
    }
    SUBCASE("1 MB without a newline is TooLong, detected as soon as it passes the limit") {
        LineBuffer lb;
        const std::string chunk(4096, 'q');
        S st = S::NeedMore;
        size_t fed = 0;
        while (fed < (1u << 20) && st == S::NeedMore) {
            lb.append(chunk);
            fed += chunk.size();
            st = lb.next_line(line);
        }
        CHECK(st == S::TooLong);
        CHECK(fed == chunk.size());  // the first read already passed the limit

        LineBuffer whole;
        whole.append(std::string(1u << 20, 'q'));
        CHECK(whole.next_line(line) == S::TooLong);
    }
    SUBCASE("a custom limit") {
        LineBuffer lb(4);
        lb.append("abcd\nabcde\n");
        REQUIRE(lb.next_line(line) == S::Line);
        CHECK(line == "abcd");
        CHECK(lb.next_line(line) == S::TooLong);
    }
}

TEST_CASE("LineBuffer: many short lines keep the buffer bounded") {
    LineBuffer lb;
    std::string stream;
    for (int i = 1; i <= 100'000; ++i) stream += "ACK " + std::to_string(i) + "\n";
    size_t max_pending = 0;
    int count = 0;
    bool in_order = true;
    std::string line;
    for (size_t i = 0; i < stream.size(); i += 7) {
        lb.append(std::string_view(stream).substr(i, 7));
        max_pending = std::max(max_pending, lb.pending());
        while (lb.next_line(line) == LineBuffer::Status::Line) {
            ++count;
            if (line != "ACK " + std::to_string(count)) in_order = false;
        }
        max_pending = std::max(max_pending, lb.pending());
    }
    CHECK(count == 100'000);
    CHECK(in_order);
    CHECK(max_pending <= 7 + 11);  // one read plus at most one partial line
    CHECK(lb.pending() == 0);

    // The same with a read that carries many lines at a time.
    LineBuffer bulk;
    count = 0;
    max_pending = 0;
    for (size_t i = 0; i < stream.size(); i += 4096) {
        bulk.append(std::string_view(stream).substr(i, 4096));
        while (bulk.next_line(line) == LineBuffer::Status::Line) ++count;
        max_pending = std::max(max_pending, bulk.pending());
    }
    CHECK(count == 100'000);
    CHECK(max_pending <= 11);
}

// ---------------------------------------------------------------------------
TEST_CASE("garbage: LineBuffer + parse_message never crash, accepted lines are canonical") {
    // Half the inputs are raw random bytes; half are built from protocol-ish
    // tokens so that many parse, including the corner cases of numbers.
    struct VerbSpec {
        const char* name;
        size_t fields;
    };
    static const VerbSpec verbs[] = {{"HELLO", 1}, {"WAIT", 2},  {"TIME?", 2}, {"CLOCK", 3},  {"ADJUST", 2},
                                     {"ACK", 1},   {"BYE", 0},   {"ERROR", 3}, {"hello", 1},  {"TIME", 2},
                                     {"INSTEP", 0}, {"HELLO", 3}, {"PLAN", 8},  {"PLAN", 9}};
    static const char* const fields[] = {
        "0", "1", "2", "7", "42", "99", "100", "101", "00", "01", "-0", "-1", "+1", "-", "",
        "18446744073709551615", "18446744073709551616", "9223372036854775807", "9223372036854775808",
        "-9223372036854775808", "-9223372036854775809", "4294967296", "1764460800123456789", "-500000",
        "node-1", "a:b.c_d", "x/y", "1e3", "ACK", "1000000", "127.0.0.1:8080", "[::1]:0", "1.2.3.4"};
    Rng rng{0xC0FFEE'1234'5678ULL};
    size_t lines_seen = 0, accepted = 0, too_long = 0, violations = 0;
    std::string first_violation;
    for (int input = 0; input < 10'000; ++input) {
        std::string bytes;
        if (input % 2 == 0) {
            // Raw bytes: mostly printable, newlines and any byte mixed in;
            // every 25th input has no newline and may run past the limit.
            const bool long_run = input % 50 == 0;
            const size_t len = rng.below(long_run ? 1200 : 40);
            for (size_t i = 0; i < len; ++i) {
                const size_t pick = rng.below(10);
                if (pick < 6 || long_run) bytes += static_cast<char>(0x20 + rng.below(0x5f));
                else if (pick < 8) bytes += '\n';
                else bytes += static_cast<char>(rng.below(256));
            }
        } else {
            // Protocol-shaped lines: a verb, usually its own number of fields.
            const size_t nlines = 1 + rng.below(4);
            for (size_t l = 0; l < nlines; ++l) {
                const VerbSpec& v = verbs[rng.below(std::size(verbs))];
                bytes += v.name;
                const size_t nfields = rng.below(4) == 0 ? rng.below(5) : v.fields;
                for (size_t f = 0; f < nfields; ++f) {
                    const size_t sep = rng.below(20);
                    if (sep == 0) bytes += "  ";
                    else if (sep == 1) bytes += '\t';
                    else if (sep == 2) bytes += '\0';
                    else bytes += ' ';
                    bytes += fields[rng.below(std::size(fields))];
                }
                bytes += rng.below(4) == 0 ? "\r\n" : "\n";
            }
        }
        LineBuffer lb;
        std::string line;
        size_t i = 0;
        bool closed = false;
        while (i < bytes.size() && !closed) {
            const size_t chunk = 1 + rng.below(16);
            lb.append(std::string_view(bytes).substr(i, chunk));
            i += chunk;
            while (true) {
                const auto st = lb.next_line(line);
                if (st == LineBuffer::Status::NeedMore) break;
                if (st == LineBuffer::Status::TooLong) {
                    ++too_long;
                    closed = true;
                    break;
                }
                ++lines_seen;
                if (line.size() > MAX_LINE_BYTES) ++violations;  // framing let through a long line
                const Parsed p = parse_message(line);
                if (p.message.has_value() == !p.error.empty()) ++violations;  // exactly one of the two
                if (!p.message) continue;
                ++accepted;
                if (format_message(*p.message) != line + "\n") {
                    if (first_violation.empty()) first_violation = line;
                    ++violations;
                }
            }
        }
    }
    CAPTURE(first_violation);
    CAPTURE(violations);
    CHECK(violations == 0);
    CHECK(lines_seen > 10'000);
    CHECK(accepted > 3'000);
    CHECK(too_long > 0);
}

// ---------------------------------------------------------------------------
TEST_CASE("HELLO with the port a slave would serve on and the epoch it follows") {
    CHECK(format_message(Hello{"s1", 41234, 2}) == "HELLO s1 41234 2\n");
    CHECK(format_message(Hello{"s1", 0, 3}) == "HELLO s1 0 3\n");
    CHECK(format_message(Hello{"s1", 0, 0}) == "HELLO s1\n");
    auto p = parse_message("HELLO s1 41234 2");
    REQUIRE(p.message);
    CHECK(std::get<Hello>(*p.message) == Hello{"s1", 41234, 2});
    for (const char* bad : {"HELLO s1 41234", "HELLO s1 0 0", "HELLO s1 65536 1", "HELLO s1 -1 1", "HELLO s1 80 x",
                            "HELLO s1 80 1 1", "HELLO s1 080 1"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_message(bad).message);
    }
}

TEST_CASE("MASTER?, MASTER and FOLLOW: masters find each other, and the lower sends its slaves on") {
    CHECK(format_message(WhoIsMaster{2, 77, 9000}) == "MASTER? 2 77 9000\n");
    CHECK(format_message(IAmMaster{3, 5}) == "MASTER 3 5\n");
    CHECK(format_message(Follow{"10.0.0.2:8080"}) == "FOLLOW 10.0.0.2:8080\n");
    CHECK(std::get<WhoIsMaster>(*parse_message("MASTER? 2 77 0").message) == WhoIsMaster{2, 77, 0});
    CHECK(std::get<IAmMaster>(*parse_message("MASTER 3 5").message) == IAmMaster{3, 5});
    CHECK(std::get<Follow>(*parse_message("FOLLOW [::1]:8080").message) == Follow{"[::1]:8080"});
    for (const char* bad : {"MASTER? 0 1 2", "MASTER? 1 1", "MASTER? 1 1 65536", "MASTER 1", "MASTER 1 -1",
                            "MASTER 9007199254740993 1", "FOLLOW", "FOLLOW nowhere", "FOLLOW 1.2.3.4:0"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_message(bad).message);
    }
}

TEST_CASE("PLAN: the epoch, the settings to keep, and up to three successors") {
    const Plan plan{2, 7, 0, 1'000'000'000, 4, 500'000'000, -1, 3, 0, {"127.0.0.1:41234", "[::1]:8080"}};
    const std::string line = "PLAN 2 7 0 1000000000 4 500000000 -1 3 127.0.0.1:41234 [::1]:8080\n";
    CHECK(format_message(plan) == line);
    auto p = parse_message(line.substr(0, line.size() - 1));
    REQUIRE(p.message);
    CHECK(std::get<Plan>(*p.message) == plan);
    CHECK(parse_message("PLAN 1 0 5 1000000 1 1000000 0 1").message.has_value());  // no successors: no failover
    // --max-slaves, when the operator set it: a number where an address would be.
    const Plan capped{2, 7, 0, 1'000'000'000, 4, 500'000'000, -1, 3, 500, {"127.0.0.1:41234"}};
    CHECK(format_message(capped) == "PLAN 2 7 0 1000000000 4 500000000 -1 3 500 127.0.0.1:41234\n");
    auto c = parse_message("PLAN 2 7 0 1000000000 4 500000000 -1 3 500 127.0.0.1:41234");
    REQUIRE(c.message);
    CHECK(std::get<Plan>(*c.message) == capped);
    CHECK(parse_message("PLAN 1 0 5 1000000000 4 500000000 -1 3 500 1.2.3.4:1 1.2.3.4:2 1.2.3.4:3").message);
    for (const char* bad : {"PLAN 0 0 5 1000000000 4 500000000 -1 3", "PLAN 1 0 5 999999 4 500000000 -1 3",
                            "PLAN 1 0 5 1000000000 0 500000000 -1 3", "PLAN 1 0 5 1000000000 4 0 -1 3",
                            "PLAN 1 0 5 1000000000 4 500000000 -2 3", "PLAN 1 0 5 1000000000 4 500000000 -1 0",
                            "PLAN 1 0 5 1000000000 4 500000000 -1", "PLAN 1 0 5 1000000000 4 500000000 -1 3 a:1",
                            "PLAN 1 0 5 1000000000 4 500000000 -1 3 1.2.3.4", "PLAN 1 0 5 1000000000 4 500000000 -1 3 1.2.3.4:0",
                            "PLAN 1 0 5 1000000000 4 500000000 -1 3 1.2.3.4:1 1.2.3.4:2 1.2.3.4:3 1.2.3.4:4",
                            "PLAN 1 0 5 1000000000 4 500000000 -1 3 0 1.2.3.4:1", "PLAN 1 0 5 1000000000 4 500000000 -1 3 5 6",
                            "PLAN 1 0 5 1000000000 4 500000000 -1 3 500 1.2.3.4:1 1.2.3.4:2 1.2.3.4:3 1.2.3.4:4"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_message(bad).message);
    }
}

TEST_CASE("HELLO takes exactly one field: a secret never travels in a line") {
    CHECK(format_message(Hello{"s1"}) == "HELLO s1\n");
    auto p = parse_message("HELLO s1");
    REQUIRE(p.message);
    CHECK(std::get<Hello>(*p.message).id == "s1");
    auto two = parse_message("HELLO s1 k3y/with+punct");
    CHECK_FALSE(two.message);
    CHECK(two.error == "HELLO takes the id, or the id, a port and an epoch");
    CHECK(two.error.find("k3y") == std::string::npos);  // the error never repeats what came after the id
}

TEST_CASE("CLOCK with two readings: arrival and departure") {
    CHECK(format_message(ClockReply{3, 2, -5, 7}) == "CLOCK 3 2 -5 7\n");
    auto p = parse_message("CLOCK 3 2 1764460800000000000 1764460800000030000");
    REQUIRE(p.message);
    const auto& two = std::get<ClockReply>(*p.message);
    CHECK(two.t2_ns == 1764460800000000000);
    REQUIRE(two.t3_ns.has_value());
    CHECK(*two.t3_ns == 1764460800000030000);
    // One reading: no second value, and the two forms stay distinct.
    auto one = parse_message("CLOCK 3 2 5");
    REQUIRE(one.message);
    CHECK_FALSE(std::get<ClockReply>(*one.message).t3_ns.has_value());
    CHECK(format_message(*parse_message("CLOCK 3 2 5 5").message) == "CLOCK 3 2 5 5\n");
    for (const char* bad : {"CLOCK 1 1 5 x", "CLOCK 1 1 5 -0", "CLOCK 1 1 5 9223372036854775808", "CLOCK 1 1 5  6",
                            "CLOCK 1 1 5 6 7"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_message(bad).message);
    }
}

TEST_CASE("ADJUST with a rate change, and INSTEP") {
    CHECK(format_message(Adjust{3, -5, 250}) == "ADJUST 3 -5 250\n");
    CHECK(format_message(Adjust{3, -5, std::nullopt}) == "ADJUST 3 -5\n");
    auto p = parse_message("ADJUST 3 -5 -250");
    REQUIRE(p.message);
    CHECK(*p.message == Message{Adjust{3, -5, -250}});
    CHECK_FALSE(std::get<Adjust>(*parse_message("ADJUST 3 -5").message).rate_change_ppb.has_value());
    CHECK(parse_message("ADJUST 1 0 9223372036854775807").message.has_value());
    CHECK(parse_message("ADJUST 1 0 x").error == "bad rate change");
    CHECK(format_message(InStep{}) == "INSTEP\n");
    CHECK(*parse_message("INSTEP").message == Message{InStep{}});
    CHECK(std::string(verb_name(InStep{})) == "INSTEP");
}

TEST_CASE("WAIT: joined and needed, both unsigned") {
    CHECK(format_message(Wait{2, 3}) == "WAIT 2 3\n");
    auto p = parse_message("WAIT 18446744073709551615 0");
    REQUIRE(p.message);
    CHECK(std::get<Wait>(*p.message).joined == UINT64_MAX);
    CHECK(std::get<Wait>(*p.message).needed == 0);
    for (const char* bad : {"WAIT", "WAIT 1", "WAIT 1 2 3", "WAIT -1 2", "WAIT 1 -0", "WAIT 01 2", "WAIT 1 x",
                            "WAIT 18446744073709551616 1", "wait 1 2"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_message(bad).message);
    }
}
