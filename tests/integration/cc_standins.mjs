// Scripted upstreams for the Claude Code end-to-end test (claude_code.test.mjs):
// an Anthropic-compatible "cloud" that plays the main agent and an OpenAI-compatible
// "local" server that plays the haiku Explore sub-agent. Both record every request.
import http from 'node:http';

// The phrase the main agent puts in the sub-agent's prompt; the local stand-in
// recognises sub-agent requests by it (side requests do not carry it).
export const TASK_PHRASE = 'Find the release codename marker';
export const MARKER_RE = /LOCO_MARKER_[A-Za-z0-9]+/;

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function listen(server) {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve(server.address().port));
  });
}

function sendJson(res, status, obj) {
  const text = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

// Text of a message's content (string or list of blocks), tool results included.
export function contentText(content) {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((b) => {
    if (b.type === 'text') return b.text;
    if (b.type === 'tool_result') return contentText(b.content);
    return '';
  }).join('\n');
}

function lastUser(messages) {
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i].role === 'user') return messages[i];
  }
  return null;
}

// What the scripted sub-agent does next, given the whole conversation text and
// the text of the last user turn: a tool call first, then a final answer quoting
// the marker it found in the tool output (so the marker proves the tool ran).
// variant: 'read' | 'bash' | 'grep'.
export function subagentStep(variant, opts, lastUserText) {
  if (lastUserText.includes('<tool_response>') || opts.sawToolResult) {
    const m = lastUserText.match(MARKER_RE);
    return { text: m ? `The codename marker is ${m[0]} (found in ${opts.file}).` : 'No marker found in the tool output.' };
  }
  if (variant === 'read') return { tool: { name: 'Read', arguments: { file_path: opts.file } } };
  if (variant === 'grep') return { tool: { name: 'Grep', arguments: { pattern: 'LOCO_MARKER_[A-Za-z0-9]+', path: opts.repo, output_mode: 'content' } } };
  return { tool: { name: 'Bash', arguments: { command: `cat ${opts.file}`, description: 'Show the notes file' } } };
}

function isHaiku(model) {
  return /haiku/i.test(model || '');
}

// ---------------------------------------------------------------- Anthropic SSE

function sse(res, name, data) {
  res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
}

let idCounter = 0;
function nextId(prefix) {
  idCounter += 1;
  return `${prefix}${Date.now().toString(36)}${idCounter}`;
}

