// Errors reach PostgreSQL clients as ErrorResponse with a SQLSTATE their drivers understand; the hint
// names the fix. Unexpected errors are logged by the caller and shown as a generic internal error.
import { DrawbridgeError, type ErrorCode } from '../../errors.js';
import { SqlState } from './messages.js';
import { type ErrorResponseFields, errorResponse } from './serializer.js';

const SQLSTATE: Record<ErrorCode, SqlState> = {
  INVALID_CONFIG: SqlState.InternalError,
  ACCESS_DENIED: SqlState.InvalidAuthorization,
  AUTHN_FAILED: SqlState.InvalidAuthorization,
  PROTOCOL_ERROR: SqlState.ProtocolViolation,
  MESSAGE_TOO_LARGE: SqlState.ProtocolViolation,
  TOO_MANY_CONNECTIONS: SqlState.TooManyConnections,
  // PostgreSQL's own "canceling authentication due to timeout".
  AUTH_TIMEOUT: SqlState.QueryCanceled,
  CLIENT_TOO_SLOW: SqlState.ConnectionFailure,
  TOO_MANY_SUBSCRIPTIONS: SqlState.InsufficientResources,
  TOO_MANY_UNANSWERED: SqlState.ProtocolViolation,
  BACKEND_UNREACHABLE: SqlState.ConnectionFailure,
  BACKEND_AUTH_FAILED: SqlState.InvalidAuthorization,
  BACKEND_TLS: SqlState.ConnectionFailure,
  CREDENTIALS_UNAVAILABLE: SqlState.InvalidAuthorization,
  SESSION_EXPIRED: SqlState.InvalidAuthorization,
  SESSION_REVOKED: SqlState.InvalidAuthorization,
  AGENT_SHUTDOWN: SqlState.AdminShutdown,
  AGENT_UNRESPONSIVE: SqlState.ConnectionFailure,
  AUDIT_UNAVAILABLE: SqlState.InsufficientResources,
  AWS_ERROR: SqlState.InternalError,
  KUBE_ERROR: SqlState.InternalError,
};

/** The FATAL ErrorResponse that tells a client why its session ends. */
export function fatalFor(err: unknown): Buffer {
  return errorResponse(fieldsFor(err));
}

export function fieldsFor(err: unknown): ErrorResponseFields {
  if (err instanceof DrawbridgeError) {
    return { severity: 'FATAL', code: SQLSTATE[err.code], message: err.message, hint: err.hint };
  }
  return {
    severity: 'FATAL',
    code: SqlState.InternalError,
    message: 'internal error in the Drawbridge agent',
    hint: 'retry; if it persists, check the agent log',
  };
}
