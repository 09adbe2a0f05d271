// test_auth.cpp - the handshake, the per-line tags and the guess budget of
// auth.hpp: both ends agree only with the same secret, every tampering a
// relay can do to a tagged stream is caught, and a prober's budget holds.
#include <doctest/doctest.h>

#include <cctype>
#include <vector>

#include "auth.hpp"

using namespace berkeley;

namespace {

constexpr int64_t SECOND_NS = 1'000'000'000;

Nonce nonce(uint8_t fill) {
    Nonce n;
    for (size_t i = 0; i < n.size(); ++i) n[i] = uint8_t(fill + i);
    return n;
}

// The key stretch is slow on purpose; tests use a key made directly.
HmacSha256 key_of(std::string_view passphrase) { return HmacSha256(passphrase); }

// Both ends of one connection, after a successful handshake.
struct Pair {
    Session master, slave;
};

Pair handshake(const HmacSha256& key, uint8_t slave_fill = 1, uint8_t master_fill = 100) {
    const Nonce ns = nonce(slave_fill), nm = nonce(master_fill);
    return {session_for(Role::Master, key, ns, nm), session_for(Role::Slave, key, ns, nm)};
}

std::string framed(const std::string& sealed) {
    REQUIRE(!sealed.empty());
    REQUIRE(sealed.back() == '\n');
    return sealed.substr(0, sealed.size() - 1);
}

}  // namespace

TEST_CASE("passphrase_problem: at least 16 bytes, spaces and UTF-8 allowed, no control characters") {
    CHECK(passphrase_problem("fifteen bytes!!").has_value());
    CHECK(passphrase_problem("").has_value());
    CHECK_FALSE(passphrase_problem("sixteen bytes!!!"));
    CHECK_FALSE(passphrase_problem("correct horse battery staple"));
    CHECK_FALSE(passphrase_problem("ünïcödé pässphräsé"));
    CHECK(passphrase_problem("a tab\there is not typed by accident").has_value());
    CHECK(passphrase_problem(std::string(MAX_PASSPHRASE_BYTES, 'k')) == std::nullopt);
    CHECK(passphrase_problem(std::string(MAX_PASSPHRASE_BYTES + 1, 'k')).has_value());
    CHECK(passphrase_problem("fifteen bytes!!")->find("at least 16") != std::string::npos);
}

TEST_CASE("group_key: the passphrase stretched with PBKDF2, so equal passphrases give equal keys") {
    const HmacSha256 a = group_key("correct horse battery staple");
    const HmacSha256 b = group_key("correct horse battery staple");
    const HmacSha256 c = group_key("correct horse battery stapler");
    CHECK(a.mac("x") == b.mac("x"));
    CHECK(a.mac("x") != c.mac("x"));
    // It is the PBKDF2 output used as an HMAC key, not the passphrase itself.
    const Sha256Digest stretched =
        pbkdf2_hmac_sha256("correct horse battery staple", KEY_STRETCH_SALT, KEY_STRETCH_ITERATIONS);
    CHECK(a.mac("x") == HmacSha256(std::span<const uint8_t>(stretched)).mac("x"));
    CHECK(a.mac("x") != key_of("correct horse battery staple").mac("x"));
}

TEST_CASE("proofs: bound to the role, both nonces and the key") {
    const HmacSha256 key = key_of("group secret one"), other = key_of("group secret two");
    const Nonce ns = nonce(1), nm = nonce(100);
    CHECK(master_proof(key, ns, nm) != slave_proof(key, ns, nm));  // no reflecting one as the other
    CHECK(master_proof(key, ns, nm) != master_proof(other, ns, nm));
    CHECK(master_proof(key, ns, nm) != master_proof(key, nonce(2), nm));
    CHECK(master_proof(key, ns, nm) != master_proof(key, ns, nonce(101)));
    CHECK(master_proof(key, ns, nm) != master_proof(key, nm, ns));  // order matters
    CHECK(master_proof(key, ns, nm) == master_proof(key, ns, nm));
}

