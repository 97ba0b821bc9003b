// Whose a request path is (proxy/request-path.ts): decided on the path as the
// backend would see it; a path that only becomes /_standby... once
// normalized, decoded or case-folded is ambiguous (400), never forwarded.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pathOwner, type PathOwner } from '../../proxy/request-path.ts';

const cases: { name: string; url: string; owner: PathOwner }[] = [
  { name: 'the proxy\'s status', url: '/_standby/status', owner: 'own' },
  { name: 'the agent socket, with a query', url: '/_standby/agent?x=1', owner: 'own' },
  { name: 'the bare prefix', url: '/_standby', owner: 'own' },
  { name: 'a path parameter on the prefix', url: '/_standby;x/status', owner: 'own' },
  { name: 'a host id with an escape, already canonical', url: '/_standby/api/v1/hosts/gpu%2D1', owner: 'own' },
  { name: 'code-server', url: '/stable-abc/static/out/vs/code.js', owner: 'backend' },
  { name: 'the root', url: '/', owner: 'backend' },
  { name: 'a longer name', url: '/_standbyx/a', owner: 'backend' },
  { name: 'the prefix further down', url: '/a/_standby/status', owner: 'backend' },
  { name: 'the prefix in the query', url: '/a?next=/_standby/status', owner: 'backend' },
  { name: 'a dot segment elsewhere', url: '/x/../y', owner: 'backend' },
  { name: 'leaving the prefix', url: '/_standby/../x', owner: 'backend' },
  { name: 'a dotfile', url: '/.well-known/x', owner: 'backend' },
  { name: 'OPTIONS *', url: '*', owner: 'backend' },
  { name: 'absolute-form elsewhere', url: 'http://evil.example/x', owner: 'backend' },
  { name: 'dot segments into it', url: '/x/../_standby/api/v1/status', owner: 'ambiguous' },
  { name: 'encoded dot segments into it', url: '/x/%2e%2E/_standby/status', owner: 'ambiguous' },
  { name: 'a dot segment inside it', url: '/_standby/./status', owner: 'ambiguous' },
  { name: 'an encoded underscore', url: '/%5fstandby/status', owner: 'ambiguous' },
  { name: 'an encoded slash after it', url: '/_standby%2fstatus', owner: 'ambiguous' },
  { name: 'a double slash before it', url: '//_standby/status', owner: 'ambiguous' },
  { name: 'a backslash dot segment', url: '/x/..\\_standby/status', owner: 'ambiguous' },
  { name: 'another case', url: '/_STANDBY/status', owner: 'ambiguous' },
  { name: 'absolute-form into it', url: 'http://evil.example/_standby/status', owner: 'ambiguous' },
  { name: 'double-encoded dot segments (a backend that decodes once, then normalizes)', url: '/x/%252e%252e/_standby/status', owner: 'ambiguous' },
  { name: 'an encoded path parameter', url: '/_standby%3bx/status', owner: 'ambiguous' },
];

for (const c of cases) {
  test(`${c.name}: ${c.url} is ${c.owner}`, () => {
    assert.equal(pathOwner(c.url), c.owner);
  });
}
