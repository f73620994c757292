#!/usr/bin/env bash
# bench-offload: one large recording copied into the spool (copy + SHA-256 + age encryption
# in one pass,
# fsync, rename, directory fsync, Badger commit) against `cp` + sync alone and `cp` + sync
# then `sha256sum`, on the same file and filesystem, in one run. Warm page cache for all
# three (the source is read once before timing); everything is synced before each timing.
# Then a shift change: the real agent on the simulated dock with CAMERAS (10) cameras of
# FILES x FILE_MB (4 x 64 MiB) docked at once, each camera's storage read at no more than
# 35 MB/s (USB 2.0, the simulator's ReadRate), against the physical bound from the spool
# disk's write+fsync rate measured in the same run. Then the queue at
# 1,000,000 recordings (see below). SIZE_MB sets the file size (default 2048).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-2048}
RUNS=${RUNS:-3}
PARTS=${PARTS:-copy queue} # copy: the copy and the shift change; queue: the queue at fleet scale
work=$(mktemp -d "${BENCH_DIR:-build/out}/bench-offload.XXXX" 2>/dev/null || { mkdir -p build/out; mktemp -d build/out/bench-offload.XXXX; })
trap 'chmod -R u+w "$work"; rm -rf "$work"; [ -z "${cg:-}" ] || rmdir "$cg" 2>/dev/null || true; [ -z "${ra_was:-}" ] || echo "$ra_was" > "$ra_file"' EXIT
echo "load before the run: $(cat /proc/loadavg)"
first=""
if [[ " $PARTS " == *" copy "* ]]; then # the copy and the shift change
go build -o "$work/benchoffload" ./build/benchoffload
head -c $((SIZE_MB << 20)) /dev/urandom > "$work/src.mp4"
cat "$work/src.mp4" > /dev/null
sync
want=$(sha256sum "$work/src.mp4" | cut -d' ' -f1)

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
best() { sort -g | head -1; }
cp_only=(); cp_sha=(); dock=()
for i in $(seq "$RUNS"); do
  rm -f "$work/cp.mp4"; sync; cp_only+=("$(t bash -c "cp '$work/src.mp4' '$work/cp.mp4' && sync '$work/cp.mp4'")")
  rm -f "$work/cp.mp4"; sync; cp_sha+=("$(t bash -c "cp '$work/src.mp4' '$work/cp.mp4' && sync '$work/cp.mp4' && sha256sum '$work/cp.mp4'")")
  rm -f "$work/cp.mp4"; chmod -R u+w "$work/q" 2>/dev/null || true; rm -rf "$work/q"; sync
  out=$("$work/benchoffload" -src "$work/src.mp4" -dir "$work/q")
  dock+=("${out%% *}")
  [ "${out##* }" = "$want" ] || { echo "hash mismatch: ${out##* } != $want" >&2; exit 1; }
done
echo "runs (s): cp ${cp_only[*]} / cp+sha ${cp_sha[*]} / dock ${dock[*]}"
a=$(printf '%s\n' "${cp_only[@]}" | best); b=$(printf '%s\n' "${cp_sha[@]}" | best); c=$(printf '%s\n' "${dock[@]}" | best)
mbps() { echo "$SIZE_MB / $1" | bc -l; }
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m), fs $(df -T "$work" | awk 'NR==2 {print $2}'); file ${SIZE_MB} MiB; best of $RUNS"
printf '%-40s %9s %10s %9s\n' "method" "seconds" "MiB/s" "vs cp"
printf '%-40s %9.3f %10.1f %9.2f\n' "cp + sync (baseline)" "$a" "$(mbps "$a")" 1
printf '%-40s %9.3f %10.1f %9.2f\n' "cp + sync, then sha256sum" "$b" "$(mbps "$b")" "$(echo "$a / $b" | bc -l)"
printf '%-40s %9.3f %10.1f %9.2f\n' "dock: copy+sha256+encrypt+fsync+commit" "$c" "$(mbps "$c")" "$(echo "$a / $c" | bc -l)"
first=$(printf 'cp_s=%.3f cp_sha256_s=%.3f dock_s=%.3f dock_vs_cp=%.3f target_vs_cp=0.95' "$a" "$b" "$c" "$(echo "$a / $c" | bc -l)")

