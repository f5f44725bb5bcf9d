#!/usr/bin/env bash
# Offline decoding speed against libpcap's read floor, measured side by side
# in one run on this machine (a benchmark, not a test: it prints ratios).
#
# Makes two gap-free captures of echo traffic with rc1's own servers and
# clients on loopback (not committed; in $WORK, default a temp dir):
#   v2: CLIENTS clients, each sending PER_CLIENT lines through `rc1 client
#       -p v2` (a request and its echo per line: about 2 packets a frame);
#   v3: `rc1 flood -p v3 -c 8 --rate 40000 --size 100..2200` (large
#       segments: the MB/s case);
# then, for each file, the median of 3 runs of
#   - tcpdump -r FILE -w /dev/null           (the libpcap read floor)
#   - rc1 capture -r FILE -q                 (decode, no per-frame output)
#   - rc1 capture -r FILE                    (a line per frame, to /dev/null)
#   - rc1 capture -r FILE --json             (a JSON line per frame)
# and prints each against the floor, and JSON against rc1's own text (from
# those medians, and as the median ratio of 5 text/JSON pairs run in turn,
# the steadier figure on a shared machine), the time per packet on a
# 100k-packet slice, longer prefixes and the whole file (linear?),
# peak RSS on both, and tshark on the slice (with and without
# dissectors/rc1.lua; tshark slows super-linearly on long TCP streams, so
# only the slice). Targets (issue 14): v2 lines <= 3x floor, -q <= 2x,
# JSON <= 1.2x text; v3 lines >= 0.5 of the floor's MB/s. Needs root
# (tcpdump on lo).
#
# usage: benches/capture.sh [CLIENTS] [PER_CLIENT]
#        REUSE=1 WORK=DIR benches/capture.sh   (time DIR/*.pcap again)
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-8}
per_client=${2:-62000}
work=${WORK:-$(mktemp -d)}
port=${PORT:-5077}
v3port=$((port + 1))
for tool in tcpdump:tcpdump tshark:tshark editcap:tshark capinfos:tshark /usr/bin/time:time; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing="${missing:-} ${tool##*:}"
done
if [ -n "${missing:-}" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
cargo build --release --quiet
rc1="$(pwd)/${CARGO_TARGET_DIR:-target}/release/rc1"
v2="$work/v2.pcap"
v3="$work/v3.pcap"

record() { # FILE PORT COMMAND...: capture PORT on lo while COMMAND runs
  local file=$1 p=$2
  shift 2
  tcpdump -i lo -s 65535 -B 1048576 -w "$file" "tcp port $p" 2>"$file.err" &
  local td=$!
  # Until tcpdump listens (a 1 GiB buffer takes a moment), so the file
  # holds every connection from its SYN.
  for _ in $(seq 1 100); do grep -q "listening on" "$file.err" && break; sleep 0.1; done
  sleep 0.5
  "$@"
  sleep 1
  kill -INT "$td"
  wait "$td" || true
  grep -q "^0 packets dropped by kernel" "$file.err" ||
    { echo "bench: tcpdump dropped packets making $file (the file has gaps):" >&2; cat "$file.err" >&2; exit 1; }
}

v2_clients() {
  local pids=()
  for i in $(seq 1 "$clients"); do
    python3 -c "
import sys
for n in range($per_client): sys.stdout.write(f'message {n} from client $i\n')
" | "$rc1" client -p v2 --port "$port" -q --timeout 10s &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
}

if [ "${REUSE:-}" = 1 ] && [ -s "$v2" ] && [ -s "$v3" ]; then
  echo "== reusing $v2 and $v3"
else
  "$rc1" server -p v2 --port "$port" -q & s2=$!
  "$rc1" server -p v3 --port "$v3port" -q & s3=$!
  trap 'kill $s2 $s3 2>/dev/null || true' EXIT
  echo "== making $v2: $clients clients x $per_client v2 frames, each echoed"
  record "$v2" "$port" v2_clients
  echo "== making $v3: 8 connections, 400,000 v3 frames of 100 to 2,200 bytes, each echoed"
  record "$v3" "$v3port" "$rc1" flood -p v3 --port "$v3port" -c 8 --rate 40000 -n 400000 --size 100..2200 --json >/dev/null
  kill -INT "$s2" "$s3"
  wait "$s2" "$s3" || true
  trap - EXIT
fi
slice="$work/v2-slice.pcap"
[ -s "$slice" ] && [ "${REUSE:-}" = 1 ] || editcap -r "$v2" "$slice" 1-100000

median() { # run a command 3 times, print the median wall time in seconds
  local t=()
  for _ in 1 2 3; do
    local t0 t1
    t0=$(date +%s%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s%N)
    t+=($(( (t1 - t0) / 1000 )))
  done
  printf '%s\n' "${t[@]}" | sort -n | sed -n 2p | awk '{printf "%.3f", $1 / 1e6}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
wall() { # COMMAND...: its wall time in microseconds
  local t0 t1
  t0=$(date +%s%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000 ))
}
paired() { # FILE PORT: JSON against text, 5 pairs run in turn: the median ratio
  # (which of the two goes first alternates, so neither always runs on a
  # cache or a CPU clock the other left behind)
  local r=()
  for i in 1 2 3 4 5; do
    local a b
    if [ $((i % 2)) = 1 ]; then
      b=$(wall "$rc1" capture -r "$1" --port "$2")
      a=$(wall "$rc1" capture -r "$1" --port "$2" --json)
    else
      a=$(wall "$rc1" capture -r "$1" --port "$2" --json)
      b=$(wall "$rc1" capture -r "$1" --port "$2")
    fi
    r+=("$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')")
  done
  printf '%s\n' "${r[@]}" | sort -g | sed -n 3p
}
maxrss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
packets() { capinfos -Mc "$1" | awk -F': *' '/Number of packets/ {print $2}'; }

echo
echo "== results: $(nproc) cores, $(date -u +%Y-%m-%d), medians of 3 (seconds; x = times the floor)"
for f in "$v2" "$v3"; do
  p=$port
  [ "$f" = "$v3" ] && p=$v3port
  n=$(packets "$f")
  bytes=$(stat -c %s "$f")
  floor=$(median tcpdump -r "$f" -w /dev/null)
  quiet=$(median "$rc1" capture -r "$f" --port "$p" -q)
  text=$(median "$rc1" capture -r "$f" --port "$p")
  json=$(median "$rc1" capture -r "$f" --port "$p" --json)
  frames=$("$rc1" capture -r "$f" --port "$p" --json | grep -c '"type":"frame"' || true)
  [ "$frames" -gt 0 ] || { echo "bench: rc1 decoded no frame of $f: the measurement is void" >&2; exit 1; }
  echo "-- $(basename "$f"): $n packets, $((bytes / 1000000)) MB, $frames frames"
  printf '  %-40s %7s s  %6s M pkt/s  %6s MB/s\n' "tcpdump -r F -w /dev/null (floor)" "$floor" \
    "$(ratio "$n" "$floor"e6)" "$(ratio "$bytes" "$floor"e6)"
  printf '  %-40s %7s s  %6s x floor\n' "rc1 capture -r F -q" "$quiet" "$(ratio "$quiet" "$floor")"
  printf '  %-40s %7s s  %6s x floor  %6s MB/s (%s of the floor'"'"'s)\n' "rc1 capture -r F (lines)" "$text" \
    "$(ratio "$text" "$floor")" "$(ratio "$bytes" "$text"e6)" "$(ratio "$floor" "$text")"
  printf '  %-40s %7s s  %6s x floor  %6s x rc1 text (%s x: median of 5 pairs run in turn)\n' "rc1 capture -r F --json" "$json" \
    "$(ratio "$json" "$floor")" "$(ratio "$json" "$text")" "$(paired "$f" "$p")"
done

n_slice=$(packets "$slice")
n_v2=$(packets "$v2")
t_slice=$(median "$rc1" capture -r "$slice" --port "$port")
t_whole=$(median "$rc1" capture -r "$v2" --port "$port")
per_slice=$(awk -v t="$t_slice" -v n="$n_slice" 'BEGIN { printf "%.1f", t * 1e9 / n }')
per_whole=$(awk -v t="$t_whole" -v n="$n_v2" 'BEGIN { printf "%.1f", t * 1e9 / n }')
echo "-- linear: ${per_slice} ns/packet on the ${n_slice}-packet slice, ${per_whole} ns/packet on all ${n_v2} ($(ratio "$per_whole" "$per_slice")x)"
# Longer prefixes of the same file, so the trend shows (flat or falling
# per packet: linear; rising: something grows with the capture). A short
# file pays the threads' first batches and the first touch of their memory
# over fewer packets.
ladder=""
for k in 200000 400000; do
  part="$work/v2-first-$k.pcap"
  [ -s "$part" ] && [ "${REUSE:-}" = 1 ] || editcap -r "$v2" "$part" "1-$k"
  t_k=$(median "$rc1" capture -r "$part" --port "$port")
  # (The packets the prefix holds: all of a file shorter than k.)
  n_k=$(packets "$part")
  ladder="$ladder, $(awk -v t="$t_k" -v n="$n_k" 'BEGIN { printf "%.1f", t * 1e9 / n }') on the first $n_k"
done
echo "   ns/packet: ${per_slice} on the first ${n_slice}${ladder}, ${per_whole} on all ${n_v2}"
echo "-- peak RSS: $(maxrss "$rc1" capture -r "$slice" --port "$port") KiB on the slice, $(maxrss "$rc1" capture -r "$v2" --port "$port") KiB on the whole v2 file, $(maxrss "$rc1" capture -r "$v3" --port "$v3port") KiB on the v3 file"

t_tshark=$(median tshark -r "$slice" -o tcp.reassemble_out_of_order:TRUE)
lua=(-X lua_script:dissectors/rc1.lua -d "tcp.port==$port,rc1")
t_lua=$(median tshark "${lua[@]}" -o tcp.reassemble_out_of_order:TRUE -r "$slice")
echo "-- tshark on the slice: $t_tshark s ($(ratio "$t_tshark" "$t_slice")x rc1), with dissectors/rc1.lua: $t_lua s ($(ratio "$t_lua" "$t_slice")x rc1)"
