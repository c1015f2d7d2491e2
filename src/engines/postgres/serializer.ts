// Outbound messages the agent writes itself: to clients (auth, key data, errors) and to backends
// (startup, auth responses, cancel). Relayed traffic never passes through here. Fixed messages are
// built once at load time.
import { AuthCode, BackendCode, FrontendCode, type SqlState, StartupCode } from './messages.js';

/** Assembles one message: optional code byte, int32 length, then the parts. */
class MessageWriter {
  private readonly parts: Buffer[] = [];
  private size = 0;

  constructor(private readonly code?: number) {}

  int32(n: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeInt32BE(n);
    return this.add(b);
  }

  cstring(s: string): this {
    return this.add(Buffer.from(s + '\0', 'utf8'));
  }

  add(b: Buffer): this {
    this.parts.push(b);
    this.size += b.length;
    return this;
  }

  /** The message bytes; the length field counts itself and the body, not the code byte. */
  done(): Buffer {
    const head = this.code === undefined ? 0 : 1;
    const out = Buffer.allocUnsafe(head + 4 + this.size);
    if (this.code !== undefined) out[0] = this.code;
    out.writeInt32BE(4 + this.size, head);
    let off = head + 4;
    for (const p of this.parts) off += p.copy(out, off);
    return out;
  }
}

/** Answers to SSLRequest / GSSENCRequest: one byte each. */
export const SSL_ACCEPTED = Buffer.from('S');
export const ENCRYPTION_REFUSED = Buffer.from('N');

export const AUTHENTICATION_OK = new MessageWriter(BackendCode.Authentication).int32(AuthCode.Ok).done();
export const AUTHENTICATION_CLEARTEXT = new MessageWriter(BackendCode.Authentication)
  .int32(AuthCode.CleartextPassword)
  .done();

export const SSL_REQUEST = new MessageWriter().int32(StartupCode.SSLRequest).done();
export const TERMINATE = new MessageWriter(FrontendCode.Terminate).done();

export interface ErrorResponseFields {
  severity: 'FATAL' | 'ERROR';
  code: SqlState | string;
  message: string;
  hint?: string;
  detail?: string;
}

/** ErrorResponse ('E') with both localized (S) and non-localized (V) severity, as servers send since 9.6. */
export function errorResponse(f: ErrorResponseFields): Buffer {
  const w = new MessageWriter(BackendCode.ErrorResponse);
  const field = (type: string, value: string) => w.cstring(type + value);
  field('S', f.severity);
  field('V', f.severity);
  field('C', f.code);
  field('M', f.message);
  if (f.detail) field('D', f.detail);
  if (f.hint) field('H', f.hint);
  return w.add(Buffer.from([0])).done();
}

export function backendKeyData(processId: number, secretKey: number): Buffer {
  return new MessageWriter(BackendCode.BackendKeyData).int32(processId).int32(secretKey).done();
}

/** Tells a client asking for protocol 3.x (x > 0) or `_pq_.` options that the agent speaks 3.0. */
export function negotiateProtocolVersion(newestMinor: number, unrecognized: string[]): Buffer {
  const w = new MessageWriter(BackendCode.NegotiateProtocolVersion).int32(newestMinor);
  w.int32(unrecognized.length);
  for (const name of unrecognized) w.cstring(name);
  return w.done();
}

export function startupMessage(params: Iterable<[string, string]>): Buffer {
  const w = new MessageWriter().int32(StartupCode.Protocol3);
  for (const [name, value] of params) w.cstring(name).cstring(value);
  return w.add(Buffer.from([0])).done();
}

export function cancelRequest(
  processId: number,
  secretKey: number,
  code = StartupCode.CancelRequest,
): Buffer {
  return new MessageWriter().int32(code).int32(processId).int32(secretKey).done();
}

export function passwordMessage(password: string): Buffer {
  return new MessageWriter(FrontendCode.Password).cstring(password).done();
}

export function saslInitialResponse(mechanism: string, data: string): Buffer {
  const bytes = Buffer.from(data, 'utf8');
  return new MessageWriter(FrontendCode.Password).cstring(mechanism).int32(bytes.length).add(bytes).done();
}

export function saslResponse(data: string): Buffer {
  return new MessageWriter(FrontendCode.Password).add(Buffer.from(data, 'utf8')).done();
}