TEST_CASE("handshake lines: formatted and parsed side by side, strictly") {
    const Nonce ns = nonce(7), nm = nonce(200);
    const Sha256Digest proof = slave_proof(key_of("k"), ns, nm);

    const std::string challenge = format_challenge(ns);
    CHECK(challenge == "AUTH " + to_hex(ns) + "\n");
    CHECK(parse_challenge(framed(challenge)) == ns);
    CHECK(parse_challenge(framed(challenge) + "\r") == ns);

    const std::string answer = format_answer({nm, proof});
    CHECK(answer.size() == 5 + 64 + 1 + 64 + 1);
    const auto a = parse_answer(framed(answer));
    REQUIRE(a);
    CHECK(a->master_nonce == nm);
    CHECK(a->proof == proof);

    CHECK(parse_proof(framed(format_proof(proof))) == proof);

    const std::string hex = to_hex(ns);
    std::string upper = hex;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (const std::string& bad : std::vector<std::string>{"AUTH", "AUTH ", "AUTH " + hex.substr(1), "AUTH " + hex + "0",
                                  "AUTH " + upper, "AUTH  " + hex, "AUTH " + hex + " ", "auth " + hex,
                                  "AUTH " + hex.substr(0, 63) + "g", "PROOF " + hex, "AUTH " + hex + " " + hex}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_challenge(bad));
    }
    CHECK_FALSE(parse_answer("AUTH " + hex));
    CHECK_FALSE(parse_answer("AUTH " + hex + " " + hex + " " + hex));
    CHECK_FALSE(parse_answer("AUTH " + hex + "  " + hex));
    CHECK_FALSE(parse_proof("PROOF " + hex + " " + hex));
    CHECK_FALSE(parse_proof("PROOF"));
    CHECK_FALSE(parse_proof("HELLO s1"));
}

TEST_CASE("sessions: each end opens what the other sealed, in order, in both directions") {
    Pair p = handshake(key_of("the group's passphrase"));
    for (int i = 0; i < 100; ++i) {
        const std::string down = "TIME? " + std::to_string(i) + " 1\n";
        const std::string sealed = p.master.out.seal(down);
        CHECK(sealed.size() == down.size() + 1 + 2 * TAG_BYTES);  // " <32 hex digits>"
        CHECK(sealed.substr(0, down.size() - 1) == down.substr(0, down.size() - 1));
        const auto opened = p.slave.in.open(framed(sealed));
        REQUIRE(opened);
        CHECK(*opened == down.substr(0, down.size() - 1));
        const std::string up = "CLOCK " + std::to_string(i) + " 1 123 456";
        CHECK(p.master.in.open(framed(p.slave.out.seal(up))) == std::optional<std::string>(up));
    }
    CHECK(p.master.out.lines() == 100);
    CHECK(p.master.in.lines() == 100);
    // "\r\n" line ends are accepted as for plain lines.
    CHECK(p.slave.in.open(framed(p.master.out.seal("BYE")) + "\r") == std::optional<std::string>("BYE"));
}

