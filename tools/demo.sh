#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The showcase run by `tools/dev demo`: a guest whose memory is placed on two host nodes
# and migrated between them while it runs, with a short report. s2vm runs with its default
# --accel auto: KVM where /dev/kvm is usable, else proc (it says so on stderr).
set -euo pipefail
cd "$(dirname "$0")/.."
S2VM=build/vmm/s2vm
IMG=build/guestos

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "s2vm demo: guest RAM on host NUMA node pools, migrated while the guest runs."

say "$S2VM run $IMG/numainfo.elf --mem 256M --vcpus 2 --numa guest=0,size=128M,host=0 --numa guest=1,size=128M,host=1 -- step=2M"
$S2VM run $IMG/numainfo.elf --mem 256M --vcpus 2 \
	--numa guest=0,size=128M,host=0 --numa guest=1,size=128M,host=1 -- step=2M

say "$S2VM run $IMG/migstress.elf --mem 256M --vcpus 2 --numa guest=0,size=128M,host=0 --numa guest=1,size=128M,host=1 --churn 20,8M --stats -- seconds=5"
echo "(every vCPU writes and re-checks sequence numbers in its pages while s2vm moves"
echo " 8 MiB of them to the other host node every 20 ms; the table comes at the end)"
$S2VM run $IMG/migstress.elf --mem 256M --vcpus 2 \
	--numa guest=0,size=128M,host=0 --numa guest=1,size=128M,host=1 \
	--churn 20,8M --stats -- seconds=5 2>&1 | tee "$out"

# The --stats table names the accelerator in its vCPUs line: "(accel proc)" or "(accel kvm)".
accel=$(sed -n 's/.*(accel \([a-z]*\)).*/\1/p;T;q' "$out")
echo
case "$accel" in
kvm) echo "demo: the guest ran under --accel kvm (hardware virtualisation)." ;;
proc) echo "demo: the guest ran under --accel proc: /dev/kvm is not usable here, so its ring-3"
      echo "code ran on s2vm's own vCPU threads (no isolation: for trusted images like these)." ;;
*) echo "demo: s2vm's stats did not say which accelerator ran." ;;
esac
ratio=$(sed -n 's/^report: migstress_resident_ratio=\([0-9.e+-]*\) x$/\1/p' "$out")
echo "demo: the guest's pages moved between host nodes 0 and 1 while it ran, with every"
echo "write accounted for (0 mismatches). The host holds ${ratio:-?}x the memory the guest"
echo "touched: each migration punched the frames it left out of their pool (--keep-warm"
echo "keeps them for reuse instead). Host nodes this machine lacks are emulated: a"
echo "pool of their own, bound to a real node, so copies and remaps are real."
echo "More: tools/dev bench migrate | boot | numa | s2; build/vmm/s2vm run --help"
