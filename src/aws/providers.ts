// The AWS backend credential providers, by spec.auth.type, for the agent's provider seam (listed in
// src/wiring.ts); each provider shares the process-wide AWS clients. The AWS SDK
// is loaded on a provider's first credential request, so agents for self-hosted databases never pay
// for it (it is most of an idle agent's memory otherwise).
import type {
  CredentialProvider,
  CredentialProviders,
  ProviderDeps,
  ProviderFactory,
} from '../agent/credentials.js';
import { onFirstUse } from '../on-first-use.js';
import type { AwsClients } from './clients.js';

type CreateProvider = (clients: AwsClients, deps: ProviderDeps) => CredentialProvider;

function loadedOnFirstUse(load: () => Promise<CreateProvider>): ProviderFactory {
  return (deps) => {
    const provider = onFirstUse(async () => {
      const [create, clients] = await Promise.all([load(), import('./clients.js')]);
      return create(clients.sharedAwsClients(), deps);
    });
    return { get: async (req) => (await provider()).get(req) };
  };
}

export const awsCredentialProviders: CredentialProviders = {
  'rds-iam': loadedOnFirstUse(async () => (await import('./backend/rds.js')).rdsIamProvider),
  redshift: loadedOnFirstUse(async () => (await import('./backend/redshift.js')).redshiftProvider),
  'redshift-serverless': loadedOnFirstUse(
    async () => (await import('./backend/redshift.js')).redshiftServerlessProvider,
  ),
  'elasticache-iam': loadedOnFirstUse(
    async () => (await import('./backend/elasticache.js')).elasticacheIamProvider,
  ),
  'elasticache-managed': loadedOnFirstUse(
    async () => (await import('./backend/elasticache.js')).elasticacheManagedProvider,
  ),
};
