#!/usr/bin/env bash
# bench-uplink: the same recording (SIZE_MB, default 1024) over loopback three ways, in one
# run: the dock's upload through mosquitto to the central receiver (central fsyncs and
# verifies SHA-256 before its receipt), `curl -T` PUT to nginx's WebDAV module writing to
# disk, and a raw TCP copy with socat; the best of ROUNDS (3) interleaved rounds. Then the
# upload again with the dock's connection cut at 90 %: how many bytes were sent twice.
# Installs nginx, socat and curl when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-1024}
CHUNK=${CHUNK:-1048576}
WINDOW=${WINDOW:-32}
need=()
for b in nginx:nginx socat:socat curl:curl; do command -v "${b%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${b%%:*}" ] || need+=("${b##*:}"); done
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
mkdir -p build/out
work=$(mktemp -d "$PWD/build/out/bench-uplink.XXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; chmod -R u+w "$work"; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
head -c $((SIZE_MB << 20)) /dev/urandom > "$work/src.mp4"; sync
go build -o "$work/benchuplink" ./build/benchuplink

# mosquitto
mqp=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 64\nmax_queued_messages 10000\n' "$mqp" > "$work/mq.conf"
[ "$(id -u)" = 0 ] && echo "user root" >> "$work/mq.conf"
$(command -v mosquitto || echo /usr/sbin/mosquitto) -c "$work/mq.conf" 2>"$work/mq.log" & pids+=($!)
# nginx with WebDAV PUT
ngp=$(free_port); mkdir -p "$work/www/up" "$work/ngtmp"
cat > "$work/nginx.conf" <<NG
$([ "$(id -u)" = 0 ] && echo "user root;") worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/nginx.err;
events {}
http { access_log off; client_body_temp_path $work/ngtmp; client_max_body_size 0;
  server { listen 127.0.0.1:$ngp; location /up/ { root $work/www; dav_methods PUT; create_full_put_path on; } } }
NG
$(command -v nginx || echo /usr/sbin/nginx) -c "$work/nginx.conf" & pids+=($!)
sleep 0.5

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
min() { echo "if ($1 < $2) $1 else $2" | bc -l; }
# Rounds of the three, interleaved so that the disk's moods fall on each alike; the best of
# ROUNDS counts for each.
dock_s=999999 nginx_s=999999 socat_s=999999
for round in $(seq "${ROUNDS:-3}"); do
  rm -rf "$work/run1" "$work/www/up/src.mp4" "$work/socat.out"
  # Command substitution, not <(...): wait for benchuplink to close its queue before the
  # next round removes the directory.
  r=$("$work/benchuplink" -broker "tcp://127.0.0.1:$mqp" -src "$work/src.mp4" -dir "$work/run1" -chunk "$CHUNK" -window "$WINDOW")
  read -r s _ size <<< "$r"
  dock_s=$(min "$dock_s" "$s")
  s=$(t bash -c "curl -sSf -T '$work/src.mp4' http://127.0.0.1:$ngp/up/src.mp4 && sync '$work/www/up/src.mp4'")
  nginx_s=$(min "$nginx_s" "$s")
  cmp -s "$work/src.mp4" "$work/www/up/src.mp4" || { echo "nginx copy differs" >&2; cat "$work/nginx.err" >&2; ls -la "$work/www/up" >&2; exit 1; }
  scp=$(free_port)
  socat -u TCP-LISTEN:$scp,bind=127.0.0.1,reuseaddr OPEN:"$work/socat.out",creat,trunc & lp=$!; pids+=($lp)
  sleep 0.3
  s=$(t bash -c "socat -u FILE:'$work/src.mp4' TCP:127.0.0.1:$scp; wait $lp 2>/dev/null; sync '$work/socat.out'")
  socat_s=$(min "$socat_s" "$s")
done
r=$("$work/benchuplink" -broker "tcp://127.0.0.1:$mqp" -src "$work/src.mp4" -dir "$work/run2" -chunk "$CHUNK" -window "$WINDOW" -cut 0.9)
read -r cut_s cut_rx _ <<< "$r"
window=$((WINDOW * CHUNK))
resent=$((cut_rx - size))

mbps() { echo "$SIZE_MB / $1" | bc -l; }
echo "machine: $(nproc) cores, $(uname -m); ${SIZE_MB} MiB over loopback; mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}'), window $WINDOW x $((CHUNK >> 10)) KiB; best of ${ROUNDS:-3}"
printf '%-52s %9s %9s %9s\n' method seconds MiB/s "vs nginx"
printf '%-52s %9.3f %9.1f %9.2f\n' "nginx WebDAV PUT (curl -T), then sync" "$nginx_s" "$(mbps "$nginx_s")" 1
printf '%-52s %9.3f %9.1f %9.2f\n' "raw TCP copy (socat), then sync" "$socat_s" "$(mbps "$socat_s")" "$(echo "$nginx_s / $socat_s" | bc -l)"
printf '%-52s %9.3f %9.1f %9.2f\n' "dock upload via mosquitto, fsync + SHA-256 receipt" "$dock_s" "$(mbps "$dock_s")" "$(echo "$nginx_s / $dock_s" | bc -l)"
echo "connection cut at 90 %: $resent bytes sent again (one window is $window bytes); an HTTP PUT would send $size again"
printf 'nginx_s=%.3f socat_s=%.3f dock_s=%.3f dock_vs_nginx=%.3f target_vs_nginx=0.8 resent_bytes=%d window_bytes=%d\n' "$nginx_s" "$socat_s" "$dock_s" "$(echo "$nginx_s / $dock_s" | bc -l)" "$resent" "$window"
