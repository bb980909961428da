// gateway.test.mjs: the real `loco serve` between scripted stand-ins (an OpenAI-compatible
// local server, an Anthropic-compatible cloud) and the official @anthropic-ai/sdk: the local
// route (request rendering, <tool_call> -> tool_use), cloud passthrough, every fallback
// reason, the side endpoints, errors, concurrency and client aborts.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import {
  gateway, post, get, parseSSE, checkAnthropicStream, textOf, toolCallsIn, toolResponsesIn,
  metricSum, deadUrl, waitFor, sleep, LOCAL_SYSTEM_PROMPT, DEFAULT_FALLBACK_MODEL, CLOUD_KEY, HAIKU, SONNET,
} from './helpers.mjs';
import { llamaContextOverflow, cloudError, startLocal, startCloud } from './standins.mjs';
import { startLoco } from './helpers.mjs';

const T = { timeout: 30000 };

const TOOLS = [
  {
    name: 'Read',
    description: 'Reads a file from the local filesystem.',
    input_schema: {
      type: 'object',
      properties: { file_path: { type: 'string' }, offset: { type: 'number' }, limit: { type: 'number' } },
      required: ['file_path'],
    },
  },
  {
    name: 'Bash',
    description: 'Executes a bash command.',
    input_schema: {
      type: 'object',
      properties: { command: { type: 'string' }, description: { type: 'string' } },
      required: ['command'],
    },
  },
  {
    name: 'Grep',
    description: 'Searches file contents.',
    input_schema: { type: 'object', properties: { pattern: { type: 'string' }, path: { type: 'string' } }, required: ['pattern'] },
  },
  {
    name: 'Glob',
    description: 'Finds files by name pattern.',
    input_schema: { type: 'object', properties: { pattern: { type: 'string' }, path: { type: 'string' } }, required: ['pattern'] },
  },
];
const toolsNamed = (...names) => TOOLS.filter((t) => names.includes(t.name));

const READ_INPUT = { file_path: '/repo/src/größe ✓ 😀.c', limit: 40 };
const BASH_INPUT = { command: "grep -rn 'int main' /repo/src | head -5", description: 'Find main' };
const INTRO = 'I will read the entry point and search the sources.';
// What LocoOperator writes: text, then tool calls as JSON inside <tool_call> tags.
const TWO_CALLS =
  `${INTRO}\n<tool_call>\n${JSON.stringify({ name: 'Read', arguments: READ_INPUT })}\n</tool_call>\n` +
  `<tool_call>\n${JSON.stringify({ name: 'Bash', arguments: BASH_INPUT })}\n</tool_call>`;
// Nothing before the tag: text already streamed would rule out a fallback.
const BROKEN_CALL = '<tool_call>\nRead the file /repo/a.c please\n</tool_call>';
const CLOUD_TEXT = 'Answer from the cloud stand-in.';
const PNG_1x1 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==';

const ask = (extra = {}) => ({
  model: HAIKU,
  max_tokens: 4096,
  tools: TOOLS,
  messages: [{ role: 'user', content: 'Where is main defined in /repo?' }],
  ...extra,
});

// A conversation with n assistant turns, each a Read tool call answered by a tool result.
function conversation(n) {
  const messages = [{ role: 'user', content: 'Explore /repo and summarise it.' }];
  for (let i = 0; i < n; i++) {
    messages.push({ role: 'assistant', content: [{ type: 'tool_use', id: `toolu_turn${i}`, name: 'Read', input: { file_path: `/repo/f${i}.c` } }] });
    messages.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: `toolu_turn${i}`, content: `contents of f${i}.c` }] });
  }
  return messages;
}

// Text of about `bytes` bytes that no tokenizer compresses much.
function bigText(bytes) {
  const words = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const w = `w${(i * 7919) % 100003}x${i % 97}`;
    words.push(w);
    n += w.length + 1;
  }
  return words.join(' ');
}

function assertTwoCalls(msg) {
  assert.deepEqual(msg.content.map((b) => b.type), ['text', 'tool_use', 'tool_use'], JSON.stringify(msg.content));
  assert.equal(msg.content[0].text.trim(), INTRO);
  assert.equal(msg.content[1].name, 'Read');
  assert.deepEqual(msg.content[1].input, READ_INPUT);
  assert.equal(msg.content[2].name, 'Bash');
  assert.deepEqual(msg.content[2].input, BASH_INPUT);
  for (const b of msg.content.slice(1)) assert.match(b.id, /^toolu_[A-Za-z0-9_-]+$/);
  assert.notEqual(msg.content[1].id, msg.content[2].id);
  assert.equal(msg.stop_reason, 'tool_use');
  assert.equal(msg.role, 'assistant');
  assert.match(msg.id, /^msg_/);
}

// The cloud got exactly one request, for the fallback model, with our key.
function assertFellBack(g, { localCalls } = {}) {
  assert.equal(g.cloud.requests.length, 1, `cloud requests: ${g.cloud.requests.length}`);
  const r = g.cloud.requests[0];
  assert.equal(r.path, '/api/v1/messages');
  assert.equal(r.body.model, DEFAULT_FALLBACK_MODEL);
  assert.equal(r.headers.authorization, `Bearer ${CLOUD_KEY}`);
  if (localCalls !== undefined) assert.equal(g.local.requests.length, localCalls, 'local requests');
  return r;
}

function assertCloudAnswer(msg) {
  assert.deepEqual(msg.content, [{ type: 'text', text: CLOUD_TEXT }]);
  assert.equal(msg.stop_reason, 'end_turn');
}

async function rawStream(g, body, headers = {}) {
  const r = await post(`${g.loco.url}/v1/messages?beta=true`, { ...body, stream: true }, headers);
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /^text\/event-stream/);
  return { ...r, events: parseSSE(r.text) };
}

