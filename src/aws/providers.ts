// Registers the AWS backend credential providers with the engines' provider seam, by spec.auth.type.
// Imported once by src/engines/all.ts; each provider shares the process-wide AWS clients.
import { registerCredentialProvider } from '../engines/credentials.js';
import { elasticacheIamProvider, elasticacheManagedProvider } from './backend/elasticache.js';
import { rdsIamProvider } from './backend/rds.js';
import { redshiftProvider, redshiftServerlessProvider } from './backend/redshift.js';
import { sharedAwsClients } from './clients.js';

registerCredentialProvider('rds-iam', (deps) => rdsIamProvider(sharedAwsClients(), deps));
registerCredentialProvider('redshift', () => redshiftProvider(sharedAwsClients()));
registerCredentialProvider('redshift-serverless', () => redshiftServerlessProvider(sharedAwsClients()));
registerCredentialProvider('elasticache-iam', () => elasticacheIamProvider(sharedAwsClients()));
registerCredentialProvider('elasticache-managed', () => elasticacheManagedProvider(sharedAwsClients()));
