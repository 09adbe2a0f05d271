// sha256.hpp - SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) written by hand,
// since the project links libc only: they authenticate the protocol's lines
// with a shared key, and PBKDF2 (RFC 8018) stretches the passphrase. Not for
// encryption, and plain rather than fast. Pure: no I/O, no allocation but
// to_hex. Checked by tests/test_sha256.cpp against FIPS 180-2, RFC 4231 and
// Python's hashlib, hmac and pbkdf2_hmac.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace berkeley {

constexpr size_t SHA256_BLOCK_BYTES = 64;   // FIPS 180-4 1: 512-bit blocks
constexpr size_t SHA256_DIGEST_BYTES = 32;  // 256-bit message digest
using Sha256Digest = std::array<uint8_t, SHA256_DIGEST_BYTES>;

namespace sha256_detail {

// FIPS 180-4 4.2.2: the first 32 bits of the fractional parts of the cube
// roots of the first sixty-four primes.
constexpr std::array<uint32_t, 64> K = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

// FIPS 180-4 5.3.3: the initial hash value H(0), the first 32 bits of the
// fractional parts of the square roots of the first eight primes.
constexpr std::array<uint32_t, 8> H0 = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

// FIPS 180-4 4.1.2: the six logical functions (ROTR^n of 3.2 is std::rotr).
constexpr uint32_t ch(uint32_t x, uint32_t y, uint32_t z) { return (x & y) ^ (~x & z); }
constexpr uint32_t maj(uint32_t x, uint32_t y, uint32_t z) { return (x & y) ^ (x & z) ^ (y & z); }
constexpr uint32_t big_sigma0(uint32_t x) { return std::rotr(x, 2) ^ std::rotr(x, 13) ^ std::rotr(x, 22); }
constexpr uint32_t big_sigma1(uint32_t x) { return std::rotr(x, 6) ^ std::rotr(x, 11) ^ std::rotr(x, 25); }
constexpr uint32_t small_sigma0(uint32_t x) { return std::rotr(x, 7) ^ std::rotr(x, 18) ^ (x >> 3); }
constexpr uint32_t small_sigma1(uint32_t x) { return std::rotr(x, 17) ^ std::rotr(x, 19) ^ (x >> 10); }

// FIPS 180-4 6.2.2: the hash computation for one 512-bit block M(i), turning
// H(i-1) (in `h`) into H(i). Words are big-endian (3.1, 5.2.1).
inline void compress(std::array<uint32_t, 8>& h, const std::array<uint8_t, SHA256_BLOCK_BYTES>& block) {
    // Step 1: prepare the message schedule W0..W63.
    std::array<uint32_t, 64> w;
    for (size_t t = 0; t < 16; ++t) {
        w[t] = uint32_t(block[4 * t]) << 24 | uint32_t(block[4 * t + 1]) << 16 |
               uint32_t(block[4 * t + 2]) << 8 | uint32_t(block[4 * t + 3]);
    }
    for (size_t t = 16; t < 64; ++t) {
        w[t] = small_sigma1(w[t - 2]) + w[t - 7] + small_sigma0(w[t - 15]) + w[t - 16];
    }
    // Step 2: the working variables a..h start from H(i-1).
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    // Step 3: sixty-four rounds (additions are modulo 2^32, 2.2.1).
    for (size_t t = 0; t < 64; ++t) {
        const uint32_t t1 = hh + big_sigma1(e) + ch(e, f, g) + K[t] + w[t];
        const uint32_t t2 = big_sigma0(a) + maj(a, b, c);
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    // Step 4: the i-th intermediate hash value H(i).
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

inline std::span<const uint8_t> bytes_of(std::string_view text) {
    return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

}  // namespace sha256_detail

// Incremental SHA-256: any split of the input into update() calls gives the
// same digest. finish() pads, returns the digest and resets the object, so it
// can hash the next message. Messages must stay under 2^61 bytes (5.1.1).
struct Sha256 {
    std::array<uint32_t, 8> h = sha256_detail::H0;
    std::array<uint8_t, SHA256_BLOCK_BYTES> block{};  // the block being filled
    size_t block_used = 0;                            // bytes of it filled so far
    uint64_t total_bytes = 0;                         // the message length l / 8

    void update(std::span<const uint8_t> data) {
        total_bytes += data.size();
        while (!data.empty()) {  // fill the block as far as data goes; a full block is hashed
            const size_t take = std::min(data.size(), SHA256_BLOCK_BYTES - block_used);
            std::copy_n(data.begin(), take, block.begin() + static_cast<ptrdiff_t>(block_used));
            block_used += take;
            data = data.subspan(take);
            if (block_used == SHA256_BLOCK_BYTES) {
                sha256_detail::compress(h, block);
                block_used = 0;
            }
        }
    }

    void update(std::string_view text) { update(sha256_detail::bytes_of(text)); }

    Sha256Digest finish() {
        // FIPS 180-4 5.1.1 padding: the bit "1", then k zero bits so that
        // l + 1 + k = 448 mod 512, then l as a 64-bit big-endian integer.
        const uint64_t length_bits = total_bytes * 8;
        const uint8_t one_bit = 0x80;
        const std::array<uint8_t, SHA256_BLOCK_BYTES> zeros{};
        update({&one_bit, 1});
        const size_t k_bytes = (SHA256_BLOCK_BYTES + SHA256_BLOCK_BYTES - 8 - block_used) % SHA256_BLOCK_BYTES;
        update({zeros.data(), k_bytes});
        std::array<uint8_t, 8> length{};
        for (size_t i = 0; i < 8; ++i) length[i] = uint8_t(length_bits >> (56 - 8 * i));
        update(length);  // completes the last block, so block_used is 0 again
        // FIPS 180-4 6.2.2: the digest is H(N) written out big-endian.
        Sha256Digest digest{};
        for (size_t i = 0; i < SHA256_DIGEST_BYTES; ++i) digest[i] = uint8_t(h[i / 4] >> (24 - 8 * (i % 4)));
        *this = Sha256{};
        return digest;
    }
};

inline Sha256Digest sha256(std::span<const uint8_t> data) {
    Sha256 hash;
    hash.update(data);
    return hash.finish();
}

inline Sha256Digest sha256(std::string_view text) { return sha256(sha256_detail::bytes_of(text)); }

// RFC 2104 section 2: H(K XOR opad, H(K XOR ipad, text)) with B = 64 bytes.
// A key longer than B is first replaced by H(key), then the key is padded with
// zeros to B bytes (section 2, step 1). The two padded key blocks are hashed
// once, when the key is set (RFC 2104 section 4, "implementation note"), so
// each MAC then costs the message's blocks and one more.
class HmacSha256 {
public:
    explicit HmacSha256(std::span<const uint8_t> key) {
        std::array<uint8_t, SHA256_BLOCK_BYTES> k{};
        if (key.size() > SHA256_BLOCK_BYTES) {
            const Sha256Digest hashed = [&] { Sha256 h; h.update(key); return h.finish(); }();
            std::copy(hashed.begin(), hashed.end(), k.begin());
        } else {
            std::copy(key.begin(), key.end(), k.begin());
        }
        std::array<uint8_t, SHA256_BLOCK_BYTES> pad;
        for (size_t i = 0; i < SHA256_BLOCK_BYTES; ++i) pad[i] = uint8_t(k[i] ^ 0x36);  // ipad
        inner_.update(pad);
        for (size_t i = 0; i < SHA256_BLOCK_BYTES; ++i) pad[i] = uint8_t(k[i] ^ 0x5c);  // opad
        outer_.update(pad);
    }
    explicit HmacSha256(std::string_view key) : HmacSha256(sha256_detail::bytes_of(key)) {}

    // The MAC of the concatenation of the parts.
    Sha256Digest mac(std::initializer_list<std::span<const uint8_t>> parts) const {
        Sha256 inner = inner_;
        for (const auto& part : parts) inner.update(part);
        const Sha256Digest inner_digest = inner.finish();
        Sha256 outer = outer_;
        outer.update(inner_digest);
        return outer.finish();
    }
    Sha256Digest mac(std::string_view message) const { return mac({sha256_detail::bytes_of(message)}); }

private:
    Sha256 inner_;  // after the block K XOR ipad
    Sha256 outer_;  // after the block K XOR opad
};

inline Sha256Digest hmac_sha256(std::string_view key, std::string_view message) {
    return HmacSha256(key).mac(message);
}

// PBKDF2 with HMAC-SHA256 as its PRF (RFC 8018 section 5.2), for one block of
// output (dkLen = 32, so T_1 is the key): U_1 = PRF(P, S || INT(1)),
// U_j = PRF(P, U_{j-1}), T_1 = U_1 XOR ... XOR U_c. It makes each guess at a
// passphrase cost c MACs, which is what slows an offline search.
inline Sha256Digest pbkdf2_hmac_sha256(std::string_view passphrase, std::string_view salt, uint32_t iterations) {
    const HmacSha256 prf(passphrase);
    const std::array<uint8_t, 4> block_index = {0, 0, 0, 1};  // INT(1), big-endian
    Sha256Digest u = prf.mac({sha256_detail::bytes_of(salt), block_index});
    Sha256Digest t = u;
    for (uint32_t j = 2; j <= iterations; ++j) {
        u = prf.mac({u});
        for (size_t i = 0; i < t.size(); ++i) t[i] ^= u[i];
    }
    return t;
}

// Compare a received MAC with the expected one: every byte is visited
// whatever the contents, so the time depends on the lengths only and tells an
// attacker nothing about how many leading bytes of a forged MAC were right.
inline bool equal_constant_time(std::span<const uint8_t> a, std::span<const uint8_t> b) {
    if (a.size() != b.size()) return false;  // lengths are public
    unsigned diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff |= unsigned(a[i] ^ b[i]);
    return diff == 0;
}

// Lowercase hex, two digits per byte, as sha256sum prints it.
inline std::string to_hex(std::span<const uint8_t> data) {
    constexpr std::string_view DIGITS = "0123456789abcdef";
    std::string out;
    out.reserve(2 * data.size());
    for (const uint8_t byte : data) {
        out += DIGITS[byte >> 4];
        out += DIGITS[byte & 0x0f];
    }
    return out;
}

}  // namespace berkeley