// Sends `head`, waits 300 ms for an early answer, then up to `bodyBytes` bytes of body while
// no answer has come; returns the parsed answer {status, headers, body} (status 0: none).
function rawExchange(port, head, bodyBytes) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      s.destroy();
      resolve(parseHttpResponse(got));
    };
    s.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (parseHttpResponse(got).complete) finish();
    });
    s.on('error', () => {});
    s.on('close', finish);
    s.write(head);
    setTimeout(async () => {
      const piece = Buffer.alloc(256 * 1024, 0x61);
      let sent = 0;
      while (!done && got.length === 0 && sent < bodyBytes) {
        const n = Math.min(piece.length, bodyBytes - sent);
        sent += n;
        if (!s.write(piece.subarray(0, n))) {
          await waitDrain(s);
        }
      }
      setTimeout(finish, 5000);
    }, 300);
  });
}

function waitDrain(s) {
  return new Promise((resolve) => {
    const done = () => {
      s.off('drain', done);
      s.off('close', done);
      resolve();
    };
    s.on('drain', done);
    s.on('close', done);
  });
}

function parseHttpResponse(buf) {
  const text = buf.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return { status: 0, headers: {}, body: '', complete: false };
  const lines = text.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0])?.[1] ?? 0);
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let rest = buf.subarray(Buffer.byteLength(text.slice(0, end + 4), 'latin1'));
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    const parts = [];
    let complete = false;
    for (;;) {
      const s = rest.toString('latin1');
      const nl = s.indexOf('\r\n');
      if (nl < 0) break;
      const size = parseInt(s.slice(0, nl), 16);
      if (size === 0) { complete = true; break; }
      if (rest.length < nl + 2 + size + 2) break;
      parts.push(rest.subarray(nl + 2, nl + 2 + size));
      rest = rest.subarray(nl + 2 + size + 2);
    }
    return { status, headers, body: Buffer.concat(parts).toString('utf8'), complete };
  }
  const len = Number(headers['content-length'] ?? NaN);
  const complete = Number.isFinite(len) && rest.length >= len;
  return { status, headers, body: rest.subarray(0, Number.isFinite(len) ? len : undefined).toString('utf8'), complete };
}

