// Managed ElastiCache users (auth type elasticache-managed), leader only: one rotation loop
// (startRotation: every managed user of each identity, once per period, slot-aligned so replicas agree)
// over the identities those Databases use, restarted when that set changes. A restart rotates at once
// only users whose current password predates this slot, so it is cheap and safe to repeat.
import type { AwsIdentity } from '../../aws/credentials.js';
import { identityOf } from '../../aws/clients.js';
import type { Logger } from '../../log.js';
import type { ObjectCache } from '../../kube/writer.js';
import { lentAwsDatabases } from './databases.js';

export interface RotationSyncDeps {
  databases: ObjectCache;
  /** startRotation with the controller's clients and period (a seam for unit tests). */
  start: (identities: AwsIdentity[]) => { stop(): void };
  log: Logger;
  /** Only these namespaces' roles are assumed (aws.namespaces with discovery's); empty: all. */
  namespaces?: readonly string[];
}

export class RotationSync {
  private current = '[]';
  private running: { stop(): void } | undefined;

  constructor(private readonly deps: RotationSyncDeps) {}

  run(): void {
    const byKey = new Map<string, AwsIdentity>();
    for (const db of lentAwsDatabases(this.deps.databases, this.deps.namespaces)) {
      if (db.spec.auth.type !== 'elasticache-managed') continue;
      const id = identityOf(db.spec.aws);
      byKey.set(JSON.stringify([id.region, id.assumeRoleArn, id.externalId]), id);
    }
    const key = JSON.stringify([...byKey.keys()].sort());
    if (key === this.current) return;
    this.stop();
    this.current = key;
    const identities = [...byKey.values()];
    if (!identities.length) return;
    this.deps.log.info(
      { identities: identities.map((i) => ({ region: i.region, role: i.assumeRoleArn })) },
      'rotating managed ElastiCache users',
    );
    this.running = this.deps.start(identities);
  }

  stop(): void {
    this.running?.stop();
    this.running = undefined;
    this.current = '[]';
  }
}
