--@@HEADER@@

local NAME = @@NAME@@
local PORT = @@PORT@@
-- The largest body believed (max_body, at most what Wireshark reassembles):
-- a longer length is refused (framing.length_over_max).
local MAX_BODY = @@MAX_BODY@@
-- The file's max_body (decimal text), and whether MAX_BODY is less than it
-- because Wireshark cannot reassemble a frame of more than 2^31-1 bytes.
local MAX_BODY_FILE = @@MAX_BODY_FILE@@
local CAPPED = @@CAPPED@@
-- Bytes before the body (the whole frame when there is no body).
local HEADER_LEN = @@HEADER_LEN@@
-- Header and trailer: every fixed-width field.
local FIXED_LEN = @@FIXED_LEN@@
-- The body's length field, nil for fixed-size frames.
local LENGTH = @@LENGTH@@

local proto = Proto(@@PREFIX@@, @@TITLE@@)

local F = {}
@@FIELDS@@
proto.fields = { @@FIELD_LIST@@ }

local E = {}
@@EXPERTS@@
proto.experts = { @@EXPERT_LIST@@ }

-- The fields in wire order. kind: uint, int, fixed (Ns with a length
-- field), bytes (Ns without one), body. A trailer field's offset counts
-- from the body's end.
local FRAME = {
@@FRAME@@
}

-- The checks, in field order; values are decimal strings.
local CHECKS = {
@@CHECKS@@
}

-- The info column: strings as written, { "field" } for a field's value.
local SHOW = { @@SHOW@@ }

-- Bit operations: the bit32 library (Lua 5.2), else Lua 5.3's operators
-- (compiled at run time so that Lua 5.2 can still load this file).
local bxor, band, rshift
if bit32 then
  bxor, band, rshift = bit32.bxor, bit32.band, bit32.rshift
else
  bxor, band, rshift = load("return function(a, b) return a ~ b end, "
    .. "function(a, b) return a & b end, function(a, n) return a >> n end")()
end

local CRC_TABLE = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if band(c, 1) ~= 0 then
      c = bxor(0xEDB88320, rshift(c, 1))
    else
      c = rshift(c, 1)
    end
  end
  CRC_TABLE[i] = c
end

-- CRC-32 of a string, as Python's zlib.crc32.
local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do
    c = bxor(CRC_TABLE[band(bxor(c, string.byte(s, i)), 0xFF)], rshift(c, 8))
  end
  return bxor(c, 0xFFFFFFFF)
end

-- The Internet checksum (RFC 1071) of a string.
local function internet(s)
  local sum = 0
  for i = 1, #s, 2 do
    sum = sum + string.byte(s, i) * 256 + (string.byte(s, i + 1) or 0)
  end
  while sum > 0xFFFF do
    sum = sum % 65536 + math.floor(sum / 65536)
  end
  return 0xFFFF - sum
end

local CHECKSUMS = { crc32 = crc32, internet = internet }

-- A whole number as decimal text, whatever Lua made of it.
local function decimal(v)
  if type(v) == "number" then return string.format("%.0f", v) end
  return tostring(v)
end

-- An integer field's value: (decimal text, Lua number).
local function read_int(f, r)
  local v
  if f.width == 8 then
    if f.kind == "int" then
      v = f.le and r:le_int64() or r:int64()
    else
      v = f.le and r:le_uint64() or r:uint64()
    end
    return tostring(v), v:tonumber()
  end
  if f.kind == "int" then
    v = f.le and r:le_int() or r:int()
  else
    v = f.le and r:le_uint() or r:uint()
  end
  return decimal(v), v
end

-- The length the length field claims, at `offset` in tvb: a Lua number
-- (to compare) and its exact decimal text (64-bit lengths included).
local function claimed(tvb, offset)
  local text, n = read_int(LENGTH, tvb(offset + LENGTH.offset, LENGTH.width))
  return n, text
