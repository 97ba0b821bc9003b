// Escaping for the pages the proxy renders: text into HTML, values into an
// inline <script>. Every string a page shows that comes from config, the
// state machine or a host goes through one of these.

const HTML_ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Text for an HTML text node or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return String(text).replace(/[&<>"']/g, (c) => HTML_ENTITIES[c] ?? c);
}

/**
 * A JSON literal safe inside an inline <script>: no `<` (so no `</script>` or
 * `<!--`), no `>` or `&`, and no U+2028/U+2029 (line terminators in older
 * JavaScript). JSON.parse and a JavaScript engine read it back unchanged.
 */
export function jsonForScript(value: unknown): string {
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError('jsonForScript: value has no JSON form');
  return json
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}
