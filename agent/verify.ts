// `standby verify`: proves the standby holds what this host holds, by
// checksums (rsync --dry-run --checksum --itemize-changes), and lists every
// difference. It reads both sides and writes neither.
import { editorRoots, excludesOf, syncRoots, type AgentConfig, type EditorDirs, type StandbyTarget } from '../config/agent.ts';
import { refusalIn } from '../protocol/receiver.ts';
import { verifyArgs } from './rsync-args.ts';
import { asDir, describeExit, runRsync } from './rsync.ts';
import { localRsyncVersion, standbyRsyncVersion } from './rsync-version.ts';
import { remoteDir, rsyncShell } from './ssh.ts';
import { StandbyError } from '../core/errors.ts';

export type DifferenceKind = 'missing on standby' | 'content differs' | 'extra on standby' | 'attributes differ' | 'type differs';

export interface Difference {
  root: string;
  path: string;
  kind: DifferenceKind;
  /** rsync's itemize code, e.g. ">fcst......" */
  item: string;
}

/** Classifies one --itemize-changes line ("YXcstpoguax path"); undefined when it says nothing differs. */
export function classifyItem(line: string, root: string): Difference | undefined {
  // itemize pads the code to 11 columns and adds one space: the name starts at column 12, spaces and all
  if (line.startsWith('*deleting')) return { root, path: line.slice(12), kind: 'extra on standby', item: '*deleting' };
  const m = /^([<>ch.*][fdLDS][^ ]{9}) (.*)$/.exec(line);
  if (!m) return undefined;
  const item = m[1]!;
  let path = m[2]!;
  if (item[1] === 'L') path = path.replace(/ -> .*$/, '');
  if (item.slice(2).includes('+')) return { root, path, kind: 'missing on standby', item };
  if (item[2] === 'c' && item[1] !== 'd') return { root, path, kind: 'content differs', item };
  const attrs = item.slice(2);
  if (/^[. ]+$/.test(attrs)) return undefined; // rsync lists it but nothing differs
  // a folder whose only difference is its mtime is a side effect of entries inside it, which are listed themselves
  if (item[1] === 'd' && /^\.\.t[. ]+$/.test(attrs)) return undefined;
  return { root, path, kind: 'attributes differ', item };
}

/**
 * The standby's refusal of this host, read from what its receiver printed
 * (protocol/receiver.ts) or from ssh: a fenced host is told so, with the epoch,
 * not "standby unreachable or login refused".
 */
export function fencedRefusal(stderr: string, config: AgentConfig): StandbyError | undefined {
  const after = `The standby took over in a failover: this host's workspace is no longer the one users see, and the standby refuses its reads and writes, so there is nothing of this host's to compare. \`standby status\` on the proxy shows who serves; to use this host again, enroll it anew (standby hosts add ${config.hostId} on the proxy, then the install line it prints)`;
  const refusal = refusalIn(stderr);
  const epoch = refusal?.epoch;
  if (refusal?.code === 'STANDBY_ERR_HOST_REVOKED') {
    return new StandbyError('STANDBY_ERR_HOST_REVOKED', `this host was fenced (epoch ${epoch ?? '?'}) and its key revoked on the standby. ${after}`, { epoch: epoch ?? null });
  }
  if (refusal?.code === 'STANDBY_ERR_EPOCH_STALE') {
    return new StandbyError('STANDBY_ERR_EPOCH_STALE', `this host was fenced (epoch ${epoch ?? '?'}): the standby accepts epoch ${epoch ?? '?'} or newer only. ${after}`, { epoch: epoch ?? null });
  }
  if (/Permission denied \(publickey/.test(stderr)) {
    const s = config.standby;
    return new StandbyError('STANDBY_ERR_HOST_REVOKED', `the standby ${s ? `${s.user}@${s.host}:${s.port} ` : ''}refused this host's ssh key${s?.identityFile ? ` (${s.identityFile})` : ''}. A failover removes the key of the host it fences, so this host was most likely fenced: \`standby status\` on the proxy shows the epoch and who serves. If there was no failover, authorize this host's key on the standby (standby hosts add ${config.hostId} on the proxy, then the install line it prints)`, {});
  }
  return undefined;
}

/**
 * `epoch`: the one the proxy granted this host (the daemon's, for verify --proxy), sent as the receiver's STANDBY_EPOCH like a pass's.
 * `against`: where to compare with (default the configured standby; the daemon's verify --proxy: where the agent pushes now, a granted target included),
 * `againstEditor` its code-server folders when the grant named them.
 */
export async function verify(config: AgentConfig, epoch?: number, against: StandbyTarget | undefined = config.standby, againstEditor?: EditorDirs): Promise<Difference[]> {
  const standby = against;
  if (!standby) {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', 'verify compares this host with its configured standby (or, under a proxy, the target it pushes to), and agent.json has no standby section and no target is granted: nothing to compare with', {});
  }
  // an rsync too old on either end is named, not taken for a difference
  await Promise.all([
    localRsyncVersion(),
    standbyRsyncVersion(standby, undefined, config.sync.ioTimeoutS * 1000).catch((err: unknown) => {
      throw (err instanceof Error ? fencedRefusal(err.message, config) : undefined) ?? err;
    }),
  ]);
  const excludes = excludesOf(config);
  const out: Difference[] = [];
  const settings = { shell: rsyncShell(standby), excludes, epoch, rsyncPath: standby.rsyncPath };
  const roots = syncRoots(config, standby.path, againstEditor);
  const editorFrom = roots.length - editorRoots(config).length;
  for (const [i, root] of roots.entries()) {
    const args = verifyArgs({ ...settings, include: root.include }, { from: asDir(root.local), to: remoteDir(standby, root.remote) });
    const result = await runRsync(args, { itemize: true }).result;
    if (result.code !== 0) {
      const fenced = fencedRefusal(result.stderr, config);
      if (fenced) throw fenced;
      // code-server's folders on a standby that does not take them: the agent does not sync them either (sync-engine.ts editorOff)
      if (i >= editorFrom && refusalIn(result.stderr)?.code === 'STANDBY_ERR_COMMAND_REFUSED') continue;
      throw new StandbyError('STANDBY_ERR_RSYNC_FAILED', `verify of ${root.local} could not compare: ${describeExit(result.code, result.signal)} ${result.stderr.split('\n').slice(-2).join(' | ')}`, { code: result.code });
    }
    for (const line of result.items) {
      const d = classifyItem(line, root.local);
      if (d) out.push(d);
    }
  }
  return out;
}
