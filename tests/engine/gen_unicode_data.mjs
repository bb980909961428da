// gen_unicode_data.mjs: generates src/engine/unicode_data.c, the Unicode tables of the tokenizer
// (letter/number/whitespace classes of the qwen2 pre-tokenizer regex, and NFC data), from the
// running node's ICU, i.e. the same Unicode version the JS reference tokenizer uses.
// Usage: node tests/engine/gen_unicode_data.mjs > src/engine/unicode_data.c
// It verifies its NFC tables by running the C algorithm's twin in JS against String.normalize.
const MAX = 0x110000;
const isSur = (cp) => cp >= 0xd800 && cp < 0xe000;
const S = (...cps) => String.fromCodePoint(...cps);
const cpsOf = (s) => [...s].map((c) => c.codePointAt(0));
const isHangulSyl = (cp) => cp >= 0xac00 && cp <= 0xd7a3;

// ---- categories: 1 letter (\p{L}), 2 number (\p{N}), 4 whitespace (JS \s)
const reL = /\p{L}/u, reN = /\p{N}/u, reS = /^\s$/u, reCn = /\p{Cn}/u;
const flags = new Uint8Array(MAX);
for (let cp = 0; cp < MAX; cp++) {
  if (isSur(cp)) continue;
  const s = S(cp);
  flags[cp] = (reL.test(s) ? 1 : 0) | (reN.test(s) ? 2 : 0) | (reS.test(s) ? 4 : 0);
}
function ranges(valueOf) {
  const out = [];
  let cur = null;
  for (let cp = 0; cp < MAX; cp++) {
    const v = valueOf(cp);
    if (cur && v === cur[2] && cp === cur[1] + 1) { cur[1] = cp; continue; }
    if (cur) out.push(cur);
    cur = v ? [cp, cp, v] : null;
  }
  if (cur) out.push(cur);
  return out;
}
const catRanges = ranges((cp) => flags[cp]);

// ---- NFC data
const decomp = new Map(); // cp -> full canonical decomposition (non-Hangul)
const qcNo = new Uint8Array(MAX);
for (let cp = 0; cp < MAX; cp++) {
  if (isSur(cp)) continue;
  const s = S(cp);
  if (s.normalize('NFC') !== s) qcNo[cp] = 1;
  if (isHangulSyl(cp)) continue;
  const d = s.normalize('NFD');
  if (d !== s) decomp.set(cp, cpsOf(d));
}
// non-zero combining classes, as ranks (only order and zero-ness matter to NFC)
const swaps = (a, b) => S(a, b).normalize('NFD') === S(b, a);
const marks = [];
for (let cp = 0; cp < MAX; cp++) {
  if (isSur(cp) || decomp.has(cp) || isHangulSyl(cp) || reCn.test(S(cp))) continue;
  if (cp === 0x301 || cp === 0x316) { marks.push(cp); continue; }
  if (swaps(cp, 0x301) || swaps(0x301, cp) || swaps(cp, 0x316) || swaps(0x316, cp)) marks.push(cp);
}
const cmp = (a, b) => (swaps(a, b) ? 1 : swaps(b, a) ? -1 : 0);
marks.sort((a, b) => cmp(a, b) || a - b);
const ccc = new Map();
let rank = 0;
for (let i = 0; i < marks.length; i++) {
  if (i === 0 || cmp(marks[i - 1], marks[i]) !== 0) rank++;
  ccc.set(marks[i], rank);
}
if (rank > 255) throw new Error('too many combining classes');
const cccOf = (cp) => ccc.get(cp) || 0;
// primary composites: one-step pairs (A, B) -> C
const comps = new Map(); // key a*2^21+b -> c
const backward = new Set();
for (const [cp, d] of decomp) {
  if (qcNo[cp]) continue;
  const a = cpsOf(S(...d.slice(0, -1)).normalize('NFC'));
  const b = d[d.length - 1];
  if (a.length !== 1) throw new Error('composite with multi-char head ' + cp.toString(16));
  if (S(a[0], b).normalize('NFC') !== S(cp)) throw new Error('bad pair ' + cp.toString(16));
  comps.set(a[0] * 0x200000 + b, cp);
  backward.add(b);
}
for (let cp = 0x1161; cp <= 0x1175; cp++) backward.add(cp);
for (let cp = 0x11a8; cp <= 0x11c2; cp++) backward.add(cp);
const unstable = (cp) => (qcNo[cp] || backward.has(cp) || cccOf(cp) ? 1 : 0);
let stableBelow = 0;
while (!unstable(stableBelow)) stableBelow++;

