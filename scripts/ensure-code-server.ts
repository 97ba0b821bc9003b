// Installs the pinned code-server into its cache (installer/code-server.ts)
// before `npm test`, so no browser test installs it inside a test timeout.
// Quiet when it is there; npm's lines and the elapsed time while it installs.
import { CODE_SERVER_VERSION, codeServerCacheDir, ensureCodeServer } from '../installer/code-server.ts';
import { StandbyError } from '../core/errors.ts';

const started = performance.now();
try {
  const cs = await ensureCodeServer({
    onProgress: ({ line, elapsedMs }) => process.stderr.write(`standby: code-server [${(elapsedMs / 1000).toFixed(0)} s] ${line}\n`),
  });
  const ms = performance.now() - started;
  if (ms > 1_000) process.stderr.write(`standby: code-server ${cs.version} ready in ${(ms / 1000).toFixed(0)} s: ${cs.entry}\n`);
} catch (err) {
  const code = err instanceof StandbyError ? ` [${err.code}]` : '';
  process.stderr.write(`standby: could not install code-server ${CODE_SERVER_VERSION} into ${codeServerCacheDir()}${code}: ${(err as Error).message}\n`);
  process.exit(err instanceof StandbyError ? err.exitCode : 1);
}
