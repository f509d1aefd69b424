/** Prometheus metrics of a server (prom-client, its own registry so several servers can share a process). */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export class ServeMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'tamp_serve_requests_total', help: 'Inference requests answered, by model, version, protocol and outcome.', labelNames: ['model', 'version', 'protocol', 'outcome'], registers: [this.registry] });
  readonly latency = new Histogram({
    name: 'tamp_serve_request_duration_seconds',
    help: 'Time from a request arriving to its answer, by model and version.',
    labelNames: ['model', 'version'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly queue = new Histogram({
    name: 'tamp_serve_queue_duration_seconds',
    help: 'Time a request waited for its batch, by model and version.',
    labelNames: ['model', 'version'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly batchSize = new Histogram({ name: 'tamp_serve_batch_size', help: 'Samples in the batch each request ran in, by model and version.', labelNames: ['model', 'version'], buckets: [1, 2, 4, 8, 16, 32, 64, 128], registers: [this.registry] });
  readonly loaded = new Gauge({ name: 'tamp_serve_model_versions_loaded', help: 'Model versions loaded and ready.', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