// ---------------------------------------------------------------------------------------
describe('local route', () => {
  test('non-stream: text + two tool calls become tool_use blocks', T, async (t) => {
    const g = await gateway(t);
    g.local.enqueue({ text: TWO_CALLS, usage: { prompt_tokens: 1234, completion_tokens: 56 } });
    const msg = await g.client.messages.create(ask());
    assertTwoCalls(msg);
    assert.equal(msg.usage.input_tokens, 1234);
    assert.equal(msg.usage.output_tokens, 56);
    assert.equal(g.local.requests.length, 1);
    assert.equal(g.cloud.requests.length, 0);
  });

  test('stream (SDK): same blocks, events in order, no partial tag leaked', T, async (t) => {
    const g = await gateway(t);
    g.local.enqueue({ text: TWO_CALLS, chunkSize: 1, delayMs: 0, usage: { prompt_tokens: 1234, completion_tokens: 56 } });
    const stream = g.client.messages.stream(ask());
    const types = [];
    let text = '';
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
    }
    const msg = await stream.finalMessage();
    assertTwoCalls(msg);
    assert.equal(types[0], 'message_start');
    assert.equal(types.at(-1), 'message_stop');
    assert.doesNotMatch(text, /<|tool_call|\/tool/);
    assert.equal(msg.usage.output_tokens, 56);
  });

  test('stream (raw SSE): the Anthropic event contract holds', T, async (t) => {
    const g = await gateway(t);
    g.local.enqueue({ text: TWO_CALLS, chunkSize: 3 });
    const r = await rawStream(g, ask());
    const msg = checkAnthropicStream(r.events);
    assertTwoCalls(msg);
    const starts = r.events.filter((e) => e.event === 'content_block_start').map((e) => e.data.content_block);
    assert.deepEqual(starts[1], { type: 'tool_use', id: starts[1].id, name: 'Read', input: {} });
  });

  test('stream: text reaches the client while the local model is still writing', T, async (t) => {
    const g = await gateway(t);
    g.local.enqueue({ text: `${'Looking around the repository. '.repeat(10)}\n${TWO_CALLS.slice(INTRO.length + 1)}`, chunkSize: 8, delayMs: 40 });
    const res = await fetch(`${g.loco.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify(ask({ stream: true })),
    });
    const reader = res.body.getReader();
    let seen = '';
    let finishedAtFirstText = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += Buffer.from(value).toString('utf8');
      if (finishedAtFirstText === null && seen.includes('text_delta')) finishedAtFirstText = g.local.requests[0].finished;
    }
    assert.equal(finishedAtFirstText, false, 'loco held the whole local answer back instead of streaming it');
    const msg = checkAnthropicStream(parseSSE(seen));
    assert.deepEqual(msg.content.map((b) => b.type), ['text', 'tool_use', 'tool_use']);
  });

  test('the local server gets the training prompt and tool_call/tool_response text', T, async (t) => {
    const g = await gateway(t);
    const messages = [
      { role: 'user', content: 'Where is main defined?' },
      {
        role: 'assistant',
        content: [
          { type: 'thinking', thinking: 'SECRET-REASONING', signature: 'sig' },
          { type: 'text', text: 'Let me search.' },
          { type: 'tool_use', id: 'toolu_01A', name: 'Grep', input: { pattern: 'int main', path: '/repo' } },
        ],
      },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_01A', content: '/repo/src/main.c:12:int main(int argc, char **argv)' }] },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_01B', name: 'Read', input: { file_path: '/repo/src/main.c' } }] },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_01B', content: [{ type: 'text', text: '1\tint main(void)' }, { type: 'text', text: '2\t{' }] },
          { type: 'text', text: 'Keep going.' },
        ],
      },
    ];
    const msg = await g.client.messages.create(ask({
      system: [{ type: 'text', text: 'CLIENT-SYSTEM-PROMPT: You are Claude Code.', cache_control: { type: 'ephemeral' } }],
      messages,
    }));
    assert.equal(msg.content[0].text, 'OK.');
    assert.equal(msg.stop_reason, 'end_turn');

    assert.equal(g.local.requests.length, 1);
    const req = g.local.requests[0];
    assert.equal(req.path, '/v1/chat/completions');
    assert.equal(req.body.stream, true);
    const m = req.body.messages;
    assert.deepEqual(m.map((x) => x.role), ['system', 'user', 'assistant', 'user', 'assistant', 'user']);
    assert.equal(m[0].content, LOCAL_SYSTEM_PROMPT, 'system prompt must be byte-equal to prompts/local_system.txt');
    assert.ok(!req.raw.includes('CLIENT-SYSTEM-PROMPT'), 'the client system prompt is replaced');
    assert.ok(!req.raw.includes('SECRET-REASONING'), 'thinking blocks are dropped');
    assert.equal(textOf(m[1].content), 'Where is main defined?');

    const a1 = textOf(m[2].content);
    assert.match(a1, /^Let me search\.\s*<tool_call>\n/);
    assert.deepEqual(toolCallsIn(a1), [{ name: 'Grep', arguments: { pattern: 'int main', path: '/repo' } }]);
    assert.deepEqual(toolResponsesIn(textOf(m[3].content)), ['/repo/src/main.c:12:int main(int argc, char **argv)']);
    assert.match(textOf(m[3].content), /^<tool_response>\n[\s\S]*\n<\/tool_response>$/);

    assert.deepEqual(toolCallsIn(textOf(m[4].content)), [{ name: 'Read', arguments: { file_path: '/repo/src/main.c' } }]);
    const u3 = textOf(m[5].content);
    const [resp] = toolResponsesIn(u3);
    assert.match(resp, /1\tint main\(void\)\s*2\t\{/);
    assert.match(u3, /<\/tool_response>\s*Keep going\.$/);
  });

  test('tool_result is_error stays visible; role:system messages are kept as text', T, async (t) => {
    const g = await gateway(t);
    const messages = [
      { role: 'user', content: 'Read /repo/missing.c' },
      { role: 'system', content: 'ENV-NOTE: platform linux' },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_02', name: 'Read', input: { file_path: '/repo/missing.c' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_02', is_error: true, content: 'File does not exist.' }] },
    ];
    await g.client.messages.create(ask({ messages }));
    const m = g.local.requests[0].body.messages;
    assert.equal(m[0].content, LOCAL_SYSTEM_PROMPT);
    const rest = JSON.stringify(m.slice(1));
    assert.ok(rest.includes('ENV-NOTE: platform linux'), rest);
    const last = textOf(m.at(-1).content);
    assert.equal(toolResponsesIn(last).length, 1);
    assert.match(toolResponsesIn(last)[0], /File does not exist\./);
    assert.match(toolResponsesIn(last)[0], /error/i);
  });

  test('temperature defaults to 0.7, is taken from the request, max_tokens is not clamped', T, async (t) => {
    const g = await gateway(t);
    await g.client.messages.create(ask({ max_tokens: 32000 }));
    await g.client.messages.create(ask({ temperature: 0.2 }));
    const [a, b] = g.local.requests.map((r) => r.body);
    assert.equal(a.temperature, 0.7);
    assert.equal(a.max_tokens ?? a.max_completion_tokens, 32000);
    assert.equal(b.temperature, 0.2);
  });

  test('stop reasons: text only -> end_turn, length -> max_tokens', T, async (t) => {
    const g = await gateway(t);
    g.local.enqueue('All done: main is in src/main.c.', { text: 'This answer was cut', finishReason: 'length' });
    const a = await g.client.messages.create(ask());
    assert.deepEqual(a.content, [{ type: 'text', text: 'All done: main is in src/main.c.' }]);
    assert.equal(a.stop_reason, 'end_turn');
    const b = await g.client.messages.create(ask());
    assert.equal(b.stop_reason, 'max_tokens');
  });

  test('Qwen3-Coder XML tool calls are parsed too', T, async (t) => {
    const g = await gateway(t);
    g.local.enqueue('<tool_call>\n<function=Read>\n<parameter=file_path>\n/repo/src/main.c\n</parameter>\n<parameter=limit>\n40\n</parameter>\n</function>\n</tool_call>');
    const msg = await g.client.messages.create(ask());
    const tools = msg.content.filter((b) => b.type === 'tool_use');
    assert.equal(tools.length, 1, JSON.stringify(msg.content));
    assert.equal(tools[0].name, 'Read');
    assert.equal(tools[0].input.file_path, '/repo/src/main.c');
    assert.equal(Number(tools[0].input.limit), 40);
    assert.equal(msg.stop_reason, 'tool_use');
  });

  test('a broken tool call is retried once; a good second answer is used', T, async (t) => {
    const g = await gateway(t);
    g.local.enqueue(BROKEN_CALL, TWO_CALLS);
    const msg = await g.client.messages.create(ask());
    assertTwoCalls(msg);
    assert.equal(g.local.requests.length, 2);
    assert.equal(g.cloud.requests.length, 0);
  });

  test('ids are unique across answers', T, async (t) => {
    const g = await gateway(t);
    const ids = new Set();
    for (let i = 0; i < 3; i++) {
      g.local.enqueue(TWO_CALLS);
      const msg = await g.client.messages.create(ask());
      for (const id of [msg.id, msg.content[1].id, msg.content[2].id]) {
        assert.ok(!ids.has(id), `duplicate id ${id}`);
        ids.add(id);
      }
    }
  });

  test('a pool: dead members are skipped, the live one serves', T, async (t) => {
    const [d1, d2] = [await deadUrl(), await deadUrl()];
    const g = await gateway(t, { localUrls: (live) => [d1, live, d2] });
    for (let i = 0; i < 4; i++) {
      g.local.enqueue(TWO_CALLS);
      assertTwoCalls(await g.client.messages.create(ask()));
    }
    assert.equal(g.local.requests.length, 4);
    assert.equal(g.cloud.requests.length, 0);
  });
});

// ---------------------------------------------------------------------------------------
describe('tool reconciliation', () => {
  function scratchRepo() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loco-recon-'));
    fs.mkdirSync(path.join(dir, 'src'));
    fs.writeFileSync(path.join(dir, 'src', 'main.c'), 'int main(void)\n{\n    return 0;\n}\n');
    fs.writeFileSync(path.join(dir, 'src', 'util.c'), 'static int helper(void) { return 1; }\n');
    fs.writeFileSync(path.join(dir, 'README.md'), '# demo\n');
    return dir;
  }
  function runBash(command, cwd) {
    try {
      return execFileSync('bash', ['-c', command], { cwd, encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      return err.stdout ?? '';
    }
  }
  async function callWith(t, call, tools) {
    const g = await gateway(t);
    g.local.enqueue(`<tool_call>\n${JSON.stringify(call)}\n</tool_call>`);
    const msg = await g.client.messages.create(ask({ tools }));
    return { g, msg };
  }

  test('Grep, not offered, becomes an equivalent read-only Bash command', T, async (t) => {
    const dir = scratchRepo();
    const { msg } = await callWith(t, { name: 'Grep', arguments: { pattern: 'int main', path: dir } }, toolsNamed('Bash', 'Read'));
    const [b] = msg.content.filter((x) => x.type === 'tool_use');
    assert.equal(b.name, 'Bash', JSON.stringify(msg.content));
    assert.equal(typeof b.input.command, 'string');
    const out = runBash(b.input.command, dir);
    assert.match(out, /main\.c/);
    assert.doesNotMatch(out, /util\.c/);
    assert.equal(msg.stop_reason, 'tool_use');
  });

  test('Glob, not offered, becomes an equivalent Bash find', T, async (t) => {
    const dir = scratchRepo();
    const { msg } = await callWith(t, { name: 'Glob', arguments: { pattern: '**/*.c', path: dir } }, toolsNamed('Bash', 'Read'));
    const [b] = msg.content.filter((x) => x.type === 'tool_use');
    assert.equal(b.name, 'Bash');
    const out = runBash(b.input.command, dir);
    assert.match(out, /src\/main\.c/);
    assert.match(out, /src\/util\.c/);
    assert.doesNotMatch(out, /README/);
  });

  test('arguments are shell-quoted safely', T, async (t) => {
    const dir = scratchRepo();
    const evil = `x'; touch PWNED1; echo '$(touch PWNED2)\`touch PWNED3\``;
    const { msg } = await callWith(t, { name: 'Grep', arguments: { pattern: evil, path: dir } }, toolsNamed('Bash', 'Read'));
    const [b] = msg.content.filter((x) => x.type === 'tool_use');
    assert.equal(b.name, 'Bash');
    runBash(b.input.command, dir);
    for (const f of ['PWNED1', 'PWNED2', 'PWNED3']) assert.ok(!fs.existsSync(path.join(dir, f)), `${f} was created by ${b.input.command}`);
  });

  test('Task becomes Agent when only Agent is offered', T, async (t) => {
    const agent = { name: 'Agent', description: 'Launch a sub-agent.', input_schema: { type: 'object', properties: { description: { type: 'string' }, prompt: { type: 'string' }, subagent_type: { type: 'string' } }, required: ['prompt'] } };
    const input = { description: 'Explore', prompt: 'Find the HTTP server', subagent_type: 'Explore' };
    const { msg } = await callWith(t, { name: 'Task', arguments: input }, [agent, ...toolsNamed('Read')]);
    const [b] = msg.content.filter((x) => x.type === 'tool_use');
    assert.equal(b.name, 'Agent');
    assert.deepEqual(b.input, input);
  });

  test('a tool neither offered nor mappable sends the request to the cloud', T, async (t) => {
    const g = await gateway(t);
    g.local.respondWith(() => `<tool_call>\n${JSON.stringify({ name: 'WebFetch', arguments: { url: 'https://example.com' } })}\n</tool_call>`);
    g.cloud.enqueue(CLOUD_TEXT);
    const msg = await g.client.messages.create(ask({ tools: toolsNamed('Bash', 'Read') }));
    assertCloudAnswer(msg);
    assertFellBack(g);
  });
});

