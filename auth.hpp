// auth.hpp - the shared secret at work: a mutual challenge-response that
// proves both ends know it without sending it, a key per connection and
// direction derived from it, and a tag on every later line so that no line can
// be forged, replayed, reordered, dropped or moved to another connection.
// Pure (nonces come in from os.hpp's random_bytes): tests/test_auth.cpp and
// the fuzz target cover it. It authenticates; it does not encrypt.
//
//   slave                                              master
//     | AUTH <slave-nonce>                                |   the slave challenges first
//     |-------------------------------------------------->|
//     |                 AUTH <master-nonce> <master-proof>|   the master proves itself
//     |<--------------------------------------------------|   and challenges back
//     | PROOF <slave-proof>                               |   only now does the slave
//     | HELLO <id> <tag>  (every later line is tagged)    |   prove itself, say who it is
//     |-------------------------------------------------->|   or accept anything
//
// With K the key stretched from the passphrase and Ns, Nm the two nonces:
//   master-proof = HMAC(K, "master proof" || Ns || Nm)
//   slave-proof  = HMAC(K, "slave proof" || Ns || Nm)
//   key of each direction = HMAC(K, "master->slave" or "slave->master" || Ns || Nm)
//   tag of line number s (0, 1, ... in each direction) = the first 16 bytes of
//                  HMAC(direction's key, s as 8 bytes big-endian || the line)
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "sha256.hpp"

namespace berkeley {

constexpr size_t MIN_PASSPHRASE_BYTES = 16;
constexpr size_t MAX_PASSPHRASE_BYTES = 1024;
constexpr size_t NONCE_BYTES = 32;
constexpr size_t TAG_BYTES = 16;                  // 128 bits
constexpr uint32_t KEY_STRETCH_ITERATIONS = 100'000;  // PBKDF2: ~85 ms once at start-up
constexpr std::string_view KEY_STRETCH_SALT = "berkeley-clock-sync group key v1";

using Nonce = std::array<uint8_t, NONCE_BYTES>;
using Tag = std::array<uint8_t, TAG_BYTES>;

// Why a passphrase cannot be used, or nothing. Bytes, not characters: spaces
// and UTF-8 are fine, control characters are not.
inline std::optional<std::string> passphrase_problem(std::string_view passphrase) {
    if (passphrase.size() < MIN_PASSPHRASE_BYTES)
        return "the passphrase has " + std::to_string(passphrase.size()) + " bytes; it needs at least " +
               std::to_string(MIN_PASSPHRASE_BYTES) + " (random is best: head -c 24 /dev/urandom | base64)";
    if (passphrase.size() > MAX_PASSPHRASE_BYTES)
        return "the passphrase is longer than " + std::to_string(MAX_PASSPHRASE_BYTES) + " bytes";
    for (const char c : passphrase)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return std::string("the passphrase holds a control character");
    return std::nullopt;
}

// The group key: the passphrase stretched, so that each guess in an offline
// search (from a recorded handshake) costs KEY_STRETCH_ITERATIONS MACs. The
// salt is the same for every group (both ends must derive the same key from
// the passphrase alone), so a dictionary stretched once serves against every
// group: only a passphrase no dictionary holds (a random one) is safe.
inline HmacSha256 group_key(std::string_view passphrase) {
    const Sha256Digest k = pbkdf2_hmac_sha256(passphrase, KEY_STRETCH_SALT, KEY_STRETCH_ITERATIONS);
    return HmacSha256(std::span<const uint8_t>(k));
}

namespace auth_detail {

inline Sha256Digest labelled(const HmacSha256& key, std::string_view label, const Nonce& slave_nonce,
                             const Nonce& master_nonce) {
    return key.mac({sha256_detail::bytes_of(label), slave_nonce, master_nonce});
}

// Exactly `out.size()` bytes as lowercase hex, nothing else.
inline bool from_hex(std::string_view hex, std::span<uint8_t> out) {
    if (hex.size() != 2 * out.size()) return false;
    auto digit = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    for (size_t i = 0; i < out.size(); ++i) {
        const int hi = digit(hex[2 * i]), lo = digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = uint8_t(hi << 4 | lo);
    }
    return true;
}

// The line split at spaces into exactly `n` fields after `verb`, or nothing.
inline std::optional<std::array<std::string_view, 2>> fields_after(std::string_view line, std::string_view verb,
                                                                   size_t n) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.substr(0, verb.size() + 1) != std::string(verb) + " ") return std::nullopt;
    line.remove_prefix(verb.size() + 1);
    std::array<std::string_view, 2> f;
    for (size_t i = 0; i < n; ++i) {
        const size_t space = line.find(' ');
        if ((i + 1 < n) == (space == std::string_view::npos)) return std::nullopt;
        f[i] = line.substr(0, space);
        line = space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
    }
    return f;
}

}  // namespace auth_detail

