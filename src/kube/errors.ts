// API errors, classified where they happen: the HTTP status and the Status `reason` decide whether a
// caller retries with backoff, waits for a watch event, or reports a terminal problem.
import { DrawbridgeError } from '../errors.js';

/** metav1.StatusReason values we branch on, plus NetworkError for requests that got no answer. */
export type StatusReason =
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Invalid'
  | 'BadRequest'
  | 'Forbidden'
  | 'Unauthorized'
  | 'Gone'
  | 'Expired'
  | 'TooManyRequests'
  | 'ServiceUnavailable'
  | 'Timeout'
  | 'InternalError'
  | 'NetworkError'
  | 'Unknown';

const BY_STATUS: Record<number, StatusReason> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  409: 'Conflict',
  410: 'Gone',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

export class KubeApiError extends DrawbridgeError {
  /** A 429's or 503's `details.retryAfterSeconds`, in ms: how long the server asked callers to wait. */
  readonly retryAfterMs: number | undefined;

  constructor(
    readonly status: number,
    readonly reason: StatusReason,
    message: string,
    options?: { cause?: unknown; retryAfterMs?: number },
  ) {
    super('KUBE_ERROR', message, hintFor(reason), options);
    this.name = 'KubeApiError';
    this.retryAfterMs = options?.retryAfterMs;
  }

  static fromResponse(method: string, path: string, status: number, body: string): KubeApiError {
    let reason: StatusReason = BY_STATUS[status] ?? 'Unknown';
    let detail = body.slice(0, 500);
    let retryAfterSeconds: number | undefined;
    try {
      const s = JSON.parse(body) as {
        reason?: string;
        message?: string;
        details?: { retryAfterSeconds?: number };
      };
      if (s.reason) reason = s.reason as StatusReason;
      if (s.message) detail = s.message;
      retryAfterSeconds = s.details?.retryAfterSeconds;
    } catch {
      // Not a Status object (a proxy in between): keep the raw text.
    }
    const retryAfterMs = typeof retryAfterSeconds === 'number' ? retryAfterSeconds * 1000 : undefined;
    return new KubeApiError(status, reason, `${method} ${path}: ${status} ${reason}: ${detail}`, {
      retryAfterMs,
    });
  }

  static network(method: string, path: string, cause: Error): KubeApiError {
    return new KubeApiError(0, 'NetworkError', `${method} ${path}: ${cause.message}`, { cause });
  }

  /** Worth retrying with backoff: the server or the network may recover, or a conflict re-read fixes it. */
  get retryable(): boolean {
    return (
      this.status === 0 ||
      this.status === 409 ||
      this.status === 429 ||
      this.status >= 500 ||
      this.reason === 'Conflict'
    );
  }
}

function hintFor(reason: StatusReason): string | undefined {
  switch (reason) {
    case 'Forbidden':
      return "grant the controller's ServiceAccount the RBAC rule named in the message (see the Helm chart's ClusterRole)";
    case 'Unauthorized':
      return 'the credentials in the kubeconfig or the ServiceAccount token were rejected';
    case 'NetworkError':
      return 'check that the API server is reachable from here';
    default:
      return undefined;
  }
}

export function isReason(err: unknown, reason: StatusReason): err is KubeApiError {
  return err instanceof KubeApiError && err.reason === reason;
}
