// One unit of discovery: a matcher's identity in one region and account. Failures are per scope, so
// one unreachable region never deletes another region's Databases.
import type { AwsType } from '../../api/database.js';
import type { AwsIdentity } from '../credentials.js';
import type { FoundDatabase } from './found.js';

export class Scope {
  constructor(
    readonly identity: AwsIdentity,
    readonly account: string,
  ) {}

  get region(): string {
    return this.identity.region;
  }

  /** The fields every FoundDatabase of this scope shares. */
  base(type: AwsType): Pick<FoundDatabase, 'type' | 'region' | 'account' | 'assumeRoleArn' | 'externalId'> {
    return {
      type,
      region: this.region,
      account: this.account,
      ...(this.identity.assumeRoleArn ? { assumeRoleArn: this.identity.assumeRoleArn } : {}),
      ...(this.identity.externalId ? { externalId: this.identity.externalId } : {}),
    };
  }

  /** `type/region/account`: the key failed scopes are tracked by. */
  key(type: AwsType): string {
    return `${type}/${this.region}/${this.account}`;
  }
}