inline Sha256Digest master_proof(const HmacSha256& key, const Nonce& slave_nonce, const Nonce& master_nonce) {
    return auth_detail::labelled(key, "master proof", slave_nonce, master_nonce);
}
inline Sha256Digest slave_proof(const HmacSha256& key, const Nonce& slave_nonce, const Nonce& master_nonce) {
    return auth_detail::labelled(key, "slave proof", slave_nonce, master_nonce);
}

// ---------------------------------------------------------------------------
// The three handshake lines, formatted and parsed side by side ('\n' included
// when formatted; parsing takes a framed line without it).

inline std::string format_challenge(const Nonce& slave_nonce) { return "AUTH " + to_hex(slave_nonce) + "\n"; }

inline std::optional<Nonce> parse_challenge(std::string_view line) {
    Nonce n;
    auto f = auth_detail::fields_after(line, "AUTH", 1);
    if (!f || !auth_detail::from_hex((*f)[0], n)) return std::nullopt;
    return n;
}

struct MasterAnswer {
    Nonce master_nonce;
    Sha256Digest proof;
};

inline std::string format_answer(const MasterAnswer& a) {
    return "AUTH " + to_hex(a.master_nonce) + " " + to_hex(a.proof) + "\n";
}

inline std::optional<MasterAnswer> parse_answer(std::string_view line) {
    MasterAnswer a;
    auto f = auth_detail::fields_after(line, "AUTH", 2);
    if (!f || !auth_detail::from_hex((*f)[0], a.master_nonce) || !auth_detail::from_hex((*f)[1], a.proof))
        return std::nullopt;
    return a;
}

inline std::string format_proof(const Sha256Digest& proof) { return "PROOF " + to_hex(proof) + "\n"; }

inline std::optional<Sha256Digest> parse_proof(std::string_view line) {
    Sha256Digest p;
    auto f = auth_detail::fields_after(line, "PROOF", 1);
    if (!f || !auth_detail::from_hex((*f)[0], p)) return std::nullopt;
    return p;
}

// ---------------------------------------------------------------------------
// Tagged lines. Each direction has its own key and counts its own lines, so
// a line is accepted only as the next one of its direction on its connection.

class LineSealer {
public:
    explicit LineSealer(const Sha256Digest& key) : key_(std::span<const uint8_t>(key)) {}
    // "VERB fields\n" -> "VERB fields <tag>\n"
    std::string seal(std::string_view line) {
        if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
        const Tag tag = tag_of(key_, seq_++, line);
        std::string out;
        out.reserve(line.size() + 2 + 2 * TAG_BYTES);
        out.append(line).append(" ").append(to_hex(tag)).append("\n");
        return out;
    }
    uint64_t lines() const { return seq_; }

    static Tag tag_of(const HmacSha256& key, uint64_t seq, std::string_view line) {
        std::array<uint8_t, 8> s;
        for (size_t i = 0; i < 8; ++i) s[i] = uint8_t(seq >> (56 - 8 * i));
        const Sha256Digest mac = key.mac({s, sha256_detail::bytes_of(line)});
        Tag t;
        std::copy_n(mac.begin(), TAG_BYTES, t.begin());
        return t;
    }

private:
    HmacSha256 key_;
    uint64_t seq_ = 0;
};

class LineOpener {
public:
    explicit LineOpener(const Sha256Digest& key) : key_(std::span<const uint8_t>(key)) {}
    // A framed line (no '\n') -> the line without its tag, if the tag is the
    // one the next line of this direction must carry. After a failure the
    // connection must be closed: the count no longer matches the sender's.
    std::optional<std::string> open(std::string_view line) {
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        const size_t space = line.rfind(' ');
        if (space == std::string_view::npos) return std::nullopt;
        Tag presented;
        if (!auth_detail::from_hex(line.substr(space + 1), presented)) return std::nullopt;
        const std::string_view body = line.substr(0, space);
        const Tag expected = LineSealer::tag_of(key_, seq_, body);
        if (!equal_constant_time(expected, presented)) return std::nullopt;
        ++seq_;
        return std::string(body);
    }
    uint64_t lines() const { return seq_; }

private:
    HmacSha256 key_;
    uint64_t seq_ = 0;
};

