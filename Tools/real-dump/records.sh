# Sourced by Tools/real-dump/make (and by python/tests/test_ground_truth.py, which runs it on
# complete and on emptied records). Needs bash; uses the caller's log() when there is one.
declare -F log >/dev/null || log() { echo "[records] $*" >&2; }

# records_ok CONSOLE DIR WHAT: each record the guest printed is complete. The end markers carry
# the counts the guest made with shell builtins (truth.sh); a record made by a child process that
# died under TCG is empty or short, and is refused here, so that the stage is run again instead
# of a test failing on it later. The counts must be positive and equal the lines extracted.
records_ok() {
  local c=$1 o=$2 what=$3 te le u m k t d
  te=$(sed -n 's/.*P2M-TRUTH-END \(uname=.*\)/\1/p' "$c" | tail -1)
  le=$(sed -n 's/.*P2M-LATE-END \(tasks=.*\)/\1/p' "$c" | tail -1)
  [ -n "$te" ] || { log "$what: no P2M-TRUTH-END with counts"; return 1; }
  [ -n "$le" ] || { log "$what: no P2M-LATE-END with counts"; return 1; }
  u=$(echo "$te" | sed -n 's/.*uname=\([0-9]*\).*/\1/p'); m=$(echo "$te" | sed -n 's/.*modules=\([0-9]*\).*/\1/p')
  k=$(echo "$te" | sed -n 's/.*kallsyms=\([0-9]*\).*/\1/p')
  t=$(echo "$le" | sed -n 's/.*tasks=\([0-9]*\).*/\1/p'); d=$(echo "$le" | sed -n 's/.*dmesg=\([0-9]*\).*/\1/p')
  local bad=""
  [ "${u:-0}" -gt 0 ] && [ -s "$o/uname.txt" ] || bad="$bad uname"
  [ "${m:-0}" -gt 0 ] && [ "$(grep -c . "$o/modules.txt")" = "$m" ] || bad="$bad modules(said ${m:-?}, got $(grep -c . "$o/modules.txt"))"
  [ "${k:-0}" -gt 0 ] && [ "$(grep -c . "$o/kallsyms.txt")" = "$k" ] || bad="$bad kallsyms(said ${k:-?}, got $(grep -c . "$o/kallsyms.txt"))"
  [ "${t:-0}" -gt 0 ] && [ "$(grep -vc '^#' "$o/tasks.txt")" = "$t" ] || bad="$bad tasks(said ${t:-?}, got $(grep -vc '^#' "$o/tasks.txt"))"
  [ "${d:-0}" -gt 10 ] && [ "$(wc -l < "$o/dmesg-tail.txt")" = "$d" ] || bad="$bad dmesg-tail(said ${d:-?}, got $(wc -l < "$o/dmesg-tail.txt"))"
  [ -z "$bad" ] || { log "$what: incomplete records:$bad"; return 1; }
  { echo "# what the guest said it printed, checked against the files: uname modules kallsyms tasks dmesg-tail"
    echo "$u $m $k $t $d"; } > "$o/records.txt"
}