// Sends an Anthropic answer made of blocks [{type:'text',text}|{type:'tool_use',name,input}].
function anthropicAnswer(res, body, blocks) {
  const model = body.model;
  const content = blocks.map((b) => (b.type === 'tool_use' ? { ...b, id: nextId('toolu_') } : b));
  const stop = content.some((b) => b.type === 'tool_use') ? 'tool_use' : 'end_turn';
  const usage = { input_tokens: 100, output_tokens: 20 };
  if (!body.stream) {
    sendJson(res, 200, { id: nextId('msg_'), type: 'message', role: 'assistant', model, content,
      stop_reason: stop, stop_sequence: null, usage });
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  sse(res, 'message_start', { type: 'message_start', message: { id: nextId('msg_'), type: 'message', role: 'assistant',
    content: [], model, stop_reason: null, stop_sequence: null, usage: { input_tokens: 100, output_tokens: 1 } } });
  content.forEach((b, index) => {
    if (b.type === 'text') {
      sse(res, 'content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } });
      sse(res, 'content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text: b.text } });
    } else {
      sse(res, 'content_block_start', { type: 'content_block_start', index,
        content_block: { type: 'tool_use', id: b.id, name: b.name, input: {} } });
      sse(res, 'content_block_delta', { type: 'content_block_delta', index,
        delta: { type: 'input_json_delta', partial_json: JSON.stringify(b.input) } });
    }
    sse(res, 'content_block_stop', { type: 'content_block_stop', index });
  });
  sse(res, 'message_delta', { type: 'message_delta', delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: 20 } });
  sse(res, 'message_stop', { type: 'message_stop' });
  res.end();
}

// The sub-agent tool the main agent is offered: "Agent" (2.x) or "Task" (1.x).
function subagentTool(tools) {
  return (tools || []).find((t) => t.name === 'Agent' || t.name === 'Task') || null;
}

function subagentInput(tool, opts) {
  const props = (tool.input_schema && tool.input_schema.properties) || {};
  const input = {
    description: 'Find codename marker',
    prompt: `${TASK_PHRASE} (a string starting with LOCO_MARKER_) in the repository at ${opts.repo}. ` +
      'Report the exact marker string.',
  };
  if ('subagent_type' in props) input.subagent_type = 'Explore';
  const models = (props.model && props.model.enum) || [];
  if (models.includes('haiku') && !opts.noModel) input.model = 'haiku';
  if ('run_in_background' in props) input.run_in_background = false;
  return input;
}

// The id of the sub-agent call the main agent already made, or null.
function subagentCallId(messages, toolName) {
  for (const m of messages) {
    if (m.role !== 'assistant' || !Array.isArray(m.content)) continue;
    const b = m.content.find((x) => x.type === 'tool_use' && x.name === toolName);
    if (b) return b.id;
  }
  return null;
}

// The sub-agent's report: the tool_result of call `id` (unless it only says the
// agent was launched in the background) or a later <task-notification> result.
function subagentResult(messages, id) {
  for (const m of messages) {
    if (m.role !== 'user' || !Array.isArray(m.content)) continue;
    for (const b of m.content) {
      const text = b.type === 'tool_result' && b.tool_use_id === id ? contentText(b.content)
        : b.type === 'text' ? b.text : '';
      const note = text.match(/<result>([\s\S]*?)<\/result>/);
      if (note && text.includes(id)) return note[1];
      if (b.type === 'tool_result' && b.tool_use_id === id && !/launched successfully/i.test(text)) return text;
    }
  }
  return null;
}

// The main agent: spawn the sub-agent once, then quote what it found. Markers in the task
// (for `loco analyze --driver claude`): FAIL_ME answers 400; WRITE_IT saves the report with
// the Write tool at the path after "save it to" before answering.
function cloudMain(res, body, opts) {
  const messages = body.messages || [];
  const task = messages.length ? contentText(messages[0].content) : '';
  if (task.includes('FAIL_ME')) {
    sendJson(res, 400, { type: 'error', error: { type: 'invalid_request_error', message: 'scripted failure (FAIL_ME)' } });
    return;
  }
  const tool = subagentTool(body.tools);
  const id = tool ? subagentCallId(messages, tool.name) : null;
  const saveTo = task.match(/save it to (\S+)/);
  if (id && saveTo && task.includes('WRITE_IT') && subagentResult(messages, id) !== null) {
    const wrote = messages.some((m) => m.role === 'assistant' && Array.isArray(m.content) &&
      m.content.some((b) => b.type === 'tool_use' && b.name === 'Write'));
    anthropicAnswer(res, body, wrote ? [{ type: 'text', text: 'Saved the answer.' }]
      : [{ type: 'tool_use', name: 'Write', input: { file_path: saveTo[1], content: `# Answer\n\n${subagentResult(messages, id).trim()}\n` } }]);
    return;
  }
  if (id) {
    const result = subagentResult(messages, id);
    const text = result === null ? 'Waiting for the agent.' : `Sub-agent report: ${result.trim()}`;
    anthropicAnswer(res, body, [{ type: 'text', text }]);
  } else if (tool) {
    anthropicAnswer(res, body, [
      { type: 'text', text: 'I will ask an Explore agent.' },
      { type: 'tool_use', name: tool.name, input: subagentInput(tool, opts) },
    ]);
  } else {
    anthropicAnswer(res, body, [{ type: 'text', text: 'Stand-in answer.' }]);
  }
}

// A haiku request served by the cloud (only when exploring without loco, or a
// side request that loco sent to the cloud): the same script in Anthropic form.
function cloudHaiku(res, body, opts) {
  const messages = body.messages || [];
  const all = messages.map((m) => contentText(m.content)).join('\n');
  if (!all.includes(TASK_PHRASE)) {
    anthropicAnswer(res, body, [{ type: 'text', text: 'Stand-in side answer.' }]);
    return;
  }
  const u = lastUser(messages);
  const sawToolResult = !!(u && Array.isArray(u.content) && u.content.some((b) => b.type === 'tool_result'));
  const step = subagentStep(opts.variant === 'grep' ? 'bash' : opts.variant, { ...opts, sawToolResult },
    u ? contentText(u.content) : '');
  if (step.tool) anthropicAnswer(res, body, [{ type: 'tool_use', name: step.tool.name, input: step.tool.arguments }]);
  else anthropicAnswer(res, body, [{ type: 'text', text: step.text }]);
}

// Starts the scripted Anthropic cloud. opts: {repo, file, variant}.
// Returns {port, url, requests, close()}; requests holds {method, url, headers, body}.
export async function startCloud(opts) {
  const requests = [];
  const server = http.createServer(async (req, res) => {
    const raw = await readBody(req);
    let body = null;
    try { body = raw ? JSON.parse(raw) : null; } catch { body = null; }
    requests.push({ method: req.method, url: req.url, headers: req.headers, body, raw });
    const path = req.url.split('?')[0];
    if (req.method === 'POST' && path === '/v1/messages/count_tokens') {
      sendJson(res, 200, { input_tokens: Math.ceil(raw.length / 4) });
    } else if (req.method === 'POST' && path === '/v1/messages' && body) {
      if (isHaiku(body.model)) cloudHaiku(res, body, opts);
      else cloudMain(res, body, opts);
    } else if (req.method === 'GET' && path === '/health') {
      sendJson(res, 200, { status: 'ok' });
    } else {
      sendJson(res, 404, { type: 'error', error: { type: 'not_found_error', message: `no route ${req.method} ${path}` } });
    }
  });
  const port = await listen(server);
  return { port, url: `http://127.0.0.1:${port}`, requests, close: () => new Promise((r) => server.close(r)) };
}

// ---------------------------------------------------------------- OpenAI local

function chunk(id, model, delta, finish) {
  return `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model,
    choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
}

// Streams text in small uneven pieces, so tags arrive split across chunks.
function openaiAnswer(res, body, text) {
  const id = nextId('chatcmpl-');
  const model = body.model || 'loco-standin';
  if (!body.stream) {
    sendJson(res, 200, { id, object: 'chat.completion', created: Math.floor(Date.now() / 1000), model,
      choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 120, completion_tokens: 30, total_tokens: 150 } });
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.write(chunk(id, model, { role: 'assistant', content: '' }, null));
  const sizes = [3, 7, 1, 11, 5];
  for (let i = 0, k = 0; i < text.length; k++) {
    const n = sizes[k % sizes.length];
    res.write(chunk(id, model, { content: text.slice(i, i + n) }, null));
    i += n;
  }
  res.write(chunk(id, model, {}, 'stop'));
  res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', model, choices: [],
    usage: { prompt_tokens: 120, completion_tokens: 30, total_tokens: 150 } })}\n\n`);
  res.write('data: [DONE]\n\n');
  res.end();
}

function renderToolCall(tool) {
  return `<tool_call>\n${JSON.stringify({ name: tool.name, arguments: tool.arguments })}\n</tool_call>`;
}

// Starts the scripted OpenAI-compatible local server. opts: {repo, file, variant}.
// Sub-agent requests (their conversation carries TASK_PHRASE) follow subagentStep;
// any other request gets a short plain answer.
export async function startLocal(opts) {
  const requests = [];
  const server = http.createServer(async (req, res) => {
    const raw = await readBody(req);
    let body = null;
    try { body = raw ? JSON.parse(raw) : null; } catch { body = null; }
    requests.push({ method: req.method, url: req.url, headers: req.headers, body, raw });
    const path = req.url.split('?')[0];
    if (req.method === 'GET' && (path === '/health' || path === '/v1/models')) {
      sendJson(res, 200, path === '/health' ? { status: 'ok' } : { object: 'list', data: [{ id: 'loco-standin', object: 'model' }] });
      return;
    }
    if (req.method !== 'POST' || path !== '/v1/chat/completions' || !body || !Array.isArray(body.messages)) {
      sendJson(res, 404, { error: { message: `no route ${req.method} ${path}`, type: 'not_found' } });
      return;
    }
    const all = body.messages.map((m) => contentText(m.content)).join('\n');
    if (!all.includes(TASK_PHRASE)) {
      openaiAnswer(res, body, 'Stand-in side answer.');
      return;
    }
    const u = lastUser(body.messages);
    const step = subagentStep(opts.variant, opts, u ? contentText(u.content) : '');
    openaiAnswer(res, body, step.tool ? `Let me look.\n${renderToolCall(step.tool)}` : step.text);
  });
  const port = await listen(server);
  return { port, url: `http://127.0.0.1:${port}`, requests, close: () => new Promise((r) => server.close(r)) };
}
