-- Pure-Lua unit tests of the plugin's modules that need no server: accept splitting, position encodings,
-- option validation. Run: nvim --headless --clean -n -l tests/editors/nvim/test_units.lua  (exit 0/1)
local REPO = os.getenv('BLOCKFILL_REPO') or vim.fn.getcwd()
vim.opt.rtp:prepend(REPO .. '/editors/nvim')
local accept = require('blockfill.accept')
local position = require('blockfill.position')
local config = require('blockfill.config')

local failures, count = 0, 0
local function eq(expected, actual, what)
  count = count + 1
  if not vim.deep_equal(expected, actual) then
    failures = failures + 1
    io.stdout:write(('FAIL %s: expected %s, got %s\n'):format(what, vim.inspect(expected), vim.inspect(actual)))
  end
end

-- accept.word: { text, head }
for _, case in ipairs({
  { 'foo.bar(x)', 'foo' },
  { '  return x', '  return' },
  { '.bar(x)', '.' },
  { '):\n    pass', '):' },
  { '\n    return 1', '\n    ' },
  { '\r\n\treturn 1', '\r\n\t' },
  { 'größe = 1', 'größe' },
  { '📏 x', '📏' },
  { '   ', '   ' },
  { '', '' },
  { 'x', 'x' },
  { '_private_name + 1', '_private_name' },
}) do
  local head, rest = accept.word(case[1])
  eq(case[2], head, 'word head of ' .. vim.inspect(case[1]))
  eq(case[1], head .. rest, 'word head .. rest of ' .. vim.inspect(case[1]))
end

-- accept.line: { text, head }
for _, case in ipairs({
  { 'a = 1\nb = 2', 'a = 1' },
  { '\nb = 2\nc = 3', '\nb = 2' },
  { '\r\nb = 2', '\r\nb = 2' },
  { 'only line', 'only line' },
  { '\n', '\n' },
  { '', '' },
}) do
  local head, rest = accept.line(case[1])
  eq(case[2], head, 'line head of ' .. vim.inspect(case[1]))
  eq(case[1], head .. rest, 'line head .. rest of ' .. vim.inspect(case[1]))
end
eq({ 'all of it', '' }, { accept.split('all of it', 'all') }, 'split all')
eq({ 'a', ' b' }, { accept.split('a b', 'word') }, 'split word')
eq({ 'a', '\nb' }, { accept.split('a\nb', 'line') }, 'split line')

-- position: "x = 'é📏' + y": é is 2 bytes / 1 UTF-16 unit, 📏 is 4 bytes / 2 units / 1 code point
local line = "x = 'é📏' + y"
local after_emoji = #"x = 'é📏" -- byte column just after the emoji
eq(after_emoji, 11, 'fixture byte length')
eq(11, position.character(line, after_emoji, 'utf-8'), 'utf-8 character')
eq(8, position.character(line, after_emoji, 'utf-16'), 'utf-16 character')
eq(7, position.character(line, after_emoji, 'utf-32'), 'utf-32 character')
eq(after_emoji, position.byte_col(line, 8, 'utf-16'), 'utf-16 back to bytes')
eq(after_emoji, position.byte_col(line, 7, 'utf-32'), 'utf-32 back to bytes')
eq(after_emoji, position.byte_col(line, 11, 'utf-8'), 'utf-8 back to bytes')
eq(#"x = 'é", position.byte_col(line, 7, 'utf-16'), 'inside a surrogate pair: the character start')
eq(#line, position.byte_col(line, 999, 'utf-16'), 'past the end: the end')
eq(#line, position.byte_col(line, 999, 'utf-8'), 'past the end (utf-8): the end')
for col = 0, #line do
  for _, enc in ipairs({ 'utf-8', 'utf-16', 'utf-32' }) do
    local ch = position.character(line, col, enc)
    local back = position.byte_col(line, ch, enc)
    if line:sub(col + 1, col + 1):byte() == nil or line:byte(col + 1) < 0x80 or line:byte(col + 1) >= 0xC0 then
      eq(col, back, ('round trip %s col %d'):format(enc, col))
    end
  end
end
eq(3, position.character('a\255b', 3, 'utf-16'), 'invalid UTF-8: a unit per byte')

-- config
local c = config.resolve({ filetypes = { 'lua' }, keymaps = { accept = '<C-y>', prev = false } })
eq({ 'lua' }, c.filetypes, 'filetypes replace the default list')
eq('<C-y>', c.keymaps.accept, 'keymap override')
eq(false, c.keymaps.prev, 'keymap disabled')
eq('<M-]>', c.keymaps.next, 'other keymaps keep their defaults')
eq(false, config.resolve({ keymaps = false }).keymaps, 'keymaps = false')
eq({ 'blockfill', 'serve' }, config.resolve().cmd, 'default cmd')
eq(false, pcall(config.resolve, { debounce_ms = 'soon' }), 'wrong type rejected')
eq(false, pcall(config.resolve, { keymaps = { acept = '<Tab>' } }), 'unknown keymap rejected')

io.stdout:write(('%d checks, %d failed\nRESULT: %s\n'):format(count, failures, failures == 0 and 'PASS' or 'FAIL'))
os.exit(failures == 0 and 0 or 1)
