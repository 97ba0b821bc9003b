// The first-boot script of a new GPU (GpuLaunch.onstart, a GCP startup
// script): a POSIX sh script that installs the agent through the proxy's
// one-line installer with a one-time invitation, then starts it. The agent
// pushes nothing until the proxy grants it primary (agent.json's `proxy`), so
// it starts fenced whatever it finds in the workspace.
//
// Every value is checked, then single-quoted; what a shell would read in it
// ($(), backquotes, quotes) reaches the installer as plain text. Line breaks
// and control characters are refused: nothing here may start a new command.
// The invitation goes to the installer in its environment (STANDBY_TOKEN),
// never on a command line `ps` shows.
//
// A second run (a restarted container runs its onstart again) finds the
// installed agent.json and only starts the agent: the invitation is used up.
// Without systemd (a container) it also runs code-server, through the start
// script the installer lays down beside it (installer/code-server-unit.ts).
import { X509Certificate } from 'node:crypto';
import { posix } from 'node:path';
import { StandbyError } from '../../core/errors.ts';
import { INVITE_PREFIX } from '../../protocol/admin-api.ts';
import { HOST_ID } from '../../protocol/host-id.ts';

export interface GpuOnstartInput {
  /** the proxy's public URL (publicUrl), http:// or https://, e.g. https://proxy.example.com */
  proxyUrl: string;
  /** the one-time invitation for hostId (`sbi_...`, from the host registry's invite) */
  invitation: string;
  /** the id the invitation is for, e.g. "gpu-e4" */
  hostId: string;
  /** the workspace folder on the GPU, absolute (made when missing) */
  workspace: string;
  /** PEM certificate(s) of a CA the proxy's certificate chains to, for a proxy without a public certificate */
  caPem?: string;
  /** install under this prefix instead of / (as `standby install --root`: the tests); default / */
  root?: string;
}

/** The unit `standby install agent` lays down (installer/layout.ts UNIT_OF.agent). */
const AGENT_UNIT = 'standby-agent.service';
/** Agent exit codes that a restart cannot cure (core/errors.ts): unauthorized, config invalid, host revoked. */
const FINAL_EXITS = [77, 78, 80];
/** The longest value we put in the script, characters (a path or a URL). */
const MAX_VALUE = 1024;

function invalid(what: string, why: string, field: string): StandbyError {
  return new StandbyError('STANDBY_ERR_CONFIG_INVALID', `the new GPU's start script: ${what} ${why}`, { field });
}

/** A value for the script: printable, one line, bounded. */
function plain(value: string, what: string, field: string): string {
  if (typeof value !== 'string' || value === '') throw invalid(what, 'is empty', field);
  if (value.length > MAX_VALUE) throw invalid(what, `is longer than ${MAX_VALUE} characters`, field);
  if (/[\u0000-\u001f\u007f]/.test(value)) throw invalid(what, 'holds a line break or another control character: refused, it could start a command of its own', field);
  return value;
}

/** `'value'`, with each ' written as '\'' (the one character single quotes cannot hold). */
export function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

function checkUrl(url: string): string {
  plain(url, `the proxy URL ${JSON.stringify(url.slice(0, 80))}`, 'proxyUrl');
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw invalid(`the proxy URL ${JSON.stringify(url.slice(0, 80))}`, 'is not a URL (expected https://proxy.example.com)', 'proxyUrl');
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw invalid(`the proxy URL ${JSON.stringify(url.slice(0, 80))}`, 'is not http:// or https://', 'proxyUrl');
  if (u.username || u.password) throw invalid('the proxy URL', 'carries a user or password: the invitation is the credential', 'proxyUrl');
  if (u.search || u.hash || /\s/.test(url)) throw invalid(`the proxy URL ${JSON.stringify(url.slice(0, 80))}`, 'has a query, fragment or space (expected the publicUrl, e.g. https://proxy.example.com)', 'proxyUrl');
  return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
}

function checkPath(path: string, what: string, field: string): string {
  plain(path, what, field);
  if (!path.startsWith('/')) throw invalid(`${what} ${JSON.stringify(path.slice(0, 80))}`, 'is not an absolute path', field);
  return posix.normalize(path).replace(/(.)\/+$/, '$1');
}

