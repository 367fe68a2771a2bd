#!/usr/bin/env python3
"""Cuts LiME's images out of the disks it wrote (stdlib only).

  cut.py lime DISK OUT          copy the lime-format image at the start of DISK to OUT;
                                print its ranges as JSON
  cut.py raw DISK OUT RANGES    copy the raw image of those ranges (JSON as printed by
                                "lime") at the start of DISK to OUT

LiME reports no length (its messages are debug-only, and the console is at
loglevel 1). The lime format is self-delimiting: 32-byte range headers (u32
magic 0x4C694D45, u32 version 1, u64 first and u64 last physical address,
inclusive, 8 reserved bytes), each followed by the range's bytes; the image
ends where no header follows. The raw format is those ranges' bytes back to
back, so its length comes from the ranges: both LiME copies walk the same
top-level "System RAM" resources of the same boot. Ranges are printed
half-open: {"start": first, "end": last + 1}, hex strings.
"""
import json
import shutil
import struct
import sys

MAGIC = 0x4C694D45
PAGE = 4096


def lime_ranges(disk):
    ranges, off = [], 0
    with open(disk, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        while off + 32 <= size:
            f.seek(off)
            magic, version, first, last = struct.unpack("<IIQQ", f.read(24))
            if magic != MAGIC:
                break
            if version != 1 or last < first:
                sys.exit(f"cut.py: {disk}: bad LiME header at {off:#x}: version {version}, {first:#x}-{last:#x}")
            n = last - first + 1
            if off + 32 + n > size:
                sys.exit(f"cut.py: {disk}: range {first:#x}-{last:#x} at {off:#x} runs past the disk")
            ranges.append((first, last + 1))
            off += 32 + n
    if not ranges:
        sys.exit(f"cut.py: {disk}: no LiME header at offset 0")
    return ranges, off


def copy(disk, out, n):
    with open(disk, "rb") as src, open(out, "wb") as dst:
        left = n
        while left:
            b = src.read(min(left, 1 << 22))
            if not b:
                sys.exit(f"cut.py: {disk} is shorter than {n} bytes")
            dst.write(b)
            left -= len(b)


def same_pages(lime, raw, ranges, samples=512):
    """How many of a sample of pages the two images agree on: most of memory
    (kernel text, page cache) did not change between the two LiME runs, so a
    raw image not laid out as the ranges back to back agrees on almost none."""
    total = sum(e - s for s, e in ranges)
    same = n = 0
    with open(lime, "rb") as fl, open(raw, "rb") as fr:
        for i in range(samples):
            roff = (total // PAGE * i // samples) * PAGE
            # where that raw offset lies in the lime image
            acc, loff = 0, 0
            for s, e in ranges:
                if roff < acc + (e - s):
                    loff += 32 + (roff - acc)
                    break
                acc += e - s
                loff += 32 + (e - s)
            fl.seek(loff)
            fr.seek(roff)
            a, b = fl.read(PAGE), fr.read(PAGE)
            n += 1
            same += a == b and any(a)
    return same, n


def main(argv):
    if len(argv) >= 4 and argv[1] == "lime":
        ranges, n = lime_ranges(argv[2])
        copy(argv[2], argv[3], n)
        print(json.dumps([{"start": hex(s), "end": hex(e)} for s, e in ranges]))
    elif len(argv) >= 5 and argv[1] == "raw":
        ranges = [(int(r["start"], 16), int(r["end"], 16)) for r in json.loads(argv[4])]
        copy(argv[2], argv[3], sum(e - s for s, e in ranges))
        lime = argv[3].rsplit("/", 1)[0] + "/lime.img"
        same, n = same_pages(lime, argv[3], ranges)
        if same * 20 < n:
            sys.exit(f"cut.py: {argv[3]}: only {same} of {n} sampled non-zero pages equal the lime image's")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
