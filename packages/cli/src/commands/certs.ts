/**
 * tamp certs: a CA, server and per-role certificates and a bearer token for
 * a cluster (@tamp/rpc/certs). The convenient way for a test or a small
 * team; real deployments bring their own certificates.
 */
import { UsageError } from '@tamp/core';
import { checkOutputFolder } from '@tamp/core/node';
import { writeClusterCerts } from '@tamp/rpc/certs';
import { defineCommand } from '../command.js';
import { table } from '../output.js';
import { dryRunOption, dryRunResult } from './shared-options.js';
import { COMMAND_SUMMARIES } from './summaries.js';

export const certsCommand = defineCommand({
  name: 'certs',
  summary: COMMAND_SUMMARIES.certs,
  positionals: [],
  options: {
    out: { type: 'string', value: 'dir', description: 'folder to write ca.pem, server.pem, server-key.pem, <role>.pem, <role>-key.pem, token and chief-secret into (keys, token and secret mode 0600)' },
    hosts: { type: 'string', value: 'h1,h2,...', description: 'host names and addresses the certificates are valid for (default: localhost,127.0.0.1,::1)' },
    days: { type: 'number', integer: true, min: 1, default: 365, description: 'days the certificates stay valid' },
    'dry-run': dryRunOption,
  },
  async run({ options: o }) {
    if (o.out === undefined) throw new UsageError('tamp certs needs --out DIR');
    const hosts = o.hosts?.split(',').map((h) => h.trim()).filter((h) => h.length > 0);
    if (hosts !== undefined && hosts.length === 0) throw new UsageError('--hosts: give at least one host name or address');
    // The folder is not checked in a dry run, like every command's --out: the
    // container tests dry-run `docker run ... certs --out /certs`, a path inside the container.
    if (o['dry-run'] === true) return dryRunResult('certs', { out: o.out, hosts, days: o.days });
    checkOutputFolder(o.out);
    const files = await writeClusterCerts(o.out, { days: o.days, ...(hosts !== undefined ? { hosts } : {}) });
    const rows: [string, string][] = [
      ['CA (--tls-ca)', files.ca],
      ['server certificate (--tls-cert)', files.serverCert],
      ['server key (--tls-key)', files.serverKey],
      ...Object.entries(files.roles).map(([role, f]) => [`${role} certificate / key`, `${f.cert} ${f.key}`] as [string, string]),
      ['token (--token-file)', files.token],
      ['chief secret (TAMP_CHIEF_SECRET_FILE, parameter servers and chief only)', files.chiefSecret],
    ];
    return {
      result: files,
      text: `${table(rows)}\nrun every role with --tls-cert ${files.serverCert} --tls-key ${files.serverKey} --tls-ca ${files.ca} --mtls --token-file ${files.token}`,
    };
  },
});
