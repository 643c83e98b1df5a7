// Text → AT scan codes (set 1) for a US keyboard layout: what paste-as-typing sends.
// Pure: no SPICE, no DOM. spice-html5 sends scan codes the same way for real key presses.
import { KeyNames } from './spice-html5/atKeynames.js';

const SHIFTED_DIGITS = ')!@#$%^&*(';
const PUNCTUATION = {
  '-': [KeyNames.KEY_Minus, false], '_': [KeyNames.KEY_Minus, true],
  '=': [KeyNames.KEY_Equal, false], '+': [KeyNames.KEY_Equal, true],
  '[': [KeyNames.KEY_LBrace, false], '{': [KeyNames.KEY_LBrace, true],
  ']': [KeyNames.KEY_RBrace, false], '}': [KeyNames.KEY_RBrace, true],
  ';': [KeyNames.KEY_SemiColon, false], ':': [KeyNames.KEY_SemiColon, true],
  "'": [KeyNames.KEY_Quote, false], '"': [KeyNames.KEY_Quote, true],
  '`': [KeyNames.KEY_Tilde, false], '~': [KeyNames.KEY_Tilde, true],
  '\\': [KeyNames.KEY_BSlash, false], '|': [KeyNames.KEY_BSlash, true],
  ',': [KeyNames.KEY_Comma, false], '<': [KeyNames.KEY_Comma, true],
  '.': [KeyNames.KEY_Period, false], '>': [KeyNames.KEY_Period, true],
  '/': [KeyNames.KEY_Slash, false], '?': [KeyNames.KEY_Slash, true],
  ' ': [KeyNames.KEY_Space, false],
  '\n': [KeyNames.KEY_Enter, false],
  '\t': [KeyNames.KEY_Tab, false],
};
const DIGIT_CODES = [KeyNames.KEY_0, KeyNames.KEY_1, KeyNames.KEY_2, KeyNames.KEY_3,
  KeyNames.KEY_4, KeyNames.KEY_5, KeyNames.KEY_6, KeyNames.KEY_7, KeyNames.KEY_8, KeyNames.KEY_9];

export const SHIFT = KeyNames.KEY_ShiftL;

// One character → {code, shift}, or null when a US keyboard has no key for it.
export function keyFor(ch) {
  if (ch >= 'a' && ch <= 'z') return { code: KeyNames['KEY_' + ch.toUpperCase()], shift: false };
  if (ch >= 'A' && ch <= 'Z') return { code: KeyNames['KEY_' + ch], shift: true };
  if (ch >= '0' && ch <= '9') return { code: DIGIT_CODES[ch.charCodeAt(0) - 48], shift: false };
  const shifted = SHIFTED_DIGITS.indexOf(ch);
  if (shifted >= 0) return { code: DIGIT_CODES[shifted], shift: true };
  const p = PUNCTUATION[ch];
  return p ? { code: p[0], shift: p[1] } : null;
}

// A whole text → {keys, skipped}; "\r\n" and "\r" count as one Enter.
export function keysFor(text) {
  const keys = [];
  let skipped = 0;
  for (const ch of text.replace(/\r\n?/g, '\n')) {
    const key = keyFor(ch);
    if (key) keys.push(key); else skipped += 1;
  }
  return { keys, skipped };
}