TEST_CASE("tags: a relay cannot forge, flip, replay, reorder, drop, reflect or move a line") {
    const HmacSha256 key = key_of("the group's passphrase");

    SUBCASE("one digit flipped") {
        Pair p = handshake(key);
        std::string line = framed(p.master.out.seal("ADJUST 3 -1500 0"));
        line[9] = '2';
        CHECK_FALSE(p.slave.in.open(line));
    }
    SUBCASE("one bit of the tag flipped, the tag cut short or removed") {
        for (int how = 0; how < 3; ++how) {
            Pair p = handshake(key);
            std::string line = framed(p.master.out.seal("ADJUST 3 -1500 0"));
            if (how == 0) line.back() = line.back() == '0' ? '1' : '0';
            if (how == 1) line.pop_back();
            if (how == 2) line = "ADJUST 3 -1500 0";
            CHECK_FALSE(p.slave.in.open(line));
        }
    }
    SUBCASE("an earlier line replayed") {
        Pair p = handshake(key);
        const std::string first = framed(p.master.out.seal("ADJUST 1 3600000000000 0"));
        REQUIRE(p.slave.in.open(first));
        (void)p.master.out.seal("TIME? 2 1");
        CHECK_FALSE(p.slave.in.open(first));
    }
    SUBCASE("two lines swapped") {
        Pair p = handshake(key);
        const std::string a = framed(p.master.out.seal("TIME? 2 1"));
        const std::string b = framed(p.master.out.seal("ADJUST 2 100 0"));
        CHECK_FALSE(p.slave.in.open(b));
        (void)a;
    }
    SUBCASE("a line dropped") {
        Pair p = handshake(key);
        (void)p.master.out.seal("ADJUST 2 100 0");
        CHECK_FALSE(p.slave.in.open(framed(p.master.out.seal("ADJUST 3 100 0"))));
    }
    SUBCASE("a line sent back the way it came (reflection)") {
        Pair p = handshake(key);
        const std::string up = framed(p.slave.out.seal("ACK 1"));
        CHECK_FALSE(p.slave.in.open(up));
    }
    SUBCASE("a line moved to another connection of the same group") {
        Pair one = handshake(key, 1, 100), two = handshake(key, 2, 100);
        CHECK_FALSE(two.slave.in.open(framed(one.master.out.seal("ADJUST 1 5 0"))));
        Pair three = handshake(key, 1, 101);
        CHECK_FALSE(three.slave.in.open(framed(one.master.out.seal("ADJUST 1 5 0"))));
    }
    SUBCASE("a line sealed with another group's key") {
        Pair ours = handshake(key), theirs = handshake(key_of("another passphrase"));
        CHECK_FALSE(ours.slave.in.open(framed(theirs.master.out.seal("ADJUST 1 5 0"))));
    }
    SUBCASE("garbage") {
        Pair p = handshake(key);
        for (const std::string& bad : std::vector<std::string>{"", " ", "BYE ", std::string(32, '0'),
                                      "BYE " + std::string(32, 'G'), "BYE " + std::string(31, '0'),
                                      "BYE " + std::string(33, '0')}) {
            CAPTURE(bad);
            CHECK_FALSE(p.slave.in.open(bad));
        }
        // A failed open leaves the count where it was: the next genuine line is
        // the one the count expects (the caller closes anyway).
        CHECK(p.slave.in.open(framed(p.master.out.seal("BYE"))));
    }
}

TEST_CASE("GuessBudget: 10 wrong proofs at once, then 2 a second, per address") {
    GuessBudget b;
    const int64_t t0 = 1'000 * SECOND_NS;
    for (int i = 0; i < 10; ++i) {
        CHECK(b.may_check("10.0.0.1", t0));
        b.spend("10.0.0.1", t0);
    }
    CHECK_FALSE(b.may_check("10.0.0.1", t0));
    CHECK(b.may_check("10.0.0.2", t0));  // another address has its own budget
    CHECK_FALSE(b.may_check("10.0.0.1", t0 + 499'000'000));
    CHECK(b.may_check("10.0.0.1", t0 + 500'000'000));  // one token back after half a second
    b.spend("10.0.0.1", t0 + 500'000'000);
    CHECK_FALSE(b.may_check("10.0.0.1", t0 + 500'000'000));
    // A clock that does not move forward never adds tokens.
    CHECK_FALSE(b.may_check("10.0.0.1", t0));
    // Over a minute of steady guessing: at most 10 + 2 per second.
    int answered = 0;
    for (int64_t t = t0 + SECOND_NS; t < t0 + 61 * SECOND_NS; t += 10'000'000)
        if (b.may_check("10.0.0.3", t)) {
            ++answered;
            b.spend("10.0.0.3", t);
        }
    CHECK(answered >= 10 + 2 * 60 - 1);
    CHECK(answered <= 10 + 2 * 60 + 1);
}

TEST_CASE("GuessBudget: memory stays bounded; a full table does not hand out fresh budgets") {
    GuessBudget b;
    const int64_t t0 = 1'000 * SECOND_NS;
    for (size_t i = 0; i < GuessBudget::MAX_TRACKED; ++i)
        for (int k = 0; k < 10; ++k) b.spend("a" + std::to_string(i), t0);
    CHECK(b.tracked() == GuessBudget::MAX_TRACKED);
    // New addresses now share one budget.
    int answered = 0;
    for (int i = 0; i < 100; ++i)
        if (b.may_check("new" + std::to_string(i), t0)) {
            ++answered;
            b.spend("new" + std::to_string(i), t0);
        }
    CHECK(answered == 10);
    CHECK(b.tracked() <= GuessBudget::MAX_TRACKED + 1);
    // Once the spenders' buckets are full again they are forgotten.
    CHECK(b.may_check("later", t0 + 10 * SECOND_NS));
    b.spend("later", t0 + 10 * SECOND_NS);
    CHECK(b.tracked() <= 2);
}
