#!/usr/bin/env bash
# Live capture under load: kernel drops of `rc1 capture -i lo -q` against
# `tcpdump -i lo -w /dev/null`, each while `rc1 flood --proto v2 -c 8`
# loads `rc1 server --proto v2`, at the same rates, in turn, in one run (a
# benchmark: it prints both tools' figures side by side).
#
# Everything runs in a network namespace made for the run (its own lo, no
# other traffic), removed at the end. Rates are v2 frames per second over
# all 8 connections; `max` is `--max` (as fast as the server echoes).
# A drop fraction is dropped / received, as libpcap counts them for each
# tool (the same counters). Each rate is run REPEAT times (default 3),
# the two tools in turn (tcpdump, rc1, tcpdump, rc1, ...): the table gives
# the median run of each tool and every run beside it (a shared machine's
# load moves single runs a lot). Needs root.
#
# usage: benches/live.sh [SECONDS per run, default 5] [RATES...]
#        (default rates: 2000000 4000000 8000000 max)
#        REPEAT=N benches/live.sh ...   (runs per rate and tool)
set -euo pipefail
[ -n "${DEBUG:-}" ] && set -x
cd "$(dirname "$0")/.."
secs=${1:-5}
shift || true
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(2000000 4000000 8000000 max)
command -v tcpdump >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpdump >/dev/null
cargo build --release --quiet
rc1="$(pwd)/${CARGO_TARGET_DIR:-target}/release/rc1"
ns="rc1-live-$$"
work=$(mktemp -d)
ip netns add "$ns"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# (A function run in the background would be a subshell with this EXIT
# trap: commands meant to run in the background call `ip netns exec` itself.)
in_ns() { ip netns exec "$ns" "$@"; }
in_ns ip link set lo up
port=5005
ip netns exec "$ns" "$rc1" server -p v2 --port "$port" -q 2>/dev/null &
server=$!
sleep 0.5

wait_for() { # FILE TEXT: until FILE contains TEXT (at most 5 s)
  for _ in $(seq 1 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "bench: no \"$2\" in $1" >&2; cat "$1" >&2; exit 1
}

run() { # TOOL RATE: prints "received dropped frames_sent"
  local tool=$1 rate=$2 out="$work/$1-$2" cap
  if [ "$tool" = tcpdump ]; then
    ip netns exec "$ns" tcpdump -i lo -w /dev/null "tcp port $port" >"$out.out" 2>"$out.err" &
    cap=$!
    wait_for "$out.err" "listening on"
  else
    ip netns exec "$ns" "$rc1" capture -i lo -q --port "$port" >"$out.out" 2>"$out.err" &
    cap=$!
    wait_for "$out.err" "capturing on"
  fi
  local pace=(--rate "$rate")
  [ "$rate" = max ] && pace=(--max)
  in_ns "$rc1" flood -p v2 --port "$port" -c 8 "${pace[@]}" -d "${secs}s" --json >"$out.flood" 2>&1 || true
  sleep 1
  kill -INT "$cap"
  wait "$cap" || true
  local sent
  sent=$(python3 -c "import json,sys; d=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print(d.get('sent', '?'))" "$out.flood" 2>/dev/null || echo "?")
  if [ "$tool" = tcpdump ]; then
    local r d
    r=$(awk '/packets received by filter/ {print $1}' "$out.err")
    d=$(awk '/packets dropped by kernel/ {print $1}' "$out.err")
    echo "${r:-0} ${d:-0} $sent"
  else
    # "...; kernel: R received, D dropped by the kernel, I dropped by the interface"
    local k f
    k=$(sed -n 's/.*kernel: \([0-9]*\) received, \([0-9]*\) dropped by the kernel.*/\1 \2/p' "$out.out" | tail -1)
    if [ -z "$k" ]; then
      # A run that printed no counters failed: counted as all dropped (the
      # worst run, never the median by luck), and said.
      echo "bench: rc1 printed no kernel counters at $rate (counted as 100 % dropped); its output:" >&2
      tail -5 "$out.out" "$out.err" >&2 || true
      k="0 0"
    fi
    echo "$k $sent"
    f=$(sed -n 's/.* sessions, \([0-9]*\) frames.*/\1/p' "$out.out" | tail -1)
    echo "${f:-?}" >"$out.frames"
  fi
}

pct() { awk -v d="$1" -v r="$2" 'BEGIN { if (r > 0) printf "%.2f %%", 100 * d / r; else printf "-" }'; }

# The median of lines "FRACTION DROPPED RECEIVED ..." by fraction: the
# whole line (an odd count gives the middle run; an even one the lower).
median_run() { sort -g | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }'; }

repeat=${REPEAT:-3}
echo "== live capture on lo in a network namespace, $secs s per run, $repeat runs per tool and rate (median shown), $(nproc) cores, $(date -u +%Y-%m-%d)"
printf '%-10s | %-34s | %-34s | %-30s | %s\n' "flood" "tcpdump: dropped / received" "rc1: dropped / received" "rc1 frames decoded (flood sent)" "every run: tcpdump; rc1"
for rate in "${rates[@]}"; do
  : >"$work/t.all"
  : >"$work/r.all"
  for _ in $(seq 1 "$repeat"); do
    run tcpdump "$rate" >"$work/t.res"
    run rc1 "$rate" >"$work/r.res"
    read -r tr td tsent <"$work/t.res"
    read -r rr rd rsent <"$work/r.res"
    frames=$(cat "$work/rc1-$rate.frames" 2>/dev/null || echo "?")
    awk -v d="${td:-0}" -v r="${tr:-0}" 'BEGIN { printf "%.6f %s %s\n", (r > 0 ? d / r : 1), d, r }' >>"$work/t.all"
    awk -v d="${rd:-0}" -v r="${rr:-0}" -v f="$frames" -v s="$rsent" 'BEGIN { printf "%.6f %s %s %s %s\n", (r > 0 ? d / r : 1), d, r, f, s }' >>"$work/r.all"
  done
  read -r _ td tr < <(median_run <"$work/t.all")
  read -r _ rd rr frames rsent < <(median_run <"$work/r.all")
  runs="$(awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), 100 * $1 }' "$work/t.all") %; $(awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), 100 * $1 }' "$work/r.all") %"
  printf '%-10s | %-34s | %-34s | %-30s | %s\n' "$rate" \
    "$(pct "$td" "$tr") ($td / $tr)" "$(pct "$rd" "$rr") ($rd / $rr)" "$frames ($rsent)" "$runs"
done
