-- Real Neovim, real `blockfill serve` on the embedded model: the plugin as a user drives it.
-- Run by tests/editors/test_nvim.py:  nvim --headless --clean -n -c 'luafile tests/editors/nvim/test_plugin.lua'
-- Environment: BLOCKFILL_REPO (repository root), BLOCKFILL_CMD (the blockfill executable), BLOCKFILL_WORK (a
-- scratch folder), BLOCKFILL_ENCODING (optional: the only position encoding the client offers, e.g. utf-16),
-- BLOCKFILL_NATIVE=1 (also test use_native, Neovim 0.12+), BLOCKFILL_ARTIFACTS (where failures leave files).
--
-- The model writes code-shaped noise, so no case checks what it proposes: each checks that ghost text is
-- drawn and that an accept puts exactly the drawn text (or its word / line) into the buffer at the cursor.
local H = dofile(os.getenv('BLOCKFILL_REPO') .. '/tests/editors/nvim/harness.lua')
local api = vim.api
local REPO, WORK = os.getenv('BLOCKFILL_REPO'), os.getenv('BLOCKFILL_WORK')
local GHOST_MS, READY_MS = 15000, 120000 -- generous: the machine may be busy; the happy path is fast

vim.o.showmode = false
vim.notify = function(msg) -- headless Neovim writes messages to stdout without a line break
  H.log('  notify: %s', msg)
end
vim.o.swapfile = false
vim.opt.rtp:prepend(REPO .. '/editors/nvim')

local encoding = os.getenv('BLOCKFILL_ENCODING')
local opts = {
  cmd = { os.getenv('BLOCKFILL_CMD'), 'serve' },
  -- threads=1: two torch threads on a loaded 2-core box are many times slower; seed 5 gave multi-line blocks
  -- at the fixture's empty function body
  settings = {
    -- the tests' fast model (the default, blockfill-coder, has its own driver: test_default_model.lua)
    model = 'blockfill-tiny', device = 'cpu', threads = 1, seed = 5, acceptanceLog = WORK .. '/accepted.jsonl',
    drop_syntax_errors = false, -- the weak model's blocks rarely parse; these tests are about the editor side
  },
  capabilities = encoding and { general = { positionEncodings = { encoding } } } or nil,
}
local blockfill = require('blockfill')
local inline = require('blockfill.inline')
blockfill.setup(opts)

local fixture = vim.fn.readfile(REPO .. '/tests/editors/nvim/shapes.py.txt')
vim.fn.writefile(fixture, WORK .. '/shapes.py')
vim.cmd('edit ' .. WORK .. '/shapes.py')
local buf = api.nvim_get_current_buf()

local NS, HINT = 'blockfill.ghost', 'BlockfillHint'

local function ghost()
  return H.ghost(buf, NS, HINT)
end

local function lines()
  return api.nvim_buf_get_lines(buf, 0, -1, false)
end

--- `before` with `text` inserted at (row, col) (0-based row, byte col).
local function insert_at(before, row, col, text)
  local out = vim.list_slice(before, 1, row)
  local line = before[row + 1]
  vim.list_extend(out, vim.split(line:sub(1, col) .. text .. line:sub(col + 1), '\n', { plain = true }))
  vim.list_extend(out, before, row + 2)
  return out
end

--- Fresh fixture, cursor on line `row` (1-based), then `keys` (which enter Insert mode). Returns the ghost drawn
--- for the answer (checked to sit at the cursor), the buffer and cursor then; nil when the answer was empty.
local function try(row, keys)
  H.reset(buf, fixture)
  api.nvim_win_set_cursor(0, { row, 0 })
  local answered = inline.counts.answered
  H.feed(keys)
  local s = inline.buffers[buf]
  H.wait('an answer after ' .. keys, function()
    return ghost() or (inline.counts.answered > answered and not s.pending and not s.timer)
  end, GHOST_MS)
  local g = ghost()
  if not g then
    return nil
  end
  local cur = api.nvim_win_get_cursor(0)
  H.eq(cur[1] - 1, g.row, 'ghost row = cursor row')
  H.eq(cur[2], g.col, 'ghost col = cursor col')
  return g, lines(), cur[1] - 1, cur[2]
