// PostgreSQL v3 wire protocol: message codes and the shapes the agent decodes. The agent decodes only
// what it needs to authenticate, audit and cancel; everything else is framed and relayed untouched.
// Reference: https://www.postgresql.org/docs/15/protocol-message-formats.html

/** Codes of the untyped packets a client may send first (int32 length, int32 code). */
export const enum StartupCode {
  Protocol3 = 196608, // 3 << 16 | 0: StartupMessage, protocol 3.0
  CancelRequest = 80877102, // 1234 << 16 | 5678
  SSLRequest = 80877103, // 1234 << 16 | 5679
  GSSENCRequest = 80877104, // 1234 << 16 | 5680
  /** Drawbridge's own: a CancelRequest one agent replica relays to its peers (never relayed again). */
  PeerCancelRequest = 80877202, // 1234 << 16 | 5778
}

/** Client → server message codes (the byte before each message's int32 length). */
export const enum FrontendCode {
  Bind = 0x42, // B
  Close = 0x43, // C
  CopyData = 0x64, // d
  CopyDone = 0x63, // c
  CopyFail = 0x66, // f
  Describe = 0x44, // D
  Execute = 0x45, // E
  Flush = 0x48, // H
  FunctionCall = 0x46, // F
  Parse = 0x50, // P
  Password = 0x70, // p (also SASLInitialResponse, SASLResponse, GSSResponse)
  Query = 0x51, // Q
  Sync = 0x53, // S
  Terminate = 0x58, // X
}

/** Server → client message codes. */
export const enum BackendCode {
  Authentication = 0x52, // R
  BackendKeyData = 0x4b, // K
  CloseComplete = 0x33, // 3
  CopyInResponse = 0x47, // G
  ErrorResponse = 0x45, // E
  NegotiateProtocolVersion = 0x76, // v
  NoticeResponse = 0x4e, // N
  ParameterStatus = 0x53, // S
  ParseComplete = 0x31, // 1
  ReadyForQuery = 0x5a, // Z
}

/** The int32 that follows an Authentication ('R') message's length. */
export const enum AuthCode {
  Ok = 0,
  KerberosV5 = 2,
  CleartextPassword = 3,
  MD5Password = 5,
  SCMCredential = 6,
  GSS = 7,
  GSSContinue = 8,
  SSPI = 9,
  SASL = 10,
  SASLContinue = 11,
  SASLFinal = 12,
}

/** Bytes of a CancelRequest packet (length, code, process id, secret key). */
export const CANCEL_REQUEST_LENGTH = 16;
/** PostgreSQL's own cap on startup packets (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_LENGTH = 10_000;
/** PostgreSQL's caps on frontend message lengths (PQ_SMALL_MESSAGE_LIMIT, PQ_LARGE_MESSAGE_LIMIT). */
export const SMALL_MESSAGE_LIMIT = 10_000;
export const LARGE_MESSAGE_LIMIT = 0x3fff_ffff - 1;
/** Authentication responses carry SASL data or a token; PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH. */
export const AUTH_MESSAGE_LIMIT = 65_535;

/** SQLSTATE codes the agent itself sends. */
export const enum SqlState {
  ProtocolViolation = '08P01',
  ConnectionFailure = '08006',
  FeatureNotSupported = '0A000',
  InvalidAuthorization = '28000',
  TooManyConnections = '53300',
  InsufficientResources = '53000',
  AdminShutdown = '57P01',
  QueryCanceled = '57014',
  InternalError = 'XX000',
}

/** The first packet of a connection, decoded. */
export type StartupPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; processId: number; secretKey: number; fromPeer: boolean }
  | { kind: 'startup'; major: number; minor: number; params: Map<string, string> };

/** One framed message: its code, its body (after the length) and the whole frame, both zero-copy views. */
export interface Frame {
  code: number;
  body: Buffer;
  frame: Buffer;
}

/** Fields of an ErrorResponse or NoticeResponse, keyed by their one-letter field type. */
export interface ErrorFields {
  severity?: string;
  code?: string;
  message?: string;
  detail?: string;
  hint?: string;
}

export type AuthRequest =
  | { kind: 'ok' }
  | { kind: 'cleartext' }
  | { kind: 'md5'; salt: Buffer }
  | { kind: 'sasl'; mechanisms: string[] }
  | { kind: 'sasl-continue'; data: string }
  | { kind: 'sasl-final'; data: string }
  | { kind: 'unsupported'; code: AuthCode | number };

export interface ParseMessage {
  statement: string;
  /** The statement text, a zero-copy view (possibly long: the auditor truncates it). */
  query: Buffer;
}

export interface BindMessage {
  portal: string;
  statement: string;
  /** Raw parameter values (zero-copy views); null is SQL NULL. */
  values: (Buffer | null)[];
  /** Per-parameter format (false text, true binary), expanded from the message's format list. */
  binary: boolean[];
}

export interface FunctionCallMessage {
  /** The function's OID (pg_proc.oid). */
  oid: number;
  /** Raw argument values (zero-copy views); null is SQL NULL. */
  values: (Buffer | null)[];
  /** Per-argument format (false text, true binary). */
  binary: boolean[];
}

export interface CloseMessage {
  target: 'statement' | 'portal';
  name: string;
}
