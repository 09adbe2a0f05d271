// fuzz_protocol.cpp - libFuzzer target over everything a peer's bytes reach
// before any socket: the bounded line framing, the strict parser (whose every
// accepted line must format back to itself), and the arithmetic fed with the
// numbers a hostile peer controls. Built by `make fuzz` with clang's
// -fsanitize=fuzzer,address,undefined; any crash, sanitizer report or broken
// property is a finding.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "clock.hpp"
#include "protocol.hpp"

using namespace berkeley;

namespace {

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "property broken: %s\n", what);
        std::abort();
    }
}

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
    if (data[0] & 1) fuzz_framing_and_parsing(data + 1, size - 1);
    else fuzz_arithmetic(data + 1, size - 1);
    return 0;
}