CAMERAS=${CAMERAS:-10}; FILES=${FILES:-4}; FILE_MB=${FILE_MB:-64}
chmod -R u+w "$work/q" 2>/dev/null || true; rm -rf "$work/q"; sync
go build -o "$work/benchshift" ./build/benchshift
# Command substitution, not <(...): the script waits for benchshift to exit before it removes
# the directory.
r=$("$work/benchshift" -dir "$work/shift" -cameras "$CAMERAS" -files "$FILES" -file-mb "$FILE_MB" -camera-rate 35000000)
read -r shift_s bound_s eff spool_mibs <<< "$r"
chmod -R u+w "$work/shift"; rm -rf "$work/shift"
PER_CAMERA_MB=$((FILES * FILE_MB))
echo
printf '%-44s %12s\n' "shift change: $CAMERAS cameras x $PER_CAMERA_MB MiB at 35 MB/s" seconds
printf '%-44s %12.3f\n' "physical bound (spool disk $(printf %.0f "$spool_mibs") MiB/s)" "$bound_s"
printf '%-44s %12.3f\n' "measured, all offloads durable and committed" "$shift_s"
printf '%-44s %12.3f %12s\n' "efficiency" "$eff" ">= 0.9"
first="$first shift_cameras=$CAMERAS shift_s=$shift_s shift_bound_s=$bound_s shift_efficiency=$eff target_shift_efficiency=0.9"
# The same with the spool the bottleneck: the simulator caps its writes at SD-card speed.
SD_RATE=${SD_RATE:-100000000}; SD_FILES=${SD_FILES:-2}
r=$("$work/benchshift" -dir "$work/shift" -cameras "$CAMERAS" -files "$SD_FILES" -file-mb "$FILE_MB" -camera-rate 35000000 -spool-rate "$SD_RATE")
read -r sd_s sd_bound_s sd_eff _ <<< "$r"
chmod -R u+w "$work/shift"; rm -rf "$work/shift"
printf '%-44s %12s\n' "spool at $((SD_RATE / 1000000)) MB/s: $CAMERAS cameras x $((SD_FILES * FILE_MB)) MiB" seconds
printf '%-44s %12.3f\n' "physical bound (total bytes / spool rate)" "$sd_bound_s"
printf '%-44s %12.3f\n' "measured, all offloads durable and committed" "$sd_s"
printf '%-44s %12.3f %12s\n' "efficiency" "$sd_eff" ">= 0.9"
first="$first shift_sd_s=$sd_s shift_sd_bound_s=$sd_bound_s shift_sd_efficiency=$sd_eff"
fi

