// The access policy an agent or the operator enforces, assembled from the AccessRoles and
// DatabaseUsers in an informer cache. An invalid one grants nothing and is logged once per version; an
// invalid AccessRole also denies the sessions of those bound to it (its deny rules cannot be read).
import { AccessRole, DatabaseUser } from '../api/access.js';
import type { KubeObject } from '../kube/types.js';
import { parseMemo } from '../kube/parse.js';
import type { Logger } from '../log.js';
import type { Policy } from './engine.js';

export function validPolicy(roles: readonly KubeObject[], users: readonly KubeObject[], log: Logger): Policy {
  const valid: AccessRole[] = [];
  const invalidRoles = new Set<string>();
  for (const r of roles) {
    const role = parseMemo(AccessRole, 'AccessRole', r, log);
    if (role) valid.push(role);
    else invalidRoles.add(r.metadata.name);
  }
  return {
    roles: valid,
    users: users.map((u) => parseMemo(DatabaseUser, 'DatabaseUser', u, log)).filter((u) => u !== undefined),
    invalidRoles,
  };
}
