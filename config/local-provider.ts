// The `local` provider's settings: hosts on this machine, each a folder under
// baseDir with its workspace, a loopback sshd whose only key is the proxy's
// fencing key (the receiver's forced command, as the installer lays it down)
// and the built-in workspace server. What a `recovery` section gets when it
// names no provider: recovery.local in proxy.json (docs/configuration.md,
// "recovery").
import { join } from 'node:path';
import { z } from 'zod';
import { absolutePath, ms } from './fields.ts';

export const localProviderSchema = z.strictObject({
  /** where the hosts' folders go (default <stateDir>/local-hosts) */
  baseDir: absolutePath.optional(),
  /** the standby program the hosts' sshd runs as the receiver (default: the one the proxy runs from, its bin/standby) */
  program: absolutePath.optional(),
  /** how long a host's sshd and workspace server may take to listen, ms (default 10000) */
  startTimeoutMs: ms('recovery.local.startTimeoutMs', 500, 600_000).default(10_000),
  /** each host runs a real code-server behind its workspace server (`standby demo --server code-server`): an install's out/node/entry.js, run on `node` (Node 24; default the proxy's own) (default none: the workspace server alone) */
  codeServer: z.strictObject({ entry: absolutePath, node: absolutePath.optional() }, { error: 'an object {entry, node}' }).optional(),
  /** each host has code-server's folders (code-server/user-data, code-server/extensions), which its receiver takes and the agents sync, as the installer lays them down (default: true with codeServer, else false) */
  editor: z.boolean().optional(),
}, { error: 'an object of local provider settings' });

export type LocalProviderSettings = z.output<typeof localProviderSchema>;

/** baseDir, or its default under the proxy's state folder. */
export function localBaseDir(settings: LocalProviderSettings, stateDir: string): string {
  return settings.baseDir ?? join(stateDir, 'local-hosts');
}
