#!/bin/sh
# The demo: make a sample dom0 vmcore, emit its p2m note, inject it, and analyse the dump.
set -eu
out=${1:-demo}
bin=$(swift build -c release --show-bin-path)
mkdir -p "$out"
echo "== generating a sample Xen dom0 kdump vmcore in $out/"
"$bin/p2m-gendump" dom0 --guest-mib 512 --seed 1 --output "$out/dom0.vmcore"
echo "== emitting the p2m note"
"$bin/p2m-emit" "$out/dom0.vmcore" --system-map "$out/dom0.vmcore.System.map" -o "$out/dom0.p2mnote"
echo "== injecting it (in place)"
"$bin/p2m-inject" "$out/dom0.vmcore" --note "$out/dom0.p2mnote" --verify
echo "== analysing"
"$bin/p2m-analyze" "$out/dom0.vmcore" --system-map "$out/dom0.vmcore.System.map" info
"$bin/p2m-analyze" "$out/dom0.vmcore" --system-map "$out/dom0.vmcore.System.map" mod
"$bin/p2m-analyze" "$out/dom0.vmcore" --system-map "$out/dom0.vmcore.System.map" check
