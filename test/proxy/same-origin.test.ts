// Where a browser's request comes from (proxy/same-origin.ts), which the
// dashboard's CSRF rule and the login's WebSocket rule rest on: only an
// Origin naming the Host the request was sent to (or proxy.json's publicUrl)
// is this proxy's; "null", garbage, a look-alike host or another port is not.
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { requestOrigin, type RequestOrigin } from '../../proxy/same-origin.ts';

const request = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;

const cases: { name: string; host: string; origin?: string; publicUrl?: string; want: RequestOrigin }[] = [
  { name: 'no Origin (a tool, a same-origin GET)', host: 'proxy.example:8443', want: 'none' },
  { name: 'the same host and port', host: 'proxy.example:8443', origin: 'https://proxy.example:8443', want: 'same' },
  { name: 'another port', host: 'proxy.example:8443', origin: 'https://proxy.example:9443', want: 'other' },
  { name: 'another site', host: 'proxy.example', origin: 'https://evil.example', want: 'other' },
  { name: 'a look-alike suffix', host: 'proxy.example', origin: 'https://proxy.example.evil.example', want: 'other' },
  { name: '"null" (a sandboxed frame, no-referrer)', host: 'proxy.example', origin: 'null', want: 'other' },
  { name: 'garbage', host: 'proxy.example', origin: '::::', want: 'other' },
  { name: 'publicUrl behind a front end that rewrites Host', host: '10.0.0.5:8080', origin: 'https://proxy.example', publicUrl: 'https://proxy.example/', want: 'same' },
  { name: 'publicUrl: another scheme is another origin', host: '10.0.0.5:8080', origin: 'http://proxy.example', publicUrl: 'https://proxy.example', want: 'other' },
];

for (const c of cases) {
  test(`origin: ${c.name}`, () => {
    const headers: Record<string, string> = { host: c.host };
    if (c.origin !== undefined) headers.origin = c.origin;
    assert.equal(requestOrigin(request(headers), c.publicUrl), c.want);
  });
}
