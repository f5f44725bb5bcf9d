--@@HEADER@@

local NAME = @@NAME@@
local PORT = @@PORT@@
-- The largest body believed (max_body, at most what Wireshark reassembles):
-- a longer length is refused (framing.length_over_max).
local MAX_BODY = @@MAX_BODY@@
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

-- The length the length field claims, at `offset` in tvb.
local function claimed(tvb, offset)
  local _, n = read_int(LENGTH, tvb(offset + LENGTH.offset, LENGTH.width))
  return n
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

-- The length of the frame at `offset`: the header says it. A length over
-- MAX_BODY takes the rest of what is there (the stream cannot be trusted).
local function frame_len(tvb, pinfo, offset)
  if not LENGTH then return FIXED_LEN end
  local n = claimed(tvb, offset)
  if n > MAX_BODY then return tvb:len() - offset end
  return FIXED_LEN + n
end

local info_frame = nil

function proto.init()
  info_frame = nil
end

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
    local text = string.format("[framing.length_over_max] %s claims a body of %s bytes, "
      .. "more than the limit of %s (max_body); the rest of this stream cannot be trusted",
      LENGTH.name, decimal(body_len), decimal(MAX_BODY))
    sub:add_proto_expert_info(E.length_over_max, text)
    set_info(pinfo, what .. " length over max_body (" .. decimal(body_len) .. " bytes)")
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
      items[f.name] = sub:add(F[f.name], range(tvb, at, body_len), content)
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
        items[f.name] = sub:add(F[f.name], tvb(at, f.width), content)
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
          "[framing.checksum] %s is 0x%x, but the %s of its fields is 0x%x",
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

function proto.dissector(tvb, pinfo, tree)
  dissect_tcp_pdus(tvb, tree, HEADER_LEN, frame_len, dissect_frame, true)
  return tvb:len()
end

local tcp_port = DissectorTable.get("tcp.port")
tcp_port:add(PORT, proto)
pcall(function() tcp_port:add_for_decode_as(proto) end)
