// Redis engine: the agent speaks RESP2 or RESP3 (as each client chooses with HELLO) to clients and
// to Redis (standalone or Redis Cluster).
//
//   client (redis-cli, ioredis,          agent                                     Redis
//   node-redis, redis-py)
//     │══ TLS handshake (client cert) ══▶│ identity = cert CN/O, or none yet         │
//     │── AUTH app <pass|SA token> ─────▶│ token → TokenVerifier; authorize(app)     │
//     │                                  │── first time: COMMAND, HELLO ────────────▶│ catalog (cached
//     │                                  │◀─ categories per command, cluster mode ───│  per backend)
//     │                                  │── TCP/TLS (spec.tls), AUTH app <cred> ───▶│ credential
//     │◀── +OK ──────────────────────────│◀─ +OK ────────────────────────────────────│
//     │── GET k / SET k v … (pipelined) ▶│ rule check per command (@read, @write …), │
//     │                                  │ audit, relay raw bytes ══════════════════▶│
//     │◀══ replies, in command order ════│◀═══ raw reply frames ══════════════════════│
//     │── FLUSHALL ─────────────────────▶│ denied: -NOPERM naming the rule (not sent)│
//     │── AUTH admin <pass> ────────────▶│ authorize(admin) ── AUTH admin <cred> ───▶│ same connection
//     │── HELLO 3 [AUTH u p] ───────────▶│ AUTH part as above ── HELLO 3 ───────────▶│ this session's
//     │◀── %7 server… (the map) ─────────│◀──────────────────────────────────────────│  connection only
//     │── CLIENT TRACKING ON ───────────▶│ RESP3 only; no REDIRECT; BCAST prefixes   │
//     │                                  │ inside the user's ACL keys ── relay ─────▶│
//     │◀══ replies + >push frames ═══════│◀══ pushes (messages, invalidate) ═════════│ out of band
//     │── RESET ────────────────────────▶│ relay; log in again ─────────────────────▶│ RESP2 again
//
// Files: parser.ts / reply-parser.ts / serializer.ts (codec), session.ts (per-command pipeline),
// session-login.ts (identity, AUTH, user switch), local-commands.ts (AUTH, HELLO, QUIT, RESET ...),
// tracking.ts (what CLIENT TRACKING may do), pubsub-tracker.ts (push or reply, RESP2 and RESP3),
// command-catalog.ts (categories from the backend), engine.ts (TLS, then a session per client),
// router.ts (the router seam),
// standalone-router.ts (one pipelined backend connection), cluster/ (Redis Cluster router; its
// cluster/index.ts is imported apart, on a Database's first cluster session: src/wiring.ts),
// backend-auth.ts (backend connect + AUTH), audit.ts (argument redaction).
export { RedisEngine } from './engine.js';
export { standaloneRouters } from './standalone-router.js';
