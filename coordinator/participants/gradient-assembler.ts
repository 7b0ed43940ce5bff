/**
 * Puts a node's gradient back together from its parts: `gradient_part` messages tile the flat
 * gradient from its end down, while the node still computes the rest, and the final `gradient`
 * message brings the values before them (shared/protocol/PROTOCOL.md). The memory is reused from
 * step to step, except when a node answers twice in one step (recomputing another participant's
 * rows): then the first answer is still in use and the second gets its own.
 */
import { ProtocolError } from '../../shared/errors.js';
import { expectGradientPart, type ReceivedParts } from '../../shared/protocol/context-checks.js';
import type { GradientPartMessage } from '../../shared/protocol/schemas.js';

/** The parts of one request: they tile [end, parameters) of `values`. */
export class GradientAssembly implements ReceivedParts {
  count = 0;
  end: number;
  values: Float32Array | undefined;

  constructor(
    readonly step: number,
    parameters: number,
    private readonly memory: (step: number) => Float32Array,
  ) {
    this.end = parameters;
  }

  /** Copies a part into place; a part that does not end where the received ones start is a ProtocolError ('shape'). */
  add(message: GradientPartMessage): void {
    if (message.step !== this.step) throw new ProtocolError(`sent a gradient part for step ${message.step}, which was not asked for`, 'unexpected');
    expectGradientPart(message, this.end);
    this.values ??= this.memory(this.step);
    this.values.set(message.values, message.offset);
    this.end = message.offset;
    this.count++;
  }

  /** The whole gradient, given the final message's values (those before the parts). */
  complete(head: Float32Array): Float32Array {
    if (!this.values) return head;
    this.values.set(head);
    return this.values;
  }
}

export class GradientAssembler {
  private current: GradientAssembly | undefined;
  /** Reused for assembled gradients, unless handed out earlier in the same step. */
  private assembled: { step: number; values: Float32Array } | undefined;

  constructor(private readonly parameters: number) {}

  /** Starts the assembly of a request for `step`; parts that arrive from now on go into it. */
  begin(step: number): GradientAssembly {
    this.current = new GradientAssembly(step, this.parameters, (s) => this.memory(s));
    return this.current;
  }

  /** A part for the current request (ProtocolError 'unexpected' when there is none). */
  add(message: GradientPartMessage): void {
    if (!this.current) throw new ProtocolError(`sent a gradient part for step ${message.step}, which was not asked for`, 'unexpected');
    this.current.add(message);
  }

  private memory(step: number): Float32Array {
    if (this.assembled?.step === step) return new Float32Array(this.parameters);
    this.assembled = { step, values: this.assembled?.values ?? new Float32Array(this.parameters) };
    return this.assembled.values;
  }
}
