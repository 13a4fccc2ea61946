// Errors raised by the wire kit. Each class's `name` is its code; tests assert on it.

export class MessageTooLargeError extends Error {
  static readonly code = 'MessageTooLarge'
  override name = 'MessageTooLarge'
}

export class TruncatedFrameError extends Error {
  static readonly code = 'TruncatedFrame'
  override name = 'TruncatedFrame'
}

export class MalformedMessageError extends Error {
  static readonly code = 'MalformedMessage'
  override name = 'MalformedMessage'
}

export class StreamClosedError extends Error {
  static readonly code = 'StreamClosed'
  override name = 'StreamClosed'
}

export class PeerNotAllowedError extends Error {
  static readonly code = 'PeerNotAllowed'
  override name = 'PeerNotAllowed'
}

/** A peer already has as many streams of a protocol open as it may. */
export class TooManyStreamsError extends Error {
  static readonly code = 'TooManyStreams'
  override name = 'TooManyStreams'
}

/** A DHT record that does not decode, verify, or pass its kind's check. */
export class InvalidRecordError extends Error {
  static readonly code = 'InvalidRecord'
  override name = 'InvalidRecord'
}

/** A DHT record under a kind nobody registered in this hive. */
export class UnknownRecordKindError extends Error {
  static readonly code = 'UnknownRecordKind'
  override name = 'UnknownRecordKind'
}

/** A peer sent something we cannot accept: the stream is closed and the peer hung up on. */
export function isPeerFault (err: unknown): boolean {
  return err instanceof MessageTooLargeError ||
    err instanceof TruncatedFrameError ||
    err instanceof MalformedMessageError
}
