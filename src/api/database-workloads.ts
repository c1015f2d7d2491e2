// spec.workloads of a Database: how workloads (ServiceAccount tokens) reach its agent.
import { z } from 'zod';

export const DatabaseWorkloads = z
  .object({
    acceptSharedAudience: z
      .boolean()
      .default(false)
      .describe(
        'Migration only, unsafe: also accept tokens for the shared audience drawbridge.dev. Any agent ' +
          "accepts those, so a token a workload sends to another database (or that another database's " +
          'agent captures) opens sessions here as that ServiceAccount. Move the workloads to audience ' +
          'drawbridge.dev/<namespace>/<database> and remove this; while set, the Database has the ' +
          'condition WorkloadTokensScoped=False and a Warning Event.',
      ),
  })
  .describe(
    'Workload access: a workload sends a projected ServiceAccount token for audience ' +
      'drawbridge.dev/<namespace>/<database> (this Database), checked by TokenReview.',
  );
export type DatabaseWorkloads = z.infer<typeof DatabaseWorkloads>;