// ---------------------------------------------------------------------------------------
describe('cloud passthrough', () => {
  const headers = { 'anthropic-version': '2023-06-01', 'anthropic-beta': 'interleaved-thinking-2025-05-14,context-management-2025-06-27' };

  test('non-stream: Bearer key, headers forwarded, model kept, answer intact', T, async (t) => {
    const g = await gateway(t, { clientOpts: { defaultHeaders: headers } });
    g.cloud.enqueue({ content: [{ type: 'text', text: 'Sonnet here.' }, { type: 'tool_use', id: 'toolu_cloud1', name: 'Read', input: { file_path: '/x' } }], usage: { input_tokens: 11, output_tokens: 3 } });
    const body = ask({ model: SONNET, thinking: { type: 'enabled', budget_tokens: 2048 }, metadata: { user_id: 'u1' } });
    const msg = await g.client.messages.create(body);
    assert.equal(g.cloud.requests.length, 1);
    const r = g.cloud.requests[0];
    assert.equal(r.path, '/api/v1/messages');
    assert.equal(r.body.model, SONNET);
    assert.deepEqual(r.body.messages, body.messages);
    assert.deepEqual(r.body.tools, body.tools);
    assert.deepEqual(r.body.thinking, body.thinking);
    assert.equal(r.headers.authorization, `Bearer ${CLOUD_KEY}`);
    assert.equal(r.headers['anthropic-version'], headers['anthropic-version']);
    assert.equal(r.headers['anthropic-beta'], headers['anthropic-beta']);
    assert.ok(!JSON.stringify(r.headers).includes('client-key'), 'the client key must not reach the cloud');
    assert.deepEqual(JSON.parse(JSON.stringify(msg)), JSON.parse(r.sent));
    assert.equal(g.local.requests.length, 0);
    assert.ok(!g.loco.log().includes(CLOUD_KEY), 'the API key must never be logged');
  });

  test('stream: bytes pass through unchanged', T, async (t) => {
    const g = await gateway(t);
    g.cloud.enqueue({ content: [{ type: 'text', text: 'Streaming from the cloud, größe ✓ 😀.' }, { type: 'tool_use', id: 'toolu_cloud2', name: 'Bash', input: { command: 'ls' } }] });
    const r = await rawStream(g, ask({ model: SONNET }), headers);
    assert.equal(r.text, g.cloud.requests[0].sent);
    assert.equal(g.cloud.requests[0].body.stream, true);
    checkAnthropicStream(r.events);
  });

  test('stream: first bytes reach the client before the cloud finishes', T, async (t) => {
    const g = await gateway(t);
    g.cloud.enqueue({ text: 'slow '.repeat(8), delayMs: 150 });
    const started = Date.now();
    const res = await fetch(`${g.loco.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify(ask({ model: SONNET, stream: true })),
    });
    const reader = res.body.getReader();
    await reader.read();
    const first = Date.now() - started;
    while (!(await reader.read()).done);
    const total = Date.now() - started;
    assert.ok(total > 1200, `total ${total} ms`);
    assert.ok(first < 800, `first chunk after ${first} ms of ${total} ms: the stream is buffered`);
  });

  test('stream: a long prose answer from the local model streams as it arrives', T, async (t) => {
    const g = await gateway(t);
    // 40 pieces of 40 bytes, 40 ms apart: about 1.6 s from first to last byte
    const prose = 'The parser lives in src/chat/qwen.c and '.repeat(40);
    g.local.enqueue({ text: prose, chunkSize: 40, delayMs: 40 });
    const started = Date.now();
    const res = await fetch(`${g.loco.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify(ask({ model: HAIKU, stream: true })),
    });
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let text = '';
    let firstDelta = null;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
      if (firstDelta === null && text.includes('text_delta')) firstDelta = Date.now() - started;
    }
    const total = Date.now() - started;
    assert.ok(total > 1200, `total ${total} ms`);
    assert.ok(firstDelta !== null && firstDelta < total - 700,
      `first text_delta after ${firstDelta} ms of ${total} ms: local prose is held to the end`);
    const events = parseSSE(text);
    checkAnthropicStream(events);
    const joined = events.filter((e) => e.data?.delta?.type === 'text_delta').map((e) => e.data.delta.text).join('');
    assert.equal(joined, prose.trim());
  });

  test('cloud 529 comes back as 529 overloaded_error', T, async (t) => {
    const g = await gateway(t);
    g.cloud.enqueue(cloudError(529, 'overloaded_error', 'Overloaded'));
    const r = await post(`${g.loco.url}/v1/messages`, ask({ model: SONNET }));
    assert.equal(r.status, 529);
    assert.equal(r.json.type, 'error');
    assert.equal(r.json.error.type, 'overloaded_error');
  });

  test('cloud 500 comes back as a 5xx in the Anthropic error shape', T, async (t) => {
    const g = await gateway(t);
    g.cloud.enqueue(cloudError(500, 'api_error', 'Internal server error'));
    const r = await post(`${g.loco.url}/v1/messages`, ask({ model: SONNET }));
    assert.ok(r.status >= 500 && r.status <= 599, String(r.status));
    assert.equal(r.json.type, 'error');
    assert.equal(typeof r.json.error.type, 'string');
    assert.equal(typeof r.json.error.message, 'string');
  });

  test('a cloud stream that breaks midway ends with event: error', T, async (t) => {
    const g = await gateway(t);
    g.cloud.enqueue({ text: 'This will be cut off somewhere in the middle.', closeAfterEvents: 4 });
    const r = await rawStream(g, ask({ model: SONNET }));
    assert.equal(r.events[0].event, 'message_start');
    assert.equal(r.events.at(-1).event, 'error', r.text);
    assert.equal(r.events.at(-1).data.type, 'error');
    assert.equal(typeof r.events.at(-1).data.error.type, 'string');
  });
});

