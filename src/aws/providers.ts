// Registers the AWS backend credential providers with the engines' provider seam, by spec.auth.type.
// Imported once by src/engines/all.ts; each provider shares the process-wide AWS clients. The AWS SDK
// is loaded on a provider's first credential request, so agents for self-hosted databases never pay
// for it (it is most of an idle agent's memory otherwise).
import type { AuthType } from '../api/database.js';
import {
  type CredentialProvider,
  type ProviderDeps,
  registerCredentialProvider,
} from '../engines/credentials.js';
import type { AwsClients } from './clients.js';

type CreateProvider = (clients: AwsClients, deps: ProviderDeps) => CredentialProvider;

function registerOnFirstUse(type: AuthType, load: () => Promise<CreateProvider>): void {
  registerCredentialProvider(type, (deps) => {
    let provider: Promise<CredentialProvider> | undefined;
    return {
      async get(req) {
        provider ??= Promise.all([load(), import('./clients.js')]).then(([create, clients]) =>
          create(clients.sharedAwsClients(), deps),
        );
        return (await provider).get(req);
      },
    };
  });
}

registerOnFirstUse('rds-iam', async () => (await import('./backend/rds.js')).rdsIamProvider);
registerOnFirstUse('redshift', async () => (await import('./backend/redshift.js')).redshiftProvider);
registerOnFirstUse(
  'redshift-serverless',
  async () => (await import('./backend/redshift.js')).redshiftServerlessProvider,
);
registerOnFirstUse(
  'elasticache-iam',
  async () => (await import('./backend/elasticache.js')).elasticacheIamProvider,
);
registerOnFirstUse(
  'elasticache-managed',
  async () => (await import('./backend/elasticache.js')).elasticacheManagedProvider,
);
