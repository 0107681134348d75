# SPDX-License-Identifier: MIT
"""Decode a lab results blob (include/s2vm/lab.h), the file `s2vm run --lab-out` writes.

decode(data) checks everything s2_lab_check() checks (the VMM already did; a file may
have been edited since) and returns a JSON-ready dict: the calibration (TSC to host
CLOCK_MONOTONIC ns), histograms (sparse buckets, in cycles and ns, with quantiles),
throughput windows (start ns of window 0, width, counts), scalars and the phases of a
phased run (start/end ns, operations, on or off).
"""
import math
import struct

MAGIC = 0x424C3253
VERSION = 1
MAX_LEN = 4 << 20
MAX_SECTIONS = 64
SUB_BITS = 4
SUB = 1 << SUB_BITS
BUCKETS = (64 - SUB_BITS + 1) * SUB
HDR = struct.Struct("<IHHII16sQQQQQ")  # 72 bytes
SEC = struct.Struct("<II16s")  # 24
HIST = struct.Struct("<IIQQQQ")  # 40
WIN = struct.Struct("<QQII")  # 24
SCALAR = struct.Struct("<24sd")  # 32
PHASE = struct.Struct("<QQQQ")  # 32
KINDS = {1: "hist", 2: "windows", 3: "scalars", 4: "phases"}
F_INSTRUMENTS = 1


class BlobError(ValueError):
    pass


def bucket_of(v):
    """Bucket index of value @v (cycles), as s2_lab_hist_bucket()."""
    if v < SUB:
        return v
    e = v.bit_length() - 1
    return (e - SUB_BITS + 1) * SUB + ((v >> (e - SUB_BITS)) - SUB)


