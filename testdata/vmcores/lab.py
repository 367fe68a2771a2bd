#!/usr/bin/env python3
"""Host-side helpers of the vmcore lab (stdlib only).

  lab.py qmp SOCK JSON...         run QMP commands in order; exit 1 on the first error
  lab.py wait LOG PATTERN SECS    wait until LOG has a line matching PATTERN; print it
  lab.py split LOG DIR            write each @@VMLEAK-BEGIN name@@ section of LOG to DIR/name
  lab.py manifest DIR JSON        write DIR/manifest.json from a partial JSON (adds sizes, sha256)
  lab.py modorder MODDIR MOD...   print MOD... with their dependencies, load order first
"""
import hashlib
import json
import lzma
import os
import re
import socket
import sys
import time


def qmp(sock_path, commands):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for _ in range(100):
        try:
            s.connect(sock_path)
            break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit(f"lab.py: cannot connect to QMP at {sock_path}")
    f = s.makefile("rw")
    json.loads(f.readline())  # greeting
    for cmd in ['{"execute":"qmp_capabilities"}'] + commands:
        f.write(cmd + "\n")
        f.flush()
        while True:
            line = f.readline()
            if not line:
                sys.exit(f"lab.py: QMP closed during {cmd}")
            msg = json.loads(line)
            if "return" in msg:
                break
            if "error" in msg:
                sys.exit(f"lab.py: QMP {cmd}: {msg['error']}")
            # events (STOP, RESUME, DUMP_COMPLETED...) are skipped


def wait(log, pattern, secs):
    rx = re.compile(pattern)
    deadline = time.time() + float(secs)
    while time.time() < deadline:
        try:
            with open(log, "rb") as f:
                for line in f.read().decode("utf-8", "replace").splitlines():
                    if rx.search(line):
                        print(line.strip("\r\n"))
                        return
        except FileNotFoundError:
            pass
        time.sleep(0.5)
    sys.exit(f"lab.py: timed out after {secs}s waiting for /{pattern}/ in {log}")


def split(log, outdir):
    text = open(log, "rb").read().decode("utf-8", "replace").replace("\r", "")
    os.makedirs(outdir, exist_ok=True)
    found = 0
    for m in re.finditer(r"@@VMLEAK-BEGIN (\S+)@@\n(.*?)@@VMLEAK-END \1@@", text, re.S):
        with open(os.path.join(outdir, m.group(1)), "w") as f:
            f.write(m.group(2))
        found += 1
    if not found:
        sys.exit(f"lab.py: no oracle sections in {log}")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 22)
            if not b:
                return h.hexdigest()
            h.update(b)


def manifest(outdir, partial):
    m = json.loads(partial)
    for d in m.get("dumps", []):
        p = os.path.join(outdir, d["file"])
        d["size"] = os.path.getsize(p)
        d["sha256"] = sha256(p)
    m["oracles"] = sorted(
        os.path.relpath(os.path.join(r, f), outdir)
        for r, _, fs in os.walk(os.path.join(outdir, "oracle"))
        for f in fs
    )
    tmp = os.path.join(outdir, "manifest.json.tmp")
    with open(tmp, "w") as f:
        json.dump(m, f, indent=2, sort_keys=True)
        f.write("\n")
    os.rename(tmp, os.path.join(outdir, "manifest.json"))


def modorder(moddir, mods):
    # Debian ships no modules.dep (depmod runs at install), so read each
    # module's own .modinfo "depends=" string instead.
    paths = {}
    for r, _, fs in os.walk(moddir):
        for f in fs:
            if re.search(r"\.ko(\.xz)?$", f):
                paths[modname(f)] = os.path.join(r, f)
    builtin = set()
    bf = os.path.join(moddir, "modules.builtin")
    if os.path.exists(bf):
        builtin = {modname(l.strip()) for l in open(bf)}
    order, seen = [], set()

    def visit(m):
        if m in seen or (m in builtin and m not in paths):
            return
        seen.add(m)
        if m not in paths:
            # Not every package ships modules.builtin (sid's does not).
            print(f"lab.py: module {m} not under {moddir}: assuming it is built in", file=sys.stderr)
            return
        data = open(paths[m], "rb").read()
        if paths[m].endswith(".xz"):
            data = lzma.decompress(data)
        dm = re.search(rb"\0depends=([^\0]*)\0", data)
        for d in (dm.group(1).decode().split(",") if dm else []):
            if d:
                visit(d.replace("-", "_"))
        order.append(m)

    for m in mods:
        visit(m)
    for m in order:
        print(m, paths[m])


def modname(path):
    base = os.path.basename(path)
    base = re.sub(r"\.ko(\.xz|\.zst|\.gz)?$", "", base)
    return base.replace("-", "_")


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "qmp":
        qmp(args[0], args[1:])
    elif cmd == "wait":
        wait(*args)
    elif cmd == "split":
        split(*args)
    elif cmd == "manifest":
        manifest(*args)
    elif cmd == "modorder":
        modorder(args[0], args[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