/** The PEM text, one or more CERTIFICATE blocks each of which parses, with nothing else around them. */
function checkCa(pem: string): string {
  const text = pem.replace(/\r\n/g, '\n').trim();
  const block = /-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+?\n-----END CERTIFICATE-----/g;
  const blocks = text.match(block) ?? [];
  if (blocks.length === 0 || blocks.join('\n') !== text.replace(/\n{2,}/g, '\n')) {
    throw invalid('the CA', 'is not PEM certificates only (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)', 'caPem');
  }
  for (const b of blocks) {
    try {
      new X509Certificate(b);
    } catch {
      throw invalid('the CA', 'holds a block that is not a certificate', 'caPem');
    }
  }
  return `${blocks.join('\n')}\n`;
}

/**
 * The script, for GpuLaunch.onstart. Throws STANDBY_ERR_CONFIG_INVALID, naming
 * the field, for a value it will not put in a shell script.
 */
export function gpuOnstart(input: GpuOnstartInput): string {
  const proxyUrl = checkUrl(input.proxyUrl);
  const invitation = plain(input.invitation, 'the invitation', 'invitation');
  if (!invitation.startsWith(INVITE_PREFIX) || !/^[A-Za-z0-9_-]{8,200}$/.test(invitation)) throw invalid('the invitation', `is not one (${INVITE_PREFIX}... letters, digits, "_" and "-")`, 'invitation');
  const hostId = plain(input.hostId, 'the host id', 'hostId');
  if (!HOST_ID.test(hostId)) throw invalid(`the host id ${JSON.stringify(hostId.slice(0, 80))}`, 'is not 1-63 letters, digits, ".", "_" or "-" starting with a letter or digit', 'hostId');
  const workspace = checkPath(input.workspace, 'the workspace', 'workspace');
  const root = checkPath(input.root ?? '/', 'the install prefix', 'root');
  const ca = input.caPem === undefined ? undefined : checkCa(input.caPem);

  const at = (p: string) => posix.join(root, p);
  const q = shQuote;
  const lines = [
    '#!/bin/sh',
    '# Standby: the first boot of a GPU the proxy rented for a recovery.',
    "# Installs the agent through the proxy's installer with a one-time invitation,",
    "# and the receiver the restore writes through (the proxy's fencing key), then",
    '# starts the agent; it pushes nothing until the proxy grants it primary.',
    '# Run again (a restarted container), it starts the installed agent.',
    'set -eu',
    'PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"',
    'export PATH',
    `proxy_url=${q(proxyUrl)}`,
    `host_id=${q(hostId)}`,
    `workspace=${q(workspace)}`,
    `root=${q(root)}`,
    `config=${q(at('etc/standby/agent.json'))}`,
    `program=${q(at('opt/standby/bin/standby'))}`,
    `logs=${q(at('var/log'))}`,
    'mkdir -p "$logs"',
    'log="$logs/standby-onstart.log"',
    'agent_log="$logs/standby-agent.log"',
    // the record of this boot, for whoever looks at the GPU (the invitation is never printed)
    'exec >>"$log" 2>&1',
    'say() { echo "standby onstart: $*"; }',
    'die() { say "$*"; exit 1; }',
    'say "$(date -u +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo start): host $host_id, proxy $proxy_url"',
    '[ "$root" != / ] || [ "$(id -u)" = 0 ] || die "run as root (the installer writes /opt, /etc and /var/lib)"',
    'systemd=""',
    'if [ "$root" = / ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then systemd=1; fi',
  ];
  if (ca) {
    lines.push(
      `ca_file=${q(at('etc/standby/proxy-ca.pem'))}`,
      'mkdir -p "$(dirname "$ca_file")"',
      // a quoted delimiter: the shell expands nothing in the lines; certificates hold only base64 and dashes
      "cat >\"$ca_file\" <<'STANDBY_PROXY_CA'",
      ca.trimEnd(),
      'STANDBY_PROXY_CA',
      'chmod 644 "$ca_file"',
      // curl (install.sh's downloads) and Node (the enrollment, the agent's socket) trust it
      'CURL_CA_BUNDLE="$ca_file"',
      'NODE_EXTRA_CA_CERTS="$ca_file"',
      'export CURL_CA_BUNDLE NODE_EXTRA_CA_CERTS',
      'if [ -n "$systemd" ]; then',
      `  mkdir -p /etc/systemd/system/${AGENT_UNIT}.d`,
      `  printf '[Service]\\nEnvironment=NODE_EXTRA_CA_CERTS=%s\\n' "$ca_file" >/etc/systemd/system/${AGENT_UNIT}.d/proxy-ca.conf`,
      'fi',
    );
  }
  lines.push(
    'if [ -s "$config" ]; then',
    '  say "the agent is installed already ($config): starting it"',
    'else',
    '  mkdir -p "$workspace"',
    '  if ! command -v curl >/dev/null 2>&1; then',
    '    command -v apt-get >/dev/null 2>&1 || die "curl is missing and there is no apt-get: use an image with curl"',
    '    say "installing curl"',
    '    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl ca-certificates >/dev/null || die "apt-get install curl failed"',
    '  fi',
    '  tmp=$(mktemp -d "${TMPDIR:-/tmp}/standby-onstart.XXXXXX")',
    '  trap \'rm -rf "$tmp"\' EXIT INT TERM',
    // to a file first: a download cut short is never half run
    '  curl -fsSL --retry 10 --retry-delay 3 --retry-connrefused --max-time 120 -o "$tmp/install.sh" "$proxy_url/_standby/install.sh" || die "could not download $proxy_url/_standby/install.sh: is the proxy reachable from this GPU?"',
    '  set -- agent --host-id "$host_id" --workspace "$workspace"',
    '  [ "$root" = / ] || set -- "$@" --root "$root"',
    '  [ -n "$systemd" ] || set -- "$@" --no-start',
    `  STANDBY_TOKEN=${q(invitation)} sh "$tmp/install.sh" "$@" || die "the installer failed (above)"`,
    // the receiver too: the standby's agent restores this GPU through it (the proxy's fencing key, forced to
    // `standby receive` into the workspace, fenced by epoch), and the proxy fences it at the switch back
    '  set -- standby --proxy "$proxy_url" --workspace "$workspace" --no-start',
    '  [ "$root" = / ] || set -- "$@" --root "$root"',
    '  "$program" install "$@" || die "installing the receiver failed (above)"',
    '  rm -rf "$tmp"',
    '  trap - EXIT INT TERM',
    'fi',
    'if [ -n "$systemd" ]; then',
    '  systemctl daemon-reload',
    `  systemctl enable ${AGENT_UNIT} >/dev/null 2>&1 || true`,
    `  systemctl restart ${AGENT_UNIT} || die "systemctl could not start ${AGENT_UNIT}: journalctl -u ${AGENT_UNIT}"`,
    `  say "agent started (${AGENT_UNIT})"`,
    '  exit 0',
    'fi',
    // no systemd (a container): code-server as its unit would run it (the installer's start script, when it
    // laid code-server down), then the agent; both here, in the background so this script ends, started again when they end
    `code_server=${q(at('opt/standby/code-server/start'))}`,
    'if [ -x "$code_server" ]; then',
    '  (',
    "    trap '' HUP",
    '    while :; do',
    '      code=0',
    '      "$code_server" || code=$?',
    '      echo "standby onstart: code-server exited $code: starting it again in 5 s"',
    '      sleep 5',
    '    done',
    '  ) </dev/null >>"$logs/standby-code-server.log" 2>&1 &',
    '  say "code-server started (pid $!, log $logs/standby-code-server.log)"',
    'fi',
    '(',
    "  trap '' HUP",
    '  while :; do',
    '    code=0',
    '    "$program" agent --config "$config" || code=$?',
    '    [ "$code" != 0 ] || exit 0',
    `    case "$code" in ${FINAL_EXITS.join('|')}) echo "standby onstart: the agent exited $code (a restart cannot fix that): not restarting"; exit "$code" ;; esac`,
    '    echo "standby onstart: the agent exited $code: starting it again in 5 s"',
    '    sleep 5',
    '  done',
    ') </dev/null >>"$agent_log" 2>&1 &',
    'say "agent started (pid $!, log $agent_log)"',
    '',
  );
  return lines.join('\n');
}
