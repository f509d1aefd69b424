/** @tamp/serve: models over the Open Inference Protocol v2 (REST and gRPC) and TF Serving's REST API, with dynamic batching. */
export { type ServeOptions, type RunningServer, DEFAULT_BATCHING, startServe } from './serve.js';
export { Batcher, type BatcherOptions, type BatchRunner, QueueFullError, DeadlineError } from './batcher.js';
export { ModelStore, ServedModel, ModelNotLoadedError } from './model-store.js';
export { ModelRepository, scanRepository } from './repository.js';
export { startGrpc, type GrpcOptions } from './grpc.js';
export { INPUT_NAME, OUTPUT_NAME, DETECTION_OUTPUTS } from './inference.js';
export { DATATYPES, type Datatype } from './tensors.js';
export { openSource, type ScoreRow, type ScoreSource } from './score/sources.js';
export { ResumableOutput, type Progress } from './score/output.js';
export { formatOf, scoreToFile, scoreToStream, type ScoreFormat, type ScoreOptions } from './score/score.js';
