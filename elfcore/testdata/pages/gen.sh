#!/bin/sh
# Regenerates the compressed page fixtures with the reference C
# implementations, so the Go decoders are never tested against the Go
# encoders. Needs Debian's python3-lzo and python3-snappy (both wrap the C
# libraries) and the zstd CLI:
#   apt-get install python3-lzo python3-snappy zstd
# Outputs: pageN.raw (4096 bytes) and pageN.{zlib,lzo,snappy,zst}.
set -eu
cd "$(dirname "$0")"
/usr/bin/python3 - <<'PY'
import struct, zlib, lzo, snappy

def lcg(seed):
    x = seed
    while True:
        x = (x * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        yield x >> 56

pages = []
# page0: text, like a log buffer
t = b"".join(b"[%5d.%06d] vmleak: synthetic kernel log line %d\n" % (i, i * 7919 % 1000000, i) for i in range(200))
pages.append(t[:4096])
# page1: a page of kernel-ish pointers and small integers
pages.append(b"".join(struct.pack("<QQ", 0xffff888000000000 + 64 * i, i) for i in range(256)))
# page2: half pseudo-random bytes, half zeros
g = lcg(1)
pages.append(bytes(next(g) for _ in range(2048)) + bytes(2048))
# page3: sparse: a few non-zero bytes in a zero page
p = bytearray(4096)
for i in range(0, 4096, 509):
    p[i] = (i * 37) & 0xff
pages.append(bytes(p))

for i, data in enumerate(pages):
    assert len(data) == 4096
    open("page%d.raw" % i, "wb").write(data)
    # makedumpfile uses compress2(..., Z_BEST_SPEED), lzo1x_1_compress and
    # snappy_compress; python's lzo.compress(data, 1, False) is raw LZO1X-1
    # without the python-lzo length header.
    open("page%d.zlib" % i, "wb").write(zlib.compress(data, 1))
    open("page%d.lzo" % i, "wb").write(lzo.compress(data, 1, False))
    open("page%d.snappy" % i, "wb").write(snappy.compress(data))
PY
for f in page*.raw; do
	zstd -q -f -1 --no-check "$f" -o "${f%.raw}.zst"
done