// ---------------------------------------------------------------------------------------
describe('fallback to the cloud', () => {
  test(`turn limit: 10 assistant turns go to the cloud, 9 stay local`, T, async (t) => {
    const g = await gateway(t);
    g.cloud.enqueue(CLOUD_TEXT);
    const msg = await g.client.messages.create(ask({ messages: conversation(10) }));
    assertCloudAnswer(msg);
    const r = assertFellBack(g, { localCalls: 0 });
    assert.deepEqual(r.body.messages, conversation(10));
    await g.client.messages.create(ask({ messages: conversation(9) }));
    assert.equal(g.local.requests.length, 1);
    assert.equal(g.cloud.requests.length, 1);
  });

  test('--max-local-turns 2', T, async (t) => {
    const g = await gateway(t, { args: ['--max-local-turns', '2'] });
    await g.client.messages.create(ask({ messages: conversation(1) }));
    assert.equal(g.local.requests.length, 1);
    g.cloud.enqueue(CLOUD_TEXT);
    assertCloudAnswer(await g.client.messages.create(ask({ messages: conversation(2) })));
    assertFellBack(g, { localCalls: 1 });
  });

  test('context estimate over --local-ctx goes to the cloud before calling local', T, async (t) => {
    const g = await gateway(t);
    g.cloud.enqueue(CLOUD_TEXT);
    const long = bigText(600 * 1024);
    assertCloudAnswer(await g.client.messages.create(ask({ messages: [{ role: 'user', content: long }] })));
    assertFellBack(g, { localCalls: 0 });
    // A prompt well inside the window stays local.
    await g.client.messages.create(ask({ messages: [{ role: 'user', content: bigText(20 * 1024) }] }));
    assert.equal(g.local.requests.length, 1);
  });

  test('local server down', T, async (t) => {
    const g = await gateway(t, { localUrls: [await deadUrl()] });
    g.cloud.enqueue(CLOUD_TEXT, CLOUD_TEXT);
    assertCloudAnswer(await g.client.messages.create(ask()));
    assertFellBack(g, { localCalls: 0 });
    // Streaming too: the fallback is decided before the first byte.
    const r = await rawStream(g, ask());
    const msg = checkAnthropicStream(r.events);
    assertCloudAnswer(msg);
    assert.equal(g.cloud.requests[1].body.model, DEFAULT_FALLBACK_MODEL);
  });

  test('local server reports context overflow (llama-server 400)', T, async (t) => {
    const g = await gateway(t);
    g.local.enqueue(llamaContextOverflow(60000, 51200));
    g.cloud.enqueue(CLOUD_TEXT);
    assertCloudAnswer(await g.client.messages.create(ask()));
    assertFellBack(g, { localCalls: 1 });
  });

  test('local server error 500', T, async (t) => {
    const g = await gateway(t);
    g.local.respondWith(() => ({ status: 500, body: { error: { code: 500, message: 'boom', type: 'server_error' } } }));
    g.cloud.enqueue(CLOUD_TEXT);
    assertCloudAnswer(await g.client.messages.create(ask()));
    assertFellBack(g);
  });

  test('local server drops the connection', T, async (t) => {
    const g = await gateway(t);
    g.local.respondWith(() => ({ close: true }));
    g.cloud.enqueue(CLOUD_TEXT);
    const r = await rawStream(g, ask());
    assertCloudAnswer(checkAnthropicStream(r.events));
    assertFellBack(g);
  });

  test('a broken tool call twice', T, async (t) => {
    const g = await gateway(t);
    g.local.respondWith(() => BROKEN_CALL);
    g.cloud.enqueue(CLOUD_TEXT);
    const r = await rawStream(g, ask());
    const msg = checkAnthropicStream(r.events);
    assertCloudAnswer(msg);
    assert.ok(!r.text.includes('Read the file /repo/a.c'), 'nothing of the broken answer reaches the client');
    assertFellBack(g, { localCalls: 2 });
  });

  test('an image in the request', T, async (t) => {
    const g = await gateway(t);
    g.cloud.enqueue(CLOUD_TEXT);
    const messages = [{
      role: 'user',
      content: [
        { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG_1x1 } },
        { type: 'text', text: 'What is in this picture?' },
      ],
    }];
    assertCloudAnswer(await g.client.messages.create(ask({ messages })));
    const r = assertFellBack(g, { localCalls: 0 });
    assert.deepEqual(r.body.messages, messages);
  });
});

