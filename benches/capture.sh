#!/usr/bin/env bash
# Side-by-side speed of offline decoding, measured in one run on this machine.
#
# Makes a large capture of v2/v3 echo traffic with rc1's own servers and
# clients on loopback (not committed; in $WORK, default a temp dir), then
# times, on the same file:
#   - rc1 capture -r with per-frame text output to /dev/null, with --json,
#     and with -q (decode only),
#   - tcpdump -r FILE -w /dev/null (the raw libpcap read floor),
#   - tshark -r on a 100k-packet slice (tshark slows super-linearly on long
#     TCP streams; rc1 is timed on the same slice for the ratio), without
#     and with rc1's Lua dissector (dissectors/rc1.lua, given the bench's
#     ports with -d),
# and peak memory (max RSS) of rc1 on the slice and on the whole file, to
# show it stays flat as the file grows. Needs root (tcpdump on lo).
#
# usage: benches/capture.sh [CLIENTS] [MESSAGES_PER_CLIENT]
#        REUSE=1 WORK=DIR benches/capture.sh   (time DIR/big.pcap again)
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-8}
per_client=${2:-70000}
work=${WORK:-$(mktemp -d)}
port=${PORT:-5077}
for tool in tcpdump:tcpdump tshark:tshark editcap:tshark capinfos:tshark bc:bc /usr/bin/time:time; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing="${missing:-} ${tool##*:}"
done
if [ -n "${missing:-}" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
cargo build --release --quiet
rc1="${CARGO_TARGET_DIR:-target}/release/rc1"
big="$work/big.pcap"
slice="$work/slice.pcap"

if [ "${REUSE:-}" = 1 ] && [ -s "$big" ]; then
  echo "== reusing $big"
else
echo "== making $big: $clients clients x $per_client messages, v2 and v3, port $port"
tcpdump -i lo -s 65535 -B 65536 -U --immediate-mode -w "$big" "port $port or port $((port + 1))" 2>"$work/tcpdump.err" &
td=$!
"$rc1" server -p v2 --port "$port" -q & s2=$!
"$rc1" server -p v3 --port "$((port + 1))" -q & s3=$!
trap 'kill $td $s2 $s3 2>/dev/null || true' EXIT
sleep 1
pids=()
for i in $(seq 1 "$clients"); do
  if [ $((i % 2)) -eq 0 ]; then proto=v2; p=$port; else proto=v3; p=$((port + 1)); fi
  python3 -c "
import sys
for n in range($per_client): sys.stdout.write(f'message {n} from client $i\n')
" | "$rc1" client -p "$proto" --port "$p" -q --timeout 10s &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
sleep 1
kill -INT "$td"; wait "$td" || true
kill -INT "$s2" "$s3"; wait "$s2" "$s3" || true
trap - EXIT
tail -3 "$work/tcpdump.err"
fi
packets=$(capinfos -Mc "$big" | awk -F': *' '/Number of packets/ {print $2}')
bytes=$(stat -c %s "$big")
[ -s "$slice" ] && [ "${REUSE:-}" = 1 ] || editcap -r "$big" "$slice" 1-100000
echo "   $packets packets, $bytes bytes"

# The servers are on two ports; the lower port of a session is the server.
f=(-f "port $port or port $((port + 1))")

secs() { # run a command, print elapsed seconds (best of 3)
  local best=""
  for _ in 1 2 3; do
    local t0 t1
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s.%N)
    local d; d=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$d < $best" | bc -l)" = 1 ]; then best=$d; fi
  done
  echo "$best"
}
rate() { echo "scale=0; $1 / $2" | bc -l; }
maxrss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }

frames=$("$rc1" capture -r "$big" "${f[@]}" --json | grep -c '"type":"frame"' || true)
t_text=$(secs "$rc1" capture -r "$big" "${f[@]}")
t_json=$(secs "$rc1" capture -r "$big" "${f[@]}" --json)
t_quiet=$(secs "$rc1" capture -r "$big" "${f[@]}" -q)
t_tcpdump=$(secs tcpdump -r "$big" -w /dev/null)
t_rc1_slice=$(secs "$rc1" capture -r "$slice" "${f[@]}")
t_tshark_slice=$(secs tshark -r "$slice" -o tcp.reassemble_out_of_order:TRUE)
lua=(-X lua_script:dissectors/rc1.lua -d "tcp.port==$port,rc1" -d "tcp.port==$((port + 1)),rc1")
lua_frames=$(tshark "${lua[@]}" -o tcp.reassemble_out_of_order:TRUE -r "$slice" -Y rc1 -T fields -E occurrence=a -e rc1.order 2>/dev/null | tr ',' '\n' | grep -c . || true)
rc1_frames=$("$rc1" capture -r "$slice" "${f[@]}" --json | grep -c '"type":"frame"' || true)
t_tshark_lua=$(secs tshark "${lua[@]}" -o tcp.reassemble_out_of_order:TRUE -r "$slice")
rss_slice=$(maxrss "$rc1" capture -r "$slice" "${f[@]}")
rss_big=$(maxrss "$rc1" capture -r "$big" "${f[@]}")

echo
echo "== results ($(nproc) cores; best of 3)"
printf '%-44s %8.3f s %10s pkt/s %8s MB/s %10s frames/s\n' \
  "rc1 capture -r (text to /dev/null)" "$t_text" "$(rate "$packets" "$t_text")" "$(rate "$bytes/1000000" "$t_text")" "$(rate "$frames" "$t_text")"
printf '%-44s %8.3f s %10s pkt/s\n' "rc1 capture -r --json" "$t_json" "$(rate "$packets" "$t_json")"
printf '%-44s %8.3f s %10s pkt/s\n' "rc1 capture -r -q (decode, no per-frame output)" "$t_quiet" "$(rate "$packets" "$t_quiet")"
printf '%-44s %8.3f s %10s pkt/s\n' "tcpdump -r -w /dev/null (libpcap floor)" "$t_tcpdump" "$(rate "$packets" "$t_tcpdump")"
printf '%-44s %8.3f s\n' "rc1 on the 100k slice" "$t_rc1_slice"
printf '%-44s %8.3f s\n' "tshark on the 100k slice (no rc1 dissector)" "$t_tshark_slice"
printf '%-44s %8.3f s   (%s frames decoded; rc1: %s)\n' "tshark + dissectors/rc1.lua on the slice" "$t_tshark_lua" "$lua_frames" "$rc1_frames"
echo "ratio tshark / rc1 on the slice: $(echo "scale=1; $t_tshark_slice / $t_rc1_slice" | bc -l)"
echo "ratio tshark with rc1.lua / rc1 on the slice: $(echo "scale=1; $t_tshark_lua / $t_rc1_slice" | bc -l)"
[ "$frames" -gt 0 ] || { echo "bench: rc1 decoded no frame: the measurement is void" >&2; exit 1; }
echo "peak RSS: ${rss_slice} KiB on 100k packets, ${rss_big} KiB on $packets packets"
