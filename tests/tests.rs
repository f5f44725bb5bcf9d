//! rc1's integration tests: one binary, a module per area.
//!
//! Everything that touches the network uses loopback only, binds port 0,
//! and bounds every wait (see `util::WAIT`).

// rc1 capture -r on the fixtures; user errors.
mod capture;
// Golden --json output of every fixture.
mod golden;
// Ladder diagrams (--ladder text and mermaid).
mod ladder;
// Captures people bring: interfaces, tags, fragments, tunnels, strays.
mod realworld;
// Codec properties: round trips, chunking, truncation, oversized claims.
mod codec_props;
// Python `struct` peers as the independent oracle, both directions.
mod interop;
// Each rc1 client against each rc1 server, concurrency, hostile input.
mod servers;
// tshark's follow,tcp,raw as the oracle for reassembled bytes.
mod oracle;
// The generated Lua dissector, proven with tshark on every fixture.
mod dissector;
// rc1 flood against each server, a faulty server, no server, and a capture.
mod flood;
// Live capture on lo (root or CAP_NET_RAW; fails under CI=true without).
mod live;
// Servers under hostile clients.
mod hostile;
// Broken capture files: clear messages, documented exit status, no panic.
mod broken;
// tcpdump's 830 test captures: read or refused clearly, counted, and
// compared with tshark.
mod corpus;
// The bytes pane of `rc1 capture --hex`.
mod hex;
// rc1 lab N: each exercise end to end on loopback, its answers checked.
mod lab;
// `rc1 framing`: framing files checked and shown.
mod framing;
// server/client/flood --framing FILE against the Python framed peer.
mod framings;
// `rc1 dissector --framing`: tshark with the generated Lua on live captures of the Python peer.
mod framing_dissector;
// rc1 capture --framing FILE: framing files decoded, detected, damaged.
mod capture_framing;
// Framing files end to end: rc1 capture and tshark's generated dissector agree.
mod framing_oracle;
// Shared helpers.
mod util;
