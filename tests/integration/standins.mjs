// standins.mjs: scripted upstream LLM servers for the integration tests. loco sits between
// a real client and these: an OpenAI-compatible "local" server (llama-server style, streams
// <tool_call> text) and an Anthropic-compatible "cloud" (OpenRouter style). Both record
// every request they receive and answer from a queue of scripted answers or a function.
import http from 'node:http';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The body llama-server answers when the prompt does not fit its context (HTTP 400).
export function llamaContextOverflow(nPrompt = 60000, nCtx = 51200) {
  return {
    status: 400,
    body: {
      error: {
        code: 400,
        message: 'the request exceeds the available context size, try increasing it',
        type: 'exceed_context_size_error',
        n_prompt_tokens: nPrompt,
        n_ctx: nCtx,
      },
    },
  };
}

// Cuts text into pieces of `size` UTF-16 units without splitting a surrogate pair.
export function cutText(text, size) {
  const pieces = [];
  let i = 0;
  while (i < text.length) {
    let end = Math.min(text.length, i + Math.max(1, size));
    const code = text.charCodeAt(end - 1);
    if (end < text.length && code >= 0xd800 && code <= 0xdbff) end += 1;
    pieces.push(text.slice(i, end));
    i = end;
  }
  return pieces;
}

function readBody(req, limit = 256 * 1024 * 1024) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function tryJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function sendJson(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

// Common machinery: an http server on 127.0.0.1 that tracks sockets (so stop() never
// waits on a hung or streaming connection), a queue of answers and a fallback handler.
class Standin {
  constructor(name) {
    this.name = name;
    this.requests = []; // {method, path, url, headers, raw, body, aborted, finished}
    this.otherRequests = []; // health checks and anything not an LLM call
    this.queue = [];
    this.handler = null;
    this.sockets = new Set();
    this.hung = new Set();
    this.server = http.createServer((req, res) => this.#dispatch(req, res));
    this.server.keepAliveTimeout = 1000;
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async listen(port = 0) {
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', resolve);
    });
    this.port = this.server.address().port;
    this.url = `http://127.0.0.1:${this.port}`;
    return this;
  }

  // Answers for the next requests, in order; when the queue is empty the handler (a
  // function (record) => answer) decides, else a default answer.
  enqueue(...answers) {
    this.queue.push(...answers);
    return this;
  }

  respondWith(fn) {
    this.handler = fn;
    return this;
  }

  reset() {
    this.requests.length = 0;
    this.otherRequests.length = 0;
    this.queue.length = 0;
    this.handler = null;
    return this;
  }

  async stop() {
    for (const res of this.hung) res.destroy();
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(() => resolve()));
  }

  async #dispatch(req, res) {
    const raw = await readBody(req);
    const url = new URL(req.url, 'http://x');
    const record = {
      method: req.method,
      path: url.pathname,
      url: req.url,
      headers: req.headers,
      raw,
      body: tryJson(raw),
      aborted: false,
      finished: false,
    };
    // A client (loco) that goes away before the answer is complete.
    res.on('close', () => {
      if (!res.writableFinished) record.aborted = true;
    });
    try {
      await this.handle(record, req, res);
    } catch (err) {
      if (!res.headersSent) sendJson(res, 500, { error: { message: String(err) } });
      else res.destroy();
    }
  }

  nextAnswer(record) {
    if (this.queue.length) return this.queue.shift();
    if (this.handler) return this.handler(record);
    return undefined;
  }

  // Shared answers: waitMs (delay before anything is sent), {status, body} errors, hang, close.
  async special(answer, res) {
    if (answer.close) {
      res.socket.destroy();
      return true;
    }
    if (answer.hang) {
      this.hung.add(res);
      return true;
    }
    if (answer.waitMs) await sleep(answer.waitMs);
    if (answer.status && answer.status >= 400) {
      if (typeof answer.body === 'string') {
        res.writeHead(answer.status, { 'content-type': answer.contentType || 'text/plain' });
        res.end(answer.body);
      } else {
        sendJson(res, answer.status, answer.body ?? { error: { message: 'scripted error' } });
      }
      return true;
    }
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// The local server: OpenAI-compatible, like llama-server / vLLM / another loco.
//
// An answer is a string (the model's whole text) or an object:
//   {text, chunkSize=4, delayMs=2 (between chunks), finishReason='stop',
//    usage={prompt_tokens, completion_tokens}, closeAfterChunks (drop the socket after N)}
//   {status, body}            an error answer (e.g. llamaContextOverflow())
//   {hang: true}              never answer
//   {close: true}             drop the connection without answering
// Streams chat.completion.chunk SSE when the request says stream:true, else one JSON.
export class LocalStandin extends Standin {
  constructor(opts = {}) {
    super('local');
    this.defaults = { chunkSize: 4, delayMs: 2, ...opts };
    this.healthy = true;
    this.loading = !!opts.loading; // like llama-server loading its model: 503 on every endpoint
  }

  async handle(record, req, res) {
    if (this.loading) {
      this.otherRequests.push(record);
      sendJson(res, 503, { error: { code: 503, message: 'Loading model', type: 'unavailable_error' } });
      return;
    }
    if (record.method === 'GET') {
      this.otherRequests.push(record);
      if (record.path === '/health') {
        if (this.healthy) sendJson(res, 200, { status: 'ok' });
        else sendJson(res, 503, { error: { code: 503, message: 'Loading model', type: 'unavailable_error' } });
        return;
      }
      if (record.path === '/v1/models' || record.path === '/models') {
        sendJson(res, 200, { object: 'list', data: [{ id: 'locooperator-4b', object: 'model', owned_by: 'local' }] });
        return;
      }
      sendJson(res, 404, { error: { code: 404, message: 'File Not Found', type: 'not_found_error' } });
      return;
    }
    if (record.path !== '/v1/chat/completions' && record.path !== '/chat/completions') {
      this.otherRequests.push(record);
      sendJson(res, 404, { error: { code: 404, message: 'File Not Found', type: 'not_found_error' } });
      return;
    }
    this.requests.push(record);
    let answer = this.nextAnswer(record) ?? 'OK.';
    if (typeof answer === 'string') answer = { text: answer };
    if (await this.special(answer, res)) return;
    const a = { ...this.defaults, ...answer };
    const text = a.text ?? '';
    const usage = {
      prompt_tokens: a.usage?.prompt_tokens ?? 100,
      completion_tokens: a.usage?.completion_tokens ?? Math.max(1, Math.ceil(text.length / 4)),
    };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    const id = `chatcmpl-${Math.random().toString(36).slice(2, 12)}`;
    const created = Math.floor(Date.now() / 1000);
    const model = record.body?.model ?? 'locooperator-4b';
    const finish = a.finishReason ?? 'stop';

    if (record.body?.stream !== true) {
      sendJson(res, 200, {
        id, object: 'chat.completion', created, model,
        choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: finish }],
        usage,
      });
      record.finished = true;
      return;
    }

    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const chunk = (delta, finishReason = null, extra = {}) =>
      `data: ${JSON.stringify({
        id, object: 'chat.completion.chunk', created, model,
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
        ...extra,
      })}\n\n`;
    const write = async (s) => {
      if (res.destroyed) return false;
      res.write(s);
      return true;
    };
    await write(chunk({ role: 'assistant', content: null }));
    let n = 0;
    for (const piece of cutText(text, a.chunkSize)) {
      if (a.delayMs) await sleep(a.delayMs);
      if (a.closeAfterChunks !== undefined && n >= a.closeAfterChunks) {
        res.socket?.destroy();
        return;
      }
      if (!(await write(chunk({ content: piece })))) return;
      n++;
    }
    if (!(await write(chunk({}, finish)))) return;
    // llama-server and vLLM (stream_options.include_usage) send usage in a last chunk.
    await write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], usage })}\n\n`);
    await write('data: [DONE]\n\n');
    res.end();
    record.finished = true;
  }
}

// ---------------------------------------------------------------------------------------
// The cloud: Anthropic-compatible (POST {base}/v1/messages, /v1/messages/count_tokens).
// `base` is a path prefix such as '/api' (OpenRouter's https://openrouter.ai/api).
//
// An answer is a string (one text block) or an object:
//   {content: [blocks], stop_reason='end_turn', usage, model (default: the request's),
//    delayMs (between SSE events), closeAfterEvents (drop the socket after N events)}
//   {status, body}        an error (see cloudError())
//   {hang: true} | {close: true}
// Streams Anthropic SSE when the request says stream:true. `sent` on the record holds the
// exact bytes written, to check that loco passes a stream through unchanged.
export function cloudError(status, type, message) {
  return { status, body: { type: 'error', error: { type, message } } };
}

export function anthropicMessage(answer, requestModel) {
  const content = answer.content ?? [{ type: 'text', text: answer.text ?? 'Hello from the cloud.' }];
  return {
    id: answer.id ?? `msg_cloud${Math.random().toString(36).slice(2, 14)}`,
    type: 'message',
    role: 'assistant',
    model: answer.model ?? requestModel ?? 'cloud-model',
    content,
    stop_reason: answer.stop_reason ?? (content.some((b) => b.type === 'tool_use') ? 'tool_use' : 'end_turn'),
    stop_sequence: null,
    usage: { input_tokens: 321, output_tokens: 12, ...(answer.usage ?? {}) },
  };
}

// The SSE events of a message, in the order the real API sends them.
export function anthropicStreamEvents(msg) {
  const events = [];
  const ev = (type, data) => events.push({ event: type, data: { type, ...data } });
  ev('message_start', {
    message: { ...msg, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: msg.usage.input_tokens, output_tokens: 1 } },
  });
  ev('ping', {});
  msg.content.forEach((block, index) => {
    if (block.type === 'text') {
      ev('content_block_start', { index, content_block: { type: 'text', text: '' } });
      for (const piece of cutText(block.text, 7)) ev('content_block_delta', { index, delta: { type: 'text_delta', text: piece } });
    } else if (block.type === 'tool_use') {
      ev('content_block_start', { index, content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} } });
      for (const piece of cutText(JSON.stringify(block.input), 9)) {
        ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: piece } });
      }
    } else {
      throw new Error(`stand-in cannot stream block type ${block.type}`);
    }
    ev('content_block_stop', { index });
  });
  ev('message_delta', { delta: { stop_reason: msg.stop_reason, stop_sequence: null }, usage: { output_tokens: msg.usage.output_tokens } });
  ev('message_stop', {});
  return events.map((e) => `event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`);
}

export class CloudStandin extends Standin {
  constructor(opts = {}) {
    super('cloud');
    this.base = opts.base ?? '';
    this.delayMs = opts.delayMs ?? 1;
  }

  async handle(record, req, res) {
    const path = record.path.startsWith(this.base) ? record.path.slice(this.base.length) : record.path;
    if (record.method === 'GET' && path === '/v1/models') {
      this.otherRequests.push(record);
      sendJson(res, 200, {
        data: [{ type: 'model', id: 'anthropic/claude-sonnet-4.5', display_name: 'Claude Sonnet 4.5', created_at: '2025-09-29T00:00:00Z' }],
        has_more: false, first_id: 'anthropic/claude-sonnet-4.5', last_id: 'anthropic/claude-sonnet-4.5',
      });
      return;
    }
    if (record.method === 'POST' && path === '/v1/messages/count_tokens') {
      this.requests.push(record);
      sendJson(res, 200, { input_tokens: 42 });
      return;
    }
    if (record.method !== 'POST' || path !== '/v1/messages') {
      this.otherRequests.push(record);
      sendJson(res, 404, { type: 'error', error: { type: 'not_found_error', message: `no route ${record.method} ${record.path}` } });
      return;
    }
    this.requests.push(record);
    let answer = this.nextAnswer(record) ?? {};
    if (typeof answer === 'string') answer = { text: answer };
    if (await this.special(answer, res)) return;
    const msg = anthropicMessage(answer, record.body?.model);
    record.answer = msg;
    if (record.body?.stream !== true) {
      const body = JSON.stringify(msg);
      record.sent = body;
      res.writeHead(200, { 'content-type': 'application/json', 'request-id': 'req_standin' });
      res.end(body);
      record.finished = true;
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'request-id': 'req_standin' });
    const delay = answer.delayMs ?? this.delayMs;
    record.sent = '';
    let n = 0;
    for (const event of anthropicStreamEvents(msg)) {
      if (answer.closeAfterEvents !== undefined && n >= answer.closeAfterEvents) {
        res.socket?.destroy();
        return;
      }
      if (delay) await sleep(delay);
      if (res.destroyed) return;
      res.write(event);
      record.sent += event;
      n++;
    }
    res.end();
    record.finished = true;
  }
}

export async function startLocal(opts = {}) {
  return new LocalStandin(opts).listen(opts.port ?? 0);
}

export async function startCloud(opts = {}) {
  return new CloudStandin(opts).listen(opts.port ?? 0);
}