end

-- Bytes escaped as rc1 capture shows them: \n \r \t \0 \\ \", other control
-- characters \u{X}, bytes that are not UTF-8 \xHH.
local function escape(s)
  local out, i, n = {}, 1, #s
  local simple = { [0] = "\\0", [9] = "\\t", [10] = "\\n", [13] = "\\r",
                   [34] = "\\\"", [92] = "\\\\" }
  while i <= n do
    local b = string.byte(s, i)
    local len = (b >= 0xC2 and b <= 0xDF and 2) or (b >= 0xE0 and b <= 0xEF and 3)
      or (b >= 0xF0 and b <= 0xF4 and 4) or 1
    local ok = len > 1 and i + len - 1 <= n
    if ok then
      for k = i + 1, i + len - 1 do
        local c = string.byte(s, k)
        if c < 0x80 or c > 0xBF then ok = false end
      end
    end
    if ok then
      out[#out + 1] = string.sub(s, i, i + len - 1)
      i = i + len
    else
      if simple[b] then
        out[#out + 1] = simple[b]
      elseif b < 0x20 or b == 0x7F then
        out[#out + 1] = string.format("\\u{%X}", b)
      elseif b >= 0x80 then
        out[#out + 1] = string.format("\\x%02X", b)
      else
        out[#out + 1] = string.char(b)
      end
      i = i + 1
    end
  end
  return table.concat(out)
end

-- The range of `len` bytes at `offset`; an empty range for no bytes.
local function range(tvb, offset, len)
  if len == 0 then return tvb(0, 0) end
  return tvb(offset, len)
end

local function raw(tvb, offset, len)
  if len == 0 then return "" end
  return tvb(offset, len):raw()
end

local info_frame = nil

local function is_echo(pinfo)
  local ok, port = pcall(function() return pinfo.match_uint end)
  if not ok or not port or port == 0 then port = PORT end
  return pinfo.src_port == port and pinfo.dst_port ~= port
end

local function set_info(pinfo, text)
  pinfo.cols.protocol = NAME
  if info_frame == pinfo.number then
    pinfo.cols.info:append(" ; " .. text)
  else
    pinfo.cols.info:set(text)
    info_frame = pinfo.number
  end
end

-- One frame: every field, then the checks.
local function dissect_frame(tvb, pinfo, tree)
  local echo = is_echo(pinfo)
  local what = NAME .. (echo and " echo" or "")
  local sub = tree:add(proto, tvb(), NAME .. (echo and " echo" or " request"))
  local body_len = LENGTH and claimed(tvb, 0) or 0
  if LENGTH and body_len > MAX_BODY then
    for _, f in ipairs(FRAME) do
      if f.kind == "body" then break end
      local r = tvb(f.offset, f.width)
      if f.le then sub:add_le(F[f.name], r) else sub:add(F[f.name], r) end
    end
    local _, claim = claimed(tvb, 0)
    local limit
    if CAPPED then
      limit = string.format("more than Wireshark can reassemble (a frame of at most 2147483647 "
        .. "bytes: a body of at most %s here, though max_body is %s)", decimal(MAX_BODY), MAX_BODY_FILE)
    else
      limit = string.format("more than the limit of %s (max_body)", decimal(MAX_BODY))
    end
    local text = string.format("[framing.length_over_max] %s claims a body of %s bytes, %s; "
      .. "the rest of this stream cannot be trusted", LENGTH.name, claim, limit)
    sub:add_proto_expert_info(E.length_over_max, text)
    set_info(pinfo, what .. " length over max_body (" .. claim .. " bytes)")
    return tvb:len()
  end
  local values, numbers, wire, items = {}, {}, {}, {}
  local body_end = 0
  for _, f in ipairs(FRAME) do
    local at = f.offset
    if f.trailer then at = body_end + f.offset end
    if f.kind == "uint" or f.kind == "int" then
      local r = tvb(at, f.width)
      values[f.name], numbers[f.name] = read_int(f, r)
      wire[f.name] = r:raw()
      items[f.name] = f.le and sub:add_le(F[f.name], r) or sub:add(F[f.name], r)
    elseif f.kind == "body" then
      local content = raw(tvb, at, body_len)
      values[f.name], wire[f.name] = content, content
      items[f.name] = sub:add(F[f.name], range(tvb, at, body_len))
      sub:add(F[f.name .. ".text"], range(tvb, at, body_len), escape(content))
      body_end = at + body_len
    else
      local all = tvb(at, f.width):raw()
      local clen
      if f.kind == "fixed" then
        clen = math.min(numbers[f.len_by] or 0, f.width)
      else
        clen = f.width
        while clen > 0 and string.byte(all, clen) == f.pad do clen = clen - 1 end
      end
      local content = string.sub(all, 1, clen)
      values[f.name], wire[f.name] = content, all
      if f.kind == "fixed" then
        -- The content: the bytes the length field counts.
        items[f.name] = sub:add(F[f.name], range(tvb, at, clen))
        sub:add(F[f.name .. ".text"], tvb(at, f.width), escape(content))
      else
        -- The whole field; the content is the bytes before the padding.
        items[f.name] = sub:add(F[f.name], tvb(at, f.width))
        if clen < f.width then
          items[f.name]:append_text(string.format(" (content %d bytes, then padding)", clen))
        end
      end
    end
  end
  for _, c in ipairs(CHECKS) do
    local item = items[c.field] or sub
    if c.kind == "equals" and values[c.field] ~= c.value then
      item:add_proto_expert_info(E.constant, string.format(
        "[framing.constant] %s is %s, but the framing says it must be %s (equals)",
        c.field, values[c.field], c.value))
    elseif c.kind == "expect" and values[c.field] ~= c.value then
      item:add_proto_expert_info(E.unexpected_value, string.format(
        "[framing.unexpected_value] %s is %s, but the framing expects %s (expect); "
        .. "the frame is still decoded", c.field, values[c.field], c.value))
    elseif c.kind == "checksum" then
      local parts = {}
      for _, name in ipairs(c.over) do parts[#parts + 1] = wire[name] or "" end
      local want = CHECKSUMS[c.algorithm](table.concat(parts))
      local got = numbers[c.field]
      if got ~= want then
        item:add_proto_expert_info(E.checksum, string.format(
          "[framing.checksum] %s is 0x%x, but the %s checksum of the fields it covers is 0x%x",
          c.field, got, c.algorithm, want))
      end
    end
  end
  local shown = {}
  for _, part in ipairs(SHOW) do
    if type(part) == "table" then
      local v = values[part[1]] or ""
      shown[#shown + 1] = (numbers[part[1]] ~= nil) and v or escape(v)
    else
      shown[#shown + 1] = part
    end
  end
  set_info(pinfo, what .. " " .. table.concat(shown))
  return tvb:len()
end

-- TCP ------------------------------------------------------------------------
-- Frames are cut out of each direction's stream here (not by
-- dissect_tcp_pdus) so that a hole (bytes never captured, or never handed
-- over by TCP) is seen and handled as rc1 capture does
-- (src/capture/decode.rs): fixed-size frames resume on the frame grid of
-- the stream; frames with a length resume right after the frame the hole
-- cut when its header was seen, otherwise nothing more of the direction is
-- decoded (frame.unsynchronised).

local tcp_stream_f = Field.new("tcp.stream")
local tcp_seq_f = Field.new("tcp.seq")
local tcp_len_f = Field.new("tcp.len")
local tcp_payload_f = nil
pcall(function() tcp_payload_f = Field.new("tcp.payload") end)
local tcp_seq_raw_f = nil
pcall(function() tcp_seq_raw_f = Field.new("tcp.seq_raw") end)
local TWO32 = 4294967296

-- Per direction (first pass), and what each buffer showed (later passes).
local streams, plans = {}, {}

function proto.init()
  info_frame = nil
  streams, plans = {}, {}
end

local function new_direction()
  return {
    origin = nil,     -- the sequence number of stream offset 0
    next = 0,         -- first stream offset not yet decoded, skipped or given up
    seen = 0,         -- end of the bytes TCP handed over so far
    pending = {},     -- where TCP's next reassembled buffer may start
    keep_off = 0,     -- bytes from the first pending offset to `seen`, to
    keep = "",        -- tell those candidates apart
    frame_need = nil, -- total length of the frame at `next`, when asked for more
    skip_until = nil, -- bytes before this offset finish a frame a hole cut
    skip_frame = 0,   -- where that frame starts
    unsync = nil,     -- why nothing more of this direction can be decoded
  }
end

local function direction(pinfo, echo)
  local ok, v = pcall(function() return tcp_stream_f() end)
  local key = (ok and v) and tostring(v.value)
    or (tostring(pinfo.src) .. ":" .. pinfo.src_port .. "-" .. tostring(pinfo.dst) .. ":" .. pinfo.dst_port)
  key = key .. (echo and ">c" or ">s")
  local d = streams[key]
  if d == nil then
    d = new_direction()
    streams[key] = d
  end
  return d
end

-- Whether TCP will reassemble for us (absent in old versions: assume yes).
local function can_desegment(pinfo)
  local ok, v = pcall(function() return pinfo.can_desegment end)
  return not ok or v == nil or v ~= 0
end

-- This packet's segment: stream offset of its first payload byte, its
-- length, its payload and where that payload starts in the packet.
local function segment(d)
  local ok, seq, tl = pcall(function() return tcp_seq_f().value, tcp_len_f().value end)
  if not ok or seq == nil or tl == nil then return nil end
  if d.origin == nil then
    -- Relative sequence numbers (the default) number a direction's first
    -- byte 1; with absolute ones, count from the first segment seen.
    d.origin = 1
    if tcp_seq_raw_f ~= nil then
      local ok2, r = pcall(function() return tcp_seq_raw_f().value end)
      if ok2 and r ~= nil and r == seq and seq ~= 1 then d.origin = seq end
    end
  end
  local off = (seq - d.origin) % TWO32
  if off >= TWO32 / 2 then off = off - TWO32 end -- before the first byte
  local bytes, at = "", nil
  if tcp_payload_f ~= nil then
    pcall(function()
      local p = tcp_payload_f()
      if p ~= nil then at = p.offset; bytes = p.range:raw() end
    end)
  end
  return { off = off, len = tl, bytes = bytes, at = at }
end

-- How many 32-byte blocks of two equally long strings differ.
local function differing_blocks(a, b)
  if a == b then return 0 end
  local n = 0
  for i = 1, #a, 32 do
    if string.sub(a, i, i + 31) ~= string.sub(b, i, i + 31) then n = n + 1 end
  end
  return n
end

-- Where `tvb` starts in the stream, and whether TCP reassembled it.
local function buffer_start(tvb, seg, d)
  local len = tvb:len()
  local ok, toff = pcall(function() return tvb:offset() end)
  if ok and toff ~= nil and toff > 0 then
    -- Part of this packet (the rest of its segment): exact.
    if seg.at ~= nil then return seg.off + (toff - seg.at), false end
    return seg.off + seg.len - len, false
  end
  -- Reassembled by TCP: from where we last asked for more, from an earlier
  -- request whose buffer TCP extended, or from this segment. The bytes
  -- tell which: those kept and this segment's own must be where the start
  -- puts them.
  local s = tvb:raw(0, len)
  local cands = {}
  for i = #d.pending, 1, -1 do cands[#cands + 1] = d.pending[i] end
  cands[#cands + 1] = seg.off
  if not ok then cands[#cands + 1] = seg.off + seg.len - len end
  local best, best_score = nil, nil
  for _, p in ipairs(cands) do
    local score, overlap = 0, false
    for _, known in ipairs({ { d.keep_off, d.keep }, { seg.off, seg.bytes } }) do
      local lo = math.max(p, known[1])
      local hi = math.min(p + len, known[1] + #known[2])
      if hi > lo then
        overlap = true
        score = score + differing_blocks(string.sub(s, lo - p + 1, hi - p),
          string.sub(known[2], lo - known[1] + 1, hi - known[1]))
      end
    end
    if overlap and (best_score == nil or score < best_score) then best, best_score = p, score end
  end
  return best or seg.off, true
end

-- The length of the frame at `at` in `tvb`, or nil and why: "short" (with
-- the frame's total length once its header is there) or "over" (a length
-- over MAX_BODY).
local function frame_len(tvb, at)
  local avail = tvb:len() - at
  if not LENGTH then
    if avail < FIXED_LEN then return nil, "short", FIXED_LEN end
    return FIXED_LEN
  end
  if avail < HEADER_LEN then return nil, "short", nil end
  local n = claimed(tvb, at)
  if n > MAX_BODY then return nil, "over", nil end
  if avail < FIXED_LEN + n then return nil, "short", FIXED_LEN + n end
  return FIXED_LEN + n
end

-- A hole: stream bytes [from, to) of direction `d` never reached the
-- dissector. `at`, `want`: the frame in progress when it began (its start
-- and, when its header was seen, its total length). Returns what to say.
local function hole(d, from, to, at, want)
  local notes = { gap = { from, to - from } }
  local have = math.max(0, from - at)
  d.next, d.skip_until = to, nil
  d.pending, d.keep, d.keep_off, d.frame_need = {}, "", 0, nil
  if d.unsync then return notes end
  local resume
  if LENGTH then
    if want ~= nil and have > 0 and at + want >= to then
      resume = at + want
    else
      d.unsync = string.format(
        "no frame header can be trusted after the %d-byte gap at stream offset %d", to - from, from)
      if have > 0 then notes.cut = { at, have, "its header is cut by the gap" } end
      return notes
    end
  else
    resume = math.ceil(to / FIXED_LEN) * FIXED_LEN
  end
  if have > 0 then
    notes.cut = { at, have, string.format("cut by the %d-byte gap at offset %d; not decoded",
      to - from, from) }
  end
  if resume > to then
    d.skip_until = resume
    d.skip_frame = LENGTH and at or resume - FIXED_LEN
  end
  return notes
end

-- What a buffer shows, decided on the first pass and kept for later ones.
local function plan_buffer(tvb, d)
  local len = tvb:len()
  local seg = segment(d)
  local start, reassembled = d.next, false
  if seg ~= nil then start, reassembled = buffer_start(tvb, seg, d) end
  local plan = { start = start, reassembled = reassembled }
  if start > d.seen then
    plan.hole = hole(d, d.seen, start, d.next, d.frame_need)
  end
  local from = math.max(0, math.min(len, d.next - start))
  if d.skip_until ~= nil and d.skip_until > start + from and from < len then
    local upto = math.min(len, d.skip_until - start)
    plan.damaged = { from, upto - from, d.skip_frame, d.skip_until }
    from = upto
  end
  if d.skip_until ~= nil and d.skip_until <= start + len then d.skip_until = nil end
  plan.from = from
  plan.unsync = d.unsync
  return plan
end

-- Bytes not decoded, with the expert info that says why.
local function not_decoded(range, pinfo, tree, expert, code, text)
  local sub = tree:add(proto, range, NAME .. ": not decoded")
  sub:add_proto_expert_info(expert, "[" .. code .. "] " .. text)
  set_info(pinfo, NAME .. " not decoded (" .. text .. ")")
end

-- Shows a buffer as its plan says. Returns the offset where the bytes not
-- shown start and why: nil, "more" (TCP was asked for the rest, with the
-- frame's total length when known), "partial" (TCP does not reassemble)
-- or "over".
local function play(plan, tvb, pinfo, tree)
  local len = tvb:len()
  if plan.hole ~= nil then
    local g = plan.hole.gap
    not_decoded(tvb(0, 0), pinfo, tree, E.gap, "tcp.gap", string.format(
      "%d byte(s) at stream offset %d were never captured (or not handed over by TCP)", g[2], g[1]))
    local c = plan.hole.cut
    if c ~= nil then
      not_decoded(tvb(0, 0), pinfo, tree, E.damaged, "frame.damaged", string.format(
        "the frame at stream offset %d (%d byte(s) captured): %s", c[1], c[2], c[3]))
    end
  end
  if plan.damaged ~= nil then
    local at, n, frame, resume = plan.damaged[1], plan.damaged[2], plan.damaged[3], plan.damaged[4]
    not_decoded(tvb(at, n), pinfo, tree, E.damaged, "frame.damaged", string.format(
      "%d byte(s): the end of the frame at stream offset %d that a gap cut; "
      .. "decoding resumes at stream offset %d", n, frame, resume))
  end
  local offset = plan.from
  if offset >= len then return len end
  if plan.unsync ~= nil then
    not_decoded(tvb(offset), pinfo, tree, E.unsynchronised, "frame.unsynchronised", plan.unsync)
    return len
  end
  while offset < len do
    local need, why, want = frame_len(tvb, offset)
    if why == "over" then
      dissect_frame(tvb(offset):tvb(), pinfo, tree)
      return len, "over"
    end
    if need == nil then
      if not can_desegment(pinfo) then return offset, "partial", want end
      pinfo.desegment_offset = offset
      pinfo.desegment_len = (want or HEADER_LEN) - (len - offset)
      return offset, "more", want
    end
    dissect_frame(tvb(offset, need):tvb(), pinfo, tree)
    offset = offset + need
  end
  return len
end

function proto.dissector(tvb, pinfo, tree)
  local len = tvb:len()
  if len == 0 then return 0 end
  local d = direction(pinfo, is_echo(pinfo))
  local toff = 0
  pcall(function() toff = tvb:offset() end)
  local key = pinfo.number .. ":" .. toff .. ":" .. len
  if pinfo.visited then
    play(plans[key] or { from = 0, start = 0 }, tvb, pinfo, tree)
    return len
  end
  local plan = plan_buffer(tvb, d)
  plans[key] = plan
  local used, why, want = play(plan, tvb, pinfo, tree)
  local start = plan.start
  local new_bytes = start + len > d.next
  d.seen = math.max(d.seen, start + len)
  if why == "over" then
    d.unsync = "no frame header can be trusted after a length over max_body in this direction"
  end
  if why == "more" then
    -- TCP brings this buffer back from `at` with more bytes (or, having
    -- extended it, from its start again).
    local at = start + used
    d.next = math.max(d.next, at)
    d.pending = {}
    if plan.reassembled and start < at then d.pending[1] = start end
    d.pending[#d.pending + 1] = at
    d.frame_need = want
    d.keep_off = d.pending[1]
    d.keep = tvb:raw(d.keep_off - start, start + len - d.keep_off)
  elseif new_bytes then
    d.next = math.max(d.next, start + len)
    d.pending, d.keep, d.keep_off, d.frame_need = {}, "", 0, nil
    if why == "partial" then
      -- TCP does not reassemble: the rest of this frame comes in the next
      -- segment; skip it as after a hole.
      hole(d, start + len, start + len, start + used, want)
    end
  end
  return len
end

local tcp_port = DissectorTable.get("tcp.port")
tcp_port:add(PORT, proto)
pcall(function() tcp_port:add_for_decode_as(proto) end)
