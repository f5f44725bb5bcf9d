--@@HEADER@@
-- Portable on purpose (Lua 5.1 to 5.4, Wireshark 3.x and 4.x): no bit
-- library, no integer division operator, no goto; APIs that older versions
-- lack are called through pcall.

local RC1_VERSION = "@@RC1_VERSION@@"
local DEFAULT_PORT = @@PORT@@
local DEFAULT_MAX_FRAME = @@MAX_FRAME@@
local LAB_VERSION = @@LAB_VERSION@@
local DETECT_LIMIT = @@DETECT_LIMIT@@
local MIDSTREAM_SEARCH = @@MIDSTREAM_SEARCH@@
local PREVIEW = 20

local rc1 = Proto("rc1", "rc1 sockets lab (v2/v3/text)")

-- Fields ------------------------------------------------------------------
-- One ProtoField per field of the spec, under the spec's filter names, plus
-- what rc1 capture adds to each message: framing and direction.
local F = {}
F.framing = ProtoField.string("rc1.framing", "Framing", base.ASCII,
  "v2, v3, text (TCP without framing) or udp, as rc1 capture names it")
F.direction = ProtoField.string("rc1.direction", "Direction", base.ASCII,
  "request (to the server port) or echo (from the server port)")
@@FIELDS@@
F.padding = ProtoField.string("rc1.padding", "Padding", base.ASCII,
  "Bytes of a fixed-width field after its content (the lab pads v2 with '-')")
F.data = ProtoField.bytes("rc1.data", "Message bytes", base.NONE,
  "Every byte of a message that contains a NUL (Wireshark ends rc1.message there)")
rc1.fields = { @@FIELD_LIST@@, F.data }

-- Expert info, under rc1 capture's diagnostic codes -------------------------
local E = {}
@@EXPERTS@@
rc1.experts = { @@EXPERT_LIST@@ }

-- The framings, from the spec ---------------------------------------------
-- kind: "u8", "u32" (big-endian), "fixed" (width bytes; content is the
-- first min(len_by, width), the rest padding), "sized" (as many bytes as
-- the field `by` says).
local FRAMINGS = {
@@FRAMINGS@@
}
local FRAMING_NAMES = { @@FRAMING_NAMES@@ }

