/**
 * Typed errors. Every error a user can cause carries a stable `code` and a one-line message
 * that names the file, field, column or peer at fault. The CLI prints `error [CODE]: message`
 * and exits non-zero; stack traces are shown only with --verbose.
 */
export type ErrorCode =
  | 'E_USAGE'
  | 'E_CONFIG'
  | 'E_DATA'
  | 'E_MODEL'
  | 'E_BACKEND'
  | 'E_WORKER'
  | 'E_PROTOCOL'
  | 'E_CLUSTER'
  | 'E_CHECKPOINT'
  | 'E_STORAGE'
  | 'E_REDUCE'
  | 'E_PACKET';

export class DptrainError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Bad command line: unknown flag, missing value. */
export class UsageError extends DptrainError {
  constructor(message: string) {
    super('E_USAGE', message);
  }
}

/** The job config is invalid: unknown key, wrong type, out-of-range value. */
export class ConfigError extends DptrainError {
  constructor(message: string) {
    super('E_CONFIG', message);
  }
}

/** The data cannot be used: missing file, unknown column, unexpected label, nothing left. */
export class DataError extends DptrainError {
  constructor(message: string) {
    super('E_DATA', message);
  }
}

/** The model spec cannot be built or does not match the weights. */
export class ModelError extends DptrainError {
  constructor(message: string) {
    super('E_MODEL', message);
  }
}

/** The asked-for TensorFlow.js backend is not available here. */
export class BackendError extends DptrainError {
  constructor(message: string) {
    super('E_BACKEND', message);
  }
}

/** A participant (thread or node) failed or returned something unusable. */
export class WorkerError extends DptrainError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_WORKER', message, options);
  }
}

/**
 * A job this worker will not take (its model is larger than the worker's --max-parameters): the
 * worker says so to the coordinator and stops, since the coordinator would send it again.
 */
export class JobRefusedError extends WorkerError {}

/** The cluster cannot go on: not enough workers within the wait timeout, or nobody left. */
export class ClusterError extends DptrainError {
  constructor(message: string) {
    super('E_CLUSTER', message);
  }
}

/** No usable checkpoint to resume from, or one that does not belong to this run's data. */
/** A file could not be written or read (full disk, read-only file system, too many open files): names the file and the errno's meaning. */
export class StorageError extends DptrainError {
  constructor(
    message: string,
    readonly errno?: string,
    options?: { cause?: unknown },
  ) {
    super('E_STORAGE', message, options);
  }
}

/** A stop was asked for (SIGINT, SIGTERM) while the run waited for worker nodes. */
export class WaitCancelledError extends DptrainError {
  constructor(message: string) {
    super('E_CLUSTER', message);
  }
}

export class CheckpointError extends DptrainError {
  constructor(message: string) {
    super('E_CHECKPOINT', message);
  }
}

/**
 * Why a message was rejected; also the `reason` label of failure counters (`oversize`: over its
 * type's frame limits, frame-limits.ts; a joined node's failure counts it as `malformed`).
 */
export type ProtocolFault = 'malformed' | 'oversize' | 'version' | 'auth' | 'non_finite' | 'shape' | 'unexpected';

/** A message that breaks the protocol; `fault` is why (the participant failure reason it maps to). */
export class ProtocolError extends DptrainError {
  constructor(
    message: string,
    readonly fault: ProtocolFault = 'malformed',
  ) {
    super('E_PROTOCOL', message);
  }
}

/** Parts that cannot be averaged (wrong length, bad count): a bug or a peer's lie, never a user's input. */
export class ReduceError extends DptrainError {
  constructor(message: string) {
    super('E_REDUCE', message);
  }
}

/** A gradient packet from a thread that does not parse. */
export class PacketError extends DptrainError {
  constructor(message: string) {
    super('E_PACKET', message);
  }
}
