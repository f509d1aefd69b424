/**
 * What each command does, in one line, in the order `tamp --help` lists
 * them. Kept apart from the commands so `tamp --help` and `tamp --version`
 * load none of them (index.ts loads a command only when it runs).
 */
export const COMMAND_SUMMARIES = {
  train: 'Train a model: in this process, on a local cluster (--local), or as the role TF_CONFIG names.',
  chief: "Run a cluster's chief: initialise the parameter servers, coordinate workers, evaluate, write the model.",
  ps: 'Run one parameter server of a cluster (flags or TF_CONFIG).',
  worker: 'Run one worker of a cluster: join the chief, train on its data shard.',
  certs: 'Make certificates and a token for a secure cluster (--tls-cert, --tls-key, --tls-ca, --mtls, --token-file).',
  compress: 'Compress a trained model (prune, share weights, int8, Huffman): model.tamp, a stock-tfjs export, and a report.',
  eval: "Evaluate a model on a dataset's test split: accuracy for classifiers, mAP@0.5 for the detector.",
  infer: "Run a model (model.json or model.tamp) on an image or on a dataset's test split, on WebGPU (int8 weights kept packed), WASM or CPU.",
  bench: 'tamp bench infer <model>: inference latency percentiles, the adapter, and the weight bytes on the GPU (run it on the target device, e.g. a Jetson).',
  serve: 'Serve models over the Open Inference Protocol v2 (KServe v2 REST and gRPC) and TF Serving REST, with dynamic batching.',
  score: 'Score a model over a dataset (IDX file, image folder, NDJSON) into NDJSON or CSV, resumably; or a stream from stdin to stdout.',
  datasets: 'List the datasets Tamp can train and evaluate on, and where each comes from.',
  quickstart: 'Train LeNet-300-100 on MNIST on a local cluster, evaluate it, compress it, run the compressed model on the best device, and print a summary (what pnpm start runs).',
} as const;

export type CommandName = keyof typeof COMMAND_SUMMARIES;
