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
work=$(mktemp -d "${BENCH_DIR:-build/out}/bench-offload.XXXX" 2>/dev/null || { mkdir -p build/out; mktemp -d build/out/bench-offload.XXXX; })
trap 'chmod -R u+w "$work"; rm -rf "$work"; [ -z "${cg:-}" ] || rmdir "$cg" 2>/dev/null || true; [ -z "${ra_was:-}" ] || echo "$ra_was" > "$ra_file"' EXIT
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

# The queue at fleet scale: QUEUE_N recordings (default 1,000,000), then in a fresh process
# (as after a restart) the reopen, lease + matching receipt per second (2,000 from one
# caller, 20,000 from 64), disk and memory.
QUEUE_N=${QUEUE_N:-1000000}
go build -o "$work/benchqueue" ./build/benchqueue
"$work/benchqueue" -dir "$work/queue" -n "$QUEUE_N" -populate
chmod -R u+w "$work/queue"; cp -a "$work/queue" "$work/queue.filled"
# measure_queue MEMORYMAX GOMEMLIMIT: one measuring run on a fresh copy of the filled queue,
# with that GOMEMLIMIT and, where root may make a memory cgroup here (v1 or v2), inside one
# of MEMORYMAX, the unit's way of capping the agent (a process over it is killed). As root
# the page cache is dropped first, so that the run starts cold, as after a power cut, and
# the cgroup is charged for every page the run reads. Prints benchqueue's figures, then the
# cgroup's peak in MiB and its OOM kills ("-" for both without a cgroup).
measure_queue() {
  local memmax=$1 memlimit=$2 out peak=- killed=-
  cg=""
  if [ "$(id -u)" = 0 ] && [ -w /sys/fs/cgroup/memory ]; then # cgroup v1
    cg=/sys/fs/cgroup/memory/bench-queue-$$
    mkdir "$cg" && echo "$memmax" > "$cg/memory.limit_in_bytes" && echo 0 > "$cg/memory.swappiness" || cg=""
  elif [ "$(id -u)" = 0 ] && grep -qw memory /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then # cgroup v2
    cg=/sys/fs/cgroup/bench-queue-$$
    mkdir "$cg" && echo "$memmax" > "$cg/memory.max" && echo 0 > "$cg/memory.swap.max" || cg=""
  fi
  rm -rf "$work/queue"; cp -a "$work/queue.filled" "$work/queue"; sync
  [ "$(id -u)" = 0 ] && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  if [ -n "$cg" ]; then
    out=$(GOMEMLIMIT=$memlimit bash -c 'echo $$ > "$0/cgroup.procs"; exec "$@"' "$cg" "$work/benchqueue" -dir "$work/queue" -n "$QUEUE_N" -ops 2000) || out=""
    killed=$(sed -n 's/^oom_kill //p' "$cg/memory.oom_control" "$cg/memory.events" 2>/dev/null | head -1 || true)
    for f in "$cg/memory.max_usage_in_bytes" "$cg/memory.peak"; do [ -r "$f" ] && peak=$(( $(cat "$f") >> 20 )) && break; done
    rmdir "$cg" 2>/dev/null || true
    cg=""
  else
    out=$(GOMEMLIMIT=$memlimit "$work/benchqueue" -dir "$work/queue" -n "$QUEUE_N" -ops 2000) || out=""
  fi
  if [ -z "$out" ]; then
    echo "bench-offload: the queue measurement failed under MemoryMax=$memmax GOMEMLIMIT=$memlimit (${killed:-0} OOM kills)" >&2
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
memmax=$(sed -n 's/^MemoryMax=//p' "$unit")
q=$(measure_queue "$memmax" "$memlimit")
read -r reopen_s ops_s bytes_per rss_mib anon_mib file_mib stats_s group_s peak killed <<< "$q"
# The same in a 64 MiB cgroup, page cache included: what a board that must hold the agent
# to the 64 MiB target would get, at what cost.
SMALL_MAX=${SMALL_MAX:-64M} SMALL_LIMIT=${SMALL_LIMIT:-40MiB}
q=$(measure_queue "$SMALL_MAX" "$SMALL_LIMIT")
read -r s_reopen_s s_ops_s _ s_rss_mib s_anon_mib _ _ s_group_s s_peak s_killed <<< "$q"
echo
cold="warm page cache (not root: no cache drop, no cgroup, limits only by GOMEMLIMIT)"
[ "$(id -u)" = 0 ] && cold="cold page cache, as after a power cut"
echo "queue of $QUEUE_N recordings, measured from a $cold; disk read-ahead $ra KiB${ra_was:+ (the disk's own $ra_was KiB set to the board's for this part)}"
printf '%-44s %12s %12s %12s\n' "MemoryMax, GOMEMLIMIT" "$memmax, $memlimit" "$SMALL_MAX, $SMALL_LIMIT" target
printf '%-44s %12.3f %12.3f %12s\n' "restart: reopen, release 32 stale leases, s" "$reopen_s" "$s_reopen_s" "< 2"
printf '%-44s %12.6f %12s %12s\n' "queue stats (backlog, telemetry), s" "$stats_s" "" ""
printf '%-44s %12.0f %12.0f %12s\n' "lease + receipt per second, one caller" "$ops_s" "$s_ops_s" ""
printf '%-44s %12.0f %12.0f %12s\n' "lease + receipt per second, 64 callers" "$group_s" "$s_group_s" ">= 10000"
printf '%-44s %12.0f %12s %12s\n' "bytes on disk per recording" "$bytes_per" "" "<= 1024"
printf '%-44s %12.1f %12.1f %12s\n' "peak RSS of the measuring process, MiB" "$rss_mib" "$s_rss_mib" "<= 64"
printf '%-44s %12.1f %12.1f %12s\n' "  of which anonymous (heap, stacks), MiB" "$anon_mib" "$s_anon_mib" ""
printf '%-44s %12.1f %12s %12s\n' "  of which file-backed (mapped tables), MiB" "$file_mib" "" ""
printf '%-44s %12s %12s %12s\n' "cgroup peak with page cache, MiB; OOM kills" "$peak; $killed" "$s_peak; $s_killed" ""
printf '%s queue_n=%d reopen_s=%.3f lease_receipt_per_s=%.0f lease_receipt_64_callers_per_s=%.0f bytes_per_recording=%.0f queue_rss_mib=%.1f queue_rss_anon_mib=%.1f queue_rss_file_mib=%.1f queue_stats_s=%.6f queue_cgroup_peak_mib=%s queue_oom_kills=%s queue_read_ahead_kb=%s small_reopen_s=%.3f small_lease_receipt_per_s=%.0f small_lease_receipt_64_callers_per_s=%.0f small_rss_mib=%.1f small_oom_kills=%s\n' "$first" "$QUEUE_N" "$reopen_s" "$ops_s" "$group_s" "$bytes_per" "$rss_mib" "$anon_mib" "$file_mib" "$stats_s" "$peak" "$killed" "$ra" "$s_reopen_s" "$s_ops_s" "$s_group_s" "$s_rss_mib" "$s_killed"