// ---------------------------------------------------------------------------------------
describe('endpoints', () => {
  test('count_tokens returns input_tokens > 0, growing with the prompt', T, async (t) => {
    const g = await gateway(t);
    const small = await g.client.messages.countTokens({ model: HAIKU, messages: [{ role: 'user', content: 'hello there' }] });
    assert.equal(typeof small.input_tokens, 'number');
    assert.ok(small.input_tokens > 0);
    const big = await g.client.messages.countTokens({ model: HAIKU, tools: TOOLS, messages: [{ role: 'user', content: bigText(4000) }] });
    assert.ok(big.input_tokens > small.input_tokens + 500, `${big.input_tokens} vs ${small.input_tokens}`);
  });

  test('GET /v1/models lists models', T, async (t) => {
    const g = await gateway(t);
    const r = await get(`${g.loco.url}/v1/models`);
    assert.equal(r.status, 200);
    assert.ok(Array.isArray(r.json.data) && r.json.data.length > 0, r.text);
    for (const m of r.json.data) assert.equal(typeof m.id, 'string');
  });

  test('GET /health answers JSON', T, async (t) => {
    const g = await gateway(t);
    const r = await get(`${g.loco.url}/health`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /json/);
    assert.equal(typeof r.json, 'object');
    assert.ok(r.json !== null && !Array.isArray(r.json));
  });

  test('GET /metrics is Prometheus text with request counters that count', T, async (t) => {
    const g = await gateway(t);
    const before = await get(`${g.loco.url}/metrics`);
    assert.equal(before.status, 200);
    assert.match(before.headers.get('content-type'), /^text\/plain/);
    assert.match(before.text, /^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* counter$/m);
    const n0 = metricSum(before.text, /request/) ?? 0;
    await g.client.messages.create(ask());
    g.cloud.enqueue(CLOUD_TEXT);
    await g.client.messages.create(ask({ model: SONNET }));
    const after = await get(`${g.loco.url}/metrics`);
    const n1 = metricSum(after.text, /request/);
    assert.ok(n1 !== null && n1 >= n0 + 2, `request counters ${n0} -> ${n1}:\n${after.text}`);
  });
});

