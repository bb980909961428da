// agent_standin.mjs: a scripted OpenAI-compatible model server (llama-server style) for the
// explorer tests (agent.test.mjs). It streams the model's raw text, <tool_call> blocks
// included, as chat.completion.chunk SSE; a script decides each answer from the conversation
// it receives and CHECKS what it sees (the <tool_response> contents) by throwing: a failed check
// is recorded in `failures` and answered with HTTP 500, so the run and the test fail loudly.
import http from 'node:http';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The <tool_response> bodies in a user message text, in order.
export function toolResponses(text) {
  const out = [];
  const re = /<tool_response>\n([\s\S]*?)\n<\/tool_response>/g;
  let m;
  while ((m = re.exec(text)) !== null) out.push(m[1]);
  return out;
}

// One <tool_call> block as LocoOperator writes it.
export function call(name, args) {
  return `<tool_call>\n${JSON.stringify({ name, arguments: args })}\n</tool_call>`;
}

function textOf(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p === 'string' ? p : p.text ?? '')).join('');
  return '';
}

// What a script sees of one request.
function view(body) {
  const msgs = body.messages ?? [];
  const system = msgs.filter((m) => m.role === 'system').map((m) => textOf(m.content)).join('\n');
  const convo = msgs.filter((m) => m.role !== 'system');
  const users = convo.filter((m) => m.role === 'user').map((m) => textOf(m.content));
  const last = convo[convo.length - 1];
  return {
    body,
    system,
    firstUser: users[0] ?? '',
    lastUser: last && last.role === 'user' ? textOf(last.content) : '',
    turn: convo.filter((m) => m.role === 'assistant').length,
    responses: last && last.role === 'user' ? toolResponses(textOf(last.content)) : [],
  };
}

// Starts the server. script(view) returns the answer: a string (the model's whole text), or
// {text, delayMs, usage} (a pause between chunks; usage: {prompt_tokens, completion_tokens}
// sent in a last chunk as llama-server does), {status, body} (an error), {hang: true} (never
// answer). Each view also has the request's path. Returns {url, requests, failures, stop()}.
export async function startModel(script) {
  const model = { requests: [], failures: [], hung: new Set() };
  const sockets = new Set();
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const raw = Buffer.concat(chunks).toString('utf8');
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(req.url.startsWith('/health') ? { status: 'ok' } : { data: [] }));
      return;
    }
    let v;
    let answer;
    try {
      v = view(JSON.parse(raw));
      v.path = req.url;
      model.requests.push(v);
      answer = await script(v);
    } catch (err) {
      model.failures.push(String(err?.stack ?? err));
      answer = { status: 500, body: { error: { message: `stand-in check failed: ${err?.message ?? err}` } } };
    }
    if (typeof answer === 'string') answer = { text: answer };
    if (answer.hang) {
      model.hung.add(res);
      return;
    }
    if (answer.status) {
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer.body ?? { error: { message: 'scripted error' } }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const id = `chatcmpl-${model.requests.length}`;
    const chunk = (delta, finish = null) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: 1, model: v.body.model ?? 'x', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    res.write(chunk({ role: 'assistant', content: '' }));
    const text = answer.text ?? '';
    for (let i = 0; i < text.length; i += 7) {
      if (answer.delayMs) await sleep(answer.delayMs);
      res.write(chunk({ content: text.slice(i, i + 7) }));
    }
    res.write(chunk({}, 'stop'));
    if (answer.usage) {
      res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: 1, model: v.body.model ?? 'x', choices: [], usage: answer.usage })}\n\n`);
    }
    res.end('data: [DONE]\n\n');
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  model.url = `http://127.0.0.1:${server.address().port}`;
  model.stop = async () => {
    for (const res of model.hung) res.destroy();
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(() => resolve()));
  };
  return model;
}
