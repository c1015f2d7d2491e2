// Which watch events change what other objects' status depends on. Status writes come back as update
// events too; fanning those out would make every Database reconcile after every AccessRole status
// write. So an object counts as changed when it appears, goes, or its fingerprint (the generation for
// AccessRole/DatabaseUser, the labels for a Database) differs from the last one seen.
import type { ChangeKind } from '../../kube/informer.js';
import type { KubeObject } from '../../kube/types.js';
import { objectKey } from '../../kube/types.js';

export type Fingerprint = (obj: KubeObject) => string;

export const byGeneration: Fingerprint = (obj) => String(obj.metadata.generation ?? '');
export const byLabels: Fingerprint = (obj) => JSON.stringify(obj.metadata.labels ?? {});

export class ChangeFilter {
  private readonly seen = new Map<string, string>();

  constructor(private readonly fingerprint: Fingerprint) {}

  /** True when dependants should look again. */
  changed(obj: KubeObject, change: ChangeKind): boolean {
    const key = objectKey(obj);
    if (change === 'delete') {
      this.seen.delete(key);
      return true;
    }
    const next = this.fingerprint(obj);
    if (this.seen.get(key) === next) return false;
    this.seen.set(key, next);
    return true;
  }
}
