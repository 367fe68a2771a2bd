#!/usr/bin/env python3
"""Host-side helpers of the vmcore lab (stdlib only).

  lab.py qmp SOCK JSON...         run QMP commands in order; exit 1 on the first error
  lab.py wait LOG PATTERN SECS    wait until LOG has a line matching PATTERN; print it
  lab.py split LOG DIR            write each @@VMLEAK-BEGIN name@@ section of LOG to DIR/name
  lab.py manifest DIR JSON        write DIR/manifest.json from a partial JSON (adds sizes, sha256)
  lab.py modorder MODDIR MOD...   print MOD... with their dependencies, load order first
  lab.py whatis DIR VMLINUX       crash's answers for addresses of every kind (cached; see below)
"""
import hashlib
import json
import lzma
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
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


def alive(pid):
    """Whether process pid runs: a zombie (exited, not yet reaped by the
    shell that started it) does not."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def wait(log, pattern, secs, pid=None):
    """Waits for a line matching pattern in log; with pid (the guest's QEMU),
    stops early with exit code 3 once that process is gone and the line
    never came (a guest that crashed and, under -no-reboot, ended QEMU)."""
    rx = re.compile(pattern)
    deadline = time.time() + float(secs)
    while time.time() < deadline:
        gone = pid is not None and not alive(pid)
        try:
            with open(log, "rb") as f:
                for line in f.read().decode("utf-8", "replace").splitlines():
                    if rx.search(line):
                        print(line.strip("\r\n"))
                        return
        except FileNotFoundError:
            pass
        if gone:
            print(f"lab.py: QEMU (pid {pid}) exited before /{pattern}/ appeared in {log}", file=sys.stderr)
            sys.exit(3)
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
    m["oracles"] = list_oracles(outdir)
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


# ---- whatis oracle ----
# Addresses of every kind `vmleak whatis` must classify, chosen from crash's own
# listings of one dump (pass 1) and answered by crash (pass 2; both passes are
# command batches of one crash session). Written to oracle/crash/<dump>.whatis,
# a line-oriented file:
#
#   # ...                 comments
#   == KIND ADDR          starts one block; ADDR is bare lower-case hex
#   key=value             a fact the answer must match (value: rest of the line)
#   $ COMMAND             a crash command run in pass 2 ...
#   > LINE                ... and each line of its output (trailing blanks dropped)
#
# Every fact comes from crash's output (or, for the vmalloc caller, the guest's
# /proc/vmallocinfo, which crash's answer must agree with); the only arithmetic
# is rebasing numbers crash printed (struct page -> pfn -> direct-map address,
# per-CPU offset + symbol). The step is cached by a key over this section of
# lab.py, crash's version and the dump's sha256, kept in <dump>.whatis.key, so
# changing it re-runs crash without rebuilding any dump.

WHATIS_CACHES = ["vmleak_test_obj", "kmalloc-1k"]  # first with an object of each state wins
WHATIS_MODULE = "vmleak_test"
WHATIS_MODULE_DATA = "bss_objs"  # a .bss array of the test module
WHATIS_PERCPU = "runqueues"
WHATIS_PID = 1
WHATIS_KINDS = ["slab-allocated", "slab-free", "slab-page", "vmalloc", "module-text",
                "module-data", "percpu", "stack", "direct-free", "direct-pagecache"]
# vmalloc callers of areas that are some other kind (stacks, modules, per-CPU chunks)
WHATIS_NOT_VMALLOC = re.compile(r"^(kernel_clone|fork_idle|copy_process|alloc_thread_stack_node|dup_task_struct|"
                                r"load_module|module_alloc|pcpu_\w+|irq_init_percpu_irqstack|bpf_prog_pack_alloc|bpf_jit_\w+)$")
# Pass-1 listings kept beside the oracle (the rest, e.g. kmem -p, is only read).
WHATIS_KEEP = re.compile(r"^(kmem-v|kmem-o|ps|kmem-F|kmem-S\..*|kmem-slab\..*)$")
HEX = r"[0-9a-f]+"


class WhatisError(Exception):
    pass


def whatis_pass1():
    cmds = [("mod", "mod"), ("kmem-v", "kmem -v"), ("kmem-o", "kmem -o"), ("ps", "ps"),
            # crash 8.0.2's task table misses most tasks of these 6.1 dumps (ps
            # lists the idle tasks only), so pid 1 is found as the first task on
            # init_task.tasks (crash's `list` of all tasks would cost 12 s).
            ("task1", "p/x (char *)init_task.tasks.next - (unsigned long)&((struct task_struct *)0)->tasks"),
            ("kmem-F", "kmem -F"), ("kmem-p", "kmem -p"), ("sym-m", "sym -m " + WHATIS_MODULE),
            ("sym-percpu", "sym " + WHATIS_PERCPU), ("help-m", "help -m"), ("sizeof-page", "p sizeof(struct page)")]
    return cmds + [("kmem-S." + c, "kmem -S " + c) for c in WHATIS_CACHES]


def crash_version():
    r = subprocess.run(["crash", "--version"], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    m = re.search(r"crash (\S+)", r.stdout)
    return m.group(1) if m else "unknown"


class CrashSession:
    """One crash process fed command batches on stdin: each command's output
    goes to its own file, and a shell escape touching a stamp file marks the end
    of a batch. crash's start-up (11-20 s, most of the cost) is paid once."""

    def __init__(self, vmlinux, dump, tmp):
        self.tmp, self.n = tmp, 0
        self.log = open(os.path.join(tmp, "crash.log"), "wb")
        self.p = subprocess.Popen(["crash", "-s", vmlinux, dump], stdin=subprocess.PIPE,
                                  stdout=self.log, stderr=subprocess.STDOUT)

    def batch(self, cmds, timeout=900):
        """Runs (name, command) pairs in order; returns {name: output}."""
        self.n += 1
        d = os.path.join(self.tmp, str(self.n))
        os.makedirs(d)
        stamp = os.path.join(d, "done")
        text = "".join(f"{c} > {d}/{i}\n" for i, (_, c) in enumerate(cmds)) + f"!touch {stamp}\n"
        try:
            self.p.stdin.write(text.encode())
            self.p.stdin.flush()
        except BrokenPipeError:
            pass
        deadline = time.time() + timeout
        while not os.path.exists(stamp):
            if self.p.poll() is not None or time.time() > deadline:
                self.close()
                raise WhatisError(f"crash exited or hung (exit {self.p.returncode}):\n{self.tail()}")
            time.sleep(0.1)
        out = {}
        for i, (n, c) in enumerate(cmds):
            try:
                with open(f"{d}/{i}", errors="replace") as f:
                    out[n] = f.read()
            except FileNotFoundError:
                raise WhatisError(f"crash wrote nothing for `{c}`:\n{self.tail()}")
        return out

    def tail(self):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read()[-2000:].decode("utf-8", "replace")

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write(b"quit\n")
                self.p.stdin.close()
                self.p.wait(timeout=60)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()
        self.log.close()


def first(rx, text, what, flags=re.M):
    m = re.search(rx, text, flags)
    if not m:
        raise WhatisError(f"no {what} in crash's output:\n{text[:1500]}")
    return m


def parse_slab_objects(text):
    """`kmem -S` or `kmem ADDR` output -> (cache name, cache addr, [(obj, allocated, slab, note)])."""
    m = first(r"^CACHE\s+OBJSIZE.*\n(" + HEX + r")\s.*\s(\S+)\s*$", text, "CACHE row")
    cache_addr, cache = m.group(1), m.group(2)
    objs, slab, in_objs = [], None, False
    lines = text.splitlines()
    for i, l in enumerate(lines):
        if re.match(r"^\s*SLAB\s+MEMORY\s+NODE", l) and i + 1 < len(lines):
            slab, in_objs = lines[i + 1].split()[0], False
            continue
        if l.strip() == "FREE / [ALLOCATED]":
            in_objs = True
            continue
        if in_objs:
            o = re.match(r"^\s+(\[)?(" + HEX + r")\]?(?:\s+\((.*)\))?\s*$", l)
            if o:
                objs.append((o.group(2), bool(o.group(1)), slab, o.group(3) or ""))
                continue
            in_objs = False
    return cache, cache_addr, objs


def parse_slab_rows(text):
    """`kmem -S` slab rows: (section, slab, memory, total, allocated, free)."""
    rows, section, in_rows = [], "", False
    for l in text.splitlines():
        m = re.match(r"^(CPU \d+ SLAB|CPU \d+ PARTIAL|NODE \d+ PARTIAL|NODE \d+ FULL):\s*$", l)
        if m:
            section, in_rows = m.group(1), False
            continue
        if re.match(r"^\s*SLAB\s+MEMORY\s+NODE", l):
            in_rows = True
            continue
        m = re.match(r"^\s+(" + HEX + r")\s+(" + HEX + r")\s+\d+\s+(\d+)\s+(\d+)\s+(\d+)\s*$", l)
        if in_rows and m:
            rows.append((section, m.group(1), m.group(2), int(m.group(3)), int(m.group(4)), int(m.group(5))))
            continue
        in_rows = False
    return rows


def whatis_slab_fallback(p1):
    """crash lists the objects of CPU slabs only. Where no CPU slab holds an
    object of each state (slub_debug caches have none), list a partial slab's."""
    states = set()
    for c in WHATIS_CACHES:
        states |= {o[1] for o in parse_slab_objects(p1["kmem-S." + c])[2]}
    if states == {True, False}:
        return []
    cmds = []
    for c in WHATIS_CACHES:
        for section, slab, _, _, alloc, free in parse_slab_rows(p1["kmem-S." + c]):
            if "PARTIAL" in section and alloc and free:
                cmds.append(("kmem-slab." + c, "kmem " + slab))
                break
    return cmds


def parse_page_row(text):
    """The row under crash's `PAGE PHYSICAL MAPPING INDEX CNT FLAGS` header."""
    m = first(r"^\s*PAGE\s+PHYSICAL\s+MAPPING\s+INDEX\s+CNT\s+FLAGS\s*\n\s*(" + HEX + r")\s+(" + HEX +
              r")\s+(" + HEX + r")\s+(" + HEX + r")\s+(\d+)\s+(" + HEX + r")\s*(\S*)", text, "PAGE row")
    return {"page": m.group(1), "phys": int(m.group(2), 16), "mapping": m.group(3),
            "flags": m.group(7).split(",") if m.group(7) else []}


def parse_vmap_rows(text):
    return [(m.group(1), m.group(2), int(m.group(3), 16), int(m.group(4), 16), int(m.group(5)))
            for m in re.finditer(r"^(" + HEX + r")\s+(" + HEX + r")\s+(" + HEX + r") - (" + HEX + r")\s+(\d+)\s*$",
                                 text, re.M)]


def parse_tasks(text):
    """`p/x TASK` followed by `struct task_struct.pid,comm,stack TASK`."""
    tasks = []
    for m in re.finditer(r"^\$\d+ = 0x(" + HEX + r")\n\s+pid = (\d+),?\n\s+comm = \"(.*?)\",?\n\s+stack = 0x(" + HEX +
                         r"),?$", text, re.M):
        comm = m.group(3).split("\\000")[0]
        tasks.append({"task": m.group(1), "pid": int(m.group(2)), "comm": comm, "stack": m.group(4)})
    return tasks


def parse_vmallocinfo(text):
    areas = []
    for l in text.splitlines():
        m = re.match(r"^0x(" + HEX + r")-0x(" + HEX + r")\s+(\d+)\s*(.*)$", l)
        if not m:
            continue
        rest = m.group(4).split()
        caller = rest[0] if rest and "+0x" in rest[0] else ""
        areas.append({"start": int(m.group(1), 16), "end": int(m.group(2), 16), "size": int(m.group(3)),
                      "caller": caller.split("+")[0], "words": rest})
    return areas


def whatis_pick(p1, guest_vmallocinfo):
    """Chooses one address of every kind from the pass-1 listings."""
    picks = []  # (kind, addr, facts, [pass-2 commands])
    hx = lambda v: f"{v:x}"

    # Slab objects: the first allocated and the first free object crash lists.
    alloc = free = None
    for c in WHATIS_CACHES:
        for name, src in (("kmem-S." + c, f"kmem -S {c}"), ("kmem-slab." + c, "")):
            if name not in p1:
                continue
            cache, cache_addr, objs = parse_slab_objects(p1[name])
            for obj, is_alloc, slab, note in objs:
                where = src if name.startswith("kmem-S.") else f"kmem {slab}"
                if is_alloc and alloc is None:
                    alloc = (cache, obj, slab, note, where)
                if not is_alloc and free is None:
                    free = (cache, obj, slab, note, where)
    if alloc is None or free is None:
        raise WhatisError(f"no allocated or no free object listed in {WHATIS_CACHES}")
    cache, obj, slab, _, src = alloc
    a = int(obj, 16) + 0x10
    picks.append(("slab-allocated", a, {"cache": cache, "state": "allocated", "object": obj, "offset": "0x10",
                                        "slab": slab, "source": src}, [f"kmem {hx(a)}"]))
    cache, obj, slab, note, src = free
    facts = {"cache": cache, "state": "free", "object": obj, "offset": "0x0", "slab": slab, "source": src}
    if note:
        facts["crash_note"] = note
    picks.append(("slab-free", int(obj, 16), facts, [f"kmem {obj}"]))
    picks.append(("slab-page", int(alloc[2], 16), {"cache": alloc[0], "page": alloc[2], "state": "slab",
                                                   "source": alloc[4]}, [f"kmem {alloc[2]}"]))

    # vmalloc: the first area of kmem -v that the guest lists as a plain vmalloc.
    areas = parse_vmap_rows(p1["kmem-v"])
    if not areas:
        raise WhatisError("kmem -v listed no areas")
    guest = {(g["start"], g["end"]): g for g in parse_vmallocinfo(guest_vmallocinfo)}
    if not any((s, e) in guest for _, _, s, e, _ in areas):
        raise WhatisError("no kmem -v area is in the guest's vmallocinfo (hashed addresses?)")
    vm = None
    for va, vs, s, e, size in areas:
        g = guest.get((s, e))
        if g and "vmalloc" in g["words"] and g["caller"] and not WHATIS_NOT_VMALLOC.match(g["caller"]):
            vm = (va, vs, s, e, size, g)
            break
    if vm is None:
        raise WhatisError("no plain vmalloc area in both kmem -v and the guest's vmallocinfo")
    va, vs, s, e, size, g = vm
    a = s + 0x100
    picks.append(("vmalloc", a, {"start": hx(s), "end": hx(e), "size": str(size), "vmap_area": va,
                                 "vm_struct": vs, "guest_caller": g["caller"], "source": "kmem -v"},
                  [f"kmem {hx(a)}", f"struct vm_struct.addr,size,nr_pages,caller {vs}"]))

    # Module text and data of the test module.
    symm = p1["sym-m"]
    base = int(first(r"^(" + HEX + r") MODULE START: " + WHATIS_MODULE + r"\s*$", symm, "module start").group(1), 16)
    a = base + 0x10
    picks.append(("module-text", a, {"module": WHATIS_MODULE, "source": f"sym -m {WHATIS_MODULE}"},
                  [f"kmem {hx(a)}", f"sym {hx(a)}"]))
    d = int(first(r"^(" + HEX + r") \(.\) " + WHATIS_MODULE_DATA + r"\s*$", symm, WHATIS_MODULE_DATA).group(1), 16)
    a = d + 0x10
    picks.append(("module-data", a, {"module": WHATIS_MODULE, "symbol": WHATIS_MODULE_DATA, "offset": "0x10",
                                     "source": f"sym -m {WHATIS_MODULE}"}, [f"kmem {hx(a)}", f"sym {hx(a)}"]))

    # Per-CPU: CPU 1's copy of runqueues (CPU 0's on a one-CPU guest).
    offs = {int(m.group(1)): int(m.group(2), 16)
            for m in re.finditer(r"^\s*CPU (\d+): (" + HEX + r")\s*$", p1["kmem-o"], re.M)}
    if not offs:
        raise WhatisError("kmem -o listed no per-CPU offsets")
    cpu = 1 if 1 in offs else min(offs)
    sym = int(first(r"^(" + HEX + r") \(.\) " + WHATIS_PERCPU + r"\s*$", p1["sym-percpu"], WHATIS_PERCPU).group(1), 16)
    a = offs[cpu] + sym
    picks.append(("percpu", a, {"cpu": str(cpu), "symbol": WHATIS_PERCPU, "offset": "0x0",
                                "percpu_offset": hx(offs[cpu]), "symbol_value": hx(sym),
                                "source": f"kmem -o, sym {WHATIS_PERCPU}"},
                  [f"kmem {hx(a)}", f"struct rq.cpu {hx(a)}"]))

    # Kernel stack of pid 1.
    t = parse_tasks(p1["task1"] + p1["task1-fields"])
    if len(t) != 1 or t[0]["pid"] != WHATIS_PID:
        raise WhatisError(f"the first task after init_task is not pid {WHATIS_PID}: {p1['task1-fields']}")
    t = t[0]
    a = int(t["stack"], 16) + 0x200
    picks.append(("stack", a, {"pid": str(t["pid"]), "comm": t["comm"], "task": t["task"], "stack": t["stack"],
                               "offset": "0x200", "source": "init_task.tasks.next"},
                  [f"kmem {hx(a)}", f"struct task_struct.pid,comm,stack {t['task']}"]))

    # Direct map: a free buddy page (first listed outside ZONE_DMA) and a
    # page-cache page (first LRU page with a file mapping).
    pob = int(first(r"^\s*page_offset: (" + HEX + r")\s*$", p1["help-m"], "page_offset").group(1), 16)
    vmb = int(first(r"^\s*vmemmap_vaddr: (" + HEX + r")\s*$", p1["help-m"], "vmemmap_vaddr").group(1), 16)
    psz = int(first(r"= (\d+)\s*$", p1["sizeof-page"], "sizeof(struct page)").group(1))
    zone = order = None
    fpage = None
    for l in p1["kmem-F"].splitlines():
        m = re.match(r"^\s+(\d+)\s+(\w+)\s+\d+\s+\d+\s+" + HEX + r"\s+" + HEX + r"\s+\d+\s*$", l)
        if m:
            zone = m.group(2)
            continue
        m = re.match(r"^\s*(\d+)\s+\d+k\s+" + HEX + r"\s*$", l)
        if m:
            order = int(m.group(1))
            continue
        m = re.match(r"^(" + HEX + r")\s*$", l)
        if m and zone not in (None, "DMA"):
            fpage = (m.group(1), zone, order)
            break
    if fpage is None:
        raise WhatisError("kmem -F listed no free page outside ZONE_DMA")
    off = int(fpage[0], 16) - vmb
    if off < 0 or off % psz:
        raise WhatisError(f"free page {fpage[0]} is not a struct page of vmemmap {vmb:x}")
    pfn = off // psz
    a = pob + pfn * 4096 + 0x10
    picks.append(("direct-free", a, {"page": fpage[0], "pfn": hex(pfn), "zone": fpage[1], "order": str(fpage[2]),
                                     "state": "free", "offset": "0x10", "source": "kmem -F"}, [f"kmem {hx(a)}"]))
    pc = None
    for m in re.finditer(r"^(" + HEX + r")\s+(" + HEX + r")\s+(" + HEX + r")\s+" + HEX + r"\s+\d+\s+" + HEX +
                         r"\s+(\S+)\s*$", p1["kmem-p"], re.M):
        flags = m.group(4).split(",")
        mapping = int(m.group(3), 16)
        if "lru" in flags and "slab" not in flags and mapping and mapping & 3 == 0:
            pc = (m.group(1), int(m.group(2), 16), m.group(3))
            break
    if pc is None:
        raise WhatisError("kmem -p listed no page-cache page")
    a = pob + pc[1] + 0x10
    picks.append(("direct-pagecache", a, {"page": pc[0], "pfn": hex(pc[1] >> 12), "mapping": pc[2],
                                          "state": "pagecache", "offset": "0x10", "source": "kmem -p"},
                  [f"kmem {hx(a)}", f"struct address_space.host,nrpages,a_ops {pc[2]}"]))
    return picks


def whatis_verify(kind, addr, facts, outs):
    """Checks that crash's pass-2 answer says what the kind claims; adds facts read from it."""
    k = outs[0]

    def need(cond, why):
        if not cond:
            raise WhatisError(f"{kind} {addr:x}: {why}; crash said:\n" + "\n".join(outs))

    if kind.startswith("slab-"):
        cache, cache_addr, objs = parse_slab_objects(k)
        need(cache == facts["cache"], f"cache {cache}, want {facts['cache']}")
        if kind == "slab-page":
            row = parse_page_row(k)
            need(row["page"] == facts["page"] and "slab" in row["flags"], "no slab PAGE row for the page")
            need(row["mapping"] == cache_addr, f"page mapping {row['mapping']} is not the cache {cache_addr}")
            facts["pfn"] = hex(row["phys"] >> 12)
        else:
            want = facts["object"]
            hit = [o for o in objs if o[0] == want]
            need(len(objs) >= 1 and hit, f"object {want} not listed")
            need(hit[0][1] == (facts["state"] == "allocated"), f"object {want} not {facts['state']}")
            if facts["state"] == "allocated":
                need(f"[{want}]" in k, "allocated object not bracketed")
    elif kind in ("vmalloc", "module-text", "module-data", "stack"):
        rows = [r for r in parse_vmap_rows(k) if r[2] <= addr < r[3]]
        need(rows and "VMAP_AREA" in k, "no VMAP_AREA covering the address")
        if kind == "vmalloc":
            need(rows[0][1] == facts["vm_struct"], "another vm_struct")
            m = first(r"caller = 0x" + HEX + r" <(\w[\w.]*)(\+\d+)?>", outs[1], "vm_struct caller")
            facts["caller"] = m.group(1)
            need(m.group(1) == facts["guest_caller"], f"crash's caller {m.group(1)}, guest's {facts['guest_caller']}")
            facts["nr_pages"] = first(r"nr_pages = (\d+)", outs[1], "nr_pages").group(1)
        elif kind.startswith("module-"):
            m = first(r"^" + f"{addr:x}" + r" \(.\) (\w+)(?:\+(\d+))? \[(\w+)\]", outs[1], "module symbol")
            need(m.group(3) == facts["module"], f"module {m.group(3)}")
            if "symbol" in facts:
                need(m.group(1) == facts["symbol"], f"symbol {m.group(1)}")
            facts["symbol"] = m.group(1)
            facts["offset"] = hex(int(m.group(2) or 0))
            facts["area_start"] = f"{rows[0][2]:x}"
            facts["area_end"] = f"{rows[0][3]:x}"
        else:
            m = first(r"pid = (\d+),\n\s+comm = \"(.*?)\",\n\s+stack = 0x(" + HEX + ")", outs[1], "task fields")
            need(m.group(1) == facts["pid"] and m.group(3) == facts["stack"], "task_struct disagrees")
            pm = re.search(r"^\s*PID: (\d+)", k, re.M)
            if pm:  # crash names the task only when its task table has it
                need(pm.group(1) == facts["pid"], f"kmem names pid {pm.group(1)}")
                facts["crash_names_task"] = "yes"
            else:
                facts["crash_names_task"] = "no"
    elif kind == "percpu":
        m = first(r"cpu = (\d+),", outs[1], "rq.cpu")
        need(m.group(1) == facts["cpu"], f"rq.cpu {m.group(1)}")
        row = parse_page_row(k)
        facts["pfn"] = hex(row["phys"] >> 12)
    elif kind.startswith("direct-"):
        row = parse_page_row(k)
        need(row["page"] == facts["page"], f"PAGE {row['page']}, want {facts['page']}")
        need(hex(row["phys"] >> 12) == facts["pfn"], "PAGE row has another pfn")
        if kind == "direct-free":
            # The head of a block of 2^order pages is listed with the
            # address's place in it: "PAGE  (ADDR is 1st of 2 pages)".
            need("FREE_AREA_STRUCT" in k and re.search(r"^" + facts["page"] + r"(\s+\(\S+ is \S+ of \d+ pages\))?\s*$", k, re.M),
                 "not reported in a free area")
            facts["order"] = first(r"^\s*(\d+)\s+\d+k\s+" + HEX + r"\s*$", k, "free area").group(1)
        else:
            need(row["mapping"] == facts["mapping"] and "lru" in row["flags"], "not an LRU page of the mapping")
            m = first(r"host = 0x(" + HEX + r"),", outs[1], "address_space host")
            facts["host"] = m.group(1)
            m = re.search(r"a_ops = 0x" + HEX + r" <(\w+)>", outs[1])
            if m:
                facts["aops"] = m.group(1)
    return facts


def whatis_source():
    text = open(os.path.abspath(__file__)).read()
    return text[text.index("# ---- whatis oracle ----"):text.index("# ---- end whatis oracle ----")]


def whatis_choose_dump(m):
    """One non-flattened dump: memory is the same in every format of one capture."""
    ds = [d for d in m["dumps"] if d["format"] != "flattened" and d["index"] == 1]
    rank = {("kdump", "zlib"): 0, ("kdump", "lzo"): 1, ("elf", "none"): 2}
    ds.sort(key=lambda d: rank.get((d["format"], d["compression"]), 9))
    return ds[0] if ds else None


def whatis(outdir, vmlinux):
    with open(os.path.join(outdir, "manifest.json")) as f:
        m = json.load(f)
    d = whatis_choose_dump(m)
    crashdir = os.path.join(outdir, "oracle", "crash")
    if d is None or not os.path.exists(os.path.join(crashdir, d["file"] + ".kmem-s")):
        print(f"lab.py whatis: {m['name']}: crash cannot read this dump; no whatis oracle", file=sys.stderr)
        return
    base = os.path.join(crashdir, d["file"])
    ver = crash_version()
    key = hashlib.sha256((whatis_source() + ver + d["sha256"]).encode()).hexdigest()[:16]
    try:
        if open(base + ".whatis.key").read().strip() == key and os.path.exists(base + ".whatis"):
            print(f"lab.py whatis: {m['name']}: up to date", file=sys.stderr)
            return
    except FileNotFoundError:
        pass
    dump = os.path.join(outdir, d["file"])
    with open(os.path.join(outdir, "oracle", d["oracle"] + ".vmallocinfo")) as f:
        vmallocinfo = f.read()
    tmp = tempfile.mkdtemp(prefix="whatis.")
    crash = None
    try:
        crash = CrashSession(vmlinux, dump, tmp)
        p1cmds = whatis_pass1()
        p1 = crash.batch(p1cmds)
        # What pass 1 found needs a closer look: pid 1's task, and where no CPU
        # slab lists objects (slub_debug), a partial slab's objects.
        task = first(r"= 0x(" + HEX + r")\s*$", p1["task1"], "task address").group(1)
        more = [("task1-fields", f"struct task_struct.pid,comm,stack {task}")] + whatis_slab_fallback(p1)
        p1.update(crash.batch(more))
        p1cmds += more
        picks = whatis_pick(p1, vmallocinfo)
        p2cmds = [(f"{i}.{j}", c) for i, (_, _, _, cs) in enumerate(picks) for j, c in enumerate(cs)]
        p2 = crash.batch(p2cmds)
        crash.close()
        lines = [f"# vmleak whatis oracle: crash {ver} on {d['file']} ({m['name']}), written by testdata/vmcores/lab.py whatis",
                 "# == KIND ADDR, then key=value facts, then each crash command as \"$ CMD\" and its output as \"> LINE\".",
                 "# Addresses are bare hex; offset and pfn are 0x-prefixed hex; cpu, pid, order, size decimal.", ""]
        for i, (kind, addr, facts, cs) in enumerate(picks):
            outs = [p2[f"{i}.{j}"] for j in range(len(cs))]
            facts = whatis_verify(kind, addr, facts, outs)
            lines.append(f"== {kind} {addr:x}")
            lines += [f"{k}={v}" for k, v in facts.items()]
            for c, o in zip(cs, outs):
                lines.append(f"$ {c}")
                lines += [("> " + l).rstrip() for l in o.rstrip("\n").split("\n")]
            lines.append("")
        got = [p[0] for p in picks]
        if got != WHATIS_KINDS:
            raise WhatisError(f"kinds {got}, want {WHATIS_KINDS}")
        for f in os.listdir(crashdir):
            if f.startswith(d["file"] + ".") and WHATIS_KEEP.match(f[len(d["file"]) + 1:]):
                os.remove(os.path.join(crashdir, f))
        for n, _ in p1cmds:
            if WHATIS_KEEP.match(n):
                with open(f"{base}.{n}", "w") as f:
                    f.write(p1[n])
        with open(base + ".whatis.tmp", "w") as f:
            f.write("\n".join(lines))
        os.rename(base + ".whatis.tmp", base + ".whatis")
        with open(base + ".whatis.key", "w") as f:
            f.write(key + "\n")
    except WhatisError as e:
        sys.exit(f"lab.py whatis: {m['name']}/{d['file']}: {e}")
    finally:
        if crash:
            crash.close()
        shutil.rmtree(tmp, ignore_errors=True)
    relist_oracles(outdir)
    print(f"lab.py whatis: {m['name']}: {len(picks)} addresses in {os.path.relpath(base, outdir)}.whatis",
          file=sys.stderr)
# ---- end whatis oracle ----


def relist_oracles(outdir):
    """Rewrites manifest.json's list of oracle files (after a later step added some)."""
    path = os.path.join(outdir, "manifest.json")
    with open(path) as f:
        m = json.load(f)
    m["oracles"] = list_oracles(outdir)
    with open(path + ".tmp", "w") as f:
        json.dump(m, f, indent=2, sort_keys=True)
        f.write("\n")
    os.rename(path + ".tmp", path)


def list_oracles(outdir):
    return sorted(
        os.path.relpath(os.path.join(r, f), outdir)
        for r, _, fs in os.walk(os.path.join(outdir, "oracle"))
        for f in fs
    )


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
    elif cmd == "whatis":
        whatis(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