// ---------------------------------------------------------------------------------------
describe('errors', () => {
  test('invalid JSON: 400 invalid_request_error naming the position', T, async (t) => {
    const g = await gateway(t);
    const r = await post(`${g.loco.url}/v1/messages`, '{"model": "claude-haiku-4-5",\n "max_tokens": 10,,}');
    assert.equal(r.status, 400);
    assert.equal(r.json.type, 'error');
    assert.equal(r.json.error.type, 'invalid_request_error');
    assert.match(r.json.error.message, /\b(line|column|col|position|pos|offset|byte|char(acter)?)\b\s*:?\s*\d+/i);
  });

  test('a request without messages: 400 invalid_request_error', T, async (t) => {
    const g = await gateway(t);
    const r = await post(`${g.loco.url}/v1/messages`, { model: HAIKU, max_tokens: 10 });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.type, 'invalid_request_error');
  });

  test('unknown path: 404 not_found_error', T, async (t) => {
    const g = await gateway(t);
    const r = await post(`${g.loco.url}/v1/nothing-here`, {});
    assert.equal(r.status, 404);
    assert.equal(r.json.type, 'error');
    assert.equal(r.json.error.type, 'not_found_error');
  });

  test('--auth-token: 401 without it, accepted as Bearer or x-api-key', T, async (t) => {
    const g = await gateway(t, { args: ['--auth-token', 'loco-secret-token'] });
    const none = await post(`${g.loco.url}/v1/messages`, ask());
    assert.equal(none.status, 401);
    assert.equal(none.json.error.type, 'authentication_error');
    const wrong = await post(`${g.loco.url}/v1/messages`, ask(), { 'x-api-key': 'nope' });
    assert.equal(wrong.status, 401);
    const bearer = await post(`${g.loco.url}/v1/messages`, ask(), { authorization: 'Bearer loco-secret-token' });
    assert.equal(bearer.status, 200, bearer.text);
    const xkey = await post(`${g.loco.url}/v1/messages`, ask(), { 'x-api-key': 'loco-secret-token' });
    assert.equal(xkey.status, 200, xkey.text);
    assert.ok(!g.loco.log().includes('loco-secret-token'), 'the auth token must never be logged');
  });

  test('a body over the limit (32 MiB): 413 request_too_large, server still fine', T, async (t) => {
    const g = await gateway(t);
    // A raw socket, not http.request: a server may answer 413 from the headers alone and
    // close, and an HTTP client library then reports EPIPE instead of the answer.
    const total = 33 * 1024 * 1024;
    const res = await rawExchange(g.loco.port,
      `POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${total}\r\n\r\n`,
      total);
    assert.equal(res.status, 413);
    const body = JSON.parse(res.body);
    assert.equal(body.type, 'error');
    assert.equal(body.error.type, 'request_too_large');
    assert.equal((await get(`${g.loco.url}/health`)).status, 200);
  });

  test('a chunked body over the limit: 413 too', T, async (t) => {
    const g = await gateway(t);
    // 33 MiB in chunks of 256 KiB ("40000" hex), then the last chunk if no answer came yet.
    const chunk = `40000\r\n${'a'.repeat(256 * 1024)}\r\n`;
    const res = await new Promise((resolve) => {
      const s = net.connect(g.loco.port, '127.0.0.1');
      let got = Buffer.alloc(0);
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        s.destroy();
        resolve(parseHttpResponse(got));
      };
      s.on('data', (d) => {
        got = Buffer.concat([got, d]);
        if (parseHttpResponse(got).complete) finish();
      });
      s.on('error', () => {});
      s.on('close', finish);
      s.write('POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
      (async () => {
        for (let i = 0; i < 132 && !done && got.length === 0; i++) {
          if (!s.write(chunk)) await waitDrain(s);
        }
        if (!done && got.length === 0) s.write('0\r\n\r\n');
        setTimeout(finish, 5000);
      })();
    });
    assert.equal(res.status, 413, JSON.stringify(res));
    assert.equal(JSON.parse(res.body).error.type, 'request_too_large');
    assert.equal((await get(`${g.loco.url}/health`)).status, 200);
  });

  test('prompt too long and no cloud key: 400 "prompt is too long: N tokens > M maximum"', T, async (t) => {
    const g = await gateway(t, { key: null, args: ['--local-ctx', '1000'] });
    const r = await post(`${g.loco.url}/v1/messages`, ask({ messages: [{ role: 'user', content: bigText(20 * 1024) }] }));
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.type, 'error');
    assert.equal(r.json.error.type, 'invalid_request_error');
    const m = /^prompt is too long: (\d+) tokens > 1000 maximum$/.exec(r.json.error.message);
    assert.ok(m, r.json.error.message);
    assert.ok(Number(m[1]) > 1000);
    assert.equal(g.local.requests.length, 0);
    assert.equal(g.cloud.requests.length, 0);
  });

  test('local context overflow and no cloud key: the same 400 message', T, async (t) => {
    const g = await gateway(t, { key: null });
    g.local.enqueue(llamaContextOverflow(60000, 51200));
    const r = await post(`${g.loco.url}/v1/messages`, ask());
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.error.message, /^prompt is too long: \d+ tokens > \d+ maximum$/);
    assert.equal(g.cloud.requests.length, 0);
  });
});

