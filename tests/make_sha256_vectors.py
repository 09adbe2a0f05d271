"""Writes tests/vectors/sha256_hmac_random.txt: random keys and messages with
their SHA-256 and HMAC-SHA256 from Python's hashlib and hmac, the independent
implementation that tests/test_sha256.cpp checks sha256.hpp against.

One line per case, four lowercase hex fields separated by single spaces (an
empty key or message is the empty field):
    hex(key) hex(message) hex(sha256(message)) hex(hmac_sha256(key, message))
The first 301 lines take every message length 0..300 in turn, so each padding
boundary (55/56/64 bytes and their multiples) is met; the rest are random:
messages 0..300 bytes, keys 0..150 bytes (both sides of the 64-byte block).
The seed is fixed, so running it again rewrites the same file:
    python3 tests/make_sha256_vectors.py [output path]
"""

import hashlib
import hmac
import os
import random
import sys

SEED = 20240601
LINES = 2000
MAX_MESSAGE_BYTES = 300
MAX_KEY_BYTES = 150
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors", "sha256_hmac_random.txt")


def case_line(key, message):
    digest = hashlib.sha256(message).hexdigest()
    mac = hmac.new(key, message, hashlib.sha256).hexdigest()
    return "%s %s %s %s\n" % (key.hex(), message.hex(), digest, mac)


def lines(rng):
    for i in range(LINES):
        if i <= MAX_MESSAGE_BYTES:
            message_len = i
            key_len = i % (MAX_KEY_BYTES + 1)
        else:
            message_len = rng.randint(0, MAX_MESSAGE_BYTES)
            key_len = rng.randint(0, MAX_KEY_BYTES)
        yield case_line(rng.randbytes(key_len), rng.randbytes(message_len))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", newline="\n") as f:
        f.writelines(lines(random.Random(SEED)))
    print("%s: %d lines, %d bytes" % (out, LINES, os.path.getsize(out)))


if __name__ == "__main__":
    main()
