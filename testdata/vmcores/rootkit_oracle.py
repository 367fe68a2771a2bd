#!/usr/bin/env python3
"""Ground truth and crash's view of a dump with the rootkit-like module.

  rootkit_oracle.py DUMP VMLINUX CRASHDIR

vmleak_rootkit (rootkit/vmleak_rootkit.c) prints every address it hooks,
patches or allocates to the kernel log ("vmleak_rootkit: KIND key=value...");
the guest's console is quiet, so the lines come from crash's `log` of the
dump. Pass 1 reads them with crash's view of the kernel's own symbols; pass 2
asks crash about each printed address. Both passes are checked (the table
entry crash reads is the module's hook, `mod` does not list the module, the
patched function starts with a jmp to the module's function), the
transcript is written to CRASHDIR/<dump>.rootkit (the whatis format of
lab.py: "$ COMMAND", then "> LINE" per output line), and the manifest's
"rootkit" object is printed on stdout.
"""
import json
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402  (CrashSession)

MODULE = "vmleak_rootkit"
# What the module hooks: its source's constants (checked against its log).
NR, NR_NAME = 217, "getdents64"
KPROBE, FTRACE, PATCH = "do_sys_openat2", "vfs_statx", "version_proc_show"
KINDS = ["kallsyms_lookup_name", "module", "stash", "syscall", "kprobe", "ftrace", "patch", "hidden"]
HEX = r"[0-9a-f]+"


class OracleError(Exception):
    pass


def parse_log(text):
    """{kind: {key: value}} from the module's log lines; %ps values lose their [module]."""
    facts, lines = {}, []
    for l in text.splitlines():
        m = re.search(MODULE + r": (.*)$", l)
        if not m:
            continue
        lines.append(l.rstrip())
        body = re.sub(r" \[\w+\]", "", m.group(1))
        words = body.split()
        kind = words[0].split("=")[0]
        kv = dict(w.split("=", 1) for w in words if "=" in w)
        facts[kind] = kv
    missing = [k for k in KINDS if k not in facts]
    if missing:
        raise OracleError(f"no {MODULE} log lines for {missing}:\n" + "\n".join(lines))
    return facts, lines


def hx(s):
    return int(s, 16)


def addr(s):
    return f"0x{hx(s):x}"


def need(cond, why, out=""):
    if not cond:
        raise OracleError(why + ("; crash said:\n" + out if out else ""))


def sym_of(out):
    """crash `sym ADDR` -> 'name+off' (or the error line)."""
    m = re.match(r"^" + HEX + r" \(.\) (\S+)", out)
    return m.group(1) if m else out.strip()