// ---------------------------------------------------------------------------------------
describe('load and disconnects', () => {
  test('64 concurrent streams all complete, each with its own answer', { timeout: 60000 }, async (t) => {
    const g = await gateway(t);
    g.local.respondWith((rec) => {
      const last = rec.body.messages.at(-1);
      const id = /req-(\d+)/.exec(textOf(last.content))[1];
      return { text: `Reading.\n<tool_call>\n{"name": "Read", "arguments": {"file_path": "/f/${id}"}}\n</tool_call>`, chunkSize: 6, delayMs: 5 };
    });
    const results = await Promise.all(Array.from({ length: 64 }, async (_, i) => {
      const stream = g.client.messages.stream(ask({ messages: [{ role: 'user', content: `Look at req-${i}` }] }));
      return stream.finalMessage();
    }));
    results.forEach((msg, i) => {
      const tools = msg.content.filter((b) => b.type === 'tool_use');
      assert.equal(tools.length, 1);
      assert.deepEqual(tools[0].input, { file_path: `/f/${i}` });
      assert.equal(msg.stop_reason, 'tool_use');
    });
    assert.equal(g.local.requests.length, 64);
  });

  test('a client abort mid-stream cancels upstream and breaks nothing', T, async (t) => {
    const g = await gateway(t);
    // Many slow tool calls: a gateway may hold text back until the first tool call is known
    // to be good, but it must be streaming by the second.
    const calls = Array.from({ length: 40 }, (_, i) => `<tool_call>\n{"name": "Read", "arguments": {"file_path": "/repo/f${i}.c"}}\n</tool_call>`);
    g.local.enqueue({ text: `Reading many files.\n${calls.join('\n')}`, chunkSize: 6, delayMs: 15 });
    const ac = new AbortController();
    const res = await fetch(`${g.loco.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify(ask({ stream: true })),
      signal: ac.signal,
    });
    const reader = res.body.getReader();
    let seen = '';
    while (!seen.includes('"content_block_start"')) {
      const { value, done } = await reader.read();
      assert.ok(!done, 'stream ended before any block');
      seen += Buffer.from(value).toString('utf8');
    }
    assert.equal(g.local.requests[0].finished, false, 'loco held the whole local answer back instead of streaming it');
    ac.abort();
    await reader.cancel().catch(() => {});
    await waitFor(() => g.local.requests[0]?.aborted, 5000, 'loco to cancel the upstream request');
    assert.equal(g.local.requests[0].finished, false);
    g.local.enqueue(TWO_CALLS);
    assertTwoCalls(await g.client.messages.create(ask()));
    assert.ok(g.loco.alive());
  });

  test('garbage and half requests do not hurt the server', T, async (t) => {
    const g = await gateway(t);
    const junk = [
      'GARBAGE\r\n\r\n',
      'POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"model":',
      'POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n',
      `POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n\u0000\u0001\u00ff{}[]"`,
    ];
    await Promise.all(junk.map((data) => new Promise((resolve) => {
      const s = net.connect(g.loco.port, '127.0.0.1', () => {
        s.write(data);
        setTimeout(() => s.destroy(), 200);
      });
      s.on('error', () => {});
      s.on('close', resolve);
    })));
    await sleep(50);
    assert.equal((await get(`${g.loco.url}/health`)).status, 200);
    assert.ok(g.loco.alive());
  });
});

// ---------------------------------------------------------------------------------------
describe('--record', () => {
  test('each finished exchange is appended as JSONL with messages and tools', T, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loco-record-'));
    const g = await gateway(t, { args: ['--record', dir] });
    g.local.enqueue(TWO_CALLS);
    await g.client.messages.create(ask());
    const lines = await waitFor(() => {
      const files = fs.readdirSync(dir, { recursive: true }).filter((f) => String(f).endsWith('.jsonl'));
      const all = files.flatMap((f) => fs.readFileSync(path.join(dir, String(f)), 'utf8').split('\n').filter(Boolean));
      return all.length ? all : null;
    }, 5000, 'a .jsonl record');
    assert.equal(lines.length, 1);
    const rec = JSON.parse(lines[0]);
    assert.ok(Array.isArray(rec.messages), lines[0]);
    assert.ok(Array.isArray(rec.tools), lines[0]);
    assert.ok(lines[0].includes('Where is main defined in /repo?'));
    assert.ok(lines[0].includes('Find main'), 'the answer (a Bash call) is recorded');
    assert.ok(/"local"/.test(lines[0]), 'the route is labelled');
  });
});

describe('settings', () => {
  test('settings come from .env and the environment; the environment beats .env, flags beat both', T, async (t) => {
    const local = await startLocal();
    const cloud = await startCloud({ base: '/api' });
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'loco-env-'));
    fs.writeFileSync(path.join(cwd, '.env'), [
      '# settings for loco serve',
      `LOCO_LOCAL_URL=${local.url}`,
      `LOCO_CLOUD_URL="${cloud.url}/api"`,
      'LOCO_CLOUD_KEY_ENV=MY_CLOUD_KEY',
      'MY_CLOUD_KEY=sk-from-dotenv-123',
      'LOCO_LOCAL_MODELS=dotenv-local-*',
      'LOCO_FALLBACK_MODEL=dotenv-fallback',
      '',
    ].join('\n'));
    const loco = await startLoco({ cwd, key: null, env: { LOCO_LOCAL_MODELS: 'env-local-*' }, args: ['--fallback-model', 'flag-fallback'] });
    t.after(async () => { await loco.stop(); await local.stop(); await cloud.stop(); fs.rmSync(cwd, { recursive: true, force: true }); });

    // the environment's LOCO_LOCAL_MODELS wins over .env's
    local.enqueue('Local answer.');
    let r = await post(`${loco.url}/v1/messages`, ask({ model: 'env-local-1' }));
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(local.requests.length, 1);
    // so a name matching only .env's pattern goes to the cloud, with the key named in .env
    cloud.enqueue({ text: CLOUD_TEXT });
    r = await post(`${loco.url}/v1/messages`, ask({ model: 'dotenv-local-1' }));
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(cloud.requests.length, 1);
    assert.equal(cloud.requests[0].headers.authorization, 'Bearer sk-from-dotenv-123');
    assert.equal(cloud.requests[0].body.model, 'dotenv-local-1');
    // the --fallback-model flag wins over .env's LOCO_FALLBACK_MODEL
    local.enqueue(llamaContextOverflow());
    cloud.enqueue({ text: CLOUD_TEXT });
    r = await post(`${loco.url}/v1/messages`, ask({ model: 'env-local-2' }));
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(cloud.requests.length, 2);
    assert.equal(cloud.requests[1].body.model, 'flag-fallback');
    assert.ok(!loco.log().includes('sk-from-dotenv-123'), 'the key must not be logged');
  });
});
