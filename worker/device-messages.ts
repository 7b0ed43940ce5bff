/**
 * What a node's process and its device processes (`worker start --devices N`) say to each other
 * over Node's IPC channel (advanced serialization: typed arrays travel as such).
 */
import type { ModelSpec } from '../shared/model/spec.js';

/** Node -> device. Requests with an id are answered once, with the same id. */
export type DeviceRequest =
  | { readonly type: 'job'; readonly id: number; readonly spec: ModelSpec }
  | { readonly type: 'weights'; readonly weights: Float32Array }
  | {
      readonly type: 'gradient';
      readonly id: number;
      readonly x: Float32Array;
      readonly y: Float32Array;
      readonly count: number;
      readonly step?: number;
      readonly rows?: Int32Array;
      readonly groups?: Int32Array;
      /** The samples' weights in the loss (data.sampleWeight), or absent. */
      readonly weights?: Float32Array;
    }
  | { readonly type: 'evaluate'; readonly id: number; readonly x: Float32Array; readonly y: Float32Array; readonly count: number; readonly weights?: Float32Array };

/** Device -> node. */
export type DeviceReply =
  | { readonly type: 'ready'; readonly backend: string; readonly adapter?: string }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'job'; readonly id: number; readonly parameters: number }
  | { readonly type: 'gradient'; readonly id: number; readonly gradient: Float32Array; readonly count: number; readonly lossSum: number; readonly metricSums: number[]; readonly computeMs: number }
  | { readonly type: 'evaluate'; readonly id: number; readonly count: number; readonly lossSum: number; readonly metricSums: number[] }
  | { readonly type: 'error'; readonly id: number; readonly message: string };
