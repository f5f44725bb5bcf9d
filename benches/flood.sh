#!/usr/bin/env bash
# Side-by-side load figures for rc1 flood and rc1's servers, measured in one
# run on this machine:
#   1. echoed v2 frames/s with `rc1 flood --max`, against rc1's v2 server and
#      against a Python lab-style v2 server (thread per client, struct
#      '!BLL20s', sendall: what the lab's serverTCPv2.py with echo does,
#      without printing), with 1 and 8 connections;
#   2. v3 bulk throughput, 64 kB messages, against rc1's v3 server, next to
#      iperf3's single-stream loopback throughput;
#   3. the selector server (text-sel): 19,000 idle connections held, and
#      its memory per connection (RSS before and after; issue 14's target
#      is under 256 bytes), then a new client's echo.
# Needs python3 and iperf3 (installed with apt-get when missing; root).
#
# usage: benches/flood.sh [SECONDS per measurement, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
if ! command -v iperf3 >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null
fi
cargo build --release --quiet
rc1="${CARGO_TARGET_DIR:-target}/release/rc1"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing listens on $1" >&2; exit 1; }
field() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(d$1)"; }

cat >"$work/lab_v2_server.py" <<'EOF'
# A lab-style v2 echo server: a thread per client, struct '!BLL20s'.
import socket, struct, sys, threading
def serve(conn):
    with conn:
        while True:
            data = b""
            while len(data) < 29:
                chunk = conn.recv(29 - len(data))
                if not chunk:
                    return
                data += chunk
            version, order, size, message = struct.unpack("!BLL20s", data)
            conn.sendall(struct.pack("!BLL20s", version, order, size, message))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(128)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF

p_rc1=$(free_port); "$rc1" server -p v2 --bind 127.0.0.1 --port "$p_rc1" -q >/dev/null & pids+=($!)
p_py=$(free_port); python3 "$work/lab_v2_server.py" "$p_py" & pids+=($!)
wait_port "$p_rc1"; wait_port "$p_py"

flood() { "$rc1" flood "$@" --json 2>/dev/null | tail -1; }
echo "== 1. echoed v2 frames/s, rc1 flood --max --pipeline 1024 (${secs}s each; $(nproc) cores)"
declare -A r
for c in 1 8; do
  for side in rc1 py; do
    port=$([ $side = rc1 ] && echo "$p_rc1" || echo "$p_py")
    out=$(flood -p v2 --port "$port" -c "$c" --max --pipeline 1024 -d "${secs}s" --size 16)
    r[$side$c]=$(echo "$out" | field "['echoed_per_s']")
    ok=$(echo "$out" | field "['ok']")
    printf '   %-28s %2d conn: %12.0f echoed frames/s  p99 %s µs  (all verified: %s)\n' \
      "$([ $side = rc1 ] && echo "rc1 server --proto v2" || echo "Python lab-style v2 server")" "$c" "${r[$side$c]}" \
      "$(echo "$out" | field "['latency_us']['p99']")" "$ok"
  done
  printf '   ratio rc1 / Python with %d connection(s): %.0f x\n' "$c" "$(echo "${r[rc1$c]} / ${r[py$c]}" | bc -l)"
done

echo "== 2. v3 bulk, 64 kB messages, one connection, next to iperf3"
p_v3=$(free_port); "$rc1" server -p v3 --bind 127.0.0.1 --port "$p_v3" -q >/dev/null & pids+=($!)
wait_port "$p_v3"
out=$(flood -p v3 --port "$p_v3" -c 1 --max --pipeline 8 -d "${secs}s" --size 65536)
v3_mbs=$(echo "$out" | field "['mb_per_s_in']")
p_ip=$(free_port); iperf3 -s -1 -p "$p_ip" >/dev/null 2>&1 & pids+=($!)
sleep 0.3
ip_mbs=$(iperf3 -c 127.0.0.1 -p "$p_ip" -t "$secs" -J | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['end']['sum_received']['bits_per_second']/8e6)")
printf '   rc1 flood v3 → rc1 server: %8.0f MB/s echoed (each byte also went out: %.0f MB/s both ways)\n' "$v3_mbs" "$(echo "2 * $v3_mbs" | bc -l)"
printf '   iperf3 single stream:       %8.0f MB/s one way\n' "$ip_mbs"
printf '   ratio rc1 echoed / iperf3: %.2f\n' "$(echo "$v3_mbs / $ip_mbs" | bc -l)"

echo "== 3. selector server: 19,000 idle connections"
p_sel=$(free_port)
(ulimit -n 20000; exec "$rc1" server -p text-sel --bind 127.0.0.1 --port "$p_sel" --max-conns 19500 -q >/dev/null) & sel=$!; pids+=($sel)
wait_port "$p_sel"
sleep 0.3
rss0=$(awk '/VmRSS/ {print $2}' /proc/$sel/status)
python3 - "$p_sel" "$sel" "$rss0" <<'EOF'
import resource, socket, sys, time
port, pid, rss0 = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
conns = []
for i in range(19000):
    conns.append(socket.create_connection(("127.0.0.1", port)))
time.sleep(1.0)
# Still serving: one more client gets its echo.
s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"still there?"); echo = s.recv(100)
rss1 = int([l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0])
fds = len(__import__("os").listdir(f"/proc/{pid}/fd"))
print(f"   held {len(conns)} idle connections ({fds} descriptors open in the server); "
      f"a new client still echoed: {echo == b'still there?'}")
print(f"   server RSS {rss0} KiB idle -> {rss1} KiB with {len(conns):,} connections: "
      f"{(rss1 - rss0) * 1024 / len(conns):.0f} bytes per connection")
EOF
