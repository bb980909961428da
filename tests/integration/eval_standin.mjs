// eval_standin.mjs: a scripted model server for `loco eval --backend`: it reads a predictions
// JSONL file ({"id", "output"}) and answers each request with the output of the sample whose
// marker "eval-sample:ID" appears in the request. It speaks the OpenAI chat/completions API
// (streamed chunks or one JSON body) and the Anthropic Messages API (SSE or one JSON body);
// outputs given as raw text come back as text, messages (OpenAI tool_calls or Anthropic
// tool_use blocks) as that API's tool calls. Unknown ids get HTTP 404. Every request is kept.
import fs from 'node:fs';
import http from 'node:http';

// id -> {text, calls: [{id, name, arguments (a JSON text, as given)}]}
export function loadPredictions(file) {
  const out = new Map();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    let p;
    try {
      p = JSON.parse(line);
    } catch {
      continue; // broken lines are broken in the file too
    }
    if (!p || typeof p !== 'object' || p.output == null) continue;
    out.set(String(p.id), normalise(p.output));
  }
  return out;
}

function normalise(output) {
  if (typeof output === 'string') return { text: output, calls: [] };
  const calls = [];
  let text = '';
  if (Array.isArray(output.content)) {
    for (const b of output.content) {
      if (b.type === 'text') text += b.text;
      if (b.type === 'tool_use') calls.push({ id: b.id, name: b.name, arguments: JSON.stringify(b.input) });
    }
  } else if (typeof output.content === 'string') {
    text = output.content;
  }
  for (const c of output.tool_calls ?? []) {
    calls.push({ id: c.id, name: c.function.name, arguments: c.function.arguments ?? '' });
  }
  return { text, calls };
}

// Pieces of at most n characters (answers arrive in several deltas, as from a real server).
function pieces(s, n = 7) {
  const out = [];
  for (let i = 0; i < s.length; i += n) out.push(s.slice(i, i + n));
  return out;
}

function openaiChunks(answer, model) {
  const base = { id: 'chatcmpl-eval', object: 'chat.completion.chunk', created: 1, model };
  const chunk = (delta, finish = null) => ({ ...base, choices: [{ index: 0, delta, finish_reason: finish }] });
  const out = [chunk({ role: 'assistant', content: '' })];
  for (const p of pieces(answer.text)) out.push(chunk({ content: p }));
  answer.calls.forEach((c, index) => {
    out.push(chunk({ tool_calls: [{ index, id: c.id, type: 'function', function: { name: c.name, arguments: '' } }] }));
    for (const p of pieces(c.arguments)) out.push(chunk({ tool_calls: [{ index, function: { arguments: p } }] }));
  });
  out.push(chunk({}, answer.calls.length ? 'tool_calls' : 'stop'));
  out.push({ ...base, choices: [], usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } });
  return out;
}

function openaiBody(answer, model) {
  const message = { role: 'assistant', content: answer.text };
  if (answer.calls.length) {
    message.tool_calls = answer.calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }));
  }
  return {
    id: 'chatcmpl-eval', object: 'chat.completion', created: 1, model,
    choices: [{ index: 0, message, finish_reason: answer.calls.length ? 'tool_calls' : 'stop' }],
    usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
  };
}

function anthropicBlocks(answer) {
  const blocks = [];
  if (answer.text) blocks.push({ type: 'text', text: answer.text });
  for (const c of answer.calls) blocks.push({ type: 'tool_use', id: c.id, name: c.name, input: JSON.parse(c.arguments) });
  return blocks;
}

function anthropicEvents(answer, model) {
  const stop = answer.calls.length ? 'tool_use' : 'end_turn';
  const ev = [['message_start', { type: 'message_start', message: { id: 'msg_eval', type: 'message', role: 'assistant', content: [], model, stop_reason: null, stop_sequence: null, usage: { input_tokens: 10, output_tokens: 1 } } }]];
  anthropicBlocks(answer).forEach((b, index) => {
    if (b.type === 'text') {
      ev.push(['content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } }]);
      for (const p of pieces(b.text)) ev.push(['content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text: p } }]);
    } else {
      ev.push(['content_block_start', { type: 'content_block_start', index, content_block: { type: 'tool_use', id: b.id, name: b.name, input: {} } }]);
      for (const p of pieces(JSON.stringify(b.input))) ev.push(['content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: p } }]);
    }
    ev.push(['content_block_stop', { type: 'content_block_stop', index }]);
  });
  ev.push(['message_delta', { type: 'message_delta', delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: 5 } }]);
  ev.push(['message_stop', { type: 'message_stop' }]);
  return ev;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// Starts the server on 127.0.0.1 (a free port). Returns {url, requests, close()}; each request
// is kept as {path, body (parsed JSON), id (the sample id found, or null)}.
export async function startEvalStandin({ predictions }) {
  const answers = loadPredictions(predictions);
  const requests = [];
  const server = http.createServer(async (req, res) => {
    const raw = await readBody(req);
    let body = {};
    try {
      body = JSON.parse(raw);
    } catch {
      // kept as {}
    }
    const m = /eval-sample:([A-Za-z0-9_.-]+)/.exec(raw);
    const id = m ? m[1] : null;
    requests.push({ path: req.url, body, id });
    const anthropic = req.url.startsWith('/v1/messages');
    const answer = id !== null ? answers.get(id) : undefined;
    const model = body.model ?? 'standin';
    if (!answer) {
      res.writeHead(404, { 'content-type': 'application/json' });
      const message = `no prediction for sample ${id}`;
      res.end(JSON.stringify(anthropic ? { type: 'error', error: { type: 'not_found_error', message } } : { error: { message, type: 'not_found' } }));
      return;
    }
    if (!body.stream) {
      res.writeHead(200, { 'content-type': 'application/json' });
      const msg = anthropic
        ? { id: 'msg_eval', type: 'message', role: 'assistant', model, content: anthropicBlocks(answer), stop_reason: answer.calls.length ? 'tool_use' : 'end_turn', stop_sequence: null, usage: { input_tokens: 10, output_tokens: 5 } }
        : openaiBody(answer, model);
      res.end(JSON.stringify(msg));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    if (anthropic) {
      for (const [name, data] of anthropicEvents(answer, model)) res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
    } else {
      for (const c of openaiChunks(answer, model)) res.write(`data: ${JSON.stringify(c)}\n\n`);
      res.write('data: [DONE]\n\n');
    }
    res.end();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
