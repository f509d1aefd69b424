/**
 * tamp serve: models over the Open Inference Protocol v2 (REST and gRPC) and
 * TF Serving's REST API, with dynamic batching, a watched model repository and
 * Prometheus metrics. Runs until SIGINT or SIGTERM.
 */
import { UsageError } from '@tamp/core';
import { startServe } from '@tamp/serve';
import type { DeviceRequest } from '@tamp/webgpu';
import { defineCommand } from '../command.js';
import { table } from '../output.js';
import { deviceOption, dryRunOption, dryRunResult, securityFrom, securityOptions } from './shared-options.js';
import { COMMAND_SUMMARIES } from './summaries.js';

/** Every `--model NAME=PATH` (the option may repeat; the parser keeps only the last, so read them from argv). */
export function modelFlags(argv: readonly string[]): Map<string, string> {
  const models = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const value = arg === '--model' ? argv[++i] : arg.startsWith('--model=') ? arg.slice('--model='.length) : undefined;
    if (value === undefined) continue;
    const eq = value.indexOf('=');
    const name = value.slice(0, eq);
    if (eq < 1 || eq === value.length - 1 || !/^[A-Za-z0-9_.-]+$/.test(name)) throw new UsageError(`--model takes NAME=PATH (a name of letters, digits, ., _ or -), got "${value}"`);
    if (models.has(name)) throw new UsageError(`--model ${name} is given twice`);
    models.set(name, value.slice(eq + 1));
  }
  return models;
}

export const serveCommand = defineCommand({
  name: 'serve',
  summary: COMMAND_SUMMARIES.serve,
  positionals: [],
  options: {
    model: { type: 'string', value: 'NAME=PATH', description: 'a model.tamp or model.json to serve as NAME (version 1); repeat for more models' },
    'model-repository': { type: 'string', value: 'DIR', description: 'serve DIR/<name>/<version>/model.tamp|model.json, polled for new and changed versions' },
    host: { type: 'string', default: '127.0.0.1', description: 'address to listen on' },
    'http-port': { type: 'number', integer: true, min: 0, max: 65535, default: 8000, description: 'REST port (v2 and TF Serving); 0 picks a free one' },
    'grpc-port': { type: 'number', integer: true, min: 0, max: 65535, default: 8001, description: 'gRPC port (inference.GRPCInferenceService, the v2 protocol); 0 picks a free one' },
    'metrics-port': { type: 'number', integer: true, min: 0, max: 65535, description: 'Prometheus /metrics and /healthz on this port (default: none)' },
    device: deviceOption,
    'max-batch-size': { type: 'number', integer: true, min: 1, default: 1, description: 'most samples in one dynamic batch (1: no batching)' },
    'max-queue-delay-ms': { type: 'number', min: 0, default: 0, description: 'how long a request may wait for others to fill its batch' },
    'max-queue-size': { type: 'number', integer: true, min: 1, default: 1024, description: 'most samples waiting per model version; beyond it requests get 503 at once' },
    'max-body-bytes': { type: 'number', integer: true, min: 1024, default: 64 * 1024 * 1024, description: 'largest request body accepted (413 beyond)' },
    'inference-thread': { type: 'string', choices: ['auto', 'on', 'off'], default: 'auto', description: 'run WASM and CPU models on a worker thread, so requests are read and answered while a batch computes (auto: when --max-batch-size > 1)' },
    'request-timeout-ms': { type: 'number', min: 0, default: 0, description: 'default deadline of a request in the queue (0: none; v2 requests may set parameters.timeout)' },
    ...securityOptions,
    'dry-run': dryRunOption,
  },
  async run({ options, argv, out }) {
    const models = modelFlags(argv);
    const repository = options['model-repository'];
    if ((models.size === 0) === (repository === undefined)) throw new UsageError('give --model NAME=PATH (repeatable) or --model-repository DIR');
    const batching = { maxBatchSize: options['max-batch-size'], maxQueueDelayMs: options['max-queue-delay-ms'], maxQueueSize: options['max-queue-size'] };
    if (batching.maxQueueSize < batching.maxBatchSize) throw new UsageError(`--max-queue-size (${batching.maxQueueSize}) must hold at least one batch (--max-batch-size ${batching.maxBatchSize})`);
    const security = securityFrom(options);
    if (options['dry-run']) return dryRunResult('serve', { models: Object.fromEntries(models), repository, host: options.host, httpPort: options['http-port'], grpcPort: options['grpc-port'], metricsPort: options['metrics-port'], device: options.device, inferenceThread: options['inference-thread'], ...batching });
    const server = await startServe({
      ...(models.size > 0 ? { models } : {}),
      ...(repository !== undefined ? { repository } : {}),
      host: options.host,
      httpPort: options['http-port'],
      grpcPort: options['grpc-port'],
      ...(options['metrics-port'] !== undefined ? { metricsPort: options['metrics-port'] } : {}),
      device: options.device as DeviceRequest,
      batching,
      ...(options['inference-thread'] !== 'auto' ? { inferenceThread: options['inference-thread'] === 'on' } : {}),
      maxBodyBytes: options['max-body-bytes'],
      requestTimeoutMs: options['request-timeout-ms'],
      security,
      log: (m) => out.log(m),
    });
    const loaded = server.store.all().map((m) => ({ name: m.name, version: m.version, device: m.info.device, task: m.task }));
    out.log(`serving ${loaded.map((m) => `${m.name}/${m.version} (${m.device})`).join(', ') || 'no models yet'} on http://${options.host}:${server.httpPort}, gRPC on ${options.host}:${server.grpcPort}${server.metricsPort !== undefined ? `, metrics on :${server.metricsPort}` : ''}`);
    process.send?.({ type: 'listening', port: server.httpPort, grpcPort: server.grpcPort, metricsPort: server.metricsPort });
    const why = await new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    await server.close();
    const result = { httpPort: server.httpPort, grpcPort: server.grpcPort, metricsPort: server.metricsPort, models: loaded, stoppedBy: why };
    return { result, text: table([['stopped by', why], ['models', loaded.map((m) => `${m.name}/${m.version}`).join(', ')]]) };
  },
});