if [[ " $PARTS " != *" queue "* ]]; then echo "$first"; exit 0; fi
# The queue at fleet scale: QUEUE_N recordings (default 1,000,000) filled once, then each
# measuring run in a fresh process on a fresh copy (as after a restart): the reopen, lease +
# matching receipt per second (2,000 from one caller, 20,000 from 64), disk and memory. The
# same on SQLite (build/sqlitequeue: WAL, synchronous=FULL, the same record and ledger writes
# per state change, the same grouping of concurrent callers), on the same disk, in
# QUEUE_ROUNDS (2) interleaved rounds, best of each; then the dock's queue under the unit's
# MemoryMax and in a 128 MiB cgroup.
QUEUE_N=${QUEUE_N:-1000000}
QUEUE_ROUNDS=${QUEUE_ROUNDS:-2}
echo
echo "load before the queue part: $(cat /proc/loadavg)"
go build -o "$work/benchqueue" ./build/benchqueue
s0=$(date +%s.%N)
"$work/benchqueue" -dir "$work/queue" -n "$QUEUE_N" -populate
s1=$(date +%s.%N)
"$work/benchqueue" -engine sqlite -dir "$work/sqlite" -n "$QUEUE_N" -populate
s2=$(date +%s.%N)
chmod -R u+w "$work/queue"; mv "$work/queue" "$work/queue.filled"; mv "$work/sqlite" "$work/sqlite.filled"
# measure_queue ENGINE MEMORYMAX [GOGC [GOMEMLIMIT]]: one measuring run on a fresh copy of
# the filled store, with the unit's GOGC and GOMEMLIMIT (or these) and, unless MEMORYMAX is "none", inside a memory cgroup of
# MEMORYMAX (v1 or v2, as root), the unit's way of capping the agent (a process over it is
# killed). As root the page cache is dropped first, so that the run starts cold, as after a
# power cut, and the cgroup is charged for every page the run reads. Prints benchqueue's
# figures, then the cgroup's peak in MiB and its OOM kills ("-" for both without a cgroup).
measure_queue() {
  local engine=$1 memmax=$2 gogc=${3:-$gogc} memlimit=${4:-$memlimit} out peak=- killed=-
  cg=""
  if [ "$memmax" != none ] && [ "$(id -u)" = 0 ] && [ -w /sys/fs/cgroup/memory ]; then # cgroup v1
    cg=/sys/fs/cgroup/memory/bench-queue-$$
    mkdir "$cg" && echo "$memmax" > "$cg/memory.limit_in_bytes" && echo 0 > "$cg/memory.swappiness" || cg=""
  elif [ "$memmax" != none ] && [ "$(id -u)" = 0 ] && grep -qw memory /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then # cgroup v2
    cg=/sys/fs/cgroup/bench-queue-$$
    mkdir "$cg" && echo "$memmax" > "$cg/memory.max" && echo 0 > "$cg/memory.swap.max" || cg=""
  fi
  if [ "$memmax" != none ] && [ -z "$cg" ]; then
    echo "bench-offload: no memory cgroup of $memmax here (root and cgroup v1 or v2 with the memory controller)" >&2
    echo "- - - - - - - - - -"; return 0
  fi
  rm -rf "$work/$engine"; cp -a "$work/$engine.filled" "$work/$engine"; sync
  [ "$(id -u)" = 0 ] && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  local run=(env GOMEMLIMIT="$memlimit" GOGC="$gogc" "$work/benchqueue" -engine "${engine/queue/badger}" -dir "$work/$engine" -n "$QUEUE_N" -ops 2000 -group-ops $((QUEUE_N / 2 < 20000 ? QUEUE_N / 2 : 20000)))
  if [ -n "$cg" ]; then
    out=$(bash -c 'echo $$ > "$0/cgroup.procs"; exec "$@"' "$cg" "${run[@]}") || out=""
    killed=$(sed -n 's/^oom_kill //p' "$cg/memory.oom_control" "$cg/memory.events" 2>/dev/null | head -1 || true)
    for f in "$cg/memory.max_usage_in_bytes" "$cg/memory.peak"; do [ -r "$f" ] && peak=$(( $(cat "$f") >> 20 )) && break; done
    rmdir "$cg" 2>/dev/null || true
    cg=""
  else
    out=$("${run[@]}") || out=""
  fi
  if [ -z "$out" ]; then
    echo "bench-offload: the $engine measurement failed under MemoryMax=$memmax GOMEMLIMIT=$memlimit GOGC=$gogc (${killed:-0} OOM kills)" >&2
    exit 1
  fi
  echo "$out $peak ${killed:-0}"
}
# The read-ahead of the disk under the work directory: a cold page fault on a mapped table
# reads that much around it. A board's SD card or eMMC has the kernel's default, 128 KiB; a
# virtual disk may advertise far more (8 MiB here), which makes a cold restart read 4x the
# bytes. As root the queue is measured with the board's value (BOARD_READ_AHEAD_KB, restored
# on exit); otherwise with the disk's own, and the table says which.
ra_file=/sys/class/block/$(basename "$(readlink -f "$(df --output=source "$work" | tail -1)")")
[ -e "$ra_file/partition" ] && ra_file=$(readlink -f "$ra_file/..")
ra_file=$ra_file/queue/read_ahead_kb
ra=-
if [ -r "$ra_file" ]; then
  ra=$(cat "$ra_file")
  BOARD_READ_AHEAD_KB=${BOARD_READ_AHEAD_KB:-128}
  if [ "$(id -u)" = 0 ] && [ "$ra" != "$BOARD_READ_AHEAD_KB" ] && echo "$BOARD_READ_AHEAD_KB" > "$ra_file" 2>/dev/null; then
    ra_was=$ra; ra=$BOARD_READ_AHEAD_KB
  fi
fi
unit=build/package/dock-agent.service
memlimit=$(sed -n 's/^Environment=GOMEMLIMIT=//p' "$unit")
gogc=$(sed -n 's/^Environment=GOGC=//p' "$unit"); gogc=${gogc:-100}
memmax=$(sed -n 's/^MemoryMax=//p' "$unit")
SMALL_MAX=${SMALL_MAX:-128M}
# Fields of benchqueue's line (then the cgroup's peak and OOM kills).
f_reopen=1 f_ops=2 f_bytes=3 f_rss=4 f_anon=5 f_file=6 f_stats=7 f_group=8 f_peak=9 f_killed=10
field() { echo "$1" | cut -d' ' -f"$2"; }
better() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(b == "" || a + 0 > b + 0) }'; }
# Interleaved rounds of the dock's queue and SQLite, unconstrained; the best rate of each
# (by 64 callers) counts.
bq="" sq="" bq_runs="" sq_runs=""
for round in $(seq "$QUEUE_ROUNDS"); do
  echo "load before queue round $round: $(cat /proc/loadavg)"
  q=$(measure_queue queue none); bq_runs="$bq_runs $(field "$q" $f_ops)/$(field "$q" $f_group)"
  better "$(field "$q" $f_group)" "$(field "$bq" $f_group)" && bq=$q
  q=$(measure_queue sqlite none); sq_runs="$sq_runs $(field "$q" $f_ops)/$(field "$q" $f_group)"
  better "$(field "$q" $f_group)" "$(field "$sq" $f_group)" && sq=$q
