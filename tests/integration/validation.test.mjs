// validation.test.mjs: the real `loco serve` refuses what the real APIs refuse, with a 400
// invalid_request_error naming the field, before anything reaches a model server; unknown
// top-level fields (Claude Code's new betas) still pass.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { gateway, post, get, metricSum, HAIKU } from './helpers.mjs';

const T = { timeout: 60000 };
const USER = { role: 'user', content: 'hi' };
const base = { model: HAIKU, max_tokens: 64, messages: [USER] };

describe('Anthropic front', () => {
  test('bad fields are 400 invalid_request_error naming the field; nothing is forwarded', T, async (t) => {
    const g = await gateway(t, {});
    const cases = [
      [{ ...base, messages: [] }, /^messages: /],
      [{ model: HAIKU, messages: [USER] }, /^max_tokens: field required/],
      [{ ...base, max_tokens: 1e15 }, /^max_tokens: must be at most/],
      [{ ...base, max_tokens: 0 }, /^max_tokens: /],
      [{ ...base, temperature: -5 }, /^temperature: must be between 0 and 1/],
      [{ ...base, temperature: 1.01 }, /^temperature: /],
      [{ ...base, metadata: 'me' }, /^metadata: expected an object/],
      [{ ...base, thinking: 'on' }, /^thinking: expected an object/],
      [{ ...base, messages: [{ role: 'user', content: [{ type: 'holo', text: 'x' }] }] }, /^messages\[0\]\.content\[0\]\.type: unknown content block type 'holo'/],
      [
        { ...base, messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_nope', content: 'x' }] }] },
        /^messages\[0\]\.content\[0\]: tool_result for tool_use_id 'toolu_nope' has no tool_use/,
      ],
    ];
    for (const [body, re] of cases) {
      for (const stream of [false, true]) {
        const r = await post(`${g.loco.url}/v1/messages`, { ...body, stream });
        assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 120)} -> ${r.text.slice(0, 200)}`);
        assert.equal(r.json?.type, 'error');
        assert.equal(r.json.error.type, 'invalid_request_error');
        assert.match(r.json.error.message, re);
      }
    }
    // count_tokens needs no max_tokens but checks the rest
    const c = await post(`${g.loco.url}/v1/messages/count_tokens`, { model: HAIKU, messages: [USER] });
    assert.equal(c.status, 200, c.text);
    const c2 = await post(`${g.loco.url}/v1/messages/count_tokens`, { model: HAIKU, messages: [] });
    assert.equal(c2.status, 400);
    assert.equal(g.local.requests.length, 0);
    assert.equal(g.cloud.requests.length, 0);
  });

  test('unknown top-level fields and Claude Code\'s thinking/metadata shapes pass', T, async (t) => {
    const g = await gateway(t, {});
    g.local.enqueue('Hello.');
    const r = await post(`${g.loco.url}/v1/messages`, {
      ...base,
      max_tokens: 128000,
      thinking: { type: 'adaptive' },
      metadata: { user_id: 'user_abc' },
      context_management: { edits: [] },
      output_config: { effort: 'low' },
      some_future_beta_field: { x: 1 },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(g.local.requests.length, 1);
  });
});

describe('OpenAI front', () => {
  test('tool-call arguments that are not JSON are the client\'s 400, not a 502 fallback', T, async (t) => {
    const g = await gateway(t, {});
    const body = {
      model: HAIKU,
      messages: [
        USER,
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'Read', arguments: '{"file_path": "/x"' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: 'text' },
      ],
    };
    const r = await post(`${g.loco.url}/v1/chat/completions`, body);
    assert.equal(r.status, 400, r.text);
    assert.match(r.json?.error?.message, /^messages\[1\]\.tool_calls\[0\]\.function\.arguments: /);
    const bad = [
      [{ model: HAIKU, messages: [] }, /^messages: /],
      [{ model: HAIKU, messages: [USER], temperature: 3 }, /^temperature: must be between 0 and 2/],
      [{ model: HAIKU, messages: [USER], max_tokens: 1e15 }, /^max_tokens: must be at most/],
    ];
    for (const [b, re] of bad) {
      const x = await post(`${g.loco.url}/v1/chat/completions`, b);
      assert.equal(x.status, 400, x.text);
      assert.match(x.json?.error?.message, re);
    }
    assert.equal(g.local.requests.length, 0);
    assert.equal(g.cloud.requests.length, 0);
    const m = await get(`${g.loco.url}/metrics`);
    assert.ok(!metricSum(m.text, /^loco_fallbacks_total$/), 'a client error counted as a fallback');
  });
});
