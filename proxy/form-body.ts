// A small urlencoded form body (the login forms): read whole up to a limit,
// or undefined when it is bigger (the request is then destroyed) or broken.
import type { IncomingMessage } from 'node:http';

/** The form's fields; undefined when the body is over `maxBytes` or the request failed. */
export function readForm(req: IncomingMessage, maxBytes: number): Promise<URLSearchParams | undefined> {
  return new Promise((resolve) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        resolve(undefined);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', () => resolve(undefined));
  });
}

/** Whether the request says its body is a urlencoded form. */
export function isForm(req: IncomingMessage): boolean {
  return (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
}
