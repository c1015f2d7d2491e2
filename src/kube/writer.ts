// The writes reconcilers make, behind one small interface: production sends them to the API server,
// unit tests record them and assert on what a reconcile would have changed.
import type { KubeClient } from './client.js';
import { type Kind, objectPath, pathOf } from './resources.js';
import type { KubeObject } from './types.js';

export interface ObjectCache<T extends KubeObject = KubeObject> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): readonly T[];
}

export interface ObjectWriter {
  /** Server-side apply with field manager `drawbridge`, taking ownership of the fields it sets. */
  apply(obj: KubeObject): Promise<void>;
  /** JSON merge patch, on the object or one of its subresources (`status`). */
  mergePatch(
    kind: Kind,
    name: string,
    namespace: string | undefined,
    patch: unknown,
    subresource?: string,
  ): Promise<void>;
  /** PUT with the object's resourceVersion: fails with Conflict if it changed meanwhile. */
  replace(obj: KubeObject, subresource?: string): Promise<KubeObject>;
  /** Deletes; already gone counts as success. */
  delete(kind: Kind, name: string, namespace?: string): Promise<void>;
}

export function clientWriter(client: KubeClient): ObjectWriter {
  return {
    async apply(obj) {
      await client.patch(pathOf(obj), 'apply', obj);
    },
    async mergePatch(kind, name, namespace, patch, subresource) {
      await client.patch(objectPath(kind, name, namespace, subresource), 'merge', patch);
    },
    replace(obj, subresource) {
      return client.replace(pathOf(obj, subresource), obj);
    },
    async delete(kind, name, namespace) {
      await client.delete(objectPath(kind, name, namespace));
    },
  };
}
