// What the agent currently knows: its Database, the AccessRoles and DatabaseUsers, and Secrets. Fed by
// the config file (standalone) or by watches (in cluster); sessions are re-checked on every change.
import { EventEmitter } from 'node:events';
import type { AccessRole, DatabaseUser } from '../api/access.js';
import type { SecretReader } from '../api/agent-config.js';
import type { Database } from '../api/database.js';
import type { Policy } from '../authz/engine.js';

export interface StateSnapshot {
  database: Database;
  roles: AccessRole[];
  users: DatabaseUser[];
  /** Secret name → key → value. */
  secrets: Map<string, Record<string, string>>;
}

export class AgentState extends EventEmitter implements SecretReader {
  constructor(private snap: StateSnapshot) {
    super();
  }

  get database(): Database {
    return this.snap.database;
  }

  get policy(): Policy {
    return this.snap;
  }

  secret(name: string): Record<string, string> | undefined {
    return this.snap.secrets.get(name);
  }

  /** Replaces the snapshot and tells listeners (the session registry re-checks every live session). */
  update(next: StateSnapshot): void {
    this.snap = next;
    this.emit('change', next);
  }
}