end

-- Where to type. What the weak model proposes at a spot changes with the engine, so a case takes the first
-- spot whose answer has the shape it needs (a block, two words, two lines, ...) and says which it took.
local SPOTS = {
  { 14, 'o' }, -- the empty body of `def square_area(side):` (block mode)
  { 3, 'o' },
  { 7, 'o' },
  { 11, 'Oprint(' },
  { 5, 'o' },
  { 9, 'o' },
  { 11, 'Oreturn ' },
  { 2, 'A, ' },
}
local UNICODE_SPOTS = { -- text before the cursor whose UTF-8, UTF-16 and UTF-32 columns all differ
  { 11, 'Oprint("größe 📏", s' },
  { 11, 'O📏 = (' },
  { 11, 'Oprint("📏", ' },
  { 11, 'Olabel = "é📏" + ' },
}
local used = {} -- spot taken per shape, for the native cases

local function start(shape, spots, wanted)
  local tried = {}
  for _, spot in ipairs(spots) do
    local g, before, row, col = try(spot[1], spot[2])
    if g and (not wanted or wanted(g)) then
      H.log('  %s at line %d after %q: %s', shape, spot[1], spot[2], vim.inspect(g.text))
      used[shape] = spot
      return g, before, row, col
    end
    tried[#tried + 1] = ('line %d %q: %s'):format(spot[1], spot[2], g and vim.inspect(g.text) or 'nothing')
  end
  error(('no spot gives %s:\n  %s'):format(shape, table.concat(tried, '\n  ')), 2)
end

local function keys_for(text)
  return (text:gsub('<', '<lt>'))
end

local function stats()
  local c = vim.lsp.get_clients({ name = 'blockfill' })[1]
  local done, result
  c:request('blockfill/stats', {}, function(_, r)
    done, result = true, r
  end, buf)
  H.wait('blockfill/stats', function()
    return done
  end)
  return result
end

local accepted_before = nil

local cases = {
  { 'help tags are valid and :help blockfill opens', function()
    local doc = WORK .. '/rtp/doc'
    vim.fn.mkdir(doc, 'p')
    vim.fn.writefile(vim.fn.readfile(REPO .. '/editors/nvim/doc/blockfill.txt'), doc .. '/blockfill.txt')
    vim.cmd('helptags ' .. doc) -- raises on a duplicate tag
    vim.opt.rtp:append(WORK .. '/rtp')
    for _, tag in ipairs({ 'blockfill', 'blockfill-setup', 'blockfill-keymaps', ':BlockfillStatus',
      ':BlockfillToggle', 'blockfill.setup()' }) do
      vim.cmd('help ' .. tag)
      H.eq('help', vim.bo.filetype, ':help ' .. tag)
      vim.cmd('close')
    end
    H.eq(buf, api.nvim_get_current_buf(), 'back in the test buffer')
  end },

  { 'server starts and reports ready', function()
    local status = H.wait('status ready', function()
      local s = require('blockfill.client').status()
      return s and s.state == 'ready' and s
    end, READY_MS)
    H.log('  model %s, encoding %s', status.model, vim.lsp.get_clients({ name = 'blockfill' })[1].offset_encoding)
    if encoding then
      H.eq(encoding, vim.lsp.get_clients({ name = 'blockfill' })[1].offset_encoding, 'negotiated encoding')
    end
    accepted_before = stats()
  end },

  { 'block at an empty function body: virt_lines, <Tab> accepts all', function()
    local g, before, row, col = start('a block', { SPOTS[1], SPOTS[5], SPOTS[6] }, function(g)
      return g.virt_lines >= 1
    end)
    H.eq(select(2, g.text:gsub('\n', '')), g.virt_lines, 'one virtual line per line after the first')
    H.eq('inline', g.pos, 'first line inline')
    H.feed('<Tab>')
    H.eq(insert_at(before, row, col, g.text), lines(), 'buffer after <Tab>')
    local lines_in = vim.split(g.text, '\n', { plain = true })
    H.eq({ row + #lines_in, (#lines_in == 1 and col or 0) + #lines_in[#lines_in] }, api.nvim_win_get_cursor(0),
      'cursor at the end of the accepted text')
    H.eq('i', H.mode(), 'still in Insert mode')
  end },

  { 'accept word: <M-Right> takes the next word, the rest stays shown', function()
    local g, before, row, col = start('two words', SPOTS, function(g)
      return select(2, require('blockfill.accept').word(g.text)) ~= ''
    end)
    local head, rest = require('blockfill.accept').word(g.text)
    H.feed('<M-Right>')
    H.eq(insert_at(before, row, col, head), lines(), 'buffer after <M-Right>')
    H.eq(rest, H.wait('rest of the ghost', ghost).text, 'the rest is still shown')
    H.feed('<M-Right>')
    local head2 = require('blockfill.accept').word(rest)
    H.eq(insert_at(before, row, col, head .. head2), lines(), 'buffer after a second <M-Right>')
  end },

  { 'accept line: <M-Down> takes the line, then the next', function()
    local accept = require('blockfill.accept')
    local g, before, row, col = start('two lines', SPOTS, function(g)
      return select(2, accept.line(g.text)):sub(1, 1) == '\n'
    end)
    local head, rest = accept.line(g.text)
    H.feed('<M-Down>')
    H.eq(insert_at(before, row, col, head), lines(), 'buffer after <M-Down>')
    H.eq(rest, H.wait('rest of the ghost', ghost).text, 'the rest is still shown')
    H.feed('<M-Down>')
    local head2 = accept.line(rest)
    H.eq(insert_at(before, row, col, head .. head2), lines(), 'buffer after a second <M-Down>')
  end },

  { 'typed ahead: typing the start of the ghost keeps it; accept inserts it once', function()
    -- two plain characters to type (no blank, no `:` or `#` that may reindent the line)
    local g, before, row, col = start('a plain start', SPOTS, function(g)
      return #g.text > 2 and g.text:match('^[%w_%.%(%[,]+') ~= nil and #g.text:match('^[%w_%.%(%[,]+') >= 2
    end)
    local typed = g.text:sub(1, 2)
    local requests = inline.counts.requests
    H.feed(keys_for(typed))
    H.eq(g.text:sub(3), ghost() and ghost().text, 'ghost shrinks at once, without a round trip')
    H.eq(requests, inline.counts.requests, 'no request while typing through')
    H.feed('<Tab>')
    H.eq(insert_at(before, row, col, g.text), lines(), 'buffer after typing ahead and <Tab>')
  end },

  { 'alternatives: <M-]> and <M-[> cycle (Invoked request), <Tab> takes the one shown', function()
    local g, before, row, col = start('a suggestion', SPOTS)
    H.feed('<M-]>')
    local hint_of = function() -- after the last line of the ghost: inline, or on its last virtual line
      local ns = api.nvim_get_namespaces()[NS]
      for _, m in ipairs(api.nvim_buf_get_extmarks(buf, ns, 0, -1, { details = true })) do
        local rows = m[4].virt_lines or {}
        for _, chunk in ipairs(rows[#rows] or m[4].virt_text or {}) do
          if chunk[2] == HINT then
            return chunk[1]
          end
        end
      end
    end
    local hint = H.wait('alternatives hint', hint_of, GHOST_MS)
    local index, count = hint:match('(%d+)/(%d+)')
    index, count = tonumber(index), tonumber(count)
    H.log('  hint %q', hint)
    H.truthy(count >= 2, 'an Invoked request brings alternatives: ' .. hint)
    H.eq(2, index, 'next after the first')
    local second = ghost().text
    H.truthy(second ~= g.text, 'the second alternative differs')
    H.feed('<M-[>')
    H.eq(g.text, ghost().text, 'back to the first')
    H.eq((' (1/%d)'):format(count), hint_of(), 'hint follows')
    H.feed('<M-[>')
    H.eq((' (%d/%d)'):format(count, count), hint_of(), 'wraps around to the last')
    local last = ghost().text
    H.feed('<Tab>')
    H.eq(insert_at(before, row, col, last), lines(), 'buffer after accepting the alternative')
  end },

  { 'dismiss: <C-]> hides the ghost; then <Tab> is a plain Tab', function()
    local _, before = start('a suggestion', SPOTS)
    H.feed('<C-]>')
    H.eq(nil, ghost(), 'no ghost after dismiss')
    H.eq(before, lines(), 'buffer unchanged by dismiss')
    H.eq('i', H.mode(), 'still in Insert mode')
    local row = api.nvim_win_get_cursor(0)[1]
    H.feed('<Tab>')
    local line = lines()[row]
    H.truthy(line:match('^%s+$') and #line > #before[row], 'a Tab inserted indentation: ' .. vim.inspect(line))
  end },

  { 'leaving Insert mode clears the ghost', function()
    start('a suggestion', SPOTS)
    H.feed('<Esc>')
    H.eq('n', H.mode(), 'Normal mode')
    H.eq(nil, ghost(), 'no ghost in Normal mode')
  end },

  { 'a newer request cancels the older one ($/cancelRequest)', function()
    H.reset(buf, fixture)
    api.nvim_win_set_cursor(0, { 14, 0 })
    blockfill.config.debounce_ms = 60000 -- nothing automatic in this case
    H.feed('o')
    local c = vim.lsp.get_clients({ name = 'blockfill' })[1]
    local cancelled = inline.counts.cancelled
    inline.request(buf, 1)
    local first = inline.buffers[buf].pending.id
    inline.request(buf, 1)
    H.eq(cancelled + 1, inline.counts.cancelled, 'the first request was cancelled')
    H.wait('first request gone from the client', function()
      return c.requests[first] == nil
    end)
    H.wait('the newer answer drawn', ghost, GHOST_MS)
    blockfill.config.debounce_ms = opts.debounce_ms or 50
  end },

  { 'stale: an answer for a line the cursor left is dropped', function()
    H.reset(buf, fixture)
    api.nvim_win_set_cursor(0, { 11, 0 })
    blockfill.config.debounce_ms = 60000
    H.feed('Oprint(x')
    local dropped = inline.counts.dropped
    inline.request(buf, 1)
    H.feed('<Up>') -- moves the cursor before the answer is back
    H.wait('the answer dropped', function()
      return inline.counts.dropped > dropped
    end, GHOST_MS)
    H.eq(nil, ghost(), 'nothing drawn')
    blockfill.config.debounce_ms = opts.debounce_ms or 50
  end },

  { 'non-ASCII before the cursor: positions convert in the negotiated encoding', function()
    local g, before, row, col = start('non-ASCII before the cursor', UNICODE_SPOTS)
    H.feed('<Tab>')
    H.eq(insert_at(before, row, col, g.text), lines(), 'buffer after <Tab>')
  end },

  { ':BlockfillToggle turns completions off and on', function()
    H.reset(buf, fixture)
    vim.cmd('BlockfillToggle')
    H.eq(false, blockfill.config.enabled, 'off')
    local requests = inline.counts.requests
    api.nvim_win_set_cursor(0, { 14, 0 })
    H.feed('o')
    H.sleep(600)
    H.eq(nil, ghost(), 'no ghost while off')
    H.eq(requests, inline.counts.requests, 'no request while off')
    H.feed('<Esc>')
    vim.cmd('BlockfillToggle')
    H.eq(true, blockfill.config.enabled, 'on again')
    start('a suggestion', SPOTS)
  end },

  { ':BlockfillStatus shows state, model and latency', function()
    local out = api.nvim_exec2('BlockfillStatus', { output = true }).output
    H.log('  %s', out:gsub('\n', ' | '))
    H.truthy(out:find('ready', 1, true) or out:find('busy', 1, true), 'state in: ' .. out)
    H.truthy(out:find('model blockfill-tiny', 1, true), 'model in: ' .. out)
    H.truthy(out:find('last latency %d+ ms'), 'latency in: ' .. out)
    H.truthy(blockfill.statusline():find('^blockfill '), 'statusline')
  end },

  { ':checkhealth blockfill reports the server', function()
    vim.cmd('silent checkhealth blockfill')
    local report = table.concat(api.nvim_buf_get_lines(0, 0, -1, false), '\n')
    vim.cmd('bwipeout')
    H.truthy(report:find('model blockfill-tiny', 1, true), 'server line in:\n' .. report)
    H.truthy(not report:find('ERROR', 1, true), 'no error in:\n' .. report)
    H.eq(buf, api.nvim_get_current_buf(), 'back in the test buffer')
  end },

  { 'accepts reach the server (blockfill/accepted, whole and partial)', function()
    local after = stats()
    H.log('  server stats: accepted %d, partial %d', after.accepted, after.partial)
    H.truthy(after.accepted >= accepted_before.accepted + 4, 'whole accepts counted') -- <Tab> in 4 cases
    H.truthy(after.partial >= accepted_before.partial + 3, 'partial accepts counted') -- 2 words, 1+ line
  end },
}

if os.getenv('BLOCKFILL_NATIVE') == '1' then
  local NNS, NHINT = 'nvim.lsp.inline_completion', 'ComplHintMore'
  local function native_ghost()
    return H.ghost(buf, NNS, NHINT)
  end
  local function native_start(spot)
    local row, keys = spot[1], spot[2]
    H.reset(buf, fixture)
    api.nvim_win_set_cursor(0, { row, 0 })
    H.feed(keys)
    local g = H.wait('native ghost text after ' .. keys, native_ghost, GHOST_MS)
    local cur = api.nvim_win_get_cursor(0)
    return g, lines(), cur[1] - 1, cur[2]
  end
  vim.list_extend(cases, {
    { 'native (0.12): use_native hands rendering to vim.lsp.inline_completion', function()
      H.reset(buf, fixture)
      blockfill.setup(vim.tbl_extend('force', opts, { use_native = true }))
      H.truthy(vim.lsp.inline_completion.is_enabled({ bufnr = buf }), 'native inline completion enabled')
      local g, before, row, col = native_start(used['a block'])
      H.eq(nil, ghost(), 'the plugin draws nothing itself')
      H.log('  native ghost: %s', vim.inspect(g.text))
      H.feed('<Tab>')
      H.wait('accepted', function()
        return not vim.deep_equal(before, lines())
      end)
      H.eq(insert_at(before, row, col, g.text), lines(), 'buffer after <Tab>')
    end },
    { 'native (0.12): <M-Right> accepts a word', function()
      local g, before, row, col = native_start(used['two words'])
      local head = require('blockfill.accept').word(g.text)
      H.feed('<M-Right>')
      H.wait('accepted', function()
        return not vim.deep_equal(before, lines())
      end)
      H.eq(insert_at(before, row, col, head), lines(), 'buffer after <M-Right>')
    end },
    { 'native (0.12): <C-]> dismisses; :BlockfillToggle switches it off', function()
      native_start(used['a suggestion'])
      H.feed('<C-]>')
      H.eq(nil, native_ghost(), 'no native ghost after dismiss')
      H.feed('<Esc>')
      vim.cmd('BlockfillToggle')
      H.eq(false, vim.lsp.inline_completion.is_enabled({ bufnr = buf }), 'native off')
      vim.cmd('BlockfillToggle')
      H.eq(true, vim.lsp.inline_completion.is_enabled({ bufnr = buf }), 'native on')
    end },
  })
end

H.run(cases, function()
  H.reset(buf, fixture)
  for _, c in ipairs(vim.lsp.get_clients({ name = 'blockfill' })) do
    c:stop()
  end
  H.wait('server stopped', function()
    return #vim.lsp.get_clients({ name = 'blockfill' }) == 0
  end, 5000)
end)
