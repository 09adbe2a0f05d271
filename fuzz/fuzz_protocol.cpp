// fuzz_protocol.cpp - libFuzzer target over everything a peer's bytes reach
// before any socket: the bounded line framing, the strict parser (whose every
// accepted line must format back to itself), the authenticated framing (the
// handshake lines, and tagged lines that must open only unaltered, in order),
// and the arithmetic fed with the numbers a hostile peer controls. Built by `make fuzz` with clang's
// -fsanitize=fuzzer,address,undefined; any crash, sanitizer report or broken
// property is a finding.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "auth.hpp"
#include "clock.hpp"
#include "filter.hpp"
#include "simclock.hpp"
#include "protocol.hpp"

#include "property.hpp"

using namespace berkeley;

namespace {

// Bytes -> lines -> messages, in chunks sized by the input itself.
void fuzz_framing_and_parsing(const uint8_t* data, size_t size) {
    LineBuffer in;
    std::string line;
    size_t pos = 0;
    while (pos < size) {
        const size_t chunk = 1 + data[pos] % 64;
        const size_t n = std::min(chunk, size - pos);
        in.append(std::string_view(reinterpret_cast<const char*>(data + pos), n));
        pos += n;
        while (true) {
            auto status = in.next_line(line);
            if (status == LineBuffer::Status::TooLong) return;  // the caller closes here
            if (status == LineBuffer::Status::NeedMore) break;
            check(line.size() <= MAX_LINE_BYTES, "a framed line is within the limit");
            Parsed p = parse_message(line);
            check(p.message.has_value() != !p.error.empty(), "either a message or an error");
            if (p.message) check(format_message(*p.message) == line + "\n", "accepted lines are canonical");
        }
        check(in.pending() <= MAX_LINE_BYTES + 64, "the buffer stays bounded");
    }
}

// The authenticated framing: hostile lines against the handshake parsers and
// an opener (none may open: no tag is known to the input), and the input's
// own lines sealed, then opened intact (they must) or with one byte changed,
// one line dropped or two swapped (they must not).
void fuzz_authenticated_framing(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    std::vector<std::string_view> lines;
    for (size_t pos = 0; pos <= text.size() && lines.size() < 64;) {
        const size_t end = std::min(text.find('\n', pos), text.size());
        lines.push_back(text.substr(pos, std::min<size_t>(end - pos, MAX_LINE_BYTES)));
        pos = end + 1;
    }
    const HmacSha256 key(std::string_view("fuzzing group key"));
    Nonce ns{}, nm{};
    nm[0] = 1;
    Session master = session_for(Role::Master, key, ns, nm), slave = session_for(Role::Slave, key, ns, nm);
    for (std::string_view line : lines) {
        if (auto n = parse_challenge(line)) check(format_challenge(*n) == std::string(line) + "\n", "AUTH is canonical");
        if (auto a = parse_answer(line)) check(format_answer(*a) == std::string(line) + "\n", "AUTH answer is canonical");
        if (auto p = parse_proof(line)) check(format_proof(*p) == std::string(line) + "\n", "PROOF is canonical");
        check(!slave.in.open(line), "a line nobody sealed does not open");
    }
    std::vector<std::string> sealed;
    for (std::string_view line : lines) sealed.push_back(master.out.seal(line));
    const size_t victim = size > 0 ? data[0] % sealed.size() : 0;
    const size_t where = size > 1 ? data[1] % (sealed[victim].size() - 1) : 0;  // not the '\n'
    for (size_t i = 0; i < sealed.size(); ++i) {
        std::string line = sealed[i].substr(0, sealed[i].size() - 1);
        if (i == victim) {
            std::string altered = line;
            altered[where] = static_cast<char>(altered[where] ^ (size > 2 ? (data[2] | 1) : 1));
            check(!slave.in.open(altered), "an altered line does not open");
            if (i + 1 < sealed.size())
                check(!slave.in.open(sealed[i + 1].substr(0, sealed[i + 1].size() - 1)), "the next line does not open first");
        }
        const auto opened = slave.in.open(line);
        check(opened && *opened == lines[i], "a sealed line opens, as it was");
        check(!slave.in.open(line), "a line does not open twice");
    }
}

// Probes and offsets as a hostile slave could make them.
void fuzz_arithmetic(const uint8_t* data, size_t size) {
    std::vector<int64_t> v(size / 8);
    if (!v.empty()) std::memcpy(v.data(), data, v.size() * 8);
    std::vector<int64_t> offsets{0};
    for (size_t i = 0; i + 2 < v.size(); i += 3) {
        if (auto e = estimate_offset(Probe{v[i], v[i + 1], v[i + 2]})) {
            check(e->delay_ns >= 0, "the delay is not negative");
            check(e->offset_ns <= MAX_OFFSET_NS && e->offset_ns >= -MAX_OFFSET_NS, "offsets are bounded");
            offsets.push_back(e->offset_ns);
        }
    }
    const int64_t skew = v.empty() ? 0 : (v[0] < 0 ? -(v[0] + 1) : v[0]);
    const Agreement a = fault_tolerant_average(offsets, skew);
    check(a.included_count >= 1, "at least one reading counts");
    for (int64_t off : offsets) {
        const int64_t c = correction_for(a.average_ns, off);
        check(off + c == a.average_ns, "every correction reaches the average");
        const SimClock clock = make_clock(1'700'000'000'000'000'000, off, v.empty() ? 0 : v.back() % MAX_RATE_PPB);
        (void)step_clock(clock, 1'700'000'001'000'000'000, c);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    switch (data[0] % 3) {
        case 0: fuzz_framing_and_parsing(data + 1, size - 1); break;
        case 1: fuzz_arithmetic(data + 1, size - 1); break;
        default: fuzz_authenticated_framing(data + 1, size - 1); break;
    }
    return 0;
}