-- Preferences ---------------------------------------------------------------
local FRAMING_PREF = { { 1, "auto", 0 }, { 2, "text", -1 } }
for i, name in ipairs(FRAMING_NAMES) do
  FRAMING_PREF[#FRAMING_PREF + 1] = { i + 2, name, i }
end
rc1.prefs.port = Pref.uint("Server port", DEFAULT_PORT,
  "TCP and UDP port of the lab's servers (requests go to it, echoes come from it)")
rc1.prefs.framing = Pref.enum("Framing", 0,
  "auto: detected per connection with the same rules as rc1 capture --proto auto",
  FRAMING_PREF, false)
rc1.prefs.max_frame = Pref.uint("Largest v3 message", DEFAULT_MAX_FRAME,
  "A v3 header claiming more bytes than this is reported (v3.size_over_max), not trusted")

-- Helpers -------------------------------------------------------------------
local function byte_at(s, o) return string.byte(s, o + 1) end

local function u32_at(s, o)
  local a, b, c, d = string.byte(s, o + 1, o + 4)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- Readable, escaped text for the Info column.
local function show(s)
  local out = {}
  for i = 1, #s do
    local c = string.byte(s, i)
    if c == 92 then out[#out + 1] = "\\\\"
    elseif c == 34 then out[#out + 1] = "\\\""
    elseif c >= 32 and c < 127 then out[#out + 1] = string.char(c)
    elseif c == 10 then out[#out + 1] = "\\n"
    elseif c == 13 then out[#out + 1] = "\\r"
    elseif c == 9 then out[#out + 1] = "\\t"
    else out[#out + 1] = string.format("\\x%02X", c) end
  end
  return table.concat(out)
end

local function preview(s)
  if #s > PREVIEW then
    return "\"" .. show(string.sub(s, 1, PREVIEW)) .. "\"..."
  end
  return "\"" .. show(s) .. "\""
end

-- A field's definition by name, in a framing.
local function field_named(fr, name)
  for _, f in ipairs(fr.fields) do
    if f.name == name then return f end
  end
  return nil
end

-- Length of the header (the fixed part before any sized field).
local function header_len(fr)
  local n = 0
  for _, f in ipairs(fr.fields) do
    if f.kind ~= "sized" then n = f.offset + f.width end
  end
  return n
end

-- The frame at `at` in string `s`: total length, or nil and why not
-- ("short": not all there yet; "over": a sized field over the limit).
local function frame_len(fr, s, at, max)
  local hl = header_len(fr)
  if #s - at < hl then return nil, "short" end
  local len = hl
  for _, f in ipairs(fr.fields) do
    if f.kind == "sized" then
      local by = field_named(fr, f.by)
      local n = u32_at(s, at + by.offset)
      if n > max then return nil, "over" end
      len = f.offset + n
    end
  end
  if #s - at < len then return nil, "short", len end
  return len
end

-- Automatic framing: the rules of rc1 capture --proto auto -------------------
@@RULES@@
-- A fixed-width framing with padding: whole frames that agree (same version,
-- order +1, padding all pad bytes); without `complete`, only an exact
-- multiple with visible padding is proof.
local function fixed_chain(fr, b, complete)
  local len = header_len(fr)
  local whole = math.floor(#b / len)
  if whole == 0 or (not complete and #b % len ~= 0) then return nil end
  local ver, ord = field_named(fr, "version"), field_named(fr, "order")
  local first_v, first_o, n, padding_seen = nil, nil, 0, false
  for k = 0, whole - 1 do
    local at = k * len
    for _, f in ipairs(fr.fields) do
      if f.kind == "fixed" then
        local want = u32_at(b, at + field_named(fr, f.len_by).offset)
        local content = math.min(want, f.width)
        for i = at + f.offset + content, at + f.offset + f.width - 1 do
          if byte_at(b, i) ~= f.pad then return nil end
        end
        if content < f.width then padding_seen = true end
      end
    end
    local v, o = byte_at(b, at + ver.offset), u32_at(b, at + ord.offset)
    if first_v == nil then
      first_v, first_o = v, o
    elseif v ~= first_v or o ~= (first_o + n) % 4294967296 then
      return nil
    end
    n = n + 1
  end
  if first_v ~= LAB_VERSION or not (padding_seen or complete) then return nil end
  return string.format("%d whole %d-byte frame(s), version %d, order %d..%d%s", n, len,
    first_v, first_o, (first_o + n - 1) % 4294967296, padding_seen and ", '-' padding" or "")
end

-- Whether `b` can be the start of fixed frames: its whole frames agree
-- (as complete bytes) and the frame it ends inside agrees so far (version,
-- next order, pad bytes in the padding already there). A length field
-- over the maximum is no typed message.
local function fixed_prefix(fr, b, max)
  local len = header_len(fr)
  local whole = math.floor(#b / len)
  local ver, ord = field_named(fr, "version"), field_named(fr, "order")
  local version, next_order = LAB_VERSION, nil
  if whole > 0 then
    if fixed_chain(fr, string.sub(b, 1, whole * len), true) == nil then return false end
    version = byte_at(b, ver.offset)
    next_order = (u32_at(b, ord.offset) + whole) % 4294967296
  end
  local at = whole * len
  local tail = #b - at
  if tail > ver.offset and byte_at(b, at + ver.offset) ~= version then return false end
  if next_order ~= nil and tail >= ord.offset + 4 and u32_at(b, at + ord.offset) ~= next_order then
    return false
  end
  for _, f in ipairs(fr.fields) do
    if f.kind == "fixed" then
      local by = field_named(fr, f.len_by)
      if tail >= by.offset + 4 then
        local want = u32_at(b, at + by.offset)
        if want > max then return false end
        for i = at + f.offset + math.min(want, f.width), math.min(#b, at + f.offset + f.width) - 1 do
          if byte_at(b, i) ~= f.pad then return false end
        end
      end
    end
  end
  return true
end

-- A sized framing: a chain of headers each followed by exactly `size`
-- bytes, ending where the bytes end (with `complete`, the last one may be
-- cut short); the lab's first header (version 1, order 1) with a size over
-- the limit also counts, so the claim gets reported.
local function sized_chain(fr, b, max, complete)
  local ver, ord = field_named(fr, "version"), field_named(fr, "order")
  local hl = header_len(fr)
  if #b >= hl then
    local _, why = frame_len(fr, b, 0, max)
    if why == "over" and byte_at(b, ver.offset) == 1 and u32_at(b, ord.offset) == 1 then
      return "a v3 header (version 1, order 1) whose size is over the limit"
    end
  end
  local at, first_v, first_o, n = 0, nil, nil, 0
  while at < #b do
    if first_v == nil and byte_at(b, at + ver.offset) ~= LAB_VERSION then return nil end
    local len, why = frame_len(fr, b, at, max)
    if len == nil then
      if why == "short" and complete and #b - at >= hl then
        local v, o = byte_at(b, at + ver.offset), u32_at(b, at + ord.offset)
        if first_v ~= nil and (v ~= first_v or o ~= (first_o + n) % 4294967296) then
          return nil
        end
        return string.format(
          "%d header(s) whose size matches the bytes that follow, the last one cut short", n + 1)
      end
      return nil
    end
    local v, o = byte_at(b, at + ver.offset), u32_at(b, at + ord.offset)
    if first_v == nil then
      first_v, first_o = v, o
    elseif v ~= first_v or o ~= (first_o + n) % 4294967296 then
      return nil
    end
    n = n + 1
    at = at + len
  end
  if first_v == nil then return nil end
  return string.format(
    "%d header(s) whose size matches the bytes that follow exactly, version %d, order %d..%d",
    n, first_v, first_o, (first_o + n - 1) % 4294967296)
end

-- stage: "streaming", "answered" or "ended". Returns framing name and
-- reason, or nil when it is too early to tell.
local function detect(first, stage, max)
  local complete = stage ~= "streaming"
  local fixed, sized, fixed_name, sized_name, fixed_len = nil, nil, nil, nil, nil
  for _, name in ipairs(FRAMING_NAMES) do
    local fr = FRAMINGS[name]
    if fr.sized then
      if sized == nil then sized, sized_name = sized_chain(fr, first, max, complete), name end
    elseif fixed == nil then
      fixed, fixed_name, fixed_len = fixed_chain(fr, first, complete), name, header_len(fr)
    end
  end
  local fixed_exact = fixed_len ~= nil and #first % fixed_len == 0
  -- While the bytes stream in, they may be the start of fixed frames even
  -- when the sized framing reads them exactly.
  local fixed_possible = fixed ~= nil
  if not fixed_possible and stage == "streaming" and fixed_name ~= nil then
    fixed_possible = fixed_prefix(FRAMINGS[fixed_name], first, max)
  end
  if fixed and sized and not fixed_exact then return sized_name, sized end
  if fixed and sized and stage ~= "ended" then return nil end
  if fixed then return fixed_name, fixed end
  if sized and fixed_possible and stage ~= "ended" then return nil end
  if sized then return sized_name, sized end
  -- Both framings need the lab's version byte first: text is certain.
  if #first > 0 and string.byte(first, 1) ~= LAB_VERSION then
    return "text", "first byte is not the lab's version byte"
  end
  if not complete then return nil end
  return "text", "no consistent v2/v3 header"
end

-- A connection the capture picked up after it began (no SYN seen): its
-- first bytes may end a frame sent before the capture. Every offset where
-- the lab's version byte stands is tried as a frame boundary, and the first
-- from which the rules find frames wins (rc1 capture's detect_midstream).
-- Returns framing, reason and the bytes before the boundary, or nil.
local function detect_midstream(first, stage, max)
  local undecided = false
  for skip = 0, math.min(#first, MIDSTREAM_SEARCH) - 1 do
    if byte_at(first, skip) == LAB_VERSION then
      local name, reason = detect(string.sub(first, skip + 1), stage, max)
      if name == nil then
        undecided = true
      elseif name ~= "text" then
        if skip > 0 then
          reason = string.format("picked up mid-stream: from offset %d, %s", skip, reason)
        end
        return name, reason, skip
      end
    end
  end
  if stage == "streaming" or (undecided and stage ~= "ended") then return nil end
  return "text", "picked up mid-stream, and no v2/v3 frame boundary fits", 0
end

-- Where whole frames of `fr` begin in `b`, a direction's first bytes
-- picked up mid-stream (rc1 capture's align).
local function align(fr, b, complete, max)
  local limit = fr.sized and MIDSTREAM_SEARCH or header_len(fr)
  for k = 0, math.min(#b, limit) - 1 do
    if byte_at(b, k) == LAB_VERSION then
      local rest = string.sub(b, k + 1)
      if fr.sized then
        local _, why = frame_len(fr, rest, 0, max)
        if why ~= "over" and sized_chain(fr, rest, max, complete) ~= nil then return k end
      elseif fixed_chain(fr, rest, complete) ~= nil then
        return k
      end
    end
  end
  return nil
end

-- Whether `s` is whole frames of `name` (text always is).
local function whole_frames(name, s, max)
  if name == "text" then return true end
  local fr = FRAMINGS[name]
  local at = 0
  while at < #s do
    local n = frame_len(fr, s, at, max)
    if n == nil then return false end
    at = at + n
  end
  return true
end

-- Per-connection state ------------------------------------------------------
-- Every byte is placed by its stream offset (0 = the first payload byte of
-- its direction, from TCP's relative sequence numbers, so numbers that wrap
-- past 2^32 do not matter), never by the order in which TCP hands buffers
-- over: segments captured out of order, and buffers TCP hands back after a
-- desegmentation request, land where they belong.
--
-- The framing is decided on the first pass from the client's first bytes
-- in stream order, as rc1 capture decides: while they stream in, only when
-- certain; once the server answers, as complete. Until then the client's
-- bytes are held for the next segment (TCP desegmentation).
local tcp_stream_f = Field.new("tcp.stream")
local tcp_fin_f = Field.new("tcp.flags.fin")
local tcp_seq_f = Field.new("tcp.seq")
local tcp_len_f = Field.new("tcp.len")
local tcp_payload_f = nil
pcall(function() tcp_payload_f = Field.new("tcp.payload") end)
local tcp_seq_raw_f = nil
pcall(function() tcp_seq_raw_f = Field.new("tcp.seq_raw") end)
local tcp_completeness_f = nil
pcall(function() tcp_completeness_f = Field.new("tcp.completeness") end)
local streams = {}
local TWO32 = 4294967296

function rc1.init()
  streams = {}
end

-- One direction of a connection (first pass).
local function new_direction()
  return {
    origin = nil,     -- the sequence number of stream offset 0
    next = 0,         -- first stream offset not yet decoded, skipped or given up
    seen = 0,         -- end of the bytes TCP handed over so far
    pending = {},     -- where TCP's next reassembled buffer may start: the
                      -- offsets where we asked for more bytes
    keep_off = 0,     -- bytes from the first pending offset to `seen`, to
    keep = "",        -- tell those apart (and to show held bytes a hole cut off)
    frame_need = nil, -- total length of the frame at `next`, when asked for more
    skip_until = nil, -- bytes before this offset finish a frame a hole cut
    unsync = nil,     -- why nothing more of this direction can be decoded
    aligned = false,  -- picked up mid-stream: its first frame boundary found
    partial = nil,    -- { offset, length }: leading bytes of a frame sent
                      -- before the capture, still to be shown
  }
end

-- Whether the connection was picked up mid-stream: TCP saw no SYN of it
-- (tcp.completeness, bit 1; absent in old versions: assume a SYN).
local function picked_up()
  if tcp_completeness_f == nil then return false end
  local ok, v = pcall(function() return tcp_completeness_f().value end)
  return ok and v ~= nil and v % 2 == 0
end

local function stream_state(pinfo)
  local ok, v = pcall(function() return tcp_stream_f() end)
  local key = (ok and v) and v.value or tostring(pinfo.src) .. ":" .. pinfo.src_port .. "-" .. tostring(pinfo.dst) .. ":" .. pinfo.dst_port
  local st = streams[key]
  if st == nil then
    -- first: the client's first bytes, from stream offset first_at (0
    -- unless the stream starts with a hole), at most DETECT_LIMIT.
    -- plans: what each buffer showed on the first pass, for later passes.
    -- picked_up: no SYN seen (judged at the first payload); skip: bytes
    -- before the client's first frame boundary.
    st = { first = "", first_at = nil, framing = nil, reason = nil, answered = false,
           dirs = { ["c>s"] = new_direction(), ["s>c"] = new_direction() }, plans = {},
           picked_up = picked_up(), skip = 0 }
    streams[key] = st
  end
  return st
end

local function server_port(pinfo)
  local ok, m = pcall(function() return pinfo.match_uint end)
  if ok and m and m ~= 0 then return m end
  return rc1.prefs.port
end

local function forced_framing()
  local p = rc1.prefs.framing
  if p == -1 then return "text" end
  if p and p > 0 then return FRAMING_NAMES[p] end
  return nil
end

-- Columns: the first rc1 message of a packet sets Info, later ones append.
local function note(pinfo, text)
  local proto = ""
  pcall(function() proto = tostring(pinfo.cols.protocol) end)
  if proto ~= "RC1" then
    pinfo.cols.protocol = "RC1"
    pinfo.cols.info = text
  else
    pinfo.cols.info:append(" ; " .. text)
  end
end

-- A message field from its bytes (a Lua string value would end at a NUL),
-- plus all its bytes when it holds a NUL.
local function add_message(sub, field, range, content)
  if #content == 0 then
    sub:add(field, "") -- empty: no bytes to point at
    return
  end
  sub:add(field, range)
  if string.find(content, "\0", 1, true) then
    sub:add(F.data, range)
  end
end

-- One frame ------------------------------------------------------------------
local function dissect_frame(fr, tvb, pinfo, tree, echo)
  local s = tvb:raw(0, tvb:len())
  local max = rc1.prefs.max_frame
  local sub = tree:add(rc1, tvb(), "rc1 " .. fr.name .. (echo and " echo" or " request"))
  sub:add(F.framing, fr.name)
  sub:add(F.direction, echo and "echo" or "request")
  local values, message, cut = {}, "", false
  for _, f in ipairs(fr.fields) do
    if f.kind == "u8" then
      values[f.name] = byte_at(s, f.offset)
      sub:add(F[f.name], tvb(f.offset, 1))
    elseif f.kind == "u32" then
      values[f.name] = u32_at(s, f.offset)
      sub:add(F[f.name], tvb(f.offset, 4))
    elseif f.kind == "fixed" then
      local want = values[f.len_by]
      local n = math.min(want, f.width)
      local content = string.sub(s, f.offset + 1, f.offset + n)
      add_message(sub, F[f.name], n > 0 and tvb(f.offset, n) or nil, content)
      if n < f.width then
        local pad = string.sub(s, f.offset + n + 1, f.offset + f.width)
        local item = sub:add(F.padding, tvb(f.offset + n, f.width - n))
        if pad ~= string.rep(string.char(f.pad), f.width - n) then
          item:add_proto_expert_info(E["v2.bad_padding"],
            "[v2.bad_padding] padding after the message is not '" .. string.char(f.pad) .. "'")
        end
      end
      if want > f.width then
        cut = true
        sub:add_proto_expert_info(E["v2.size_over_20"], string.format(
          "[v2.size_over_20] size %d is over %d: the message was cut to its first %d bytes",
          want, f.width, f.width))
      end
      message = content
    elseif f.kind == "sized" then
      local n = values[f.by]
      local content = string.sub(s, f.offset + 1, f.offset + n)
      add_message(sub, F[f.name], n > 0 and tvb(f.offset, n) or nil, content)
      message = content
    end
  end
  if values.version ~= nil and values.version ~= LAB_VERSION then
    sub:add_proto_expert_info(E["frame.unexpected_version"], string.format(
      "[frame.unexpected_version] version %d, not the lab's %d", values.version, LAB_VERSION))
  end
  local text = fr.name .. (echo and " echo" or "") .. " order=" .. tostring(values.order)
    .. " size=" .. tostring(values.size) .. " " .. preview(message) .. (cut and " (cut)" or "")
  sub:append_text(": order=" .. tostring(values.order) .. " size=" .. tostring(values.size))
  note(pinfo, text)
end

-- A header claiming more than the limit: shown, reported, and the rest of
-- this direction is not trusted (as rc1 capture does).
local function dissect_oversized(fr, tvb, pinfo, tree, echo)
  local s = tvb:raw(0, tvb:len())
  local sub = tree:add(rc1, tvb(), "rc1 " .. fr.name .. " header over the limit")
  sub:add(F.framing, fr.name)
  sub:add(F.direction, echo and "echo" or "request")
  local claim = 0
  for _, f in ipairs(fr.fields) do
    if f.kind == "u8" then sub:add(F[f.name], tvb(f.offset, 1))
    elseif f.kind == "u32" then sub:add(F[f.name], tvb(f.offset, 4)) end
    if f.kind == "sized" then claim = u32_at(s, field_named(fr, f.by).offset) end
  end
  sub:add_proto_expert_info(E["v3.size_over_max"], string.format(
    "[v3.size_over_max] header claims a message of %d bytes, more than the limit of %d bytes "
    .. "(raise the \"Largest v3 message\" preference); the rest of this direction is not decoded",
    claim, rc1.prefs.max_frame))
  note(pinfo, fr.name .. (echo and " echo" or "") .. " header claims " .. claim .. " bytes (over the limit)")
end

-- TCP -------------------------------------------------------------------------
local function dissect_text(tvb, pinfo, tree, echo, kind)
  local s = tvb:raw(0, tvb:len())
  local sub = tree:add(rc1, tvb(), "rc1 " .. kind .. (echo and " echo" or " request"))
  sub:add(F.framing, kind)
  sub:add(F.direction, echo and "echo" or "request")
  add_message(sub, F.message, tvb(), s)
  note(pinfo, kind .. (echo and " echo " or " ") .. #s .. " bytes " .. preview(s))
end

-- Whether TCP will reassemble for us (the "Allow subdissector to reassemble
-- TCP streams" preference; absent in old versions: assume yes).
local function can_desegment(pinfo)
  local ok, v = pcall(function() return pinfo.can_desegment end)
  return not ok or v == nil or v ~= 0
end

-- Stream positions ---------------------------------------------------------
-- This packet's segment: stream offset of its first payload byte, its
-- length, its payload and where that payload starts in the packet (nil when
-- the fields are missing).
local function segment(d)
  local ok, seq, tl = pcall(function() return tcp_seq_f().value, tcp_len_f().value end)
  if not ok or seq == nil or tl == nil then return nil end
  if d.origin == nil then
    -- Relative sequence numbers (Wireshark's default) number a direction's
    -- first byte 1; with absolute ones, count from the first segment seen.
    d.origin = 1
    if tcp_seq_raw_f ~= nil then
      local ok2, raw = pcall(function() return tcp_seq_raw_f().value end)
      if ok2 and raw ~= nil and raw == seq and seq ~= 1 then d.origin = seq end
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
  -- request whose buffer TCP extended, or (segments TCP queued out of order
  -- on its own) from this segment. The bytes tell which: the ones kept from
  -- earlier buffers and this segment's own must be where the start puts them.
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

-- Frames ---------------------------------------------------------------------
-- Whole frames of `fr` in `s` from `at`: where they end, and what stops
-- there: nil (the end of `s`), "short" (with the frame's total length when
-- its header is complete) or "over" (a size over the limit).
local function scan(fr, s, at, max)
  while at < #s do
    local need, why, want = frame_len(fr, s, at, max)
    if need == nil then
      if why == "short" and want == nil and not fr.sized then want = header_len(fr) end
      return at, why, want
    end
    at = at + need
  end
  return at, nil, nil
end

-- Shows the frames of `tvb` from `from` on. Returns the tvb offset where
-- the bytes not shown start (len when all were used) and why: nil, "more"
-- (TCP was asked for the rest, with the frame's total length when known),
-- "partial" (desegmentation is off), "over" or "truncated".
local function show_frames(fr, tvb, pinfo, tree, echo, from, fin, desegment)
  local len = tvb:len()
  local s = tvb:raw(0, len)
  local max = rc1.prefs.max_frame
  local offset = from
  while offset < len do
    local need, why, want = frame_len(fr, s, offset, max)
    if need == nil and why == "over" then
      dissect_oversized(fr, tvb(offset):tvb(), pinfo, tree, echo)
      return len, "over"
    end
    if need == nil then
      if not fr.sized and want == nil then want = header_len(fr) end
      if not desegment then return offset, "held", want end
      if fin then
        -- The stream ends inside this frame: report it, never guess.
        local sub = tree:add(rc1, tvb(offset), "rc1 " .. fr.name .. " truncated frame")
        sub:add(F.framing, fr.name)
        sub:add(F.direction, echo and "echo" or "request")
        sub:add_proto_expert_info(E["frame.truncated"], string.format(
          "[frame.truncated] the stream ends %d byte(s) into a frame", len - offset))
        note(pinfo, fr.name .. " truncated frame (" .. (len - offset) .. " bytes)")
        return len, "truncated"
      end
      if not can_desegment(pinfo) then
        local sub = tree:add(rc1, tvb(offset), "rc1 " .. fr.name .. " partial frame")
        sub:add(F.framing, fr.name)
        sub:add(F.direction, echo and "echo" or "request")
        local snapped = false
        pcall(function() snapped = pinfo.caplen < pinfo.len end)
        local why = snapped and "the packet was cut by the snap length"
          or "turn on tcp.desegment_tcp_streams to see frames split across segments"
        note(pinfo, fr.name .. " partial frame (" .. (len - offset) .. " bytes): " .. why)
        return offset, "partial", want
      end
      pinfo.desegment_offset = offset
      if want ~= nil then
        pinfo.desegment_len = want - (len - offset)
      else
        -- The header first: exactly the bytes it still needs.
        pinfo.desegment_len = header_len(fr) - (len - offset)
      end
      return offset, "more", want
    end
    dissect_frame(fr, tvb(offset, need):tvb(), pinfo, tree, echo)
    offset = offset + need
  end
  return len, nil
end

-- Bytes not decoded: a frame a hole cut, or a direction no header can be
-- trusted in any more.
local function not_decoded(tvb, pinfo, tree, code, text)
  local sub = tree:add(rc1, tvb, "rc1: not decoded")
  sub:add_proto_expert_info(E[code], "[" .. code .. "] " .. text)
  note(pinfo, "not decoded (" .. text .. ")")
end

-- A hole: bytes [from, to) of direction `d` never reached the dissector
-- (never captured, or TCP did not hand them over). Resynchronise as rc1
-- capture does (src/capture/decode.rs): v2 at the next 29-byte boundary of
-- the stream; v3 right after the frame the hole cut when its header was
-- seen, otherwise never again in this direction; text goes on.
-- `at`, `want`: the frame in progress when the hole began (its start and,
-- when its header was seen, its total length).
local function hole(d, framing, from, to, at, want)
  d.next, d.skip_until = to, nil
  d.pending, d.keep, d.keep_off, d.frame_need = {}, "", 0, nil
  if d.unsync or framing == "text" then return end
  local fr = FRAMINGS[framing]
  local resume
  if fr.sized then
    if want ~= nil and at < from and at + want >= to then
      resume = at + want
    else
      d.unsync = string.format(
        "no frame header can be trusted after the %d-byte hole at stream offset %d", to - from, from)
      return
    end
  else
    local l = header_len(fr)
    resume = math.ceil(to / l) * l
  end
  if resume > to then d.skip_until = resume end
end

-- TCP -------------------------------------------------------------------------
-- Decides the framing from the client's first bytes; mid-stream, also
-- where its first frame begins.
local function decide(st, stage, max)
  if not st.picked_up then
    st.framing, st.reason = detect(st.first, stage, max)
    return
  end
  local skip
  st.framing, st.reason, skip = detect_midstream(st.first, stage, max)
  if st.framing ~= nil then
    local d = st.dirs["c>s"]
    d.aligned = true
    if skip ~= nil and skip > 0 then
      local at = st.first_at or 0
      d.partial = { at, skip }
      d.next = math.max(d.next, at + skip)
    end
  end
end

-- The rules for bytes as they stand (mid-stream: at every alignment).
local function judge(st, first, stage, max)
  if st.picked_up then
    local name, reason = detect_midstream(first, stage, max)
    return name, reason
  end
  return detect(first, stage, max)
end

-- What a buffer shows, decided on the first pass and kept for later ones.
local function plan_buffer(tvb, pinfo, echo, st, d, fin)
  local len = tvb:len()
  local max = rc1.prefs.max_frame
  local seg = segment(d)
  local start, reassembled = d.next, false
  if seg ~= nil then start, reassembled = buffer_start(tvb, seg, d) end
  local plan = { start = start, reassembled = reassembled }
  local framing = forced_framing()
  if framing == nil then
    if st.framing == nil then
      if not echo then
        -- The client's first bytes, in stream order.
        local stage = "streaming"
        if st.first_at == nil and start >= 0 then st.first_at = start end
        local known = (st.first_at or 0) + #st.first
        if start <= known and start + len > known then
          local take = math.min(start + len - known, DETECT_LIMIT - #st.first)
          if take > 0 then st.first = st.first .. tvb:raw(known - start, take) end
        elseif start > known then
          stage = "ended" -- after a hole: the first bytes cannot grow any more
        end
        if #st.first >= DETECT_LIMIT or fin then stage = "ended" end
        if #st.first > 0 then decide(st, stage, max) end
      else
        st.answered = true
        if #st.first > 0 then decide(st, "answered", max) end
      end
    end
    framing = st.framing
    if framing == nil and not echo then
      if not fin and not st.answered and can_desegment(pinfo)
          and start <= (st.first_at or 0) + #st.first then
        -- Too early to tell: hold these bytes until more come (rc1 capture
        -- holds them too, and never shows a frame it may have to take back).
        plan.hold = true
      else
        -- The server answered and the rules still wait (every message 20
        -- bytes: v2 and v3 read the same frames), or the stream ends: show
        -- what the bytes are if they stay as they are.
        framing = judge(st, st.first, "ended", max) or "text"
      end
    elseif framing == nil and #st.first > 0 then
      -- The server answered and the rules still wait: read the client's
      -- bytes as they stand (as for the client's own buffers).
      framing = judge(st, st.first, "ended", max) or "text"
    elseif framing == nil then
      -- The server spoke first: read its bytes by the same rules.
      framing = judge(st, tvb:raw(0, len), "ended", max) or "text"
    end
  end
  plan.framing = framing
  if echo and framing ~= nil then
    -- The client's bytes held while the rules waited: TCP hands them back
    -- only with the client's next segment, which may never come (a single
    -- request) or come cut by the snap length. Show them here, with the
    -- answer that decided the framing.
    local c = st.dirs["c>s"]
    if c.next < c.seen and not c.unsync and c.keep ~= "" and c.next >= c.keep_off then
      local held = string.sub(c.keep, c.next - c.keep_off + 1, c.seen - c.keep_off)
      local used, why = #held, nil
      if framing ~= "text" then used, why = scan(FRAMINGS[framing], held, 0, max) end
      if used > 0 and why ~= "over" then
        plan.requests = string.sub(held, 1, used)
        if c.partial ~= nil and c.partial[1] >= c.keep_off then
          plan.requests_partial = string.sub(c.keep, c.partial[1] - c.keep_off + 1,
            c.partial[1] + c.partial[2] - c.keep_off)
          c.partial = nil
        end
        c.next = c.next + used
      end
    end
  end
  if start > d.seen and framing ~= nil then
    -- A hole before this buffer. Bytes held before it will never come back
    -- from TCP: show them from our copy, then resynchronise.
    local at, want = d.next, d.frame_need
    if d.next < d.seen and not d.unsync then
      local held = string.sub(d.keep, d.next - d.keep_off + 1, d.seen - d.keep_off)
      plan.held = held
      if framing ~= "text" then
        local upto, why, w = scan(FRAMINGS[framing], held, 0, max)
        if why == "over" then
          d.unsync = "no frame header can be trusted after an oversized claim in this direction"
        end
        at, want = d.next + upto, w
      end
    end
    hole(d, framing, d.seen, start, at, want)
  end
  if st.picked_up and framing ~= nil and framing ~= "text" and not d.aligned
      and not d.unsync and start <= d.next and start + len > d.next then
    -- Picked up mid-stream: this direction's first frame boundary.
    local at = d.next - start
    local k = align(FRAMINGS[framing], tvb:raw(at, len - at), fin, max)
    if k ~= nil then
      d.aligned = true
      if k > 0 then d.partial = { d.next, k } end
      d.next = d.next + k
    elseif fin or len - at > MIDSTREAM_SEARCH or not can_desegment(pinfo) then
      d.unsync = "picked up mid-stream, and no frame boundary was found"
    else
      plan.hold = true
    end
  end
  if d.partial ~= nil and d.partial[1] >= start and d.partial[1] + d.partial[2] <= start + len then
    plan.partial = { d.partial[1] - start, d.partial[2] }
    d.partial = nil
  end
  local from = math.max(0, math.min(len, d.next - start))
  if d.skip_until ~= nil and d.skip_until > start + from and from < len then
    local upto = math.min(len, d.skip_until - start)
    plan.damaged = { from, upto - from, d.skip_until }
    from = upto
  end
  if d.skip_until ~= nil and d.skip_until <= start + len then d.skip_until = nil end
  plan.from = from
  plan.unsync = d.unsync
  return plan
end

-- Shows a buffer as its plan says; returns show_frames' answer.
local function play(plan, tvb, pinfo, tree, echo, fin)
  local len = tvb:len()
  local framing = plan.framing
  if plan.held ~= nil then
    -- Bytes held for more that a hole then cut off: from our copy.
    local ok, htvb = pcall(function()
      return ByteArray.new(plan.held, true):tvb("rc1: bytes held before a hole")
    end)
    if ok and htvb ~= nil then
      if framing == "text" then
        dissect_text(htvb, pinfo, tree, echo, "text")
      else
        show_frames(FRAMINGS[framing], htvb, pinfo, tree, echo, 0, false, false)
      end
    end
  end
  if plan.requests ~= nil then
    local ok, rtvb = pcall(function()
      return ByteArray.new(plan.requests, true):tvb("rc1: requests held until the framing was known")
    end)
    if ok and rtvb ~= nil then
      if plan.requests_partial ~= nil and #plan.requests_partial > 0 then
        local ok2, ptvb = pcall(function()
          return ByteArray.new(plan.requests_partial, true):tvb("rc1: the end of a frame sent before the capture")
        end)
        if ok2 and ptvb ~= nil then
          not_decoded(ptvb(), pinfo, tree, "frame.partial", string.format(
            "%d byte(s): the end of a frame sent before the capture began; decoding starts after them",
            #plan.requests_partial))
        end
      end
      if framing == "text" then
        dissect_text(rtvb, pinfo, tree, false, "text")
      else
        show_frames(FRAMINGS[framing], rtvb, pinfo, tree, false, 0, false, false)
      end
    end
  end
  if plan.partial ~= nil then
    local at, n = plan.partial[1], plan.partial[2]
    not_decoded(tvb(at, n), pinfo, tree, "frame.partial", string.format(
      "%d byte(s): the end of a frame sent before the capture began; decoding starts after them", n))
  end
  if plan.damaged ~= nil then
    local at, n, resume = plan.damaged[1], plan.damaged[2], plan.damaged[3]
    not_decoded(tvb(at, n), pinfo, tree, "frame.damaged", string.format(
      "%d byte(s): the end of a frame a hole cut; decoding resumes at stream offset %d", n, resume))
  end
  local from = plan.from
  if from >= len then return len end
  if plan.unsync ~= nil then
    not_decoded(tvb(from), pinfo, tree, "frame.unsynchronised", plan.unsync)
    return len
  end
  if plan.hold then
    pinfo.desegment_offset = from
    pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
    return from, "more", nil
  end
  if framing == "text" then
    dissect_text(tvb(from):tvb(), pinfo, tree, echo, "text")
    return len
  end
  return show_frames(FRAMINGS[framing], tvb, pinfo, tree, echo, from, fin, true)
end

local function dissect_tcp(tvb, pinfo, tree)
  local len = tvb:len()
  if len == 0 then return 0 end
  local port = server_port(pinfo)
  local echo = pinfo.src_port == port and pinfo.dst_port ~= port
  local st = stream_state(pinfo)
  local d = st.dirs[echo and "s>c" or "c>s"]
  local fin = false
  pcall(function() local f = tcp_fin_f(); fin = f ~= nil and f.value end)
  local toff = 0
  pcall(function() toff = tvb:offset() end)
  local key = pinfo.number .. ":" .. toff .. ":" .. len
  if pinfo.visited then
    local plan = st.plans[key]
    if plan == nil then
      -- Not seen on the first pass: show it as it stands.
      plan = { framing = forced_framing() or st.framing or "text", from = 0, start = 0 }
    end
    play(plan, tvb, pinfo, tree, echo, fin)
    return len
  end
  local plan = plan_buffer(tvb, pinfo, echo, st, d, fin)
  st.plans[key] = plan
  local used, why, want = play(plan, tvb, pinfo, tree, echo, fin)
  local start = plan.start
  local new_bytes = start + len > d.next
  d.seen = math.max(d.seen, start + len)
  if why == "over" then
    d.unsync = "no frame header can be trusted after an oversized claim in this direction"
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
      -- Desegmentation is off: the rest of this frame comes in the next
      -- segment; skip it as after a hole.
      hole(d, plan.framing, start + len, start + len, start + used, want)
    end
  end
  return len
end

local function dissect_udp(tvb, pinfo, tree)
  local port = server_port(pinfo)
  local echo = pinfo.src_port == port and pinfo.dst_port ~= port
  dissect_text(tvb, pinfo, tree, echo, "udp")
  return tvb:len()
end

function rc1.dissector(tvb, pinfo, tree)
  -- The same protocol on TCP and UDP: TCP packets have a stream number.
  local ok, stream = pcall(function() return tcp_stream_f() end)
  if ok and stream ~= nil then
    return dissect_tcp(tvb, pinfo, tree)
  end
  return dissect_udp(tvb, pinfo, tree)
end

-- Registration ----------------------------------------------------------------
local registered_port = nil

local function register(port)
  local tcp_table = DissectorTable.get("tcp.port")
  local udp_table = DissectorTable.get("udp.port")
  if registered_port ~= nil then
    tcp_table:remove(registered_port, rc1)
    udp_table:remove(registered_port, rc1)
  end
  tcp_table:add(port, rc1)
  udp_table:add(port, rc1)
  registered_port = port
end

register(DEFAULT_PORT)
-- "Decode As" for other ports (not in every version: guarded).
pcall(function() DissectorTable.get("tcp.port"):add_for_decode_as(rc1) end)
pcall(function() DissectorTable.get("udp.port"):add_for_decode_as(rc1) end)

function rc1.prefs_changed()
  if rc1.prefs.port ~= registered_port then register(rc1.prefs.port) end
end
