// The proxy's error answers, one vocabulary everywhere it answers HTTP (the
// admin API, enrollment, the agent socket's refusals, the downloads): a
// STANDBY_ERR_* code from core/errors.ts and a message saying what to do.
// JSON answers are {"error": {"code", "message"}}; the downloads are text
// files, so their refusals are one text line ending in the code in brackets,
// as the CLI prints it for scripts.
import type { ServerResponse } from 'node:http';
import { ErrorCodes, type ErrorCode } from '../core/errors.ts';
import type { Problem } from '../protocol/admin-api.ts';

export interface ProblemOptions {
  /** the HTTP status when it is not the code's own (ErrorCodes[code].status) */
  status?: number;
  headers?: Record<string, string>;
}

/** The JSON body of an error answer, newline-terminated. */
export function problemBody(code: ErrorCode, message: string): string {
  const body: Problem = { error: { code, message } };
  return JSON.stringify(body, null, 2) + '\n';
}

/** Answers `res` with the error as JSON, with the code's HTTP status unless `o.status` says otherwise. */
export function sendProblem(res: ServerResponse, code: ErrorCode, message: string, o: ProblemOptions = {}): void {
  const text = problemBody(code, message);
  res.writeHead(o.status ?? ErrorCodes[code].status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text), ...o.headers });
  res.end(text);
}

/** Answers `res` with the error as one text line ("MESSAGE [CODE]"), for the downloads. */
export function sendTextProblem(res: ServerResponse, code: ErrorCode, message: string, o: ProblemOptions = {}): void {
  const text = `${message.replace(/\s*\n\s*/g, ' ')} [${code}]\n`;
  res.writeHead(o.status ?? ErrorCodes[code].status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text), ...o.headers });
  res.end(text);
}

/** The error as a raw HTTP/1.1 answer that closes the connection, for a socket before a WebSocket upgrade. */
export function rawProblem(code: ErrorCode, message: string, reason: string, headers: Record<string, string> = {}): string {
  const text = problemBody(code, message);
  const lines = Object.entries({ 'Content-Type': 'application/json; charset=utf-8', ...headers, Connection: 'close', 'Content-Length': String(Buffer.byteLength(text)) }).map(([k, v]) => `${k}: ${v}\r\n`);
  return `HTTP/1.1 ${ErrorCodes[code].status} ${reason}\r\n${lines.join('')}\r\n${text}`;
}
