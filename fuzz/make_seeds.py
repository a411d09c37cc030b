#!/usr/bin/env python3
"""Writes the committed seed corpus, seeds/<target>/<name>, in the input
layout that fuzz/src/lib.rs documents. Run from anywhere: python3 make_seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
HELLO = b"HELLO, WORLD"


def u16(n):
    return struct.pack("<H", n)


def size(n):
    """Input::size: a u16; None is usize::MAX (0xFFFF)."""
    return u16(0xFFFF if n is None else n)


def small(n):
    """Input::small_size: a byte; None is usize::MAX (0xFF)."""
    return bytes([0xFF if n is None else n])


def signed(n):
    """Input::signed: an i8, or 0x80 then a full i64."""
    if -127 <= n <= 127:
        return struct.pack("<b", n)
    return b"\x80" + struct.pack("<q", n)


def splits(*sizes):
    return bytes([len(sizes), *sizes])


def payloads(*ps):
    return b"".join(u16(len(p)) + p for p in ps)


def delimiter(delims, max_frame, keep=False, skip=False):
    flags = int(keep) | int(skip) << 1
    out = bytes([flags, len(delims) - 1])
    for d in delims:
        out += bytes([len(d) - 1]) + d
    return out + size(max_frame)


WIDTHS = {1: 0, 2: 1, 3: 2, 4: 3, 8: 4}


def length_field(width, offset=0, adjust=0, strip=None, max_frame=1024,
                 little=False, skip=False):
    flags = WIDTHS[width] | little << 3 | skip << 4 | (strip is None) << 5
    out = bytes([flags]) + small(offset) + signed(adjust)
    if strip is not None:
        out += small(strip)
    return out + size(max_frame)


def varint(max_prefix=10, offset=0, adjust=0, strip=None, max_frame=1024,
           skip=False):
    flags = max_prefix | skip << 4 | (strip is None) << 5
    out = bytes([flags]) + small(offset) + signed(adjust)
    if strip is not None:
        out += small(strip)
    return out + size(max_frame)


def cobs_config(max_frame, skip=False):
    return bytes([skip << 1]) + size(max_frame)


def cobs_encode(payload):
    """Minimal COBS and the 0x00, as CobsEncoder writes it."""
    out, group, just_full = b"", b"", False
    for b in payload:
        just_full = False
        if b == 0:
            out += bytes([len(group) + 1]) + group
            group = b""
        else:
            group += bytes([b])
            if len(group) == 254:
                out += b"\xff" + group
                group, just_full = b"", True
    if not just_full:
        out += bytes([len(group) + 1]) + group
    return out + b"\x00"


def leb128(n):
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


RUN254 = bytes(range(1, 255))

# connection::stress: codec (which: % 6 picks raw, delimiter, fixed, length
# field, varint, COBS; 0x80 skip oversize), max_frame - 1, then the limits
# (flags, high, low, bytes, budget, idle, read, stall, drain; timeouts in ms,
# 0 none, 255 Duration::MAX), rx extra, tx size - 1, start in ms, ops.
def stress(which, max_minus_1, idle=0, read=0, stall=0, drain=0, budget=0,
           bytes_in=0, high=0, low=0, flags=0, tx=63):
    return bytes([which, max_minus_1, flags, high, low, bytes_in, budget,
                  idle, read, stall, drain, 0, tx, 0])


def op_read(data):
    return bytes([0, len(data)]) + data


def op_frames(reply):
    return bytes([2, reply])


def op_write(n):
    return bytes([4, n])


def op_advance(ms):
    return bytes([5, ms])


def op_timeout():
    return b"\x07"


def op_push(data):
    return bytes([9, len(data)]) + data


def op_park():
    return b"\x0a"


def op_wake():
    return b"\x0b"


def op_close(how):
    return bytes([12, how])


SEEDS = {
    "decode_delimiter": {
        "lines": delimiter([b"\n", b"\r\n"], 64) + splits(1)
        + b"a\nbb\r\n\n\r\nc\rd\ntail",
        "lines_keep_skip": delimiter([b"\n", b"\r\n"], 8, keep=True, skip=True)
        + splits(3, 1) + b"ab\n0123456789\ncd\r\nxxxxxxxxxx\r\r\n",
        "end": delimiter([b"END"], 32) + splits(6, 1, 1, 3, 5)
        + b"helloENDworldEND",
        "inner_delimiter": delimiter([b"XYZ", b"Y"], 16) + splits() + b"aXYZbYcXY",
        "longest_wins": delimiter([b"b", b"ab", b"cab"], 16) + splits(2)
        + b"xcabyabzb",
        "four_last_bytes": delimiter([b"1", b"2", b"3", b"4"], 4, skip=True)
        + splits(1) + b"a1b2c3d4eeeee1",
        "long_delimiter": delimiter([b"-" * 15 + b"|"], 40) + splits(7)
        + b"x" + b"-" * 15 + b"|" + b"-" * 14 + b"|" + b"-" * 15 + b"|",
    },
    "decode_fixed": {
        "four": size(4) + splits(3, 1) + b"abcdefghij",
        "one": size(1) + splits() + b"xyz",
        "huge": size(None) + splits(1) + b"never a frame",
    },
    "decode_length_field": {
        # The seven examples of Netty's LengthFieldBasedFrameDecoder.
        "netty1": length_field(2, strip=0) + splits(1) + b"\x00\x0c" + HELLO,
        "netty2": length_field(2, strip=2) + splits() + b"\x00\x0c" + HELLO,
        "netty3": length_field(2, adjust=-2, strip=0) + splits(5)
        + b"\x00\x0e" + HELLO,
        "netty4": length_field(3, offset=2, strip=0) + splits(2)
        + b"\xca\xfe\x00\x00\x0c" + HELLO,
        "netty5": length_field(3, adjust=2, strip=0) + splits(4)
        + b"\x00\x00\x0c\xca\xfe" + HELLO,
        "netty6": length_field(2, offset=1, adjust=1, strip=3) + splits(1)
        + b"\xca\x00\x0c\xfe" + HELLO,
        "netty7": length_field(2, offset=1, adjust=-3, strip=3) + splits(3)
        + b"\xca\x00\x10\xfe" + HELLO,
        "u64_le_oversize_skip": length_field(8, little=True, max_frame=32, skip=True)
        + splits(3) + struct.pack("<Q", 40) + b"s" * 40 + struct.pack("<Q", 2) + b"ok",
        "adjust_min": length_field(4, adjust=-(2**63)) + splits()
        + b"\xff\xff\xff\xff" + HELLO,
        "adjust_max_width8": length_field(8, adjust=2**63 - 1, max_frame=None)
        + splits() + b"\xff" * 8 + HELLO,
        "zero_length_frames": length_field(1, strip=0) + splits(1) + b"\x00\x00\x00",
    },
    "decode_varint": {
        "frames": varint() + splits(1) + b"\x05hello\x00" + leb128(300) + b"p" * 300,
        "ten_byte_max": varint() + splits(2) + b"\xff" * 9 + b"\x01",
        "ten_byte_zero": varint() + splits() + b"\x80" * 9 + b"\x00",
        "overflow": varint() + splits(1) + b"\xff" * 9 + b"\x02",
        "too_long": varint(max_prefix=4) + splits() + b"\xff\xff\xff\xff\xff",
        "mqtt": varint(max_prefix=4, offset=1, strip=0) + splits(3)
        + b"\xc0\x00\x30\xc8\x01" + b"m" * 200,
        "prefix_past_max": varint(max_frame=3) + splits(1) + b"\x80\x80\x80\x01",
        "oversize_skip": varint(max_frame=8, skip=True) + splits(2)
        + b"\x0a" + b"z" * 10 + b"\x02ok",
        "adjust_min": varint(adjust=-(2**63)) + splits() + b"\x01x",
    },
    "decode_cobs": {
        "frames": cobs_config(64) + splits(1) + bytes.fromhex("0311220233 00 0100 00 00"),
        "run254": cobs_config(300) + splits(100) + cobs_encode(RUN254),
        "run255": cobs_config(600) + splits(7) + cobs_encode(RUN254 + b"\x01"),
        "run254_zero": cobs_config(600) + splits() + cobs_encode(RUN254 + b"\x00"),
        "invalid": cobs_config(64) + splits(1) + bytes.fromhex("051100 0100"),
        "oversize_skip": cobs_config(4, skip=True) + splits(2)
        + b"\x06abcde\x00\x02x\x00",
    },
    "decode_raw": {
        "small_max": size(3) + splits(1, 5) + b"0123456789",
        "big": size(None) + splits() + b"all at once",
    },
    "roundtrip_delimiter": {
        "lines": delimiter([b"\n", b"\r\n"], 16) + splits(1)
        + payloads(b"hello", b"", b"a\rb", b"ab\r", b"a\nb", b"x" * 16),
        "keep": delimiter([b"\n", b"\r\n"], 16, keep=True) + splits(2)
        + payloads(b"ab\r\n", b"ab", b"a\nb\n", b"\n"),
        "multi": delimiter([b"Y", b"XYZ", b"--"], 32) + splits(3)
        + payloads(b"aX", b"a-", b"aXZ", b"XY"),
    },
    "roundtrip_fixed": {
        "four": size(4) + splits(3) + payloads(b"abcd", b"abc", b"abcde", b"wxyz"),
    },
    "roundtrip_length_field": {
        "u16": length_field(2, max_frame=64) + splits(1)
        + payloads(b"hi", b"", b"y" * 62, b"n" * 63),
        "u8_not_representable": length_field(1) + splits()
        + payloads(b"a" * 255, b"b" * 256),
        "whole_frame_le": length_field(4, adjust=-4, little=True, strip=4) + splits(2)
        + payloads(b"abc", b""),
        "u24_adjust": length_field(3, adjust=5) + splits(4)
        + payloads(b"abcdef", b"abcd"),
    },
    "roundtrip_varint": {
        "sizes": varint() + splits(1)
        + payloads(b"", b"s" * 127, b"m" * 128, b"l" * 300),
        "one_byte_prefix": varint(max_prefix=1) + splits(50)
        + payloads(b"a" * 127, b"b" * 128),
        "small_max": varint(max_frame=10) + splits()
        + payloads(b"123456789", b"1234567890"),
    },
    "roundtrip_cobs": {
        "zeros_and_runs": cobs_config(1100) + splits(5)
        + payloads(b"", b"\x00", b"\x11\x22\x00\x33", RUN254, RUN254 + b"\x00",
                   RUN254 + b"\x01", bytes(600)),
        "oversize": cobs_config(10) + splits(1) + payloads(b"12345678", b"123456789"),
    },
    "roundtrip_raw": {
        "small_max": size(8) + splits(3) + payloads(b"", b"abc", b"12345678", b"x" * 20),
    },
    "connection": {
        # Tags: 0 send (len, bytes: 0 a, 1 b, 2 LF), 4 write, 7 advance, 9 EOF.
        "echo_then_eof": b"\x00\x04\x00\x02\x01\x02" + b"\x09" + b"\x04\x40",
        "read_timeout": b"\x00\x03\x00\x00\x00" + b"\x07\x30\x07\x30" + b"\x04\x10",
        "idle_timeout": b"\x00\x02\x00\x02" + b"\x04\x02" + b"\x07\x64",
        "oversize": b"\x00\x28" + b"\x00" * 40 + b"\x04\x40",
        "backpressure": (b"\x00\x08" + b"\x00" * 7 + b"\x02") * 6
        + b"\x04\x08\x04\x08\x00\x02\x01\x02\x04\x40",
        "eof_with_partial": b"\x00\x05\x00\x02\x01\x01\x01\x09\x04\x08",
        # The same bytes also drive `connection::stress` (any codec); these
        # seeds are written for its layout.
        "stress_skip_trickle": stress(0x81, 16, read=100)
        + op_read(b"\xff\xff") + op_frames(1)
        + (op_read(b"z") + op_frames(1) + op_advance(30) + op_timeout()) * 5,
        "stress_slow_reader": stress(1, 31, stall=100, idle=50)
        + op_read(b"0123456789\n") + op_frames(1)
        + (op_advance(30) + op_timeout() + op_write(1)) * 5,
        "stress_budget": stress(1, 31, budget=4)
        + op_read(b"a\nb\nc\nd\ne\nf\ng\n") + op_frames(1) + op_write(64)
        + op_wake() + op_frames(1) + op_wake() + op_frames(1),
        "stress_push_park": stress(5, 20, drain=40)
        + op_push(b"one") + op_write(64) + op_park() + op_push(b"two")
        + op_write(64) + op_park() + b"\x0a\x00" + op_close(0) + op_timeout(),
        "stress_time_jumps": stress(0x82, 12, idle=255, read=254, stall=255, drain=255,
                                    bytes_in=255)
        + op_read(b"\x7f\x01") + op_frames(1) + b"\x06\xfe\xff" + op_timeout()
        + b"\x06\xff\xff" + op_timeout() + op_read(b"x") + op_frames(3),
    },
}

for target, seeds in SEEDS.items():
    folder = os.path.join(HERE, "seeds", target)
    os.makedirs(folder, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
