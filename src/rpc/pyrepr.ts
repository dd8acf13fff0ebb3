// Python's repr() of a str, for messages that must read exactly as a Python service writes them
// (e.g. "got an unexpected keyword argument 'x'"). Follows CPython's unicode_repr.

/** Python's str.isprintable() is false for these: other (C*) and separators (Z*) except the space. */
const NON_PRINTABLE = /^[\p{C}\p{Zl}\p{Zp}\p{Zs}]$/u;

function escape(cp: number): string {
  if (cp < 0x100) return `\\x${cp.toString(16).padStart(2, '0')}`;
  if (cp < 0x10000) return `\\u${cp.toString(16).padStart(4, '0')}`;
  return `\\U${cp.toString(16).padStart(8, '0')}`;
}

export function pyStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    if (ch === quote || ch === '\\') out += `\\${ch}`;
    else if (ch === '\t') out += '\\t';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (cp < 0x20 || cp === 0x7f || (ch !== ' ' && NON_PRINTABLE.test(ch))) out += escape(cp);
    else out += ch;
  }
  return out + quote;
}
