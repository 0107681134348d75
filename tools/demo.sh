#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The showcase run by `tools/dev demo`: boot the guestos workloads and report.
set -euo pipefail
cd "$(dirname "$0")/.."
S2VM=build/vmm/s2vm
IMG=build/guestos

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
	echo "demo: /dev/kvm is not usable here; s2vm needs KVM to run guests." >&2
	exit 2
fi

say "$S2VM run $IMG/hello.elf --mem 64M -- hello from the demo"
$S2VM run $IMG/hello.elf --mem 64M -- hello from the demo

say "$S2VM run $IMG/smp.elf --vcpus 2 --mem 64M"
$S2VM run $IMG/smp.elf --vcpus 2 --mem 64M

say "$S2VM run $IMG/memtouch.elf --mem 512M --stats -- size=256M passes=2"
$S2VM run $IMG/memtouch.elf --mem 512M --stats -- size=256M passes=2

echo
echo "demo: 3 guests booted; each line 'report: NAME=VALUE UNIT' came from guest ring 3."
