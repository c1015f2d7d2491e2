// PostgreSQL engine: the agent speaks the v3 wire protocol to clients and to the database.
//
//   client (psql, pgbench, pg)            agent                                  database
//     │── SSLRequest ───────────────────────▶│                                        │
//     │◀────────────────────────────── 'S' ──│                                        │
//     │══ TLS handshake (client cert) ══════▶│                                        │
//     │── StartupMessage user, database ────▶│ identity = cert CN/O (or SA token)     │
//     │                                      │ authorize(identity, user, database)    │
//     │◀── ErrorResponse FATAL 28000 ────────│   denied: names the rule               │
//     │                                      │── TCP, SSLRequest, TLS (spec.tls) ────▶│ (or the spare one)
//     │                                      │── StartupMessage ─────────────────────▶│
//     │                                      │◀─ SCRAM-SHA-256 / md5 / cert ─────────▶│ credential
//     │◀── AuthenticationOk, ParameterStatus─│◀─ AuthenticationOk, ParameterStatus ───│
//     │◀── BackendKeyData (pid, agent secret)│◀─ BackendKeyData (secret kept by agent)│
//     │◀── ReadyForQuery ────────────────────│◀─ ReadyForQuery ───────────────────────│
//     │── Query / Parse / Bind / F / COPY … ═│ audit ═══════════════════════════════▶│
//     │◀══════════════════════════════════════ results ═════════════════════════════│
//     │                                      │ ParseComplete, CloseComplete, errors:  │
//     │                                      │   which statement names the server took│
//
//   Cancel (psql Ctrl+C): a new connection with CancelRequest(pid, agent secret) ─▶ agent looks the pair
//   up ─▶ new backend connection with CancelRequest(pid, backend secret). Unknown keys are ignored
//   (or relayed once to peer replicas).
//
// Files: messages.ts (codes, shapes), parser.ts (framing, limits), decoders.ts (message bodies),
// serializer.ts (what the agent writes), frontend.ts (client handshake), backend.ts +
// backend-auth.ts + scram.ts (database connection and login), spare.ts (a connection opened ahead of
// the next login), engine.ts (the steps), session.ts (relay), audit.ts (query events), statements.ts
// (which prepared statement a Bind runs), redact.ts (passwords out of the audit), cancel.ts and
// cancel-peers.ts (cancel keys), errors.ts (SQLSTATE mapping).
export { PostgresEngine } from './engine.js';
