-- Test harness for real headless Neovim: cases run in one coroutine, driven by timers, so keys fed with
-- nvim_feedkeys are processed by Neovim's own input loop (Insert mode, mappings, autocommands) between steps.
-- A blocking feedkeys(..., 'x') would stay in Insert mode; here the main loop keeps running.
-- Output: one line per case ("ok NAME 123 ms" / "FAIL NAME: why"), then "RESULT: PASS|FAIL"; exit 0 or 1.

local api = vim.api
local H = { failures = 0, artifacts = os.getenv('BLOCKFILL_ARTIFACTS') }

function H.log(fmt, ...)
  io.stdout:write(string.format(fmt, ...) .. '\n')
  io.stdout:flush()
end

--- A result line, on a line of its own even after a message Neovim wrote without a line break.
local function result(fmt, ...)
  H.log('\n' .. fmt, ...)
end

local function resume(co, ...)
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    result('FAIL harness: %s', debug.traceback(co, tostring(err)))
    vim.cmd('cquit 1')
  end
end

--- Let Neovim run for `ms` (keys, timers, LSP messages), then continue.
function H.sleep(ms)
  local co = coroutine.running()
  vim.defer_fn(function()
    resume(co)
  end, ms)
  coroutine.yield()
end

--- Wait until `cond()` returns a truthy value (returned), polling every 20 ms; error after `timeout_ms`.
function H.wait(what, cond, timeout_ms)
  local deadline = vim.uv.now() + (timeout_ms or 10000)
  while true do
    local value = cond()
    if value then
      return value
    end
    if vim.uv.now() > deadline then
      error(('timed out after %d ms waiting for %s'):format(timeout_ms or 10000, what), 2)
    end
    H.sleep(20)
  end
end

--- Feed keys as if typed (mappings apply), then let Neovim process them.
function H.feed(keys)
  api.nvim_feedkeys(api.nvim_replace_termcodes(keys, true, false, true), 'mt', false)
  H.sleep(10)
end

function H.mode()
  return api.nvim_get_mode().mode
end

--- Back to Normal mode, with `lines` as the buffer's text.
function H.reset(buf, lines)
  if H.mode() ~= 'n' then
    H.feed('<Esc>')
    H.wait('Normal mode', function()
      return H.mode() == 'n'
    end)
  end
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
end

function H.eq(expected, actual, what)
  if not vim.deep_equal(expected, actual) then
    error(('%s: expected %s, got %s'):format(what or 'value', vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

function H.truthy(value, what)
  if not value then
    error(what or 'expected a true value', 2)
  end
  return value
end

--- Ghost text read straight from the extmarks of namespace `ns_name` (not through the plugin's code):
--- first line (virt_text) and virt_lines joined with "\n", chunks in `hint_group` left out.
function H.ghost(buf, ns_name, hint_group)
  local ns = api.nvim_get_namespaces()[ns_name]
  if not ns then
    return nil
  end
  local marks = api.nvim_buf_get_extmarks(buf, ns, 0, -1, { details = true })
  if #marks == 0 then
    return nil
  end
  local d = marks[1][4]
  local function join(chunks)
    local s = {}
    for _, c in ipairs(chunks or {}) do
      if c[2] ~= hint_group then
        s[#s + 1] = c[1]
      end
    end
    return table.concat(s)
  end
  local lines = { join(d.virt_text) }
  for _, l in ipairs(d.virt_lines or {}) do
    lines[#lines + 1] = join(l)
  end
  return { text = table.concat(lines, '\n'), row = marks[1][2], col = marks[1][3],
    virt_lines = #(d.virt_lines or {}), pos = d.virt_text_pos }
end

--- Run the cases `{ {name, fn}, ... }` in order, then quit with the result.
function H.run(cases, finally)
  local co = coroutine.create(function()
    for _, case in ipairs(cases) do
      local t0 = vim.uv.hrtime()
      local ok, err = xpcall(case[2], debug.traceback)
      local ms = (vim.uv.hrtime() - t0) / 1e6
      if ok then
        result('ok %s %.0f ms', case[1], ms)
      else
        H.failures = H.failures + 1
        result('FAIL %s (%.0f ms): %s', case[1], ms, tostring(err))
        if H.artifacts then
          local name = H.artifacts .. '/' .. case[1]:gsub('%W', '_')
          vim.fn.writefile(api.nvim_buf_get_lines(0, 0, -1, false), name .. '.buffer.txt')
        end
      end
    end
    if finally then
      pcall(finally)
    end
    result('RESULT: %s', H.failures == 0 and 'PASS' or 'FAIL')
    vim.cmd(H.failures == 0 and 'qa!' or 'cquit 1')
  end)
  vim.schedule(function()
    resume(co)
  end)
end

return H