def bucket_lo(b):
    return b if b < SUB else (SUB + b % SUB) << (b // SUB - 1)


def bucket_hi(b):
    """Largest value in bucket @b (inclusive)."""
    return b if b < SUB else bucket_lo(b) + (1 << (b // SUB - 1)) - 1


def _name(raw, what):
    s = raw.rstrip(b"\0")
    if not s or b"\0" in s or any(c <= 0x20 or c > 0x7E for c in s):
        raise BlobError(f"{what}: not a printable NUL-padded name: {raw!r}")
    return s.decode()


def hist_quantile(buckets, count, lo, hi, q):
    """Value at quantile @q of a histogram given as {bucket: count} (cycles), as
    lab_hist_quantile(): the upper bound of the bucket holding rank ceil(q * count)."""
    if not count:
        return 0
    if q <= 0:
        return lo
    if q >= 1:
        return hi
    rank = max(1, min(count, math.ceil(q * count)))
    seen = 0
    for b in sorted(buckets):
        seen += buckets[b]
        if seen >= rank:
            return min(max(bucket_hi(b), lo), hi)
    return hi


def decode(data):
    n = len(data)
    if n > MAX_LEN:
        raise BlobError(f"{n} bytes: more than {MAX_LEN}")
    if n < HDR.size or n % 8:
        raise BlobError(f"{n} bytes: too short or not a multiple of 8")
    magic, ver, hlen, total, nsec, wl, tsc0, ns0, tsc1, ns1, flags = HDR.unpack_from(data)
    if magic != MAGIC or ver != VERSION or hlen != HDR.size or total != n:
        raise BlobError(f"bad header: magic {magic:#x} version {ver} header {hlen} total {total}")
    if nsec > MAX_SECTIONS or flags & ~F_INSTRUMENTS or tsc1 <= tsc0 or ns1 <= ns0:
        raise BlobError("bad header: sections, flags or calibration")
    npc = (ns1 - ns0) / (tsc1 - tsc0)
    out = {
        "workload": _name(wl, "workload"),
        "version": ver,
        "instruments": bool(flags & F_INSTRUMENTS),
        "calibration": {"tsc0": tsc0, "ns0": ns0, "tsc1": tsc1, "ns1": ns1,
                        "ns_per_cycle": npc, "clock": "CLOCK_MONOTONIC"},
        "hists": {},
        "windows": {},
        "scalars": {},
        "phases": [],
    }
    tsc_ns = lambda t: ns0 + (t - tsc0) * npc
    off = HDR.size
    for i in range(nsec):
        if n - off < SEC.size:
            raise BlobError(f"section {i}: header past the end")
        kind, slen, sname = SEC.unpack_from(data, off)
        off += SEC.size
        if slen % 8 or slen > n - off:
            raise BlobError(f"section {i}: length {slen}")
        name = _name(sname, f"section {i}")
        pl = data[off:off + slen]
        if kind == 1:
            if slen != HIST.size + 8 * BUCKETS:
                raise BlobError(f"hist {name}: length {slen}")
            sb, nb, count, total_c, lo, hi = HIST.unpack_from(pl)
            if sb != SUB_BITS or nb != BUCKETS or (count and lo > hi):
                raise BlobError(f"hist {name}: geometry or min/max")
            counts = struct.unpack_from(f"<{BUCKETS}Q", pl, HIST.size)
            if sum(counts) != count:
                raise BlobError(f"hist {name}: buckets add up to {sum(counts)}, not {count}")
            buckets = {b: c for b, c in enumerate(counts) if c}
            q = lambda p: hist_quantile(buckets, count, lo, hi, p) * npc
            out["hists"][name] = {
                "count": count, "sum_cycles": total_c, "min_cycles": lo if count else None,
                "max_cycles": hi if count else None,
                "mean_ns": total_c / count * npc if count else None,
                "p50_ns": q(0.5), "p90_ns": q(0.9), "p99_ns": q(0.99), "p999_ns": q(0.999),
                "max_ns": hi * npc if count else None,
                # sparse: [bucket, lo cycles, hi cycles, count]
                "buckets": [[b, bucket_lo(b), bucket_hi(b), c] for b, c in sorted(buckets.items())],
            }
        elif kind == 2:
            if slen < WIN.size or (slen - WIN.size) % 8:
                raise BlobError(f"windows {name}: length {slen}")
            start, width, nr, unit = WIN.unpack_from(pl)
            if width == 0 or unit > 1 or (slen - WIN.size) // 8 != nr:
                raise BlobError(f"windows {name}: width {width} unit {unit} nr {nr}")
            out["windows"][name] = {
                "start_ns": tsc_ns(start), "window_ns": width * npc,
                "unit": ("ops", "bytes")[unit],
                "counts": list(struct.unpack_from(f"<{nr}Q", pl, WIN.size)),
            }
        elif kind == 3:
            if slen % SCALAR.size:
                raise BlobError(f"scalars {name}: length {slen}")
            for k in range(slen // SCALAR.size):
                sn, v = SCALAR.unpack_from(pl, k * SCALAR.size)
                out["scalars"][_name(sn, f"scalar {k}")] = v
        elif kind == 4:
            if slen % PHASE.size:
                raise BlobError(f"phases {name}: length {slen}")
            prev_end = None
            for k in range(slen // PHASE.size):
                start, end, ops, on = PHASE.unpack_from(pl, k * PHASE.size)
                if start >= end or on > 1 or (prev_end is not None and start < prev_end):
                    raise BlobError(f"phases {name}: phase {k} [{start}, {end}) on={on}")
                prev_end = end
                out["phases"].append({"start_ns": tsc_ns(start), "end_ns": tsc_ns(end),
                                      "ops": ops, "on": bool(on)})
        else:
            raise BlobError(f"section {i}: unknown kind {kind}")
        off += slen
    if off != n:
        raise BlobError(f"{n - off} bytes after the last section")
    return out


if __name__ == "__main__":
    import json
    import sys

    for p in sys.argv[1:]:
        with open(p, "rb") as f:
            d = decode(f.read())
        for h in d["hists"].values():
            h["buckets"] = len(h["buckets"])
        for w in d["windows"].values():
            w["counts"] = len(w["counts"])
        print(json.dumps(d, indent=1))
