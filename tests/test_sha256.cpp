// test_sha256.cpp - sha256.hpp against the specifications' own examples
// (FIPS 180-2 appendix and NIST, RFC 4231), against itself split at every
// byte, and against Python's hashlib/hmac on 2000 random keys and messages
// (tests/vectors/sha256_hmac_random.txt, from tests/make_sha256_vectors.py).
#include <doctest/doctest.h>

#include "sha256.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using namespace berkeley;

namespace {

std::optional<std::string> from_hex(std::string_view hex) {
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    if (hex.size() % 2 != 0) return std::nullopt;
    std::string out;
    for (size_t i = 0; i < hex.size(); i += 2) {
        const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += char(hi << 4 | lo);
    }
    return out;
}

// Bytes 0, 1, 2, ... 255, 0, ...: every byte value, the high ones included
// (a sign-extension bug in the char to byte path would show).
std::string pattern(size_t n) {
    std::string out(n, '\0');
    for (size_t i = 0; i < n; ++i) out[i] = char(i % 256);
    return out;
}

std::span<const uint8_t> bytes(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string hex_sha256(std::string_view message) { return to_hex(sha256(message)); }

std::string hex_hmac(std::string_view key, std::string_view message) {
    return to_hex(hmac_sha256(key, message));
}

// Split on single spaces, keeping empty fields (an empty key is "").
std::vector<std::string_view> fields(std::string_view line) {
    std::vector<std::string_view> out;
    for (;;) {
        const size_t space = line.find(' ');
        out.push_back(line.substr(0, space));
        if (space == std::string_view::npos) return out;
        line.remove_prefix(space + 1);
    }
}

const std::string ALPHABET_448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
const std::string ALPHABET_896 =
    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

}  // namespace

TEST_CASE("sha256: FIPS 180-2 and NIST examples") {
    struct Row {
        std::string message;
        const char* digest;
    };
    const std::vector<Row> rows = {
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {ALPHABET_448, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {ALPHABET_896, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {std::string(1'000'000, 'a'), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
    };
    for (const Row& row : rows) {
        CAPTURE(row.message.size());
        CHECK(hex_sha256(row.message) == row.digest);
    }
    CHECK(ALPHABET_448.size() * 8 == 448);
    CHECK(ALPHABET_896.size() * 8 == 896);
}

TEST_CASE("hmac_sha256: RFC 4231 test cases 1-7") {
    struct Row {
        int test_case;
        std::string key;
        std::string data;
        const char* mac;  // case 5 is truncated to 128 bits
    };
    const std::vector<Row> rows = {
        {1, std::string(20, '\x0b'), "Hi There",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {2, "Jefe", "what do ya want for nothing?",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {3, std::string(20, '\xaa'), std::string(50, '\xdd'),
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
        {4, *from_hex("0102030405060708090a0b0c0d0e0f10111213141516171819"), std::string(50, '\xcd'),
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
        {5, std::string(20, '\x0c'), "Test With Truncation", "a3b6167473100ee06e0c796c2955552b"},
        {6, std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
        {7, std::string(131, '\xaa'),
         "This is a test using a larger than block-size key and a larger than block-size data. The key "
         "needs to be hashed before being used by the HMAC algorithm.",
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
    };
    for (const Row& row : rows) {
        CAPTURE(row.test_case);
        const std::string mac = hex_hmac(row.key, row.data);
        CHECK(mac.substr(0, std::string_view(row.mac).size()) == row.mac);
    }
}

TEST_CASE("sha256: lengths around the padding boundaries") {
    // 55 bytes is the longest message whose padding fits one block; 56..63
    // spill the length into a second block; 64 fills a block exactly.
    // Digests from Python: hashlib.sha256(bytes(i % 256 for i in range(n))).
    struct Row {
        size_t length;
        const char* digest;
    };
    const std::vector<Row> rows = {
        {55, "463eb28e72f82e0a96c0a4cc53690c571281131f672aa229e0d45ae59b598b59"},
        {56, "da2ae4d6b36748f2a318f23e7ab1dfdf45acdc9d049bd80e59de82a60895f562"},
        {57, "2fe741af801cc238602ac0ec6a7b0c3a8a87c7fc7d7f02a3fe03d1c12eac4d8f"},
        {63, "29af2686fd53374a36b0846694cc342177e428d1647515f078784d69cdb9e488"},
        {64, "fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108"},
        {65, "4bfd2c8b6f1eec7a2afeb48b934ee4b2694182027e6d0fc075074f2fabb31781"},
        {119, "da18797ed7c3a777f0847f429724a2d8cd5138e6ed2895c3fa1a6d39d18f7ec6"},
        {120, "f52b23db1fbb6ded89ef42a23ce0c8922c45f25c50b568a93bf1c075420bbb7c"},
        {128, "471fb943aa23c511f6f72f8d1652d9c880cfa392ad80503120547703e56a2be5"},
    };
    for (const Row& row : rows) {
        CAPTURE(row.length);
        CHECK(hex_sha256(pattern(row.length)) == row.digest);
    }
    // Every length 0..200 at once: the hash of the 201 digests in order.
    // Python: h = sha256(); for n in range(201): h.update(sha256(pattern(n)).digest())
    Sha256 chain;
    for (size_t n = 0; n <= 200; ++n) chain.update(sha256(pattern(n)));
    CHECK(to_hex(chain.finish()) == "64ef7c229fce2408b5336b6a542fea0e078c3a87d2da85cb3fc52e2008b65021");
}

TEST_CASE("sha256: incremental updates, split at every byte") {
    const std::vector<std::string> messages = {"", "abc", ALPHABET_448, ALPHABET_896, pattern(200)};
    for (const std::string& message : messages) {
        CAPTURE(message.size());
        const Sha256Digest whole = sha256(message);
        const std::string_view view = message;
        for (size_t split = 0; split <= message.size(); ++split) {
            CAPTURE(split);
            Sha256 hash;
            hash.update(view.substr(0, split));
            hash.update(view.substr(split));
            CHECK(hash.finish() == whole);
        }
        Sha256 byte_at_a_time;
        for (const char c : message) byte_at_a_time.update(std::string_view(&c, 1));
        CHECK(byte_at_a_time.finish() == whole);
    }
}

TEST_CASE("sha256: finish() resets for the next message") {
    Sha256 hash;
    hash.update(std::string_view("not this one"));
    (void)hash.finish();
    hash.update(std::string_view("abc"));
    CHECK(to_hex(hash.finish()) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(to_hex(hash.finish()) == hex_sha256(""));
    CHECK(sha256(bytes("abc")) == sha256("abc"));
}

TEST_CASE("equal_constant_time") {
    const Sha256Digest mac = hmac_sha256("key", "line");
    Sha256Digest first = mac, last = mac;
    first.front() ^= 0x01;
    last.back() ^= 0x80;
    CHECK(equal_constant_time(mac, mac));
    CHECK(equal_constant_time(mac, Sha256Digest(mac)));
    CHECK_FALSE(equal_constant_time(mac, first));
    CHECK_FALSE(equal_constant_time(mac, last));
    CHECK_FALSE(equal_constant_time(mac, std::span<const uint8_t>(mac).first(31)));
    CHECK_FALSE(equal_constant_time(std::span<const uint8_t>(mac).first(31), mac));
    CHECK(equal_constant_time(bytes(""), bytes("")));
    CHECK_FALSE(equal_constant_time(bytes(""), bytes("a")));
}

TEST_CASE("to_hex") {
    CHECK(to_hex(bytes("")) == "");
    CHECK(to_hex(bytes(std::string_view("\x00\x0f\x10\x7f\x80\xff", 6))) == "000f107f80ff");
}

TEST_CASE("sha256 and hmac_sha256 agree with Python's hashlib and hmac") {
    // The vectors sit beside this source; the tests run from the repository
    // root (make test), or from anywhere via the binary's own directory.
    const std::filesystem::path name = "vectors/sha256_hmac_random.txt";
    std::filesystem::path path = std::filesystem::path(__FILE__).parent_path() / name;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
        if (!ec) path = exe.parent_path() / name;
    }
    std::ifstream in(path);
    REQUIRE_MESSAGE(in.good(), "cannot open " << path << ": run from the repository root");
    size_t line_no = 0, short_keys = 0, long_keys = 0, long_messages = 0;
    for (std::string line; std::getline(in, line);) {
        ++line_no;
        CAPTURE(line_no);
        const std::vector<std::string_view> f = fields(line);
        REQUIRE(f.size() == 4);
        const std::optional<std::string> key = from_hex(f[0]), message = from_hex(f[1]);
        REQUIRE(key.has_value());
        REQUIRE(message.has_value());
        CHECK(hex_sha256(*message) == f[2]);
        CHECK(hex_hmac(*key, *message) == f[3]);
        if (key->size() > SHA256_BLOCK_BYTES) ++long_keys;
        else ++short_keys;
        if (message->size() > 2 * SHA256_BLOCK_BYTES) ++long_messages;
    }
    CHECK(line_no >= 2000);
    // Both sides of the block size were exercised, not just one.
    CHECK(short_keys > 100);
    CHECK(long_keys > 100);
    CHECK(long_messages > 100);
}

TEST_CASE("HmacSha256: a key set once gives the same MACs as hmac_sha256, however the message is split") {
    for (const std::string& key : std::vector<std::string>{std::string(), std::string("k"), std::string(64, 'k'), std::string(65, 'k'),
                                  std::string(150, '\xa5')}) {
        const HmacSha256 keyed(key);
        for (const std::string& message : std::vector<std::string>{std::string(), std::string("ADJUST 3 -1500 0"), std::string(200, 'm')}) {
            CAPTURE(key.size());
            CAPTURE(message.size());
            CHECK(keyed.mac(message) == hmac_sha256(key, message));
            for (size_t cut = 0; cut <= message.size(); cut += 7)
                CHECK(keyed.mac({bytes(std::string_view(message).substr(0, cut)),
                                 bytes(std::string_view(message).substr(cut))}) == hmac_sha256(key, message));
        }
    }
}

TEST_CASE("pbkdf2_hmac_sha256: RFC 7914 section 11 and Python's hashlib.pbkdf2_hmac") {
    // The first 32 bytes of RFC 7914's PBKDF2-HMAC-SHA256 examples (dkLen 64).
    CHECK(to_hex(pbkdf2_hmac_sha256("passwd", "salt", 1)) ==
          "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc");
    CHECK(to_hex(pbkdf2_hmac_sha256("Password", "NaCl", 80000)) ==
          "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56");
    // From hashlib.pbkdf2_hmac('sha256', P, S, c).hex(): a passphrase longer
    // than a block, an empty salt, an empty passphrase.
    CHECK(to_hex(pbkdf2_hmac_sha256(std::string(100, 'x'), "", 3)) ==
          "8bbb2417b3b8f12898ae6553195783b360877eef8935294d3f4000dbecfd9b22");
    CHECK(to_hex(pbkdf2_hmac_sha256("", "salt", 2)) ==
          "62384466264daadc4144018c6bd864648272b34da8980d31521ffcce92ae003b");
    CHECK(to_hex(pbkdf2_hmac_sha256("correct horse battery staple", "berkeley-clock-sync group key v1", 100000)) ==
          "d8e481fc6d1f673f37cafbe4decfe6819bdfeb08d92645dcebe155b822cbeb95");
}
