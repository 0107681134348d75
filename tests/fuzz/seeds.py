#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus of one fuzz target into a build directory.

  seeds.py elf OUTDIR STAMP IMAGES_DIR   the guestos images built in IMAGES_DIR (*.elf),
                                         plus small hand-made images
  seeds.py options OUTDIR STAMP CASES    every s2vm run command line in
                                         tests/integration/cases.cfg, one word per line,
                                         plus the hostile option sets of issue 10
  seeds.py decode OUTDIR STAMP           every instruction form the x86 decoder knows,
                                         and near misses
  seeds.py virtq OUTDIR STAMP            virtqueues as guestos's driver and blkbad build
                                         them: good chains (direct, indirect, mixed) and
                                         each malformed kind of docs/DEVICES.md
  seeds.py api OUTDIR STAMP              vm.create bodies: libvirt's, payload form,
                                         disks, wrong types, truncated
  seeds.py balloon OUTDIR STAMP          balloon inflate/deflate buffers: shuffled,
                                         duplicate, outside RAM, partial entries

OUTDIR is emptied first, so seeds of removed cases do not linger; STAMP is touched last
for meson. Nothing is written into the source tree.
"""
import configparser
import json
import os
import shlex
import shutil
import struct
import sys

# <elf.h> and s2vm/bootinfo.h
PT_LOAD, PT_NOTE, PT_GNU_STACK = 1, 4, 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4
ET_EXEC, EM_X86_64 = 2, 62
EHDR, PHDR = "<16sHHIQQQIHHHHHH", "<IIQQQQQQ"
S2_NOTE_NAME, S2_NOTE_USER_ENTRY = b"s2vm\0", 1
MIB = 1 << 20


def pad4(b):
    return b + b"\0" * (-len(b) % 4)


def note(name, ntype, desc):
    return struct.pack("<III", len(name), len(desc), ntype) + pad4(name) + pad4(desc)


def elf(entry, segs):
    """An ELF64 x86-64 executable: segs are (type, flags, gpa, file bytes, memsz)."""
    off = struct.calcsize(EHDR) + len(segs) * struct.calcsize(PHDR)
    phdrs, body = b"", b""
    for ptype, flags, gpa, data, memsz in segs:
        at = off + len(body)
        phdrs += struct.pack(PHDR, ptype, flags, at if data else 0, gpa, gpa, len(data),
                             memsz, 8)
        body += data + b"\0" * (-len(data) % 8)
    ident = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9
    ehdr = struct.pack(EHDR, ident, ET_EXEC, EM_X86_64, 1, entry, struct.calcsize(EHDR), 0, 0,
                       struct.calcsize(EHDR), struct.calcsize(PHDR), len(segs), 0, 0, 0)
    return ehdr + phdrs + body


def elf_seeds():
    text = b"\xf4" * 32  # hlt
    rx, rw, r = PF_R | PF_X, PF_R | PF_W, PF_R
    user = note(S2_NOTE_NAME, S2_NOTE_USER_ENTRY, struct.pack("<Q", MIB + 16))
    other = note(b"GNU\0", 3, b"\x01\x02\x03\x04")
    return {
        "min.elf": elf(MIB, [(PT_LOAD, rx, MIB, text, len(text))]),
        "bss.elf": elf(MIB, [(PT_LOAD, rx, MIB, text, 0x1000),
                             (PT_LOAD, rw, MIB + 0x1000, b"\x5a" * 8, 0x3000),
                             (PT_GNU_STACK, rw, 0, b"", 0)]),
        "note.elf": elf(MIB, [(PT_LOAD, rx, MIB, text, 0x1000),
                              (PT_LOAD, r, MIB + 0x1000, other + user, 0x1000),
                              (PT_NOTE, r, MIB + 0x1000, other + user, len(other + user))]),
        "bss-only.elf": elf(MIB + 0x2000, [(PT_LOAD, rw, MIB, b"", 0x2000),
                                          (PT_LOAD, rx, MIB + 0x2000, text, 0x1000)]),
        "ram-end.elf": elf(MIB, [(PT_LOAD, rx, MIB, text, 0x1000),
                                 (PT_LOAD, rw, 16 * MIB - 0x1000, b"\x11" * 16, 0x1000)]),
        "max-segs.elf": elf(MIB, [(PT_LOAD, rx if i == 0 else rw, MIB + i * 0x1000,
                                   bytes([i]) * 8, 0x1000) for i in range(16)]),
    }


def case_command_lines(path):
    """Yield (name, words): the `s2vm run` arguments each case in cases.cfg uses."""
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(path)
    for name in cfg.sections():
        c = cfg[name]
        opts = " ".join(c.get("opts", "").split("\n"))
        args = ["--"] + shlex.split(c["args"]) if "args" in c else []
        base = [c.get("image", "hello.elf")] + shlex.split(opts)
        yield name, base + args
        for accel in ("proc", "kvm"):  # the runner appends opts.ACCEL and --accel ACCEL
            if "opts." + accel in c:
                extra = shlex.split(" ".join(c["opts." + accel].split("\n")))
                yield f"{name}.{accel}", base + extra + ["--accel", accel] + args


# Option sets s2vm once accepted or misreported (issue 10), and the edges of sizes.
HOSTILE = {
    "numa-sum-wraps": "--mem 2M --numa guest=0,size=8388608T,host=0 "
                      "--numa guest=1,size=9223372036856872960B,host=0 hello.elf",
    "pool-twice": "--pool 1=512M --pool 1=256M hello.elf",
    "pool-odd": "--pool 1=3M hello.elf",
    "pool-huge": "--pool 0=32T hello.elf",
    "bind-hosts": "--numa guest=0,size=128M,host=0,policy=bind,hosts=1:2 hello.elf",
    "hosts-trailing": "--numa guest=0,size=128M,policy=interleave,hosts=0: hello.elf",
    "hosts-reversed": "--numa guest=0,size=128M,policy=interleave,hosts=5-2 hello.elf",
    "hosts-many": "--numa guest=0,size=128M,policy=interleave,hosts=0-63 hello.elf",
    "numa-empty-item": "--numa guest=0,,size=128M,host=0 hello.elf",
    "numa-repeat-key": "--numa guest=0,size=64M,size=128M,host=0 hello.elf",
    "churn-large": "--mem 128M --churn 10,1T hello.elf",
    "help-value": "--help=1",
    "signs": "--mem +0 --vcpus -0 hello.elf",
    "sizes": "18446744073709551615B 17179869184G 16384P 2MiB 2mb 0 1KiB 9999999999999999999999",
    "guest-args": "--mem 64M -- --mem 2M -- x",
}


def options_seeds(cases):
    seeds = {}
    for name, words in case_command_lines(cases):
        seeds[f"case-{name}"] = words
    for name, line in HOSTILE.items():
        seeds[f"hostile-{name}"] = line.split()
    seeds["blank-words"] = ["", " 64M", "--mem", " 64M", "hello.elf", ""]
    # No KERNEL: the VM waits for the control API's vm.create.
    seeds["api-path"] = ["--api-socket", "path=/tmp/s2vm.sock"]
    seeds["api-fd"] = ["--api-socket", "fd=3", "--mem", "64M"]
    return {name: "\n".join(words).encode() + b"\n" for name, words in seeds.items()}


def decode_seeds():
    forms = {
        # port I/O: imm8 and DX forms, 8/32 bits and 16 bits with 66
        "in-al-imm": "e4 80", "in-eax-imm": "e5 80", "out-imm-al": "e6 e9",
        "out-imm-eax": "e7 e9", "in-al-dx": "ec", "in-eax-dx": "ed", "out-dx-al": "ee",
        "out-dx-eax": "ef", "in-ax-dx": "66 ed", "out-dx-ax": "66 ef", "in-ax-imm": "66 e5 80",
        # guestos/lib/mmio.S
        "movzbl": "0f b6 07", "movzwl": "0f b7 07", "movl-load": "8b 07",
        "movq-load": "48 8b 07", "movb-store": "40 88 37", "movw-store": "66 89 37",
        "movl-store": "89 37", "movq-store": "48 89 37",
        # near misses: truncated, string I/O, other prefixes and addressing
        "imm-truncated": "e6", "prefix-only": "66", "outsb": "6e", "rep-outsb": "f3 6e",
        "two-66": "66 66 ef", "movl-rsi": "8b 06", "movq-truncated": "48 8b",
    }
    return {name: bytes.fromhex(hexbytes) for name, hexbytes in forms.items()}


# tests/fuzz/fuzz_virtq.c's input: size code, features, max_seg, le16 start index, then
# guest RAM with the descriptor table at 0, the avail ring at 0x1000, the used ring at
# 0x1800; indirect tables and buffers anywhere else in the 16 KiB.
VQ_DESC, VQ_AVAIL, VQ_USED, VQ_RAM = 0x0000, 0x1000, 0x1800, 0x4000
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4


def virtq_input(log2size, features, max_seg, start, descs, heads, tables=(), idx=None):
    """descs: {index: (addr, len, flags, next)}; heads: avail ring entries from `start`;
    tables: [(gpa, [(addr, len, flags, next), ...])]; idx: avail->idx (default all)."""
    size = 1 << log2size
    ram = bytearray(VQ_RAM)
    for i, (addr, ln, flags, nxt) in descs.items():
        struct.pack_into("<QIHH", ram, VQ_DESC + 16 * i, addr, ln, flags, nxt)
    for gpa, entries in tables:
        for i, (addr, ln, flags, nxt) in enumerate(entries):
            struct.pack_into("<QIHH", ram, gpa + 16 * i, addr, ln, flags, nxt)
    for k, h in enumerate(heads):
        struct.pack_into("<H", ram, VQ_AVAIL + 4 + 2 * ((start + k) % size), h)
    struct.pack_into("<H", ram, VQ_AVAIL + 2, (start + (len(heads) if idx is None else idx))
                     & 0xffff)
    struct.pack_into("<H", ram, VQ_USED + 2, start & 0xffff)
    end = max(VQ_USED + 6 + 8 * size, max((g + 16 * len(e) for g, e in tables), default=0))
    return bytes([log2size, features, max_seg]) + struct.pack("<H", start) + bytes(ram[:end])


def virtq_seeds():
    hdr, data, st = (0x3000, 16, 0, 0), (0x3100, 4096, F_WRITE, 0), (0x3010, 1, F_WRITE, 0)
    blk = {0: hdr[:2] + (F_NEXT, 1), 1: data[:2] + (F_WRITE | F_NEXT, 2), 2: st}
    table = [hdr[:2] + (F_NEXT, 1), data[:2] + (F_WRITE | F_NEXT, 2), st]
    return {
        "blk-direct": virtq_input(8, 3, 8, 0, blk, [0]),
        "blk-direct-twice": virtq_input(8, 3, 8, 0, blk, [0, 0]),
        "blk-indirect": virtq_input(8, 3, 8, 0, {5: (0x2800, 48, F_INDIRECT, 0)}, [5],
                                    [(0x2800, table)]),
        "blk-mixed": virtq_input(8, 3, 8, 0, {0: hdr[:2] + (F_NEXT, 1),
                                              1: (0x2800, 32, F_INDIRECT, 0)}, [0],
                                 [(0x2800, table[1:])]),
        "wrap-index": virtq_input(4, 3, 4, 0xfffe, blk, [0, 0, 0, 0]),
        "loop": virtq_input(8, 1, 8, 0, {0: (0x3000, 16, F_NEXT, 1),
                                         1: (0x3100, 16, F_NEXT, 0)}, [0]),
        "long-chain": virtq_input(3, 1, 8, 0, {i: (0x3000 + i, 1, F_NEXT, (i + 1) % 8)
                                               for i in range(8)}, [0]),
        "bad-next": virtq_input(3, 1, 8, 0, {0: (0x3000, 16, F_NEXT, 8)}, [0]),
        "bad-head": virtq_input(3, 1, 8, 0, {}, [9]),
        "nested-indirect": virtq_input(8, 1, 8, 0, {0: (0x2800, 32, F_INDIRECT, 0)}, [0],
                                       [(0x2800, [(0x3000, 16, F_NEXT, 1),
                                                  (0x2c00, 16, F_INDIRECT, 0)])]),
        "indirect-next": virtq_input(8, 1, 8, 0, {0: (0x2800, 32, F_INDIRECT | F_NEXT, 1)},
                                     [0]),
        "indirect-len": virtq_input(8, 1, 8, 0, {0: (0x2800, 24, F_INDIRECT, 0)}, [0]),
        "indirect-long": virtq_input(3, 1, 8, 0, {0: (0x2800, 16 * 9, F_INDIRECT, 0)}, [0],
                                     [(0x2800, [(0x3000, 1, F_NEXT, i + 1)
                                                for i in range(9)])]),
        "indirect-off": virtq_input(8, 2, 8, 0, {0: (0x2800, 32, F_INDIRECT, 0)}, [0]),
        "outside-ram": virtq_input(8, 1, 8, 0, {0: (0xfffffffffffffff0, 32, F_INDIRECT, 0)},
                                   [0]),
        "read-after-write": virtq_input(8, 1, 8, 0, {0: (0x3000, 1, F_WRITE | F_NEXT, 1),
                                                     1: (0x3000, 16, 0, 0)}, [0]),
        "avail-jump": virtq_input(3, 1, 8, 0, blk, [0], idx=9),
    }


# tests/fuzz/fuzz_balloon.c's input: le16 RAM pages - 1, then (header, le32 PFNs) buffers.
def balloon_buf(deflate, pfns, extra=b""):
    body = b"".join(struct.pack("<I", p) for p in pfns) + extra
    return bytes([(len(body) << 1) | int(deflate)]) + body


def balloon_seeds():
    ram = struct.pack("<H", 4095)  # 16 MiB (4096 pages)
    return {
        "inflate-deflate": ram + balloon_buf(0, range(100, 120)) + balloon_buf(1, range(100, 110)),
        "shuffled": ram + balloon_buf(0, [7, 3, 5, 4, 6, 2, 9, 8]),
        "dup-and-twice": ram + balloon_buf(0, [5, 5, 6]) + balloon_buf(0, [6, 7]),
        "outside": ram + balloon_buf(0, [4095, 4096, 0xffffffff, 0]),
        "not-held": ram + balloon_buf(1, [1, 2, 3]),
        "partial": ram + balloon_buf(0, [10, 11], b"\x01\x02"),
    }


# tests/fuzz/fuzz_api.c's input: a vm.create body.
def api_seeds():
    k = {"path": "/boot/guest.elf"}
    return {
        "libvirt": json.dumps({"cpus": {"boot_vcpus": 2, "max_vcpus": 2},
                               "memory": {"size": 268435456}, "kernel": k,
                               "cmdline": {"args": "seconds=5"},
                               "disks": [{"path": "/tmp/d.img"}],
                               "serial": {"mode": "Pty"}, "console": {"mode": "Off"}}).encode(),
        "payload": json.dumps({"payload": {"kernel": "/k.elf", "cmdline": "a=b"},
                               "memory": {"size": 2097152}}).encode(),
        "disks": json.dumps({"kernel": k, "disks": [{"path": "/a", "readonly": True},
                                                    {"path": "/b"}]}).encode(),
        "bad-types": json.dumps({"kernel": k, "memory": {"size": -1},
                                 "cpus": {"boot_vcpus": "2"}}).encode(),
        "nested": b'{"kernel": {"path": "/k"}, "x": [[[[{"y": null}]]]]}',
        "truncated": b'{"kernel": {"path": "/k"',
    }


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    kind, outdir, stamp = sys.argv[1:4]
    if kind == "elf" and len(sys.argv) == 5:
        seeds = elf_seeds()
        images = sorted(f for f in os.listdir(sys.argv[4]) if f.endswith(".elf")) \
            if os.path.isdir(sys.argv[4]) else []
        if not images:
            print(f"seeds.py: warning: no guest images in {sys.argv[4]}: fuzz-elf starts "
                  f"from the hand-made seeds only (build them: tools/dev build)",
                  file=sys.stderr)
        for f in images:
            with open(os.path.join(sys.argv[4], f), "rb") as img:
                seeds["guestos-" + f] = img.read()
    elif kind == "options" and len(sys.argv) == 5:
        seeds = options_seeds(sys.argv[4])
    elif kind == "decode" and len(sys.argv) == 4:
        seeds = decode_seeds()
    elif kind == "api" and len(sys.argv) == 4:
        seeds = api_seeds()
    elif kind == "balloon" and len(sys.argv) == 4:
        seeds = balloon_seeds()
    elif kind == "virtq" and len(sys.argv) == 4:
        seeds = virtq_seeds()
    else:
        sys.exit(__doc__)
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    for name, data in seeds.items():
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)
    with open(stamp, "w") as f:
        f.write(f"{len(seeds)} seeds\n")


if __name__ == "__main__":
    main()