// ---- verify: the algorithm tokenizer.c implements, in JS, against String.normalize
const SB = 0xac00, LB = 0x1100, VB = 0x1161, TB = 0x11a7, LC = 19, VC = 21, TC = 28, NC = VC * TC;
function decompose(cp, out) {
  if (isHangulSyl(cp)) {
    const si = cp - SB;
    out.push(LB + Math.floor(si / NC), VB + Math.floor((si % NC) / TC));
    if (si % TC) out.push(TB + (si % TC));
    return;
  }
  const d = decomp.get(cp);
  if (d) out.push(...d); else out.push(cp);
}
function compose(a, b) {
  if (a >= LB && a < LB + LC && b >= VB && b < VB + VC) return SB + ((a - LB) * VC + (b - VB)) * TC;
  if (isHangulSyl(a) && (a - SB) % TC === 0 && b > TB && b < TB + TC) return a + (b - TB);
  const c = comps.get(a * 0x200000 + b);
  return c === undefined ? -1 : c;
}
function nfc(cps) {
  const d = [];
  for (const cp of cps) decompose(cp, d);
  for (let i = 1; i < d.length; i++) { // stable insertion sort of non-starter runs
    const c = cccOf(d[i]);
    if (!c) continue;
    let j = i;
    while (j > 0 && cccOf(d[j - 1]) > c) { [d[j - 1], d[j]] = [d[j], d[j - 1]]; j--; }
  }
  if (!d.length) return d;
  const out = [d[0]];
  let starterPos = 0, starter = d[0], lastClass = cccOf(d[0]) ? 256 : 0;
  for (let i = 1; i < d.length; i++) {
    const ch = d[i], cl = cccOf(ch);
    const c = compose(starter, ch);
    if (c >= 0 && (lastClass < cl || lastClass === 0)) { out[starterPos] = c; starter = c; continue; }
    if (cl === 0) { starterPos = out.length; starter = ch; }
    lastClass = cl;
    out.push(ch);
  }
  return out;
}
let checked = 0;
const check = (cps) => {
  const want = S(...cps).normalize('NFC'), got = S(...nfc(cps));
  checked++;
  if (want !== got) throw new Error('NFC mismatch for ' + cps.map((c) => c.toString(16)).join(' '));
};
for (let cp = 0; cp < MAX; cp++) {
  if (isSur(cp)) continue;
  check([cp]);
  if (decomp.has(cp) || isHangulSyl(cp)) check(cpsOf(S(cp).normalize('NFD')));
}
let seed = 12345;
const rnd = (n) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
const pool = [...new Set([...marks, ...backward, ...[...comps.values()], 0x61, 0x41, 0x1100, 0xac00, 0x3b1, 0x915])];
for (let i = 0; i < 200000; i++) {
  const len = 1 + rnd(6), cps = [];
  for (let k = 0; k < len; k++) cps.push(pool[rnd(pool.length)]);
  check(cps);
}

// ---- emit C
const hex = (v) => '0x' + v.toString(16);
const lines = [];
lines.push('/* unicode_data.c: GENERATED by tests/engine/gen_unicode_data.mjs from node ' + process.version +
  ' (Unicode ' + process.versions.unicode + '); do not edit.');
lines.push(' * Character classes of the qwen2 pre-tokenizer and the NFC tables used by tokenizer.c. */');
lines.push('#include "base/common.h"');
lines.push('#include "engine/unicode_data.h"', '');
const emitRanges = (name, rs) => {
  lines.push(`const unicode_range ${name}[] = {`);
  for (let i = 0; i < rs.length; i += 4)
    lines.push('    ' + rs.slice(i, i + 4).map((r) => `{${hex(r[0])}, ${hex(r[1])}, ${r[2]}}`).join(', ') + ',');
  lines.push('};', `const size_t ${name}_len = ${rs.length};`, '');
};
emitRanges('unicode_class_ranges', catRanges);
emitRanges('unicode_ccc_ranges', ranges((cp) => cccOf(cp)));
emitRanges('unicode_unstable_ranges', ranges((cp) => (isSur(cp) ? 0 : unstable(cp))));
const dk = [...decomp.keys()].sort((a, b) => a - b);
const poolArr = [];
const entries = dk.map((cp) => { const off = poolArr.length; poolArr.push(...decomp.get(cp)); return [cp, off, decomp.get(cp).length]; });
lines.push('const unicode_decomp unicode_decomps[] = {');
for (let i = 0; i < entries.length; i += 4)
  lines.push('    ' + entries.slice(i, i + 4).map((e) => `{${hex(e[0])}, ${e[1]}, ${e[2]}}`).join(', ') + ',');
lines.push('};', `const size_t unicode_decomps_len = ${entries.length};`, '');
lines.push('const uint32_t unicode_decomp_pool[] = {');
for (let i = 0; i < poolArr.length; i += 10) lines.push('    ' + poolArr.slice(i, i + 10).map(hex).join(', ') + ',');
lines.push('};', '');
const ck = [...comps.entries()].map(([k, c]) => [Math.floor(k / 0x200000), k % 0x200000, c]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
lines.push('const unicode_comp unicode_comps[] = {');
for (let i = 0; i < ck.length; i += 4) lines.push('    ' + ck.slice(i, i + 4).map((e) => `{${hex(e[0])}, ${hex(e[1])}, ${hex(e[2])}}`).join(', ') + ',');
lines.push('};', `const size_t unicode_comps_len = ${ck.length};`, '');
lines.push(`const uint32_t unicode_nfc_stable_below = ${hex(stableBelow)};`);
process.stdout.write(lines.join('\n') + '\n');
process.stderr.write(`classes ${catRanges.length} ranges, ${marks.length} marks in ${rank} classes, ${entries.length} decompositions, ${ck.length} compositions, NFC verified on ${checked} strings, stable below ${hex(stableBelow)}\n`);
