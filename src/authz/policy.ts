// The access policy an agent or the operator enforces, assembled from the AccessRoles and
// DatabaseUsers in an informer cache. An invalid one grants nothing and is logged once per version.
import { AccessRole, DatabaseUser } from '../api/access.js';
import type { KubeObject } from '../kube/types.js';
import { parseMemo } from '../kube/parse.js';
import type { Logger } from '../log.js';
import type { Policy } from './engine.js';

export function validPolicy(roles: readonly KubeObject[], users: readonly KubeObject[], log: Logger): Policy {
  return {
    roles: roles.map((r) => parseMemo(AccessRole, 'AccessRole', r, log)).filter((r) => r !== undefined),
    users: users.map((u) => parseMemo(DatabaseUser, 'DatabaseUser', u, log)).filter((u) => u !== undefined),
  };
}
