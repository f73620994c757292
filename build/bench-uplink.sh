#!/usr/bin/env bash
# bench-uplink: the dock's upload against the same job done with standard tools, in one run.
#
# 1. Loopback, SIZE_MB (1024), best of ROUNDS (3) interleaved rounds: the dock's upload
#    through mosquitto to the central receiver (central fsyncs and verifies SHA-256 before
#    its receipt) against the operator's pipeline: the spool file decrypted with `age -d`,
#    piped to `curl -T -` into nginx's WebDAV, then `sync` and `sha256sum` at the receiver.
#    The same with TLS as shipped (ssl://, the test PKI of uplink/mqtttest, the shipped ACL)
#    against the pipeline over HTTPS; and the dock over TLS built with upstream paho v1.5.1
#    instead of the fork in uplink/tempfork (a -modfile without the replace). The plain
#    nginx PUT of the file and a raw TCP copy with socat are context.
# 2. A real link: dock and central in two network namespaces joined by a veth pair, the
#    dock's side shaped with tbf to each rate of LINK_RATES (100 and 20 Mbit/s); LINK_MB
#    (64) of footage, best of LINK_ROUNDS (2): the dock's goodput (footage verified at
#    central per second) against `curl -T` of the file to nginx over the same link, then
#    `sync` and `sha256sum` at the receiver, plain and with TLS; bytes on the wire (the
#    veth's counters, both ways) per byte of footage.
# 3. The upload with the dock's connection cut at 90 %: how many bytes were sent twice.
# PARTS ("loopback link") runs either alone. Needs root for the namespaces (the link part is skipped otherwise, and says so). Installs
# nginx, age, curl, socat, mosquitto and iproute2 when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-1024}
CHUNK=${CHUNK:-1048576}
WINDOW=${WINDOW:-32}
ROUNDS=${ROUNDS:-3}
LINK_MB=${LINK_MB:-64}
LINK_RATES=${LINK_RATES:-100 20}
LINK_ROUNDS=${LINK_ROUNDS:-2}
PARTS=${PARTS:-loopback link} # either or both
need=()
for b in nginx:nginx socat:socat curl:curl age:age mosquitto:mosquitto ip:iproute2 tc:iproute2; do
  command -v "${b%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${b%%:*}" ] || need+=("${b##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
  # The packages enable system services on ports 80 and 1883; the benchmark starts its own.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx mosquitto >/dev/null 2>&1 || true; fi
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
mkdir -p build/out
work=$(mktemp -d "$PWD/build/out/bench-uplink.XXXX")
pids=()
nsd=bench-d-$$ nsc=bench-c-$$ vd=bvd$$ vc=bvc$$
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$nsd" 2>/dev/null || true
  ip netns del "$nsc" 2>/dev/null || true
  chmod -R u+w "$work"; rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
min() { echo "if ($1 < $2) $1 else $2" | bc -l; }
div() { echo "$1 / $2" | bc -l; }
echo "load before the run: $(cat /proc/loadavg)"
head -c $((SIZE_MB << 20)) /dev/urandom > "$work/src.mp4"
want=$(sha256sum "$work/src.mp4" | cut -d' ' -f1)
go build -o "$work/benchuplink" ./build/benchuplink
# The same program with upstream paho v1.5.1 in place of the fork.
cp go.mod "$work/upstream.mod"; cp go.sum "$work/upstream.sum"
go mod edit -modfile="$work/upstream.mod" -dropreplace=github.com/eclipse/paho.mqtt.golang
GOFLAGS=-mod=mod go build -modfile="$work/upstream.mod" -o "$work/benchuplink-upstream" ./build/benchuplink
go version -m "$work/benchuplink-upstream" | grep -q 'paho.mqtt.golang.*v1.5.1.*h1:' || { echo "the upstream build does not link upstream paho" >&2; exit 1; }
"$work/benchuplink" -role pki -dir "$work/pki" -pki-ips 10.201.0.2
# The peer decrypts the dock's own spool file (its 4 KiB header skipped) with the dock's key.
read -r spoolfile spoolkey <<< "$("$work/benchuplink" -role offload -src "$work/src.mp4" -dir "$work/peer")"
sync

# mosquitto_conf ADDR PORT [tls]: plain as the benchmark always ran it, or TLS as shipped
# (build/mosquitto/mosquitto.conf: client certificates, identity as user name, the ACL).
mosquitto_conf() {
  printf 'per_listener_settings false\nlistener %s %s\npersistence false\nmax_inflight_messages 64\nmax_queued_messages 10000\nmessage_size_limit 1049600\n' "$2" "$1"
  if [ "${3:-}" = tls ]; then
    printf 'allow_anonymous false\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\nuse_identity_as_username true\ntls_version tlsv1.2\nacl_file %s\n' \
      "$work/pki/ca.pem" "$work/pki/broker.pem" "$work/pki/broker.key" "$PWD/build/mosquitto/acl"
  else
    echo "allow_anonymous true"
  fi
  [ "$(id -u)" = 0 ] && echo "user root"
  return 0
}
# nginx_conf NAME ADDR PORT TLSPORT: WebDAV PUT into $work/NAME/www over HTTP and HTTPS.
nginx_conf() {
  mkdir -p "$work/$1/www/up" "$work/$1/tmp"
  cat <<NG
$([ "$(id -u)" = 0 ] && echo "user root;") worker_processes 1; daemon off; pid $work/$1/nginx.pid; error_log $work/$1/nginx.err;
events {}
http { access_log off; client_body_temp_path $work/$1/tmp; client_max_body_size 0;
  server { listen $2:$3; listen $2:$4 ssl; ssl_certificate $work/pki/broker.pem; ssl_certificate_key $work/pki/broker.key;
    location /up/ { root $work/$1/www; dav_methods PUT; create_full_put_path on; } } }
NG
}
# wait_port ADDR PORT [NETNS]: until something listens there.
wait_port() {
  local in=(); [ -z "${3:-}" ] || in=(nsenter --net="/run/netns/$3" --)
  for _ in $(seq 100); do [ -n "$("${in[@]}" ss -Hltn "src $1:$2")" ] && return 0; sleep 0.05; done
  echo "nothing listens on $1:$2" >&2; exit 1
}

# received FILE: sync it and check its SHA-256 at the receiver.
received() { sync "$1" && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$want" ] || { echo "the copy at $1 differs" >&2; exit 1; }; }
summary="load=$(cut -d' ' -f1 /proc/loadavg)"
if [[ " $PARTS " == *" loopback "* ]]; then
# Loopback services.
mqp=$(free_port) mqs=$(free_port) ngp=$(free_port) ngs=$(free_port)
mosquitto_conf 127.0.0.1 "$mqp" > "$work/mq.conf"; mosquitto_conf 127.0.0.1 "$mqs" tls > "$work/mqs.conf"
"$MOSQUITTO" -c "$work/mq.conf" 2>"$work/mq.log" & pids+=($!)
"$MOSQUITTO" -c "$work/mqs.conf" 2>"$work/mqs.log" & pids+=($!)
nginx_conf lo 127.0.0.1 "$ngp" "$ngs" > "$work/nginx-lo.conf"
"$NGINX" -c "$work/nginx-lo.conf" & pids+=($!)
for p in $mqp $mqs $ngp $ngs; do wait_port 127.0.0.1 "$p"; done

# dock BIN BROKER [benchuplink flags]: one upload, central in this process; the seconds and
# the CPU seconds of that process (dock and central; mosquitto's are not counted).
dock() {
  local bin=$1 broker=$2 r s cpu; shift 2
  rm -rf "$work/run"
  r=$("$bin" -broker "$broker" -src "$work/src.mp4" -dir "$work/run" -chunk "$CHUNK" -window "$WINDOW" "$@")
  read -r s _ _ cpu <<< "$r"
  echo "$s $cpu"
}
# pipeline URL [curl flags]: age -d of the spool file into curl -T -, then sync + sha256sum.
pipeline() {
  local url=$1 s; shift
  rm -f "$work/lo/www/up/src.mp4"
  s=$(now)
  tail -c +4097 "$spoolfile" | age -d -i "$spoolkey" | curl -sSf -T - "$@" "$url" >/dev/null
  received "$work/lo/www/up/src.mp4"
  div "$(now) - $s" 1
}
put() {
  local s
  rm -f "$work/lo/www/up/src.mp4"; s=$(now)
  curl -sSf -T "$work/src.mp4" "http://127.0.0.1:$ngp/up/src.mp4" >/dev/null
  received "$work/lo/www/up/src.mp4"
  div "$(now) - $s" 1
}
socat_copy() {
  local scp lp s
  rm -f "$work/socat.out"; scp=$(free_port)
  socat -u TCP-LISTEN:$scp,bind=127.0.0.1,reuseaddr OPEN:"$work/socat.out",creat,trunc & lp=$!
  for _ in $(seq 100); do [ -n "$(ss -Hltn "sport = :$scp")" ] && break; sleep 0.05; done
  s=$(now)
  socat -u FILE:"$work/src.mp4" TCP:127.0.0.1:$scp; wait $lp
  received "$work/socat.out"
  div "$(now) - $s" 1
}
# Interleaved rounds: the disk's and the neighbours' moods fall on each alike; best counts.
declare -A best
# keep NAME SECONDS [CPU]: the best seconds and the least CPU seconds of NAME's rounds.
keep() {
  best[$1]=$(min "${best[$1]:-999999}" "$2"); runs[$1]="${runs[$1]:-}$(printf ' %.2f' "$2")"
  [ -z "${3:-}" ] || { cpu[$1]=$(min "${cpu[$1]:-999999}" "$3"); cpuruns[$1]="${cpuruns[$1]:-}$(printf ' %.2f' "$3")"; }
}
declare -A runs cpu cpuruns
for round in $(seq "$ROUNDS"); do
  keep dock $(dock "$work/benchuplink" "tcp://127.0.0.1:$mqp")
  keep pipe "$(pipeline "http://127.0.0.1:$ngp/up/src.mp4")"
  keep dock_tls $(dock "$work/benchuplink" "ssl://127.0.0.1:$mqs" -tls "$work/pki")
  keep pipe_tls "$(pipeline "https://127.0.0.1:$ngs/up/src.mp4" --cacert "$work/pki/ca.pem")"
  keep upstream_tls $(dock "$work/benchuplink-upstream" "ssl://127.0.0.1:$mqs" -tls "$work/pki")
  keep upstream $(dock "$work/benchuplink-upstream" "tcp://127.0.0.1:$mqp")
  keep put "$(put)"
  keep socat "$(socat_copy)"
done
r=$("$work/benchuplink" -broker "tcp://127.0.0.1:$mqp" -src "$work/src.mp4" -dir "$work/cut" -chunk "$CHUNK" -window "$WINDOW" -cut 0.9)
read -r _ cut_rx size _ <<< "$r"
rm -rf "$work/cut" "$work/run"
resent=$((cut_rx - size))
window=$((WINDOW * CHUNK))

mbps() { div "$SIZE_MB" "$1"; }
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m), kernel $(uname -r), fs $(df -T "$work" | awk 'NR==2 {print $2}'); mosquitto $("$MOSQUITTO" -h 2>/dev/null | head -1 | awk '{print $3}'), $("$NGINX" -v 2>&1 | sed 's/.*: //'), age $(age --version), $(curl --version | head -1 | cut -d' ' -f1-2)"
echo "loopback: ${SIZE_MB} MiB, window $WINDOW x $((CHUNK >> 10)) KiB; best of $ROUNDS interleaved rounds (s):"
for k in dock pipe dock_tls pipe_tls upstream_tls upstream put socat; do printf '  %-13s%s%s\n' "$k" "${runs[$k]}" "${cpuruns[$k]:+ (CPU s:${cpuruns[$k]})}"; done
printf '%-62s %8s %8s %9s %8s\n' "method (loopback)" seconds MiB/s "vs peer" target
row() { printf '%-62s %8.3f %8.1f %9s %8s\n' "$1" "$2" "$(mbps "$2")" "$3" "${4:-}"; }
row "peer: age -d | curl -T - to nginx WebDAV, sync, sha256sum" "${best[pipe]}" 1.00
row "dock upload via mosquitto, fsync + SHA-256 receipt" "${best[dock]}" "$(printf %.2f "$(div "${best[pipe]}" "${best[dock]}")")" ">= 1.3"
row "peer over HTTPS" "${best[pipe_tls]}" 1.00
row "dock over TLS as shipped (ssl://, ACL)" "${best[dock_tls]}" "$(printf %.2f "$(div "${best[pipe_tls]}" "${best[dock_tls]}")")" ">= 1.3"
row "  the same with upstream paho v1.5.1 (no fork)" "${best[upstream_tls]}" "$(printf %.2f "$(div "${best[pipe_tls]}" "${best[upstream_tls]}")")"
row "  plain, upstream paho v1.5.1 (no fork)" "${best[upstream]}" "$(printf %.2f "$(div "${best[pipe]}" "${best[upstream]}")")"
row "context: nginx WebDAV PUT (curl -T file), sync, sha256sum" "${best[put]}" "$(printf %.2f "$(div "${best[pipe]}" "${best[put]}")")"
row "context: raw TCP copy (socat), sync, sha256sum" "${best[socat]}" "$(printf %.2f "$(div "${best[pipe]}" "${best[socat]}")")"
printf 'paho fork against upstream v1.5.1 (above 1: the fork is better): TLS %.3f s vs %.3f s (%.2fx), CPU of dock + central %.2f s vs %.2f s (%.2fx); plain %.3f s vs %.3f s (%.2fx), CPU %.2f s vs %.2f s (%.2fx)\n' \
  "${best[dock_tls]}" "${best[upstream_tls]}" "$(div "${best[upstream_tls]}" "${best[dock_tls]}")" "${cpu[dock_tls]}" "${cpu[upstream_tls]}" "$(div "${cpu[upstream_tls]}" "${cpu[dock_tls]}")" \
  "${best[dock]}" "${best[upstream]}" "$(div "${best[upstream]}" "${best[dock]}")" "${cpu[dock]}" "${cpu[upstream]}" "$(div "${cpu[upstream]}" "${cpu[dock]}")"
echo "connection cut at 90 %: $resent bytes sent again (one window is $window bytes); an HTTP PUT would send $size again"
summary=$(printf '%s size_mib=%d dock_s=%.3f peer_age_curl_s=%.3f dock_vs_peer=%.3f target_vs_peer=1.3 dock_tls_s=%.3f peer_https_s=%.3f dock_tls_vs_peer=%.3f upstream_paho_tls_s=%.3f fork_vs_upstream_tls=%.3f upstream_paho_s=%.3f fork_vs_upstream=%.3f dock_cpu_s=%.2f upstream_cpu_s=%.2f dock_tls_cpu_s=%.2f upstream_tls_cpu_s=%.2f nginx_put_s=%.3f socat_s=%.3f resent_bytes=%d window_bytes=%d' \
  "$summary" "$SIZE_MB" "${best[dock]}" "${best[pipe]}" "$(div "${best[pipe]}" "${best[dock]}")" "${best[dock_tls]}" "${best[pipe_tls]}" "$(div "${best[pipe_tls]}" "${best[dock_tls]}")" \
  "${best[upstream_tls]}" "$(div "${best[upstream_tls]}" "${best[dock_tls]}")" "${best[upstream]}" "$(div "${best[upstream]}" "${best[dock]}")" "${cpu[dock]}" "${cpu[upstream]}" "${cpu[dock_tls]}" "${cpu[upstream_tls]}" "${best[put]}" "${best[socat]}" "$resent" "$window")

fi

# The shaped link.
if [[ " $PARTS " != *" link "* ]]; then
  echo "$summary"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! ip netns add "$nsd" 2>/dev/null; then
  echo "shaped link: skipped (network namespaces need root)"
  echo "$summary link=skipped"
  exit 0
fi
ip netns add "$nsc"
ip link add "$vd" type veth peer name "$vc"
ip link set "$vd" netns "$nsd"; ip link set "$vc" netns "$nsc"
ip -n "$nsd" addr add 10.201.0.1/24 dev "$vd"; ip -n "$nsc" addr add 10.201.0.2/24 dev "$vc"
for n in "$nsd:$vd" "$nsc:$vc"; do ip -n "${n%%:*}" link set lo up; ip -n "${n%%:*}" link set "${n##*:}" up; done
# Processes in a namespace: nsenter execs the command (its pid is the command's, for kill);
# `ip netns exec` waits in a parent of its own but mounts the namespace's /sys (for wire).
inc=(nsenter --net="/run/netns/$nsc" --) # not a function: `cmd &` of a function forks a shell that waits for cmd
ind() { ip netns exec "$nsd" "$@"; }
mosquitto_conf 10.201.0.2 1883 > "$work/mq-link.conf"; mosquitto_conf 10.201.0.2 8883 tls > "$work/mqs-link.conf"
"${inc[@]}" "$MOSQUITTO" -c "$work/mq-link.conf" 2>"$work/mq-link.log" & pids+=($!)
"${inc[@]}" "$MOSQUITTO" -c "$work/mqs-link.conf" 2>"$work/mqs-link.log" & pids+=($!)
nginx_conf link 10.201.0.2 80 443 > "$work/nginx-link.conf"
"${inc[@]}" "$NGINX" -c "$work/nginx-link.conf" & pids+=($!)
for p in 1883 8883 80 443; do wait_port 10.201.0.2 "$p" "$nsc"; done
head -c $((LINK_MB << 20)) "$work/src.mp4" > "$work/link.mp4"
want=$(sha256sum "$work/link.mp4" | cut -d' ' -f1)
wire() { ind cat "/sys/class/net/$vd/statistics/tx_bytes" "/sys/class/net/$vd/statistics/rx_bytes" | paste -sd+ | bc; }
# link_dock BROKER [flags]: central (with the broker) behind the link, the dock before it;
# prints seconds and bytes on the wire.
link_dock() {
  local broker=$1 c w0 r s f; shift
  rm -rf "$work/lrun" "$work/lcentral"; mkdir -p "$work/lrun" "$work/lcentral"
  "${inc[@]}" "$work/benchuplink" -role central -broker "$broker" -dir "$work/lcentral" -chunk "$CHUNK" -window "$WINDOW" "$@" >/dev/null & c=$!
  for _ in $(seq 200); do [ -s "$work/lcentral/central.pub" ] && break; sleep 0.05; done
  w0=$(wire)
  r=$(ind "$work/benchuplink" -role dock -broker "$broker" -central-pub "$work/lcentral/central.pub" -src "$work/link.mp4" -dir "$work/lrun" -chunk "$CHUNK" -window "$WINDOW" "$@")
  read -r s _ _ <<< "$r"
  echo "$s $(($(wire) - w0))"
  kill "$c"; wait "$c" || true
  f=$(find "$work/lcentral/central/recordings" -type f -name 'BENCH_upload.mp4')
  received "$f"
}
# link_curl URL [curl flags]: curl -T of the file over the link, then sync + sha256sum.
link_curl() {
  local url=$1 w0 s; shift
  rm -f "$work/link/www/up/src.mp4"; w0=$(wire); s=$(now)
  ind curl -sSf -T "$work/link.mp4" "$@" "$url" >/dev/null
  received "$work/link/www/up/src.mp4"
  echo "$(div "$(now) - $s" 1) $(($(wire) - w0))"
}
echo
echo "shaped link: dock and central in two network namespaces, veth, the dock's egress shaped by tbf; ${LINK_MB} MiB; best of $LINK_ROUNDS interleaved rounds"
printf '%-58s %8s %8s %10s %10s %8s\n' "method" seconds "Mbit/s" "wire/byte" "vs curl" target
foot=$((LINK_MB << 20))
for rate in $LINK_RATES; do
  tc -n "$nsd" qdisc replace dev "$vd" root tbf rate "${rate}mbit" burst $((rate * 1250)) latency 50ms
  declare -A lb=() lw=()
  for round in $(seq "$LINK_ROUNDS"); do
    for m in dock curl dock_tls curl_tls; do
      case $m in
      dock) r=$(link_dock tcp://10.201.0.2:1883) ;;
      curl) r=$(link_curl http://10.201.0.2/up/src.mp4) ;;
      dock_tls) r=$(link_dock ssl://10.201.0.2:8883 -tls "$work/pki") ;;
      curl_tls) r=$(link_curl https://10.201.0.2/up/src.mp4 --cacert "$work/pki/ca.pem") ;;
      esac
      read -r s w <<< "$r"
      if [ -z "${lb[$m]:-}" ] || awk -v a="$s" -v b="${lb[$m]}" 'BEGIN { exit !(a < b) }'; then lb[$m]=$s lw[$m]=$w; fi
    done
  done
  for m in curl dock curl_tls dock_tls; do
    peer=${m/dock/curl}
    label="curl -T to nginx, sync, sha256sum"; [ "${m#dock}" = "$m" ] || label="dock upload via mosquitto (goodput)"
    [ "${m%_tls}" = "$m" ] || label="$label, TLS"
    tgt=""; [ "${m#dock}" = "$m" ] || tgt=">= 0.95"
    printf '%-58s %8.3f %8.1f %10.4f %10.3f %8s\n' "$rate Mbit/s: $label" "${lb[$m]}" "$(div "$foot * 8" "(${lb[$m]} * 1000000)")" "$(div "${lw[$m]}" "$foot")" "$(div "${lb[$peer]}" "${lb[$m]}")" "$tgt"
  done
  summary="$summary link${rate}_dock_s=$(printf %.3f "${lb[dock]}") link${rate}_curl_s=$(printf %.3f "${lb[curl]}") link${rate}_dock_vs_curl=$(printf %.3f "$(div "${lb[curl]}" "${lb[dock]}")") link${rate}_dock_wire_per_byte=$(printf %.4f "$(div "${lw[dock]}" "$foot")") link${rate}_curl_wire_per_byte=$(printf %.4f "$(div "${lw[curl]}" "$foot")") link${rate}_dock_tls_s=$(printf %.3f "${lb[dock_tls]}") link${rate}_curl_tls_s=$(printf %.3f "${lb[curl_tls]}") link${rate}_dock_tls_vs_curl=$(printf %.3f "$(div "${lb[curl_tls]}" "${lb[dock_tls]}")") link${rate}_dock_tls_wire_per_byte=$(printf %.4f "$(div "${lw[dock_tls]}" "$foot")") target_link_vs_curl=0.95"
done
echo "$summary"