// One end of an authenticated connection.
struct Session {
    LineSealer out;
    LineOpener in;
};

enum class Role { Master, Slave };

inline Session session_for(Role role, const HmacSha256& key, const Nonce& slave_nonce, const Nonce& master_nonce) {
    const Sha256Digest to_slave = auth_detail::labelled(key, "master->slave", slave_nonce, master_nonce);
    const Sha256Digest to_master = auth_detail::labelled(key, "slave->master", slave_nonce, master_nonce);
    return role == Role::Master ? Session{LineSealer(to_slave), LineOpener(to_master)}
                                : Session{LineSealer(to_master), LineOpener(to_slave)};
}

// ---------------------------------------------------------------------------
// The price of a wrong proof, per source address: a token bucket of
// GUESS_BURST attempts, refilled at GUESSES_PER_S. A proof is checked only
// while the address has a token, and a wrong one spends it; with none left
// every proof from there is refused unchecked (a right one too, or the
// answer would tell a guesser it had guessed right). So one address gets at
// most GUESS_BURST + GUESSES_PER_S * t answers in t seconds, however many
// connections it opens. Memory is bounded: at most MAX_TRACKED addresses,
// forgetting those whose bucket is full again (looked for at most once a
// second). The price: a prober that keeps MAX_TRACKED addresses spending
// (one wrong proof each every 5 s) makes every new address share one budget,
// honest slaves from new addresses included. Addresses are counted as they
// are: an IPv6 prober with a /64 has many.
class GuessBudget {
public:
    static constexpr double GUESSES_PER_S = 2.0;
    static constexpr double GUESS_BURST = 10.0;
    static constexpr size_t MAX_TRACKED = 4096;

    // May a proof from `address` be checked now?
    bool may_check(const std::string& address, int64_t now_ns) {
        Bucket* b = find(address, now_ns);
        return !b || b->tokens >= 1.0;
    }

    // A proof from `address` was checked and was wrong.
    void spend(const std::string& address, int64_t now_ns) {
        Bucket* b = find(address, now_ns);
        if (!b) b = &buckets_.try_emplace(address, Bucket{GUESS_BURST, now_ns}).first->second;
        b->tokens = std::max(0.0, b->tokens - 1.0);
    }

    size_t tracked() const { return buckets_.size(); }

private:
    struct Bucket {
        double tokens = GUESS_BURST;
        int64_t at_ns = 0;
    };

    // The address's bucket, refilled to now; nullptr when it has none (a full
    // one). When the table is full of spenders, new addresses share the
    // bucket of "", so that many addresses cannot buy many budgets.
    Bucket* find(const std::string& address, int64_t now_ns) {
        auto it = buckets_.find(address);
        if (it == buckets_.end() && buckets_.size() >= MAX_TRACKED) {
            if (now_ns - swept_ns_ >= SWEEP_EVERY_NS) forget_full(now_ns);  // a sweep costs the whole table
            if (buckets_.size() >= MAX_TRACKED) it = buckets_.try_emplace(std::string(), Bucket{GUESS_BURST, now_ns}).first;
        }
        if (it == buckets_.end()) return nullptr;
        Bucket& b = it->second;
        if (now_ns > b.at_ns) {
            b.tokens = std::min(GUESS_BURST, b.tokens + static_cast<double>(now_ns - b.at_ns) * GUESSES_PER_S / 1e9);
            b.at_ns = now_ns;
        }
        return &b;
    }

    void forget_full(int64_t now_ns) {
        swept_ns_ = now_ns;
        for (auto it = buckets_.begin(); it != buckets_.end();) {
            const double refilled = it->second.tokens + static_cast<double>(now_ns - it->second.at_ns) * GUESSES_PER_S / 1e9;
            it = refilled >= GUESS_BURST ? buckets_.erase(it) : std::next(it);
        }
    }

    static constexpr int64_t SWEEP_EVERY_NS = 1'000'000'000;
    std::map<std::string, Bucket> buckets_;
    int64_t swept_ns_ = INT64_MIN / 2;
};

}  // namespace berkeley
