/**
 * Checks of a decoded message that need context the codec does not have: the token, the step a
 * gradient must answer, the model's parameter and metric counts, the parts received before it.
 */
import { ProtocolError } from '../errors.js';
import { versionError } from './codec.js';
import { PROTOCOL_VERSION, type GradientMessage, type GradientPartMessage, type HelloMessage, type Message } from './schemas.js';

/** Checks a hello: protocol version and (constant-time) token. */
export function expectHello(message: Message, checkToken: (token: string) => boolean): HelloMessage {
  if (message.type !== 'hello') throw new ProtocolError(`expected "hello" first, got "${message.type}"`, 'unexpected');
  if (message.version !== PROTOCOL_VERSION) throw versionError(message.version);
  if (!checkToken(message.token)) throw new ProtocolError('bad token', 'auth');
  return message;
}

/** What a step's gradient_part messages brought so far: they tile [end, parameters). */
export interface ReceivedParts {
  readonly count: number;
  readonly end: number;
}

/**
 * Checks a gradient against the step it answers, the model's parameter count and the parts
 * received before it (whose values start at `parts.end`: the message must bring the rest).
 */
export function expectGradient(message: Message, step: number, parameters: number, metrics: number, parts: ReceivedParts = { count: 0, end: parameters }): GradientMessage {
  if (message.type !== 'gradient') throw new ProtocolError(`expected "gradient", got "${message.type}"`, 'unexpected');
  if (message.step !== step) throw new ProtocolError(`gradient for step ${message.step}, expected step ${step}`, 'unexpected');
  if (message.parts !== parts.count) throw new ProtocolError(`gradient says ${message.parts} part(s) came before it, ${parts.count} did`, 'shape');
  if (message.gradient.length !== parts.end) {
    throw new ProtocolError(
      parts.count === 0
        ? `gradient has ${message.gradient.length} values, the model has ${parameters} parameters`
        : `gradient has ${message.gradient.length} values before its parts, which start at ${parts.end}`,
      'shape',
    );
  }
  if (message.metricSums.length !== metrics) throw new ProtocolError(`gradient has ${message.metricSums.length} metric sums, expected ${metrics}`, 'shape');
  return message;
}

/** Checks a gradient part: it must end where the parts before it start (`end`; the model's size for the first). */
export function expectGradientPart(message: GradientPartMessage, end: number): void {
  const { offset, values } = message;
  if (values.length === 0 || offset + values.length !== end) {
    throw new ProtocolError(`gradient part ${offset}..${offset + values.length} does not end where the next values start (${end})`, 'shape');
  }
}