done
echo "load before the cgroup runs: $(cat /proc/loadavg)"
uq=$(measure_queue queue "$memmax")
cq=$(measure_queue queue "$SMALL_MAX")
# The cost of the unit's GOGC and GOMEMLIMIT: the same unconstrained run with the settings
# before the tuning (Go's default GOGC, GOMEMLIMIT=96MiB).
BEFORE_GOGC=${BEFORE_GOGC:-100} BEFORE_LIMIT=${BEFORE_LIMIT:-96MiB}
dq=$(measure_queue queue none "$BEFORE_GOGC" "$BEFORE_LIMIT")
echo
cold="warm page cache (not root: no cache drop, no cgroup, limits only by GOMEMLIMIT)"
[ "$(id -u)" = 0 ] && cold="cold page cache, as after a power cut"
cgv=none; [ -w /sys/fs/cgroup/memory ] && cgv=v1; grep -qw memory /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null && cgv=v2
echo "queue of $QUEUE_N recordings (filled in $(printf %.0f "$(echo "$s1 - $s0" | bc -l)") s, SQLite's in $(printf %.0f "$(echo "$s2 - $s1" | bc -l)") s), measured from a $cold; disk read-ahead $ra KiB${ra_was:+ (the disk's own $ra_was KiB set to the board's for this part)}; GOMEMLIMIT=$memlimit GOGC=$gogc (the unit's); cgroup $cgv"
echo "rounds (lease + receipt per second, one caller/64 callers): queue$bq_runs; SQLite$sq_runs"
col() { field "$1" "$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a != "-") printf "%.2f", a / b; else printf "-" }'; }
printf '%-46s %11s %11s %11s %11s %11s %16s\n' "" "queue" "queue" "queue" "SQLite" "queue" ""
printf '%-46s %11s %11s %11s %11s %11s %16s\n' "memory cgroup (MemoryMax)" none "$memmax unit" "$SMALL_MAX" none none ""
printf '%-46s %11s %11s %11s %11s %11s %16s\n' "GOGC, GOMEMLIMIT" "$gogc, $memlimit" "$gogc, $memlimit" "$gogc, $memlimit" "$gogc, $memlimit" "$BEFORE_GOGC, $BEFORE_LIMIT" target
printf '%-46s %11.3f %11s %11s %11.3f %11.3f %16s\n' "restart: reopen, release 32 stale leases, s" "$(col "$bq" $f_reopen)" "$(col "$uq" $f_reopen)" "$(col "$cq" $f_reopen)" "$(col "$sq" $f_reopen)" "$(col "$dq" $f_reopen)" "< 2"
printf '%-46s %11.0f %11s %11s %11.0f %11.0f %16s\n' "lease + receipt per second, one caller" "$(col "$bq" $f_ops)" "$(col "$uq" $f_ops)" "$(col "$cq" $f_ops)" "$(col "$sq" $f_ops)" "$(col "$dq" $f_ops)" ">= 1.0x SQLite"
printf '%-46s %11.0f %11s %11s %11.0f %11.0f %16s\n' "lease + receipt per second, 64 callers" "$(col "$bq" $f_group)" "$(col "$uq" $f_group)" "$(col "$cq" $f_group)" "$(col "$sq" $f_group)" "$(col "$dq" $f_group)" ">= 1.0x, >= 5000"
printf '%-46s %11s %11s %11s %11s %11s %16s\n' "  one caller vs SQLite" "$(ratio "$(col "$bq" $f_ops)" "$(col "$sq" $f_ops)")" "" "" "1.00" "$(ratio "$(col "$dq" $f_ops)" "$(col "$sq" $f_ops)")" ">= 1.0"
printf '%-46s %11s %11s %11s %11s %11s %16s\n' "  64 callers vs SQLite" "$(ratio "$(col "$bq" $f_group)" "$(col "$sq" $f_group)")" "" "" "1.00" "$(ratio "$(col "$dq" $f_group)" "$(col "$sq" $f_group)")" ">= 1.0"
printf '%-46s %11s %11s %11s %11s %11s %16s\n' "  64 callers vs the queue unconstrained" "1.00" "$(ratio "$(col "$uq" $f_group)" "$(col "$bq" $f_group)")" "$(ratio "$(col "$cq" $f_group)" "$(col "$bq" $f_group)")" "" "$(ratio "$(col "$dq" $f_group)" "$(col "$bq" $f_group)")" ">= 0.5 in $SMALL_MAX"
printf '%-46s %11.0f %11s %11s %11.0f %11.0f %16s\n' "bytes on disk per recording" "$(col "$bq" $f_bytes)" "" "" "$(col "$sq" $f_bytes)" "$(col "$dq" $f_bytes)" "<= 1024"
printf '%-46s %11s %11s %11s %11s %11s %16s\n' "anonymous memory (heap, stacks), peak MiB" "$(col "$bq" $f_anon)" "$(col "$uq" $f_anon)" "$(col "$cq" $f_anon)" "$(col "$sq" $f_anon)" "$(col "$dq" $f_anon)" "<= 64"
printf '%-46s %11s %11s %11s %11s %11s %16s\n' "file-backed (Badger's mapped tables), peak MiB" "$(col "$bq" $f_file)" "$(col "$uq" $f_file)" "$(col "$cq" $f_file)" "$(col "$sq" $f_file)" "$(col "$dq" $f_file)" "reported"
printf '%-46s %11s %11s %11s %11s %11s %16s\n' "peak RSS (VmHWM), MiB" "$(col "$bq" $f_rss)" "$(col "$uq" $f_rss)" "$(col "$cq" $f_rss)" "$(col "$sq" $f_rss)" "$(col "$dq" $f_rss)" ""
printf '%-46s %11s %11s %11s %11s %11s %16s\n' "cgroup peak with page cache, MiB; OOM kills" "-" "$(col "$uq" $f_peak); $(col "$uq" $f_killed)" "$(col "$cq" $f_peak); $(col "$cq" $f_killed)" "-" "-" "no OOM kill"
printf '%s queue_n=%d reopen_s=%.3f lease_receipt_per_s=%.0f lease_receipt_64_callers_per_s=%.0f target_64_callers_floor=5000 sqlite_lease_receipt_per_s=%.0f sqlite_lease_receipt_64_callers_per_s=%.0f vs_sqlite_one_caller=%s vs_sqlite_64_callers=%s target_vs_sqlite=1.0 bytes_per_recording=%.0f sqlite_bytes_per_recording=%.0f queue_anon_mib=%s target_anon_mib=64 queue_file_mib=%s queue_rss_mib=%s queue_stats_s=%s unit_anon_mib=%s unit_cgroup_peak_mib=%s unit_oom_kills=%s small_max=%s small_anon_mib=%s small_lease_receipt_64_callers_per_s=%s small_vs_unconstrained=%s target_small_vs_unconstrained=0.5 small_cgroup_peak_mib=%s small_oom_kills=%s before_anon_mib=%s before_lease_receipt_64_callers_per_s=%s before_lease_receipt_per_s=%s before_gogc=%s before_gomemlimit=%s gogc=%s gomemlimit=%s read_ahead_kb=%s\n' \
  "$first" "$QUEUE_N" "$(col "$bq" $f_reopen)" "$(col "$bq" $f_ops)" "$(col "$bq" $f_group)" "$(col "$sq" $f_ops)" "$(col "$sq" $f_group)" \
  "$(ratio "$(col "$bq" $f_ops)" "$(col "$sq" $f_ops)")" "$(ratio "$(col "$bq" $f_group)" "$(col "$sq" $f_group)")" "$(col "$bq" $f_bytes)" "$(col "$sq" $f_bytes)" \
  "$(col "$bq" $f_anon)" "$(col "$bq" $f_file)" "$(col "$bq" $f_rss)" "$(col "$bq" $f_stats)" "$(col "$uq" $f_anon)" "$(col "$uq" $f_peak)" "$(col "$uq" $f_killed)" \
  "$SMALL_MAX" "$(col "$cq" $f_anon)" "$(col "$cq" $f_group)" "$(ratio "$(col "$cq" $f_group)" "$(col "$bq" $f_group)")" "$(col "$cq" $f_peak)" "$(col "$cq" $f_killed)" "$(col "$dq" $f_anon)" "$(col "$dq" $f_group)" "$(col "$dq" $f_ops)" "$BEFORE_GOGC" "$BEFORE_LIMIT" "$gogc" "$memlimit" "$ra"