def main(dump, vmlinux, crashdir):
    tmp = tempfile.mkdtemp(prefix="rootkit.")
    crash = None
    try:
        crash = lab.CrashSession(vmlinux, dump, tmp)
        p1cmds = [("log", "log"), ("mod", "mod"), ("table", f"p/x sys_call_table[{NR}]"),
                  ("sym-table", "sym sys_call_table"), ("sym-old", f"sym __x64_sys_{NR_NAME}"),
                  ("sym-kprobe", f"sym {KPROBE}"), ("sym-ftrace", f"sym {FTRACE}"), ("sym-patch", f"sym {PATCH}"),
                  ("dis-patch", f"dis {PATCH} 3")]
        p1 = crash.batch(p1cmds)
        f, loglines = parse_log(p1["log"])
        sc, kp, ft, pa, st, mo = f["syscall"], f["kprobe"], f["ftrace"], f["patch"], f["stash"], f["module"]
        need(int(sc["nr"]) == NR, f"syscall nr {sc['nr']}")
        need(kp["symbol"] == KPROBE and ft["function"] == FTRACE and pa["function"] == PATCH,
             "hooked functions differ from the module's source: " + json.dumps(f))
        p2cmds = [("rd-entry", f"rd -64 {sc['entry']} 1"), ("rds-entry", f"rd -s {sc['entry']} 1"),
                  ("sym-new", f"sym {sc['new']}"), ("sym-oldaddr", f"sym {sc['old']}"),
                  ("kmem-new", f"kmem {sc['new']}"),
                  ("dis-addr", f"dis {pa['addr']} 3"), ("rd-patch", f"rd -8 {pa['addr']} 5"),
                  ("sym-target", f"sym {pa['target']}"), ("sym-handler", f"sym {kp['handler']}"),
                  ("sym-callback", f"sym {ft['callback']}"), ("sym-site", f"sym {st['site']}"),
                  ("dis-kprobe", f"dis {kp['addr']} 1"), ("dis-ftrace", f"dis {ft['addr']} 1"),
                  ("struct-module", f"struct module.name,state {mo['module']}"),
                  ("struct-kprobe", f"struct kprobe.addr,symbol_name,pre_handler {kp['kprobe']}"),
                  ("struct-ops", f"struct ftrace_ops.func,flags {ft['ops']}"),
                  ("kmem-s", f"kmem -s {st['cache']}")]
        p2 = crash.batch(p2cmds)
        crash.close()
        crash = None

        # The checks the fixture stands for.
        mod = p1["mod"]
        need(not re.search(r"\b" + MODULE + r"\b", mod), f"crash mod lists {MODULE}", mod)
        for m in ("vmleak_test", "vmleak_peer"):
            need(re.search(r"\b" + m + r"\b", mod), f"crash mod does not list {m}", mod)
        m = re.search(r"= (0x" + HEX + r")", p1["table"])
        need(m and int(m.group(1), 16) == hx(sc["new"]), f"sys_call_table[{NR}] is not {sc['new']}", p1["table"])
        table_entry = m.group(1)
        m = re.search(r"^" + HEX + r":\s+(" + HEX + r")", p2["rd-entry"], re.M)
        need(m and hx(m.group(1)) == hx(sc["new"]), "rd of the table entry disagrees", p2["rd-entry"])
        need(hx(p1["sym-table"].split()[0]) == hx(sc["table"]), "sys_call_table address", p1["sym-table"])
        need(hx(p1["sym-old"].split()[0]) == hx(sc["old"]), "old entry is not the kernel's", p1["sym-old"])
        for k, v in (("sym-kprobe", kp["addr"]), ("sym-ftrace", ft["addr"]), ("sym-patch", pa["addr"])):
            need(hx(p1[k].split()[0]) == hx(v), f"{k}: address {v}", p1[k])
        got = bytes(int(b, 16) for b in re.findall(r"\b([0-9a-f]{2})\b", p2["rd-patch"].split(":", 1)[1][:48]))
        need(got.hex() == pa["new"] and got[0] == 0xE9, f"patched bytes {got.hex()}, module wrote {pa['new']}",
             p2["rd-patch"])
        rel = int.from_bytes(got[1:5], "little", signed=True)
        need(hx(pa["addr"]) + 5 + rel == hx(pa["target"]), "jmp target differs from the module's function")
        first = p1["dis-patch"].splitlines()[0]
        m = re.search(r"\bjmp\w*\s+(0x" + HEX + r")", first)
        need(m and int(m.group(1), 16) == hx(pa["target"]), "crash dis shows no jmp to the target", p1["dis-patch"])

        transcript = [f"# vmleak rootkit oracle: crash {lab.crash_version()} on {os.path.basename(dump)}, "
                      "written by testdata/vmcores/rootkit_oracle.py",
                      "# One entry (the format of lab.py whatis): == rootkit <struct module>, facts, then each crash",
                      "# command as \"$ CMD\" and its output as \"> LINE\"; `log` is cut to the module's lines.", "",
                      f"== rootkit {hx(mo['module']):x}", f"module={MODULE}", "source=crash log"]
        for name, c in p1cmds + p2cmds:
            out = "\n".join(loglines) if name == "log" else (p1 if name in p1 else p2)[name]
            transcript.append(f"$ {c}")
            transcript += [("> " + l).rstrip() for l in out.rstrip("\n").split("\n")]
            transcript.append("")
        os.makedirs(crashdir, exist_ok=True)
        base = os.path.join(crashdir, os.path.basename(dump) + ".rootkit")
        with open(base + ".tmp", "w") as fo:
            fo.write("\n".join(transcript))
        os.rename(base + ".tmp", base)

        crash_sym = lambda k: sym_of(p2[k])  # noqa: E731
        # CACHE OBJSIZE ALLOCATED TOTAL SLABS SSIZE NAME
        kmem_s = re.search(r"^" + HEX + r"\s+\d+\s+(\d+)\s+\d+\s+\d+\s+\S+\s+" + st["cache"] + r"\s*$",
                           p2["kmem-s"], re.M)
        rk = {
            "module": MODULE, "struct_module": addr(mo["module"]), "core_base": addr(mo["core_base"]),
            "core_size": int(mo["core_size"]), "kallsyms_lookup_name": addr(f["kallsyms_lookup_name"]["kallsyms_lookup_name"]),
            "syscall": {"nr": NR, "name": NR_NAME, "table": addr(sc["table"]), "entry": addr(sc["entry"]),
                        "old": addr(sc["old"]), "old_function": sc["old_sym"], "new": addr(sc["new"]),
                        "hook": sc["new_sym"]},
            "kprobe": {"symbol": kp["symbol"], "addr": addr(kp["addr"]), "kprobe": addr(kp["kprobe"]),
                       "handler": kp["handler_sym"], "handler_addr": addr(kp["handler"])},
            "ftrace": {"function": ft["function"], "addr": addr(ft["addr"]), "ops": addr(ft["ops"]),
                       "callback": ft["callback_sym"], "callback_addr": addr(ft["callback"])},
            "patch": {"function": pa["function"], "addr": addr(pa["addr"]), "orig": pa["orig"], "new": pa["new"],
                      "target": pa["target_sym"], "target_addr": addr(pa["target"])},
            "cache": st["cache"], "cache_addr": addr(st["cache_addr"]), "nobj": int(st["nobj"]),
            "leak": int(st["leak"]), "leak_size": int(st["leak_size"]), "leak_site": st["site_sym"],
            "leak_site_addr": addr(st["site"]),
            "oracle": os.path.relpath(base, os.path.dirname(crashdir)),
            "crash": {"table_entry": table_entry, "mod_lists_module": False,
                      "sym_new": crash_sym("sym-new"), "sym_handler": crash_sym("sym-handler"),
                      "sym_callback": crash_sym("sym-callback"), "sym_target": crash_sym("sym-target"),
                      "dis_patch": first.strip(),
                      "cache_allocated": int(kmem_s.group(1)) if kmem_s else None,
                      "kmem_new": "vmap area" if "VMAP_AREA" in p2["kmem-new"] else p2["kmem-new"].strip()},
        }
        print(json.dumps(rk, separators=(",", ":")))
    except (OracleError, lab.WhatisError) as e:
        sys.exit(f"rootkit_oracle.py: {os.path.basename(dump)}: {e}")
    finally:
        if crash:
            crash.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
