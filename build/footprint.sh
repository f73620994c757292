#!/usr/bin/env bash
# footprint: stripped binary sizes per architecture (from make cross), then the agent's idle
# CPU and RSS with nothing docked, and its peak RSS while four cameras offload and upload.
# The agent runs as docksim (the real agent plus the in-process simulated dock, a little
# more than dockagent alone) against a real mosquitto, with central as its own process.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=build/out
IDLE_S=${IDLE_S:-20}
printf '%-8s %-10s %8s\n' arch program MB
for arch in arm arm64 amd64; do
  for p in dockagent central dockctl; do
    [ -f "$OUT/$arch/$p" ] && printf '%-8s %-10s %8.1f\n' "$arch" "$p" "$(echo "$(stat -c %s "$OUT/$arch/$p") / 1048576" | bc -l)"
  done
done
arm64_mb=$(echo "$(stat -c %s "$OUT/arm64/dockagent") / 1048576" | bc -l)
armv7_mb=$(echo "$(stat -c %s "$OUT/arm/dockagent") / 1048576" | bc -l)

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; chmod -R u+w "$work"; rm -rf "$work"; }
trap cleanup EXIT
mq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" > "$work/mq.conf"
[ "$(id -u)" = 0 ] && echo "user root" >> "$work/mq.conf"
"$mq" -c "$work/mq.conf" 2>"$work/mq.log" & pids+=($!)
sleep 0.5
go build -ldflags "-s -w" -o "$work/docksim" ./agent/cmd/docksim
"$OUT/amd64/central" -broker "tcp://127.0.0.1:$port" -store "$work/central" 2>"$work/central.log" & pids+=($!)
mkfifo "$work/script"
"$work/docksim" -dir "$work/sim" -broker "tcp://127.0.0.1:$port" -central=false -script "$work/script" -stay -poll-ms 30000 2>"$work/agent.log" >/dev/null & agent=$!; pids+=($agent)
exec 3>"$work/script"
sleep 3
rss() { awk '/VmRSS/ {print $2}' /proc/$agent/status; }
ticks() { awk '{print $14+$15}' /proc/$agent/stat; }
hz=$(getconf CLK_TCK)
t0=$(ticks); sleep "$IDLE_S"; t1=$(ticks)
idle_cpu=$(echo "100 * ($t1 - $t0) / $hz / $IDLE_S" | bc -l)
idle_rss=$(rss)
for i in 0 1 2 3; do echo "camera CAM-$i recordings=8 size=32MB" >&3; done
for i in 0 1 2 3; do echo "dock $i CAM-$i" >&3; done
peak=0
for _ in $(seq 600); do
  r=$(rss); [ "$r" -gt "$peak" ] && peak=$r
  n=$(find "$work/central/index" -type f 2>/dev/null | wc -l || true)
  [ "$n" -ge 32 ] && break
  sleep 0.1
done
n=$(find "$work/central/index" -type f 2>/dev/null | wc -l || true)
exec 3>&-
echo
echo "machine: $(nproc) cores, $(uname -m); agent = docksim (agent + simulated dock), mosquitto, central as its own process"
printf '%-40s %10s %10s\n' measure value target
printf '%-40s %8.1fMB %10s\n' "dockagent arm64, stripped" "$arm64_mb" "<= 20 MB"
printf '%-40s %8.1fMB %10s\n' "dockagent armv7, stripped" "$armv7_mb" "-"
printf '%-40s %9.2f%% %10s\n' "idle CPU, nothing docked (${IDLE_S}s)" "$idle_cpu" "<= 1 %"
printf '%-40s %7.1fMiB %10s\n' "RSS idle" "$(echo "$idle_rss / 1024" | bc -l)" "<= 24 MiB"
printf '%-40s %7.1fMiB %10s\n' "RSS peak, 4 cameras offload+upload" "$(echo "$peak / 1024" | bc -l)" "<= 64 MiB"
echo "recordings at central during the busy run: $n of 32"
printf 'arm64_mb=%.1f armv7_mb=%.1f idle_cpu_pct=%.2f idle_rss_mib=%.1f busy_rss_mib=%.1f\n' "$arm64_mb" "$armv7_mb" "$idle_cpu" "$(echo "$idle_rss / 1024" | bc -l)" "$(echo "$peak / 1024" | bc -l)"
