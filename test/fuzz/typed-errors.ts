// The one failure both parser fuzz harnesses accept: a DrawbridgeError with a protocol code, which
// ends only the session that sent the bad bytes.
import { isDrawbridgeError } from '../../src/errors.js';

const TYPED = new Set(['PROTOCOL_ERROR', 'MESSAGE_TOO_LARGE']);

/** Runs `fn`; a typed protocol error is an accepted outcome, anything else is rethrown. */
export function typedOnly(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (isDrawbridgeError(err) && TYPED.has(err.code)) return;
    throw err;
  }
}
